"""The checked operations: validate once, make inputs C-contiguous, allocate the
missing outputs, dispatch to ``fastnn.kernels.IMPLS[op][impl]``.

Every function takes ``impl=None`` (the current implementation, see
:func:`fastnn.use_impl`) and, where it returns arrays, ``out=`` to write into
caller-provided arrays (no allocation). Inputs may be float32 or float64 (all
arguments of one call in the same dtype); results are in that dtype. Invalid
arguments raise ``TypeError`` (wrong kind or dtype) or ``ValueError`` (wrong
shape or value) naming the argument, before anything is written.

Array kinds. Read-only inputs may be any array-like: lists, ndarray subclasses
(``np.matrix``, ``np.memmap``), objects with ``__array__`` (a PyTorch CPU tensor);
they are converted with ``np.asarray`` and give the plain array's result. Masked
arrays are a ``TypeError``: no kernel can honour a mask, and dropping it silently
would compute on the masked values. Arrays that are written (``out``, and
``sgd_update``'s ``param`` and ``velocity``) must be exactly ``numpy.ndarray``: a
subclass is a ``TypeError`` telling you to pass ``np.asarray(x)`` (a plain view of the
same memory), and a foreign array one telling you that its conversion may be a copy
(what is written into a copy is lost).

Overlap. ``out`` must not share memory with any input, as passed or as converted (a
strided input is copied before the kernel runs; ``out`` may not overlap the original
either). The one exception is in place: ``out`` exactly an input (the same memory,
shape and dtype, C-contiguous) for ``sigmoid``, ``sigmoid_backward`` (``out`` is dH),
``softmax`` and ``log_softmax``, and ``sgd_update``'s ``grad`` being ``param``. Any
other sharing, partial or not, is a ``ValueError``.

Float range (finite input; each docstring gives its operation's). No operation warns,
and none gives NaN, for finite input up to ± the dtype's maximum. sigmoid, softmax
and every gradient are finite; log_softmax is −inf where a log-probability is below
the dtype's range (float32 row [3e38, −3e38]: −6e38). The losses are accumulated in
float64 from non-negative terms, so an overflow is +inf: float32 losses are the mean
rounded to float32 (+inf exactly when the mean is at least 2^128 − 2^103 =
3.40282357e38, half an ulp above float32's maximum); float64 losses are +inf where
the float64 total (or one float64 term) overflows, even where the mean would be
representable. ``sgd_update`` rounds each step to the dtype (±inf where one
overflows, never NaN); its hyperparameters are rounded to the parameters' dtype and
must survive that (see :func:`sgd_update`).

Formulas and notation: SPEC.md; the implementations: ``fastnn.kernels``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Union

import numpy as np

from . import _device_api as _dev
from . import _validate as v
from ._impl import kernel

__all__ = [
    "linear", "linear_sigmoid", "sigmoid", "softmax", "log_softmax",
    "softmax_cross_entropy", "softmax_cross_entropy_grad", "sigmoid_bce_grad",
    "sigmoid_mse_grad", "linear_backward", "sigmoid_backward", "hidden_delta",
    "sgd_update",
]


if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray
#: A loss: a scalar of Z's dtype, or (reduction="none") the per-sample losses.
Loss = Union["np.floating", "NDArray"]

_ndarray, _F32, _F64 = np.ndarray, v.F32, v.F64     # (global names: cheaper lookups)


def _layer_args(X, W, b):
    # Fast path: C-contiguous float32/float64 ndarrays of one dtype and matching
    # shapes, which is what the checks below would return unchanged.
    if type(X) is _ndarray and type(W) is _ndarray:
        dt = X.dtype
        if (dt is _F32 or dt is _F64) and W.dtype is dt and X.ndim == 2 and W.ndim == 2:
            N, D = X.shape
            K, D2 = W.shape
            if D2 == D and X.flags.c_contiguous and W.flags.c_contiguous:
                if b is None:
                    return X, W, _zeros(K, dt), N, K
                if (type(b) is _ndarray and b.dtype is dt and b.shape == (K,)
                        and b.flags.c_contiguous):
                    return X, W, b, N, K
    return _layer_args_checked(X, W, b)


def _layer_args_checked(X, W, b):
    X = v.floats("X", X, ndim=2, shape_hint=" (N, in_features); use X[None, :] for one sample")
    W = v.floats("W", W, X.dtype, ndim=2, shape_hint=" (out_features, in_features)")
    N, D = X.shape
    K = W.shape[0]
    if W.shape[1] != D:
        if N == W.shape[1] and D == 1:      # one sample as a column (Nielsen's layout)
            raise ValueError(f"X: expected shape (N, {W.shape[1]}) (one sample per row) to match "
                             f"W {W.shape}, got {X.shape}; if your samples are in columns "
                             f"(features × samples, as in Nielsen's network.py), pass X.T")
        hint = (f"; or, if X holds samples in columns (its {N} rows match W's {N} columns), "
                f"pass X.T" if N == W.shape[1] else "")
        raise ValueError(f"W: expected shape ({K}, {D}) to match X {X.shape}, got {W.shape}{hint}")
    if b is None:
        b = _zeros(K, X.dtype)
    else:
        b = v.floats("b", b, X.dtype, ndim=1, shape_hint=" (out_features,)")
        v.shape_is("b", b, (K,), "to match W {}", W.shape)
    return X, W, b, N, K


_ZEROS = {}


def _zeros(K, dtype):
    """A read-only zero bias of length K (cached: no allocation per call)."""
    z = _ZEROS.get((K, dtype))
    if z is None:
        z = np.zeros(K, dtype)
        z.flags.writeable = False
        if len(_ZEROS) < 64:
            _ZEROS[(K, dtype)] = z
    return z


def _layer_out(out, X, W, b, N, K, X0, W0, b0):
    """The (N, K) output of linear/linear_sigmoid: new, or ``out`` checked against the
    checked inputs X, W, b and what the caller passed (X0, W0, b0: a strided X0 was copied
    into X, but ``out`` must not overlap X0 either). Fast path (no tuples built): a
    writeable C-contiguous array owning its memory, inputs passed as they are that own
    theirs (then overlap means identity)."""
    if out is None:
        return np.empty((N, K), X.dtype)
    if (type(out) is _ndarray and out.base is None and out.dtype is X.dtype
            and out.shape == (N, K) and X.base is None and W.base is None and b.base is None
            and out is not X and out is not W and out is not b
            and X is X0 and W is W0 and (b is b0 or b0 is None)):
        flags = out.flags
        if flags.writeable and flags.c_contiguous:
            return out
    return v.out_array("out", out, (N, K), X.dtype,
                       (("X", X, X0), ("W", W, W0), ("b", b, b0)))


def _new_or_out(out, shape, dtype, inputs):
    if out is None:
        return np.empty(shape, dtype)
    return v.out_array("out", out, shape, dtype, inputs)


def linear(X: ArrayLike, W: ArrayLike, b: ArrayLike | None = None, *, out: NDArray | None = None,
           impl: str | None = None) -> NDArray:
    """Affine map ``Z = X Wᵀ + b`` (SPEC "Notation").

    Parameters
    ----------
    X : (N, D) float array
    W : (K, D) float array, stored (out_features, in_features) like ``torch.nn.Linear``
    b : (K,) float array, or None for no bias
    out : (N, K) array to write into, optional; must not overlap the inputs

    Returns
    -------
    Z : (N, K) array of X's dtype
    """
    if type(X) is not _ndarray and _dev.is_device(X):     # impl="cuda", on the GPU
        return _dev.linear("linear", X, W, b, out, impl)
    Xc, Wc, bc, N, K = _layer_args(X, W, b)
    out = _layer_out(out, Xc, Wc, bc, N, K, X, W, b)
    return kernel("linear", impl)(Xc, Wc, bc, out)


def linear_sigmoid(X: ArrayLike, W: ArrayLike, b: ArrayLike | None = None, *,
                   out: NDArray | None = None, impl: str | None = None) -> NDArray:
    """Fused hidden layer ``H = σ(X Wᵀ + b)`` (SPEC "Forward"); stable for any input.

    Shapes as :func:`linear`; returns H (N, K) in X's dtype. The jit version applies
    bias and sigmoid to blocks of the product while they are in cache.
    """
    if type(X) is not _ndarray and _dev.is_device(X):     # impl="cuda", on the GPU
        return _dev.linear("linear_sigmoid", X, W, b, out, impl)
    Xc, Wc, bc, N, K = _layer_args(X, W, b)
    out = _layer_out(out, Xc, Wc, bc, N, K, X, W, b)
    return kernel("linear_sigmoid", impl)(Xc, Wc, bc, out)


def _elementwise_out(out, a, inputs=()):
    """New, or ``out`` checked. ``out`` may be one of the inputs exactly (the same
    memory, shape and dtype: in place) but must not overlap any input otherwise, as
    passed or as converted (``inputs``: ``(name, checked, original)``): the jit loops
    would read elements they had already written, and an input that had to be copied
    (strided, byte-swapped) is not the array ``out`` is."""
    if out is None:
        return np.empty(a.shape, a.dtype)
    out = v.out_array("out", out, a.shape, a.dtype)
    v.no_partial_overlap("out", out, inputs)
    return out


def sigmoid(Z: ArrayLike, *, out: NDArray | None = None, impl: str | None = None) -> NDArray:
    """Logistic function ``σ(z) = 1/(1+e^(−z))`` elementwise, any shape.

    Computed as ``e^z/(1+e^z)`` for z < 0: no overflow or warning for any finite
    input, NaN propagates. ``out`` may be Z itself (in place).
    """
    if type(Z) is not _ndarray and _dev.is_device(Z):     # impl="cuda", on the GPU
        return _dev.elementwise("sigmoid", (("Z", Z),), out, impl, ("Z",))
    Zc = v.floats("Z", Z)
    out = _elementwise_out(out, Zc, (("Z", Zc, Z),))
    kernel("sigmoid", impl)(Zc.reshape(-1), out.reshape(-1))
    return out


def sigmoid_backward(dH: ArrayLike, H: ArrayLike, *, out: NDArray | None = None,
                     impl: str | None = None) -> NDArray:
    """Backward of :func:`sigmoid` from its output: ``dZ = dH ⊙ H ⊙ (1 − H)``.

    dH, H: arrays of one shape; returns dZ of that shape (``out`` is overwritten,
    never accumulated into; it may be dH).
    """
    if type(dH) is not _ndarray and _dev.is_device(dH):     # impl="cuda", on the GPU
        return _dev.elementwise("sigmoid_backward", (("dH", dH), ("H", H)), out, impl, ("dH",))
    Hc = v.floats("H", H)
    dHc = v.floats("dH", dH, Hc.dtype)
    v.shape_is("dH", dHc, Hc.shape, "to match H {}", Hc.shape)
    out = _elementwise_out(out, Hc, (("dH", dHc, dH), ("H", Hc, H)))
    kernel("sigmoid_backward", impl)(dHc.reshape(-1), Hc.reshape(-1), out.reshape(-1))
    return out


def _rows(name, Z):
    Z = v.floats(name, Z)
    shape = Z.shape
    if len(shape) == 2:
        return Z, shape[0], shape[1]
    if not shape:
        raise ValueError(f"{name}: expected an array with at least 1 dimension, got a 0-d array")
    C = shape[-1]
    R = Z.size // C if C else int(np.prod(shape[:-1]))
    return Z, R, C


def _over_rows(op, Z, out, impl):
    """Validate Z (any ndim >= 1), allocate or check out, run ``op`` on (rows, last axis)."""
    if type(Z) is _ndarray and Z.base is None:
        # fast path, the common call: Z a 2-D C-contiguous float32/float64 array that owns
        # its memory; out None or of the same kind (two arrays that own their memory are
        # the same array or do not overlap). Anything else takes the general checks.
        dt, shape = Z.dtype, Z.shape
        if (dt is _F32 or dt is _F64) and len(shape) == 2 and Z.flags.c_contiguous:
            if out is None:
                out = np.empty(shape, dt)
            elif not (type(out) is _ndarray and out.dtype is dt and out.shape == shape
                      and out.base is None and out.flags.writeable and out.flags.c_contiguous):
                out = _elementwise_out(out, Z, (("Z", Z),))
            if shape[0] and shape[1]:
                kernel(op, impl)(Z, out)
            return out
    elif _dev.is_device(Z):                                   # impl="cuda", on the GPU
        return _dev.over_rows(op, Z, out, impl)
    Z0 = Z
    Z, R, C = _rows("Z", Z)
    out = _elementwise_out(out, Z, (("Z", Z, Z0),))
    if Z.ndim == 2:
        if R and C:
            kernel(op, impl)(Z, out)
    elif Z.size:
        kernel(op, impl)(Z.reshape(R, C), out.reshape(R, C))
    return out


def _axis(name, axis, ndim):
    """``axis`` as an index in [0, ndim): an integer in [−ndim, ndim)."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {type(axis).__name__} {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}: expected an integer in [{-ndim}, {ndim}) for a {ndim}-D Z, "
                         f"got {axis}")
    return int(axis) % ndim


