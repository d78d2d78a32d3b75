"""Every argument check of the public API, in one place.

Each check either returns an array the kernels can take as it is (C-contiguous,
native byte order, float32 or float64) or raises ``TypeError``/``ValueError`` with
a message that names the argument, what was expected and what came. Nothing is
written before every argument of a call has been checked.

The checks are the only Python between a caller and a kernel, so they are kept
cheap: identity tests on dtypes first, the slow paths only for unusual input.

Array subclasses and foreign arrays (the rule ``fastnn.functional`` documents):

* read-only inputs are converted with ``np.asarray`` (``np.matrix``, ``np.memmap``, a
  PyTorch CPU tensor or anything with ``__array__``: the plain array of the same
  values), except masked arrays, which are a ``TypeError``: no kernel can honour a
  mask, and ``np.asarray`` would drop it silently;
* arrays that are written (``out``, ``sgd_update``'s ``param`` and ``velocity``) must be
  exactly ``numpy.ndarray``: anything else is a ``TypeError`` naming the argument and
  what to pass instead (:func:`written`). A subclass would be written through a view
  whose indexing is not its own (``np.matrix``), or with its mask ignored, and an
  array converted from a tensor may be a copy, so that the result would be lost.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .kernels._config import jit as _jit
from .kernels.machine.finite import all_finite

F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)
_FLOAT_DTYPES = (F32, F64)
_INTP = np.dtype(np.intp)


def _describe_dtype(dt) -> str:
    return str(dt) if dt.isnative else f"{dt.str} (non-native byte order)"


def type_name(x) -> str:
    """``numpy.matrix``, ``numpy.ma.MaskedArray``, ``torch.Tensor``: the public name of
    ``x``'s type, for messages."""
    t = type(x)
    mod = t.__module__ or ""
    if mod == "numpy.ma" or mod.startswith("numpy.ma."):
        return "numpy.ma." + t.__qualname__
    if mod == "numpy" or mod.startswith("numpy."):
        return "numpy." + t.__qualname__
    if mod in ("builtins", ""):
        return t.__qualname__
    return f"{mod.split('.')[0]}.{t.__qualname__}"


def is_device_array(a) -> bool:
    """A GPU array: anything with ``__cuda_array_interface__`` (CuPy, PyTorch CUDA tensors,
    Numba device arrays), or a Numba CUDA-simulator device array. (Without importing
    numba.cuda.)"""
    return hasattr(a, "__cuda_array_interface__") or type(a).__module__.startswith("numba.cuda")


def _device_error(name, a):
    return TypeError(f"{name}: a device array ({type_name(a)}) where a host array was expected: "
                     f"device arrays take impl='cuda' with a device array as the call's first "
                     f"array argument (or copy it to the host)")


def _is_masked(a) -> bool:
    return isinstance(a, np.ma.MaskedArray)


def plain(name: str, a):
    """A read-only input as a plain ``numpy.ndarray`` when it is an ndarray subclass
    (``np.asarray``: a view of the same memory); masked arrays are a ``TypeError``.
    Anything that is not an ndarray is returned as it is (``floats`` converts it)."""
    if type(a) is np.ndarray or not isinstance(a, np.ndarray):
        return a
    if _is_masked(a):
        raise TypeError(
            f"{name}: masked arrays are not supported (got {type_name(a)}): the kernels cannot "
            f"honour a mask; pass {name}.filled(value) or np.asarray({name}) (which ignores it)")
    return np.asarray(a)


def written(name: str, a, role: str = "to write into") -> None:
    """An array the call writes into must be exactly ``numpy.ndarray``: ``TypeError``
    naming ``name`` otherwise (see the module docstring)."""
    if type(a) is np.ndarray:
        return
    tn = type_name(a)
    what = f"{name}: expected a numpy.ndarray {role}, got {tn}"
    expr = name.split(" (")[0]                 # "out[0] (dW)" -> "out[0]"
    if isinstance(a, np.ndarray):
        if _is_masked(a):
            raise TypeError(f"{what}: the kernels cannot honour a mask; pass a plain array "
                            f"(np.asarray({expr}) is its data, written under the mask too)")
        raise TypeError(f"{what}; pass np.asarray({expr}), a plain view of the same memory")
    if any(hasattr(a, attr) for attr in ("__array__", "__array_interface__", "__dlpack__")):
        raise TypeError(f"{what}: an array converted from it may be a copy, and what is "
                        f"written into a copy is lost; pass a numpy.ndarray (for a PyTorch "
                        f"CPU tensor t, t.numpy() shares its memory)")
    raise TypeError(what)


