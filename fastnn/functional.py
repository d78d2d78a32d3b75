"""The checked operations: validate once, make inputs C-contiguous, allocate the
missing outputs, dispatch to ``fastnn.kernels.IMPLS[op][impl]``.

Every function takes ``impl=None`` (the current implementation, see
:func:`fastnn.use_impl`) and, where it returns arrays, ``out=`` to write into
caller-provided arrays (no allocation). Inputs may be float32 or float64 (all
arguments of one call in the same dtype); results are in that dtype. Invalid
arguments raise ``TypeError`` (wrong kind or dtype) or ``ValueError`` (wrong
shape or value) naming the argument, before anything is written.

Formulas and notation: SPEC.md; the implementations: ``fastnn.kernels``.
"""
from __future__ import annotations

import numpy as np

from . import _validate as v
from ._impl import kernel

__all__ = [
    "linear", "linear_sigmoid", "sigmoid", "softmax", "log_softmax",
    "softmax_cross_entropy", "softmax_cross_entropy_grad", "sigmoid_bce_grad",
    "sigmoid_mse_grad", "linear_backward", "sigmoid_backward", "hidden_delta",
    "sgd_update",
]


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
        raise ValueError(f"W: expected shape ({K}, {D}) to match X {X.shape}, got {W.shape}")
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


def _layer_out(out, X, W, b, N, K):
    """The (N, K) output of linear/linear_sigmoid: new, or ``out`` checked. Fast path
    (no tuples built): a writeable C-contiguous array owning its memory, inputs that own
    theirs (then overlap means identity)."""
    if out is None:
        return np.empty((N, K), X.dtype)
    if (type(out) is _ndarray and out.base is None and out.dtype is X.dtype
            and out.shape == (N, K) and X.base is None and W.base is None and b.base is None
            and out is not X and out is not W and out is not b):
        flags = out.flags
        if flags.writeable and flags.c_contiguous:
            return out
    return v.out_array("out", out, (N, K), X.dtype, (("X", X), ("W", W), ("b", b)))


def _new_or_out(out, shape, dtype, inputs):
    if out is None:
        return np.empty(shape, dtype)
    return v.out_array("out", out, shape, dtype, inputs)


def linear(X, W, b=None, *, out=None, impl=None):
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
    X, W, b, N, K = _layer_args(X, W, b)
    out = _layer_out(out, X, W, b, N, K)
    return kernel("linear", impl)(X, W, b, out)


def linear_sigmoid(X, W, b=None, *, out=None, impl=None):
    """Fused hidden layer ``H = σ(X Wᵀ + b)`` (SPEC "Forward"); stable for any input.

    Shapes as :func:`linear`; returns H (N, K) in X's dtype. The jit version applies
    bias and sigmoid to blocks of the product while they are in cache.
    """
    X, W, b, N, K = _layer_args(X, W, b)
    out = _layer_out(out, X, W, b, N, K)
    return kernel("linear_sigmoid", impl)(X, W, b, out)


def _elementwise_out(out, a, inputs=()):
    """New, or ``out`` checked. ``out`` may be one of the inputs exactly (same memory:
    in place) but must not overlap any input partially: the jit loops would then read
    elements they had already written."""
    if out is None:
        return np.empty(a.shape, a.dtype)
    out = v.out_array("out", out, a.shape, a.dtype)
    _no_partial_overlap("out", out, inputs)
    return out


def _no_partial_overlap(out_name, out, inputs):
    """``out`` (written elementwise) may be an input exactly, but no partial overlap."""
    for name, x in inputs:
        if out is x or (out.base is None and x.base is None):
            continue                     # the same array, or two that own their memory
        if np.may_share_memory(out, x) and out.ctypes.data != x.ctypes.data:
            raise ValueError(f"{out_name}: overlaps {name} partially; pass {name} itself "
                             f"(in place) or an array that does not overlap it")


def sigmoid(Z, *, out=None, impl=None):
    """Logistic function ``σ(z) = 1/(1+e^(−z))`` elementwise, any shape.

    Computed as ``e^z/(1+e^z)`` for z < 0: no overflow or warning for any finite
    input, NaN propagates. ``out`` may be Z itself (in place).
    """
    Z = v.floats("Z", Z)
    out = _elementwise_out(out, Z, (("Z", Z),))
    kernel("sigmoid", impl)(Z.reshape(-1), out.reshape(-1))
    return out


def sigmoid_backward(dH, H, *, out=None, impl=None):
    """Backward of :func:`sigmoid` from its output: ``dZ = dH ⊙ H ⊙ (1 − H)``.

    dH, H: arrays of one shape; returns dZ of that shape (``out`` is overwritten,
    never accumulated into; it may be dH).
    """
    H = v.floats("H", H)
    dH = v.floats("dH", dH, H.dtype)
    v.shape_is("dH", dH, H.shape, "to match H {}", H.shape)
    out = _elementwise_out(out, H, (("dH", dH), ("H", H)))
    kernel("sigmoid_backward", impl)(dH.reshape(-1), H.reshape(-1), out.reshape(-1))
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
    Z, R, C = _rows("Z", Z)
    out = _elementwise_out(out, Z, (("Z", Z),))
    if Z.ndim == 2:
        if R and C:
            kernel(op, impl)(Z, out)
    elif Z.size:
        kernel(op, impl)(Z.reshape(R, C), out.reshape(R, C))
    return out