def _over_axis(op, Z, axis, out, impl):
    """``op`` over ``axis``: the last axis directly (:func:`_over_rows`); another through a
    contiguous copy with that axis last, the result moved back into ``out``."""
    if axis.__class__ is int and axis == -1:
        return _over_rows(op, Z, out, impl)
    if type(Z) is not _ndarray and _dev.is_device(Z):     # impl="cuda": the last axis only
        if axis in (-1, len(Z.shape) - 1):
            return _over_rows(op, Z, out, impl)
        raise ValueError(f"axis: device arrays (impl='cuda') take the last axis only "
                         f"(-1 or {len(Z.shape) - 1}), got {axis!r}")
    Zc = v.floats("Z", Z)
    if Zc.ndim == 0:
        raise ValueError("Z: expected an array with at least 1 dimension, got a 0-d array")
    ax = _axis("axis", axis, Zc.ndim)
    if ax == Zc.ndim - 1:
        return _over_rows(op, Z, out, impl)
    out = _elementwise_out(out, Zc, (("Z", Zc, Z),))
    moved = np.moveaxis(Zc, ax, -1).copy(order="C")   # always a copy: out may be Z
    res = _over_rows(op, moved, moved, impl)
    np.copyto(np.moveaxis(out, ax, -1), res)
    return out