#: float32 rounds every |x| >= 2^128 - 2^103 (half an ulp above its maximum) to inf,
#: and every |x| <= 2^-150 (half its smallest subnormal) to 0.
F32_OVERFLOW = 2.0 ** 128 - 2.0 ** 103
_F32_HALF_SUBNORMAL = 2.0 ** -150


def convert_floats(name: str, x, dtype):
    """``x`` (an array of real numbers: bool, integers or floats) as a C-contiguous
    array of ``dtype`` (float32 or float64), converted without NumPy's cast warnings.

    Values the conversion would turn into infinities (finite float64 beyond float32's
    range, or extended-precision values beyond float64's) are a ``ValueError`` naming
    ``name`` and the largest magnitude; NaN and infinities already in ``x`` are kept
    (the caller's finiteness check names them). Values below the smallest subnormal
    become 0, as in any float conversion.
    """
    dtype = np.dtype(dtype)
    if type(x) is not np.ndarray:
        x = plain(name, x)
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
    if x.dtype == dtype:
        return np.ascontiguousarray(x)
    if x.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected real numbers, got dtype {_describe_dtype(x.dtype)}")
    with np.errstate(over="ignore", invalid="ignore"):
        y = np.ascontiguousarray(x, dtype=dtype)
    if (x.dtype.kind == "f" and x.dtype.itemsize > dtype.itemsize and y.size
            and not all_finite(y)):
        with np.errstate(invalid="ignore"):
            lost = np.isinf(y) & np.isfinite(x)
        if lost.any():
            big = float(np.max(np.abs(x[lost])))
            raise ValueError(f"{name}: values out of {dtype} range (max |x| = {big:.6g}; "
                             f"the largest {dtype} is {float(np.finfo(dtype).max):.6g})")
    return y


def in_dtype(name: str, x: float, dtype) -> float:
    """A finite non-negative hyperparameter ``x`` that survives rounding to ``dtype``
    (round to nearest): ``ValueError`` if it would become inf (beyond float32's range)
    or if a nonzero value would become 0 (below float32's smallest subnormal, 1.4e-45),
    which would silently change the update. Returns ``x`` unchanged."""
    if dtype is F32 and x != 0.0:
        if abs(x) >= F32_OVERFLOW:
            raise ValueError(f"{name}: {x!r} is beyond the range of float32, the parameters' "
                             f"dtype (largest float32: {float(np.finfo(F32).max):.8g})")
        if abs(x) <= _F32_HALF_SUBNORMAL:              # rounds (to even) to 0
            raise ValueError(f"{name}: {x!r} rounds to 0 in float32, the parameters' dtype "
                             f"(smallest positive float32: 1.4e-45); pass 0.0 for none")
    return x


def floats(name: str, a, dtype=None, ndim=None, shape_hint: str = ""):
    """``a`` as a C-contiguous native float32/float64 ndarray.

    dtype: the dtype the call already fixed (from its first array), or None.
    ndim:  required number of dimensions, or None.
    """
    if type(a) is not np.ndarray:
        if not isinstance(a, np.ndarray):
            if isinstance(a, (str, bytes)) or a is None:
                raise TypeError(f"{name}: expected a float32 or float64 array, got {type(a).__name__}")
            if is_device_array(a):
                raise _device_error(name, a)
            try:
                a = np.asarray(a)
            except Exception as exc:  # ragged lists and the like
                raise TypeError(f"{name}: could not convert {type(a).__name__} to an array: {exc}") from None
            if a.dtype.kind in "iub":
                raise TypeError(
                    f"{name}: expected a float32 or float64 array, got {type(a).__name__} of "
                    f"{a.dtype}; pass np.asarray(..., dtype=np.float32) (or float64)")
        else:
            a = plain(name, a)
    dt = a.dtype
    if dt is not F32 and dt is not F64:
        if dt.kind == "f" and dt.itemsize in (4, 8) and not dt.isnative:
            a = a.astype(dt.newbyteorder("="))       # byte-swapped float: same values
            dt = a.dtype
        elif dt == F32 or dt == F64:
            dt = F32 if dt == F32 else F64
        else:
            raise TypeError(
                f"{name}: expected a float32 or float64 array, got {_describe_dtype(dt)}"
                + ("" if dt.kind != "f" else
                   " (float16 and extended precision are not supported; use float32 or float64)"))
    if dtype is not None and dt != dtype:
        raise TypeError(
            f"{name}: dtype {dt} does not match the other arguments ({dtype}); "
            f"mixed float32/float64 is not upcast silently: convert one of them with .astype()")
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array{shape_hint}, got shape {a.shape}")
    if not a.flags.c_contiguous:
        a = np.ascontiguousarray(a)
    return a


