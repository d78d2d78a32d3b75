"""Every argument check of the public API, in one place.

Each check either returns an array the kernels can take as it is (C-contiguous,
native byte order, float32 or float64) or raises ``TypeError``/``ValueError`` with
a message that names the argument, what was expected and what came. Nothing is
written before every argument of a call has been checked.

The checks are the only Python between a caller and a kernel, so they are kept
cheap: identity tests on dtypes first, the slow paths only for unusual input.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .kernels._config import jit as _jit

F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)
_FLOAT_DTYPES = (F32, F64)
_INTP = np.dtype(np.intp)


def _describe_dtype(dt) -> str:
    return str(dt) if dt.isnative else f"{dt.str} (non-native byte order)"


def floats(name: str, a, dtype=None, ndim=None, shape_hint: str = ""):
    """``a`` as a C-contiguous native float32/float64 ndarray.

    dtype: the dtype the call already fixed (from its first array), or None.
    ndim:  required number of dimensions, or None.
    """
    if type(a) is not np.ndarray:
        if not isinstance(a, np.ndarray):
            if isinstance(a, (str, bytes)) or a is None:
                raise TypeError(f"{name}: expected a float32 or float64 array, got {type(a).__name__}")
            try:
                a = np.asarray(a)
            except Exception as exc:  # ragged lists and the like
                raise TypeError(f"{name}: could not convert {type(a).__name__} to an array: {exc}") from None
            if a.dtype.kind in "iub":
                raise TypeError(
                    f"{name}: expected a float32 or float64 array, got {type(a).__name__} of "
                    f"{a.dtype}; pass np.asarray(..., dtype=np.float32) (or float64)")
        else:
            a = np.asarray(a)
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


def out_array(name: str, out, shape: tuple, dtype, inputs=()):
    """Validate a caller-provided output array (written in place by the kernel)."""
    if type(out) is np.ndarray and out.dtype is dtype and out.shape == shape:
        # fast path: a writeable C-contiguous array that owns its memory, as do the inputs
        # (two arrays that each own their memory overlap only if they are the same array)
        flags = out.flags
        if flags.writeable and flags.c_contiguous and out.base is None:
            for _, other in inputs:
                if out is other or other.base is not None:
                    break
            else:
                return out
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray to write into, got {type(out).__name__}")
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
    owns = out.base is None
    for other_name, other in inputs:
        # two arrays that each own their memory overlap only if they are the same
        # array; otherwise ask NumPy (bounds check)
        if (out is other) if (owns and other.base is None) else np.may_share_memory(out, other):
            raise ValueError(f"{name}: must not overlap the input {other_name}")
    return out


@_jit
def _first_label_out_of_range(y, C):
    """Index of the first label outside [0, C), or -1 (one pass, no temporaries)."""
    for i in range(y.shape[0]):
        if y[i] < 0 or y[i] >= C:
            return i
    return -1


def labels(name: str, y, N: int, C: int):
    """Integer class labels (N,) in [0, C), as a C-contiguous intp array."""
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