def softmax(Z: ArrayLike, axis: int = -1, *, out: NDArray | None = None,
            impl: str | None = None) -> NDArray:
    """Softmax over ``axis`` (the last by default), with the maximum subtracted.

    ``P[..., j] = exp(Z[..., j] − m) / Σ_k exp(Z[..., k] − m)``, m the maximum over
    the axis (SPEC "Notation"), as ``scipy.special.softmax(Z, axis)`` and
    ``torch.softmax(Z, dim)``. Any ndim >= 1; ``out`` may be Z (in place). Another axis
    than the last costs a copy there and back (the kernels run over contiguous rows).
    NaN in a row gives a NaN row; a row of all −inf, or holding +inf, gives NaN.
    """
    return _over_axis("softmax", Z, axis, out, impl)


def log_softmax(Z: ArrayLike, axis: int = -1, *, out: NDArray | None = None,
                impl: str | None = None) -> NDArray:
    """``log softmax(Z)`` over ``axis`` (the last by default): ``Z − m − log Σ exp(Z − m)``;
    any ndim >= 1.

    ``out`` may be Z (in place). A log-probability below the dtype's range is −inf
    (float32 row [3e38, −3e38]: the second is −6e38), with no warning; finite input
    gives no NaN.
    """
    return _over_axis("log_softmax", Z, axis, out, impl)