def shape_is(name: str, a, expected: tuple, why: str, *why_args) -> None:
    """``why`` is formatted with ``why_args`` only when the check fails (cheap)."""
    if a.shape != expected:
        raise ValueError(f"{name}: expected shape {expected} {why.format(*why_args)}, got {a.shape}")


def _arrays(item):
    """The arrays of an ``inputs`` entry ``(name, array)`` or ``(name, array, original)``:
    what the kernel reads, and what the caller passed where that is another ndarray
    (a copy was made: non-contiguous, byte-swapped, ...; the original may still share
    memory with ``out``)."""
    yield item[1]
    if len(item) > 2:
        orig = item[2]
        if orig is not item[1] and isinstance(orig, np.ndarray):
            yield orig


def _overlaps(a, b) -> bool:
    """Whether ``a`` and ``b`` share memory: NumPy's exact answer for strided views
    (bounded work; too hard to decide counts as overlapping)."""
    if not np.may_share_memory(a, b):
        return False
    try:
        return bool(np.shares_memory(a, b, max_work=1 << 16))
    except np.exceptions.TooHardError:
        return True


def _fast_disjoint(out, inputs) -> bool:
    """True when ``out`` and every input own their memory and are distinct objects
    (two arrays that each own their memory overlap only if they are the same array).
    (The per-call path: no generator.)"""
    for item in inputs:
        other = item[1]
        if out is other or other.base is not None:
            return False
        if len(item) > 2:
            orig = item[2]
            if orig is not other and isinstance(orig, np.ndarray) and (
                    orig is out or orig.base is not None):
                return False
    return True