def softmax(Z, *, out=None, impl=None):
    """Softmax over the last axis, with the row maximum subtracted.

    ``P[..., j] = exp(Z[..., j] − m) / Σ_k exp(Z[..., k] − m)``, m the maximum over
    the last axis (SPEC "Notation"). Any ndim >= 1; ``out`` may be Z (in place).
    NaN in a row gives a NaN row; a row of all −inf, or holding +inf, gives NaN.
    """
    return _over_rows("softmax", Z, out, impl)


def log_softmax(Z, *, out=None, impl=None):
    """``log softmax(Z)`` over the last axis: ``Z − m − log Σ exp(Z − m)``; any ndim >= 1."""
    return _over_rows("log_softmax", Z, out, impl)


def _logits_targets(Z, y):
    Z = v.floats("Z", Z, ndim=2, shape_hint=" (N, C) of logits")
    N, C = Z.shape
    if N == 0:
        raise ValueError("Z: empty batch (N = 0): the mean loss over no samples is undefined")
    if C == 0:
        raise ValueError("Z: no classes (C = 0): expected at least one column")
    if isinstance(y, np.ndarray) and y.dtype.kind == "f" or (
            not isinstance(y, np.ndarray) and np.asarray(y).dtype.kind == "f"):
        y = v.floats("y", y, Z.dtype, ndim=2,
                     shape_hint=" of target rows (N, C) (or integer labels (N,))")
        v.shape_is("y", y, (N, C), "to match Z {}", Z.shape)
    else:
        y = v.labels("y", y, N, C)
    return Z, y, N, C


def softmax_cross_entropy(Z, y, *, impl=None):
    """Mean softmax cross-entropy ``L = (1/N) Σ_i (logsumexp(Z_i) − Z[i, y_i])``.

    Parameters
    ----------
    Z : (N, C) float array of logits, N >= 1, C >= 1
    y : (N,) integer labels in [0, C), or (N, C) target rows of Z's dtype (one-hot
        or probabilities: ``L = (1/N) Σ_ij Y_ij (logsumexp(Z_i) − Z_ij)``)

    Returns
    -------
    loss : scalar of Z's dtype; finite for every finite Z (through logsumexp).
    """
    Z, y, N, C = _logits_targets(Z, y)
    return Z.dtype.type(kernel("softmax_cross_entropy", impl)(Z, y))


def softmax_cross_entropy_grad(Z, y, *, out=None, impl=None):
    """Loss and gradient: ``(L, dZ)`` with ``dZ = (softmax(Z) − Y)/N`` (SPEC "Gradients").

    For target rows, ``dZ = (P · Σ_k Y_ik − Y)/N``, equal to ``(P − Y)/N`` when rows sum
    to 1. Arguments as :func:`softmax_cross_entropy`; ``out`` (N, C) is overwritten.
    """
    Z, y, N, C = _logits_targets(Z, y)
    out = _new_or_out(out, (N, C), Z.dtype, (("Z", Z), ("y", y)))
    loss = kernel("softmax_cross_entropy_grad", impl)(Z, y, out)
    return Z.dtype.type(loss), out


def _sigmoid_output_args(Z, y, *, binary):
    Z = v.floats("Z", Z)
    if Z.ndim == 1:
        Z = Z.reshape(-1, 1)
    elif Z.ndim != 2:
        raise ValueError(f"Z: expected logits of shape (N,) or (N, K), got {Z.shape}")
    N, K = Z.shape
    if N == 0:
        raise ValueError("Z: empty batch (N = 0): the mean loss over no samples is undefined")
    yarr = y if isinstance(y, np.ndarray) else np.asarray(y)
    if yarr.dtype.kind in "iub":
        yarr = yarr.astype(Z.dtype)                   # 0/1 labels are targets too
    y = v.floats("y", yarr, Z.dtype)
    if y.shape == (N,) and K == 1:
        y = y.reshape(N, 1)
    v.shape_is("y", y, (N, K), "to match Z {}", Z.shape)
    if binary and y.size and (y.min() < 0 or y.max() > 1):
        raise ValueError("y: binary cross-entropy targets must lie in [0, 1], "
                         f"got values in [{y.min()}, {y.max()}]")
    return Z, y, N, K


def sigmoid_bce_grad(Z, y, *, out=None, impl=None):
    """Sigmoid output + binary cross-entropy, from the logits: ``(J, dZ)``.

    ``J = −(1/N) Σ [y log σ(z) + (1−y) log(1−σ(z))]`` (summed over outputs, mean over
    the batch), computed as ``max(z,0) − z·y + log1p(e^−|z|)``: finite for finite z.
    ``dZ = (σ(Z) − y)/N``. Z: (N,) or (N, K); y: same shape (or (N,) for Z (N, 1)),
    in [0, 1], float of Z's dtype or 0/1 integers. dZ has Z's shape.
    """
    shape = np.shape(Z)
    Z, y, N, K = _sigmoid_output_args(Z, y, binary=True)
    out = _new_or_out(out, shape, Z.dtype, (("Z", Z), ("y", y)))
    loss = kernel("sigmoid_bce_grad", impl)(Z, y, out.reshape(N, K))
    return Z.dtype.type(loss), out