def _logits_targets(Z, y):
    Z = v.floats("Z", Z, ndim=2, shape_hint=" (N, C) of logits")
    N, C = Z.shape
    if N == 0:
        raise ValueError("Z: empty batch (N = 0): the mean loss over no samples is undefined")
    if C == 0:
        raise ValueError("Z: no classes (C = 0): expected at least one column")
    if C == 1:
        raise ValueError(f"Z: one class (shape {Z.shape}): a cross-entropy over a single class is 0 "
                         f"for any logits, with a zero gradient; if your samples are in columns "
                         f"(classes × samples, as in Nielsen's network.py), pass axis=0 or Z.T")
    if isinstance(y, np.ndarray) and y.dtype.kind == "f" or (
            not isinstance(y, np.ndarray) and np.asarray(y).dtype.kind == "f"):
        y = v.floats("y", y, Z.dtype, ndim=2,
                     shape_hint=" of target rows (N, C) (or integer labels (N,))")
        v.shape_is("y", y, (N, C), "to match Z {}", Z.shape)
        _check_target_rows(y)
    else:
        y = v.labels("y", y, N, C)
    return Z, y, N, C


def _check_target_rows(Y):
    """Target rows are non-negative weights whose row sums are at most half the dtype's
    largest value (the gradient scales P by Σ_k Y_ik: with that bound no summation order
    overflows; a NaN passes and propagates). Two reductions; the row sums only when
    the largest weight could make one too large."""
    if Y.size == 0:
        return
    lo, hi = Y.min(), Y.max()
    if lo < 0:
        i, j = np.unravel_index(int(np.argmin(Y)), Y.shape)
        raise ValueError(f"y: target rows must be non-negative weights (one-hot or "
                         f"probabilities), got {float(lo):.6g} at [{i}, {j}]")
    half = float(np.finfo(Y.dtype).max) / 2
    if float(hi) * Y.shape[1] > half:
        with np.errstate(over="ignore"):
            sums = Y.sum(axis=1, dtype=np.float64)
        for i in np.flatnonzero(sums > half):
            if np.isfinite(Y[i]).all():           # (an inf weight is non-finite input)
                raise ValueError(
                    f"y: each target row must sum to at most {half:.6g} (half the largest "
                    f"{Y.dtype}), got a row summing to {float(sums[i]):.6g} at index {i}")


_REDUCTIONS = ("mean", "sum", "none")


def _device_defaults(axis, reduction, ignore_index):
    """Device arrays (impl="cuda") take the cross-entropy's defaults only."""
    if not (axis.__class__ is int and axis in (-1, 1)) or reduction != "mean" or ignore_index is not None:
        raise ValueError(f"axis, reduction, ignore_index: device arrays (impl='cuda') take the defaults "
                         f"(axis=-1, reduction='mean', ignore_index=None), got axis={axis!r}, "
                         f"reduction={reduction!r}, ignore_index={ignore_index!r}; pass host arrays "
                         f"for the others")


def _ce_args(Z, y, axis, reduction, ignore_index):
    """Checked ``(Z (N, C) C-contiguous, y, N, C, kept, transposed)``: the class axis moved
    last (``transposed`` when it was axis 0), ``kept`` the mask of the rows whose label is
    not ``ignore_index`` (None when every row counts)."""
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"reduction: expected 'mean', 'sum' or 'none', got {reduction!r}")
    transposed = False
    if not (axis.__class__ is int and axis in (-1, 1)):
        Zv = v.floats("Z", Z, ndim=2, shape_hint=" (N, C) of logits")
        transposed = _axis("axis", axis, 2) == 0
        if transposed:                      # classes × samples: move the classes last
            Z = Zv.T
            ya = np.asarray(y)
            if ya.dtype.kind == "f":
                y = ya.T
    kept = None
    if ignore_index is not None:
        if isinstance(ignore_index, (bool, np.bool_)) or not isinstance(ignore_index, (int, np.integer)):
            raise TypeError(f"ignore_index: expected an integer label or None, got "
                            f"{type(ignore_index).__name__} {ignore_index!r}")
        ya = np.asarray(y)
        if ya.dtype.kind not in "iu":
            raise ValueError(f"ignore_index: applies to integer labels (N,), got y of dtype {ya.dtype} "
                             f"and shape {ya.shape}")
        if ya.ndim == 1:
            kept = ya != ignore_index
            y = np.where(kept, ya, 0)       # the ignored labels may lie outside [0, C)
            if kept.all():
                kept = None
    Zc, yc, N, C = _logits_targets(Z, y)
    return Zc, yc, N, C, kept, transposed


def _dtype_scalar(x, dtype):
    """A float as a scalar of ``dtype``: beyond float32's range ±inf, without a warning."""
    from .kernels.machine.scalar import as_dtype_scalar
    return as_dtype_scalar(float(x), dtype)


def _per_sample_losses(Zc, yc, impl):
    """``L_i = −Σ_j Y_ij log softmax(Z_i)_j`` (labels: ``−log softmax(Z_i)[y_i]``), through
    the implementation's log_softmax; summed in float64, returned in Z's dtype."""
    logp = kernel("log_softmax", impl)(Zc, np.empty_like(Zc))
    if yc.ndim == 1:
        L = -logp[np.arange(Zc.shape[0]), yc].astype(np.float64)
    else:
        Y = yc.astype(np.float64)
        with np.errstate(invalid="ignore"):          # 0 · (−inf) where a weight is 0
            L = -np.where(Y != 0, Y * logp, 0.0).sum(axis=1)
    with np.errstate(over="ignore"):
        return L.astype(Zc.dtype)