def out_array(name: str, out, shape: tuple, dtype, inputs=()):
    """Validate a caller-provided output array (written in place by the kernel).

    ``inputs``: ``(name, array)`` or ``(name, array, original)`` entries, the arrays
    the kernel reads and, where a check converted one, what the caller passed; ``out``
    must share memory with none of them."""
    if type(out) is not np.ndarray and is_device_array(out):
        raise _device_error(name, out)
    if type(out) is np.ndarray and out.dtype is dtype and out.shape == shape:
        # fast path: a writeable C-contiguous array that owns its memory, as do the inputs
        flags = out.flags
        if (flags.writeable and flags.c_contiguous and out.base is None
                and _fast_disjoint(out, inputs)):
            return out
    written(name, out)
    if out.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype} (the inputs' dtype), got {_describe_dtype(out.dtype)}")
    if out.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {out.shape}")
    flags = out.flags
    if not flags.writeable:
        raise ValueError(f"{name}: the array is read-only")
    if not flags.c_contiguous or not out.dtype.isnative:
        raise ValueError(f"{name}: expected a C-contiguous array in native byte order "
                         f"(use np.empty({shape}, dtype={dtype}))")
    for item in inputs:
        for other in _arrays(item):
            if out is other or _overlaps(out, other):
                raise ValueError(f"{name}: must not overlap the input {item[0]}")
    return out


def _same_layout(out, x) -> bool:
    """``x`` is ``out``'s memory exactly: the same address, dtype and shape, both
    C-contiguous (so the same elements in the same order)."""
    return (x.ctypes.data == out.ctypes.data and x.dtype == out.dtype and x.shape == out.shape
            and x.flags.c_contiguous)


def no_partial_overlap(out_name: str, out, inputs) -> None:
    """``out`` (written elementwise, C-contiguous) may be an input exactly (in place:
    :func:`_same_layout`) but must not share memory with any input otherwise, before
    or after the checks' conversions (``inputs`` as in :func:`out_array`)."""
    if out.base is None and _fast_disjoint(out, inputs):
        return                           # all own their memory: overlap means identity
    for item in inputs:
        for x in _arrays(item):
            if out is x or (out.base is None and x.base is None):
                continue                 # the same array, or two that own their memory
            if _overlaps(out, x) and not _same_layout(out, x):
                name = item[0]
                raise ValueError(f"{out_name}: overlaps {name} partially; pass {name} itself "
                                 f"(in place) or an array that does not overlap it")


@_jit
def _first_label_out_of_range(y, C):
    """Index of the first label outside [0, C), or -1 (one pass, no temporaries)."""
    for i in range(y.shape[0]):
        if y[i] < 0 or y[i] >= C:
            return i
    return -1


def labels(name: str, y, N: int, C: int):
    """Integer class labels (N,) in [0, C), as a C-contiguous intp array."""
    if type(y) is not np.ndarray:
        y = plain(name, y)
        if not isinstance(y, np.ndarray):
            y = np.asarray(y)
    if y.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer class labels of shape ({N},) or float target "
                        f"rows of shape ({N}, {C}), got dtype {y.dtype}")
    if y.shape != (N,):
        raise ValueError(f"{name}: expected integer labels of shape ({N},) to match Z ({N}, {C}), "
                         f"got {y.shape}")
    if y.dtype is not _INTP:
        y = y.astype(np.intp)          # int8/uint64/...: one dtype for the kernels (values
    elif not y.flags.c_contiguous:     # that do not fit fail the range check below)
        y = np.ascontiguousarray(y)
    bad = _first_label_out_of_range(y, C)
    if bad >= 0:
        raise ValueError(f"{name}: labels must lie in [0, {C}) for {C} classes, "
                         f"got {int(y[bad])} at index {bad}")
    return y


def real(name: str, x, *, lo=None, lo_open=False, hi=None, hi_open=False) -> float:
    """A finite real scalar within the given bounds, as a Python float."""
    if type(x) is float and x == x and x - x == 0.0 and (lo is None or x > lo or (
            x == lo and not lo_open)) and (hi is None or x < hi or (x == hi and not hi_open)):
        return x                                     # a finite float in range: fast path
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        if isinstance(x, np.ndarray) and x.ndim == 0 and x.dtype.kind == "f":
            x = float(x)
        else:
            raise TypeError(f"{name}: expected a real number, got {type(x).__name__}")
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"{name}: expected a finite number, got {x}")
    if lo is not None and (x < lo or (lo_open and x == lo)):
        raise ValueError(f"{name}: expected {'>' if lo_open else '>='} {lo}, got {x}")
    if hi is not None and (x > hi or (hi_open and x == hi)):
        raise ValueError(f"{name}: expected {'<' if hi_open else '<='} {hi}, got {x}")
    return x


def sgd_hyperparameters(lr, momentum, weight_decay, l1, nesterov, dtype):
    """``sgd_update``'s scalars checked and rounded to the parameters' dtype, in this
    order: ``lr >= 0``, ``momentum`` in [0, 1), ``weight_decay >= 0``, ``l1 >= 0`` (each
    representable in ``dtype``), ``nesterov`` a bool and only with momentum > 0 (for the
    host and the device arrays alike). Returns ``(lr, momentum, weight_decay, l1)``."""
    lr = in_dtype("lr", real("lr", lr, lo=0.0), dtype)
    momentum = in_dtype("momentum", real("momentum", momentum, lo=0.0, hi=1.0, hi_open=True), dtype)
    weight_decay = in_dtype("weight_decay", real("weight_decay", weight_decay, lo=0.0), dtype)
    l1 = in_dtype("l1", real("l1", l1, lo=0.0), dtype)
    if not isinstance(nesterov, (bool, np.bool_)):
        raise TypeError(f"nesterov: expected a bool, got {type(nesterov).__name__}")
    if nesterov and momentum == 0:
        raise ValueError("nesterov: requires momentum > 0")
    return lr, momentum, weight_decay, l1