def sigmoid_mse_grad(Z, Y, *, out=None, impl=None):
    """Sigmoid output + quadratic cost: ``(E, δ)``, ``E = (1/2N) Σ ‖σ(Z) − Y‖²``,
    ``δ = (σ(Z) − Y) ⊙ σ(Z) ⊙ (1 − σ(Z))/N`` (SPEC "Losses", seed 001).

    Shapes as :func:`sigmoid_bce_grad`; Y need not lie in [0, 1].
    """
    shape = np.shape(Z)
    Z, Y, N, K = _sigmoid_output_args(Z, Y, binary=False)
    out = _new_or_out(out, shape, Z.dtype, (("Z", Z), ("Y", Y)))
    loss = kernel("sigmoid_mse_grad", impl)(Z, Y, out.reshape(N, K))
    return Z.dtype.type(loss), out


def linear_backward(dZ, X, W, *, compute_dX=True, out=None, impl=None):
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
    X = v.floats("X", X, ndim=2, shape_hint=" (N, in_features)")
    dZ = v.floats("dZ", dZ, X.dtype, ndim=2, shape_hint=" (N, out_features)")
    W = v.floats("W", W, X.dtype, ndim=2, shape_hint=" (out_features, in_features)")
    N, D = X.shape
    K = W.shape[0]
    if W.shape[1] != D:
        raise ValueError(f"W: expected shape ({K}, {D}) to match X {X.shape}, got {W.shape}")
    v.shape_is("dZ", dZ, (N, K), "to match X {} and W {}", X.shape, W.shape)
    inputs = (("dZ", dZ), ("X", X), ("W", W))
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


def hidden_delta(dZ, W, H, *, out=None, impl=None):
    """Hidden delta ``δ¹ = (dZ W) ⊙ H ⊙ (1 − H)`` (SPEC "Gradients", seeds 000/001).

    The gradient w.r.t. the pre-activation of a sigmoid layer H = σ(X W₁ᵀ + b₁),
    given the upstream gradient dZ (N, K) of the next layer Z = H Wᵀ + b, W (K, D),
    H (N, D). Returns (N, D); the jit version fuses the product and the sigmoid
    derivative block by block. ``out`` is overwritten.
    """
    H = v.floats("H", H, ndim=2, shape_hint=" (N, hidden)")
    dZ = v.floats("dZ", dZ, H.dtype, ndim=2, shape_hint=" (N, out_features)")
    W = v.floats("W", W, H.dtype, ndim=2, shape_hint=" (out_features, hidden)")
    N, D = H.shape
    K = W.shape[0]
    v.shape_is("W", W, (K, D), "to match H {}", H.shape)
    v.shape_is("dZ", dZ, (N, K), "to match H {} and W {}", H.shape, W.shape)
    out = _new_or_out(out, (N, D), H.dtype, (("dZ", dZ), ("W", W), ("H", H)))
    return kernel("hidden_delta", impl)(dZ, W, H, out)


_EMPTY = {}


def sgd_update(param, grad, lr, *, momentum=0.0, velocity=None, weight_decay=0.0,
               l1=0.0, nesterov=False, impl=None):
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

    Every argument is checked before anything is written: on error, param and
    velocity are unchanged.
    """
    if not isinstance(param, np.ndarray):
        raise TypeError(f"param: expected a numpy.ndarray updated in place, got {type(param).__name__}")
    dt = param.dtype
    if dt is not v.F32 and dt is not v.F64:
        raise TypeError(f"param: expected a float32 or float64 array, got {param.dtype}")
    if not param.flags.writeable:
        raise ValueError("param: the array is read-only")
    if not param.flags.c_contiguous:
        raise ValueError("param: expected a C-contiguous array (it is updated in place)")
    grad = v.floats("grad", grad, dt)
    v.shape_is("grad", grad, param.shape, "to match param {}", param.shape)
    lr = v.real("lr", lr, lo=0.0)
    momentum = v.real("momentum", momentum, lo=0.0, hi=1.0, hi_open=True)
    weight_decay = v.real("weight_decay", weight_decay, lo=0.0)
    l1 = v.real("l1", l1, lo=0.0)
    if not isinstance(nesterov, (bool, np.bool_)):
        raise TypeError(f"nesterov: expected a bool, got {type(nesterov).__name__}")
    if nesterov and momentum == 0:
        raise ValueError("nesterov: requires momentum > 0")
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
    _no_partial_overlap("param", param, (("grad", grad),))
    if velocity is not None:
        _no_partial_overlap("velocity", velocity, (("grad", grad),))
    p = param
    if p.ndim != 1:
        p, grad = p.reshape(-1), grad.reshape(-1)
    kernel("sgd_update", impl)(p, grad, lr, momentum, vel, weight_decay, l1, bool(nesterov))
    return param