def _reduced_loss(Zc, yc, N, kept, reduction, impl):
    """The loss of :func:`softmax_cross_entropy` for ``reduction`` and ``kept``."""
    dt = Zc.dtype
    if reduction == "none":
        L = _per_sample_losses(Zc, yc, impl)
        if kept is not None:
            L[~kept] = 0
        return L
    n = N if kept is None else int(kept.sum())
    if n == 0:
        if reduction == "mean":
            raise ValueError("y: every label is ignore_index: the mean over no samples is undefined "
                             "(reduction='sum' gives 0)")
        return dt.type(0)
    if kept is not None:
        Zc, yc = Zc[kept], yc[kept]
    mean = kernel("softmax_cross_entropy", impl)(Zc, yc)
    return dt.type(mean) if reduction == "mean" else _dtype_scalar(float(mean) * n, dt)


def softmax_cross_entropy(Z: ArrayLike, y: ArrayLike, *, axis: int = -1, reduction: str = "mean",
                          ignore_index: int | None = None, impl: str | None = None) -> Loss:
    """Softmax cross-entropy, by default the mean ``L = (1/N) Σ_i (logsumexp(Z_i) − Z[i, y_i])``.

    Parameters
    ----------
    Z : (N, C) float array of logits, N >= 1, C >= 2 (one class is a ``ValueError``: its
        cross-entropy is always 0; samples in columns are the usual cause)
    y : (N,) integer labels in [0, C), or (N, C) target rows of Z's dtype (one-hot
        or probabilities: ``L = (1/N) Σ_ij Y_ij (logsumexp(Z_i) − Z_ij)``)
    axis : the class axis of Z, -1/1 (default) or 0 for Z (C, N) with samples in columns
        (y then (N,) labels or (C, N) target columns)
    reduction : ``"mean"`` (default), ``"sum"`` (N × the mean) or ``"none"`` (the (N,)
        per-sample losses, through the implementation's log_softmax), as
        ``torch.nn.functional.cross_entropy``
    ignore_index : a label whose rows count for nothing (integer labels only; it may lie
        outside [0, C), e.g. -100): their loss is 0, and the mean is over the other rows
        (every row ignored: ``ValueError`` for the mean, 0 for the sum)

    Returns
    -------
    loss : scalar of Z's dtype, through logsumexp, each row's term
        ``(m_i − Z[i, y_i]) + log Σ_j exp(Z_ij − m_i)`` in float64 (m_i the row max).
        Range, for finite Z: float32, the mean rounded to float32: finite exactly when
        it is below 3.40282357e38 (2^128 − 2^103, half an ulp above float32's
        maximum), else +inf (a row [3e38, −3e38] with label 1 alone: 6e38 -> +inf).
        float64: +inf where a term ``m_i − Z_ij`` (a label, or a nonzero target
        weight) or the float64 total overflows 1.797e308; finite for sure when
        N·(2·max|Z| + log C) < 1.797e308 (labels) — e.g. max|Z| < 8.9e307 for N = 1.
        Never NaN, no warning.

    Target rows must be non-negative, each summing to at most half the dtype's
    maximum (``ValueError`` otherwise: the gradient scales P by the row sum).
    """
    if type(Z) is not _ndarray and _dev.is_device(Z):     # impl="cuda", on the GPU
        _device_defaults(axis, reduction, ignore_index)
        return _dev.cross_entropy("softmax_cross_entropy", Z, y, None, impl, False)
    if axis.__class__ is int and axis == -1 and reduction == "mean" and ignore_index is None:
        Z, y, N, C = _logits_targets(Z, y)
        return Z.dtype.type(kernel("softmax_cross_entropy", impl)(Z, y))
    Zc, yc, N, C, kept, _ = _ce_args(Z, y, axis, reduction, ignore_index)
    return _reduced_loss(Zc, yc, N, kept, reduction, impl)


def softmax_cross_entropy_grad(Z: ArrayLike, y: ArrayLike, *, out: NDArray | None = None,
                               axis: int = -1, reduction: str = "mean",
                               ignore_index: int | None = None,
                               impl: str | None = None) -> tuple[Loss, NDArray]:
    """Loss and gradient: ``(L, dZ)`` with ``dZ = (softmax(Z) − Y)/N`` (SPEC "Gradients").

    For target rows, ``dZ = (P · Σ_k Y_ik − Y)/N``, equal to ``(P − Y)/N`` when rows sum
    to 1. Arguments, and the loss's range, as :func:`softmax_cross_entropy`; ``out``
    (Z's shape) is overwritten. dZ is finite for every finite Z (``|dZ| <= max(1, Σ_k Y_ik)/N``).
    ``reduction="sum"`` and ``"none"``: ``dZ = P · Σ_k Y_ik − Y`` (the gradient of the sum;
    each row is the gradient of its own sample's loss), through the implementation's
    softmax; ``ignore_index``: the mean's N counts the kept rows, and ignored rows get 0.
    """
    if type(Z) is not _ndarray and _dev.is_device(Z):     # impl="cuda", on the GPU
        _device_defaults(axis, reduction, ignore_index)
        return _dev.cross_entropy("softmax_cross_entropy_grad", Z, y, out, impl, True)
    if axis.__class__ is int and axis == -1 and reduction == "mean" and ignore_index is None:
        Zc, yc, N, C = _logits_targets(Z, y)
        out = _new_or_out(out, (N, C), Zc.dtype, (("Z", Zc, Z), ("y", yc, y)))
        loss = kernel("softmax_cross_entropy_grad", impl)(Zc, yc, out)
        return Zc.dtype.type(loss), out
    Zc, yc, N, C, kept, transposed = _ce_args(Z, y, axis, reduction, ignore_index)
    shape = (C, N) if transposed else (N, C)
    out = _new_or_out(out, shape, Zc.dtype, (("Z", Zc, Z), ("y", yc, y)))
    dZ = np.empty((N, C), Zc.dtype) if transposed else out
    n = N if kept is None else int(kept.sum())
    if reduction == "mean":
        if n == 0:
            raise ValueError("y: every label is ignore_index: the mean over no samples is undefined "
                             "(reduction='sum' gives 0)")
        if kept is None:
            loss = Zc.dtype.type(kernel("softmax_cross_entropy_grad", impl)(Zc, yc, dZ))
        else:
            gk = np.empty((n, C), Zc.dtype)
            loss = Zc.dtype.type(kernel("softmax_cross_entropy_grad", impl)(Zc[kept], yc[kept], gk))
            dZ[...] = 0
            dZ[kept] = gk
    else:
        loss = _reduced_loss(Zc, yc, N, kept, reduction, impl)
        kernel("softmax", impl)(Zc, dZ)                          # P, then P·Σ_k Y_ik − Y
        if yc.ndim == 1:
            dZ[np.arange(N), yc] -= 1
        else:
            with np.errstate(over="ignore"):
                w = yc.sum(axis=1, keepdims=True, dtype=np.float64).astype(Zc.dtype)
            np.multiply(dZ, w, out=dZ)
            np.subtract(dZ, yc, out=dZ)
        if kept is not None:
            dZ[~kept] = 0
    if transposed:
        np.copyto(out, dZ.T)
    return loss, out


def _sigmoid_output_args(Z, y, *, binary, yname):
    Z = v.floats("Z", Z)
    if Z.ndim == 1:
        Z = Z.reshape(-1, 1)
    elif Z.ndim != 2:
        raise ValueError(f"Z: expected logits of shape (N,) or (N, K), got {Z.shape}")
    N, K = Z.shape
    if N == 0:
        raise ValueError("Z: empty batch (N = 0): the mean loss over no samples is undefined")
    yarr = v.plain(yname, y)
    if not isinstance(yarr, np.ndarray):
        yarr = np.asarray(yarr)
    if yarr.dtype.kind in "iub":
        yarr = yarr.astype(Z.dtype)                   # 0/1 labels are targets too
    y = v.floats(yname, yarr, Z.dtype)
    if y.shape == (N,) and K == 1:
        y = y.reshape(N, 1)
    v.shape_is(yname, y, (N, K), "to match Z {}", Z.shape)
    if binary and y.size and (y.min() < 0 or y.max() > 1):
        raise ValueError(f"{yname}: binary cross-entropy targets must lie in [0, 1], "
                         f"got values in [{y.min()}, {y.max()}]")
    return Z, y, N, K


def sigmoid_bce_grad(Z: ArrayLike, y: ArrayLike, *, out: NDArray | None = None,
                     impl: str | None = None) -> tuple[np.floating, NDArray]:
    """Sigmoid output + binary cross-entropy, from the logits: ``(J, dZ)``.

    ``J = −(1/N) Σ [y log σ(z) + (1−y) log(1−σ(z))]`` (summed over outputs, mean over
    the batch), each term computed as ``(z·(1−y) if z >= 0 else −z·y) + log1p(e^−|z|)``
    (``max(z,0) − z·y + log1p(e^−|z|)`` without cancellation), in ``[0, |z| + log 2]``,
    added in float64. ``dZ = (σ(Z) − y)/N``, in [−1/N, 1/N]. Z: (N,) or (N, K); y: same
    shape (or (N,) for Z (N, 1)), in [0, 1], float of Z's dtype or 0/1 integers. dZ
    has Z's shape.

    Range, for finite Z: float32, J is the float64 mean rounded to float32: finite
    exactly when it is below 3.40282357e38 (2^128 − 2^103, half an ulp above
    float32's maximum), else +inf. float64: +inf where the float64 total of the N·K
    terms overflows 1.797e308 (finite for sure when
    ``Σ (|z| + log 2) < 1.797e308``), even where J itself would be representable. dZ is
    always finite; never NaN, no warning.
    """
    if type(Z) is not _ndarray and _dev.is_device(Z):     # impl="cuda", on the GPU
        return _dev.sigmoid_loss("sigmoid_bce_grad", Z, y, out, impl, "y")
    shape = np.shape(Z)
    Zc, yc, N, K = _sigmoid_output_args(Z, y, binary=True, yname="y")
    out = _new_or_out(out, shape, Zc.dtype, (("Z", Zc, Z), ("y", yc, y)))
    loss = kernel("sigmoid_bce_grad", impl)(Zc, yc, out.reshape(N, K))
    return Zc.dtype.type(loss), out


def sigmoid_mse_grad(Z: ArrayLike, Y: ArrayLike, *, out: NDArray | None = None,
                     impl: str | None = None) -> tuple[np.floating, NDArray]:
    """Sigmoid output + quadratic cost: ``(E, δ)``, ``E = (1/2N) Σ ‖σ(Z) − Y‖²``,
    ``δ = (σ(Z) − Y) ⊙ σ(Z) ⊙ (1 − σ(Z))/N`` (SPEC "Losses", seed 001).

    Shapes as :func:`sigmoid_bce_grad`; Y need not lie in [0, 1]. Each residual
    r = σ(z) − y is formed in Z's dtype and squared and added in float64.

    Range, for finite Z and Y: float32, E is the mean rounded to float32 (r² never
    overflows float64): finite exactly when it is below 3.40282357e38 (2^128 − 2^103,
    half an ulp above float32's maximum), else +inf (Y = 2.2e19: E = 2.42e38, finite).
    float64: +inf where the float64 total Σ r² overflows 1.797e308 (any ``|r| >=
    or their sum), even where E would be representable. δ is always finite
    (``|δ| <= |r|/(4N)``); never NaN, no warning.
    """
    if type(Z) is not _ndarray and _dev.is_device(Z):     # impl="cuda", on the GPU
        return _dev.sigmoid_loss("sigmoid_mse_grad", Z, Y, out, impl, "Y")
    shape = np.shape(Z)
    Zc, Yc, N, K = _sigmoid_output_args(Z, Y, binary=False, yname="Y")
    out = _new_or_out(out, shape, Zc.dtype, (("Z", Zc, Z), ("Y", Yc, Y)))
    loss = kernel("sigmoid_mse_grad", impl)(Zc, Yc, out.reshape(N, K))
    return Zc.dtype.type(loss), out


def linear_backward(dZ: ArrayLike, X: ArrayLike, W: ArrayLike, *, compute_dX: bool = True,
                    out: tuple | None = None,
                    impl: str | None = None) -> tuple[NDArray, NDArray, NDArray | None]:
    """Backward of :func:`linear`: ``dW = dZᵀ X``, ``db = dZᵀ 1_N``, ``dX = dZ W``.

    Parameters
    ----------
    dZ : (N, K) upstream gradient;  X : (N, D) the layer's input;  W : (K, D)
    compute_dX : bool, False for the first layer (then dX is None)
    out : optional tuple ``(dW, db, dX)`` of arrays to OVERWRITE (not accumulate);
        dX must be None when compute_dX is False

    Returns
    -------
    (dW (K, D), db (K,), dX (N, D) or None)
    """
    if type(dZ) is not _ndarray and _dev.is_device(dZ):     # impl="cuda", on the GPU
        return _dev.linear_backward("linear_backward", dZ, X, W, compute_dX, out, impl)
    X0, dZ0, W0 = X, dZ, W
    X = v.floats("X", X, ndim=2, shape_hint=" (N, in_features)")
    dZ = v.floats("dZ", dZ, X.dtype, ndim=2, shape_hint=" (N, out_features)")
    W = v.floats("W", W, X.dtype, ndim=2, shape_hint=" (out_features, in_features)")
    N, D = X.shape
    K = W.shape[0]
    if W.shape[1] != D:
        raise ValueError(f"W: expected shape ({K}, {D}) to match X {X.shape}, got {W.shape}")
    v.shape_is("dZ", dZ, (N, K), "to match X {} and W {}", X.shape, W.shape)
    inputs = (("dZ", dZ, dZ0), ("X", X, X0), ("W", W, W0))
    if out is None:
        dW, db = np.empty((K, D), X.dtype), np.empty(K, X.dtype)
        dX = np.empty((N, D), X.dtype) if compute_dX else None
    else:
        if not isinstance(out, tuple) or len(out) != 3:
            raise TypeError("out: expected a tuple (dW, db, dX)")
        dW = v.out_array("out[0] (dW)", out[0], (K, D), X.dtype, inputs)
        db = v.out_array("out[1] (db)", out[1], (K,), X.dtype, inputs)
        if compute_dX:
            dX = v.out_array("out[2] (dX)", out[2], (N, D), X.dtype, inputs)
        elif out[2] is not None:
            raise ValueError("out[2] (dX): expected None when compute_dX is False")
        else:
            dX = None
        if np.may_share_memory(dW, db) or (dX is not None and (
                np.may_share_memory(dX, dW) or np.may_share_memory(dX, db))):
            raise ValueError("out: dW, db and dX must not overlap each other")
    kernel("linear_backward", impl)(dZ, X, W, dW, db, dX)
    return dW, db, dX


def hidden_delta(dZ: ArrayLike, W: ArrayLike, H: ArrayLike, *, out: NDArray | None = None,
                 impl: str | None = None) -> NDArray:
    """Hidden delta ``δ¹ = (dZ W) ⊙ H ⊙ (1 − H)`` (SPEC "Gradients", seeds 000/001).

    The gradient w.r.t. the pre-activation of a sigmoid layer H = σ(X W₁ᵀ + b₁),
    given the upstream gradient dZ (N, K) of the next layer Z = H Wᵀ + b, W (K, D),
    H (N, D). Returns (N, D); the jit version fuses the product and the sigmoid
    derivative block by block. ``out`` is overwritten.
    """
    if type(dZ) is not _ndarray and _dev.is_device(dZ):     # impl="cuda", on the GPU
        return _dev.hidden_delta("hidden_delta", dZ, W, H, out, impl)
    H0, dZ0, W0 = H, dZ, W
    H = v.floats("H", H, ndim=2, shape_hint=" (N, hidden)")
    dZ = v.floats("dZ", dZ, H.dtype, ndim=2, shape_hint=" (N, out_features)")
    W = v.floats("W", W, H.dtype, ndim=2, shape_hint=" (out_features, hidden)")
    N, D = H.shape
    K = W.shape[0]
    v.shape_is("W", W, (K, D), "to match H {}", H.shape)
    v.shape_is("dZ", dZ, (N, K), "to match H {} and W {}", H.shape, W.shape)
    out = _new_or_out(out, (N, D), H.dtype, (("dZ", dZ, dZ0), ("W", W, W0), ("H", H, H0)))
    return kernel("hidden_delta", impl)(dZ, W, H, out)


_EMPTY = {}


def sgd_update(param: NDArray, grad: ArrayLike, lr: float, *, momentum: float = 0.0,
               velocity: NDArray | None = None, weight_decay: float = 0.0, l1: float = 0.0,
               nesterov: bool = False, impl: str | None = None) -> NDArray:
    """One SGD step on ``param``, in place (SPEC "Updates"); returns ``param``.

    Order, in one pass over the parameters::

        g = grad + weight_decay * w
        if momentum:  v = momentum * v + g;  g = g + momentum * v if nesterov else v
        w = w - lr * g
        if l1:        w = sign(w) * max(|w| - lr * l1, 0)     # exactly 0 when |w| <= lr*l1

    With momentum = weight_decay = l1 = 0 it is ``w -= lr * grad``.

    Parameters
    ----------
    param : float array, any shape, C-contiguous and writeable (updated in place)
    grad : array of param's shape and dtype
    lr : finite float >= 0
    momentum : float in [0, 1)
    velocity : array of param's shape and dtype, updated in place; required when
        momentum > 0 (start it at zeros)
    weight_decay, l1 : finite floats >= 0
    nesterov : bool; requires momentum > 0

    Scalars are converted to param's dtype by rounding to nearest
    (``np.float32(lr)``), and the update is computed in that dtype. For float32 a
    value that would round to inf (>= 3.4028235677973366e38) or a nonzero value that
    would round to 0 (<= 2^-150, e.g. momentum 1e-300) is a ``ValueError``: the
    update would silently be another one. Which terms take part is decided by the
    values given (momentum > 0 updates velocity; weight_decay, l1 > 0 apply).

    Extremes, for finite input: each step is rounded to the dtype, so where one
    overflows (grad + weight_decay·w, lr·g) the result is ±inf, as NumPy's arithmetic
    in that dtype gives; lr = 0 leaves param exactly as it is. The L1 threshold is
    ``lr·l1`` in the dtype; where it overflows (lr = l1 = 1e20 in float32) every
    parameter becomes ±0 (``|w| <= inf``), an infinite one included. Never NaN, no
    warning; NaN in the input propagates.

    Every argument is checked before anything is written: on error, param and
    velocity are unchanged. ``param`` and ``velocity`` must be exactly
    ``numpy.ndarray`` (module docstring); ``grad`` may be any array-like.
    """
    if type(param) is not _ndarray and _dev.is_device(param):  # impl="cuda", on the GPU
        return _dev.sgd_update(param, grad, lr, momentum, velocity, weight_decay, l1,
                               nesterov, impl)
    v.written("param", param, "updated in place")
    dt = param.dtype
    if dt is not v.F32 and dt is not v.F64:
        raise TypeError(f"param: expected a float32 or float64 array, got {param.dtype}")
    if not param.flags.writeable:
        raise ValueError("param: the array is read-only")
    if not param.flags.c_contiguous:
        raise ValueError("param: expected a C-contiguous array (it is updated in place)")
    grad0 = grad
    grad = v.floats("grad", grad, dt)
    v.shape_is("grad", grad, param.shape, "to match param {}", param.shape)
    lr, momentum, weight_decay, l1 = v.sgd_hyperparameters(lr, momentum, weight_decay, l1,
                                                           nesterov, dt)
    if momentum > 0:
        if velocity is None:
            raise ValueError(f"velocity: required when momentum > 0 (momentum={momentum}); "
                             f"start with np.zeros_like(param)")
        velocity = v.out_array("velocity", velocity, param.shape, dt, (("param", param),))
        vel = velocity.reshape(-1) if velocity.ndim != 1 else velocity
    else:
        if velocity is not None:
            velocity = v.out_array("velocity", velocity, param.shape, dt, (("param", param),))
        vel = _EMPTY.get(dt)
        if vel is None:
            vel = _EMPTY[dt] = np.empty(0, dt)
    v.no_partial_overlap("param", param, (("grad", grad, grad0),))
    if velocity is not None:
        v.no_partial_overlap("velocity", velocity, (("grad", grad, grad0),))
    p = param
    if p.ndim != 1:
        p, grad = p.reshape(-1), grad.reshape(-1)
    kernel("sgd_update", impl)(p, grad, lr, momentum, vel, weight_decay, l1, bool(nesterov))
    return param
