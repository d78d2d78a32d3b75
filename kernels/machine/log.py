"""A vectorisable natural logarithm for Numba kernels (float32 and float64).

Why
---
As with ``exp`` (``_exp.py``), Numba lowers ``np.log`` to a scalar C-library call
that LLVM cannot vectorise without SVML. The cross-entropy kernels take one log
per row (``log Σ_j exp(z_j − m)``); for rows of 10 classes that call was a fifth
of the whole gradient kernel's time (serial, Z (65536, 10) float32 on an AMD
Zen 3: 1.88 ms against 1.49 ms for the softmax alone). :func:`fast_log` is written
in arithmetic, comparisons and bit reinterpretations only, so a loop
``out[i] = fast_log(x[i])`` compiles to SIMD code.

Algorithm
---------
1. Subnormal ``x`` (below the smallest normal number) is first multiplied by
   ``2^K`` (float32 ``K = 23``, float64 ``K = 52``), which makes it normal exactly,
   and ``K`` is subtracted from the exponent below.
2. ``x = 2^e · m`` with ``m`` in ``[sqrt(1/2), sqrt(2))``, from the bits: the
   exponent field gives ``e``, the mantissa field with the exponent of 1.0 gives
   ``m`` in ``[1, 2)``, halved (and ``e`` incremented) where it is at least
   ``sqrt(2)``. Every step is exact.
3. ``log(m) = log(1 + f)``, ``f = m − 1`` in ``[−0.293, 0.414]``:

   * float32 (Cephes ``logf``): ``f − f²/2 + f³·P(f)``, ``P`` of degree 8, no division;
   * float64 (fdlibm ``__ieee754_log``): with ``s = f/(2 + f)``,
     ``log(1 + f) = f − (f²/2 − s·(f²/2 + R(s²)))``, ``R`` of degree 7 in ``s²``.
4. ``log(x) = e·ln2_hi + (log(1 + f) + e·ln2_lo)``, ``ln2_hi`` short enough that
   ``e·ln2_hi`` is exact.
5. Special values follow ``np.log``: ``log(0) = −inf``, ``log(x < 0) = nan``,
   ``log(inf) = inf``, ``log(nan) = nan``, ``log(1) = 0`` exactly; the final
   selects replace whatever the arithmetic produced in those lanes. Nothing sets
   or reads floating-point flags; no warnings.

Accuracy (``tests/test_log.py``, against ``np.log`` in float64, or in extended
precision for float64 inputs): float32 within ``LOG_MAX_ULP["float32"]`` units in
the last place of the correctly rounded result, float64 within
``LOG_MAX_ULP["float64"]``, over the whole positive range including subnormals.
Like ``fast_exp`` it is inlined with the caller's flags; it is tested only with
the project's ``FASTMATH`` (``contract`` on), which is what every kernel uses.
"""
from __future__ import annotations

import numpy as np
from numba import types
from numba.core.errors import TypingError
from numba.extending import overload

from .._config import always_inline, jit, wide_vectors

__all__ = ["fast_log", "log_into", "LOG_MAX_ULP"]

#: Documented maximum error in units in the last place of the correctly rounded
#: result (``tests/test_log.py`` checks it on dense grids of the whole range).
LOG_MAX_ULP = {"float32": 1.0, "float64": 1.5}

_f4 = np.float32
_f8 = np.float64

# smallest normal number; 2^K, which makes a subnormal normal
_TINY32, _SCALE32 = _f4(np.finfo(np.float32).tiny), _f4(2.0 ** 23)
_TINY64, _SCALE64 = _f8(np.finfo(np.float64).tiny), _f8(2.0 ** 52)
# exponent bias, and bias + K for inputs scaled by 2^K; m >= sqrt(2) is halved
_BIAS32, _BIAS_SMALL32 = _f4(127.0), _f4(127.0 + 23.0)
_BIAS64, _BIAS_SMALL64 = _f8(1023.0), _f8(1023.0 + 52.0)
_SQRT2_32 = np.float32(np.sqrt(2.0))          # 1.4142135, rounded to nearest
_SQRT2_64 = np.float64(np.sqrt(2.0))
_TWO52 = _f8(2.0 ** 52)

# Cephes logf: log(1+f) = f - f^2/2 + f^3 P(f), f in [sqrt(1/2)-1, sqrt(2)-1]
_P32 = tuple(_f4(c) for c in (
    7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1,
    1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1,
    3.3333331174e-1))
_LN2HI32, _LN2LO32 = _f4(0.693359375), _f4(-2.12194440e-4)

# fdlibm e_log.c
_LG64 = tuple(_f8(c) for c in (
    6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01,
    2.222219843214978396e-01, 1.818357216161805012e-01, 1.531383769920937332e-01,
    1.479819860511658591e-01))
_LN2HI64, _LN2LO64 = _f8(6.93147180369123816490e-01), _f8(1.90821492927058770002e-10)

_C0, _C1, _C2, _C3, _C4, _C5, _C6, _C7, _C8 = _P32
_L1, _L2, _L3, _L4, _L5, _L6, _L7 = _LG64


def _split(x):  # pragma: no cover - typing stub
    raise NotImplementedError


def _log1p_reduced(f):  # pragma: no cover - typing stub
    raise NotImplementedError


def _consts(x):  # pragma: no cover - typing stub
    raise NotImplementedError


def _check(x):
    if x not in (types.float32, types.float64):
        raise TypingError(f"fast_log: x must be float32 or float64, got {x}")


@overload(_consts, inline="always")
def _ov_consts(x):
    _check(x)
    if x == types.float32:
        return lambda x: (_f4(0.0), _f4(0.5), _f4(1.0), _f4(np.inf), _f4(np.nan),
                          _TINY32, _SCALE32, _BIAS32, _BIAS_SMALL32, _SQRT2_32,
                          _LN2HI32, _LN2LO32)
    return lambda x: (_f8(0.0), _f8(0.5), _f8(1.0), _f8(np.inf), _f8(np.nan),
                      _TINY64, _SCALE64, _BIAS64, _BIAS_SMALL64, _SQRT2_64,
                      _LN2HI64, _LN2LO64)


@overload(_split, inline="always")
def _ov_split(x):
    # x positive and normal: (biased exponent as a float, mantissa m in [1, 2)).
    # Straight-line code only (conditional expressions inside an inlined overload
    # trip Numba's IR checks; fast_log makes the selects). The exponent goes to a
    # float at once: Numba widens int32 arithmetic to int64, and AVX2 has no vector
    # int64 -> float64 conversion, so float64 takes it through the bits of 2^52 + it.
    _check(x)
    if x == types.float32:
        def s32(x):
            k = np.float32(x).view(np.int32)
            mb = np.int32(np.int32(k & np.int32(0x007FFFFF)) | np.int32(0x3F800000))
            return np.float32(np.int32(k >> np.int32(23))), np.int32(mb).view(np.float32)
        return s32

    def s64(x):
        k = np.float64(x).view(np.int64)
        mb = (k & np.int64(0x000FFFFFFFFFFFFF)) | np.int64(0x3FF0000000000000)
        eb = np.int64(((k >> np.int64(52)) & np.int64(0x7FF)) | np.int64(0x4330000000000000))
        return np.int64(eb).view(np.float64) - _TWO52, np.int64(mb).view(np.float64)
    return s64


@overload(_log1p_reduced, inline="always")
def _ov_log1p_reduced(f):
    # log(1 + f) for f in [sqrt(1/2) - 1, sqrt(2) - 1]
    _check(f)
    if f == types.float32:
        def p32(f):
            z = f * f
            p = _C0
            p = p * f + _C1
            p = p * f + _C2
            p = p * f + _C3
            p = p * f + _C4
            p = p * f + _C5
            p = p * f + _C6
            p = p * f + _C7
            p = p * f + _C8
            y = (f * z) * p - _f4(0.5) * z
            return f + y
        return p32

    def p64(f):
        s = f / (_f8(2.0) + f)
        z = s * s
        w = z * z
        t1 = w * (_L2 + w * (_L4 + w * _L6))
        t2 = z * (_L1 + w * (_L3 + w * (_L5 + w * _L7)))
        hfsq = _f8(0.5) * f * f
        return f - (hfsq - s * (hfsq + (t1 + t2)))
    return p64


@jit
def fast_log(x):
    """``log(x)`` for a float32 or float64 scalar, vectorisable inside loops.

    Returns the argument's type. See the module docstring for the algorithm and
    the error bound (``LOG_MAX_ULP``)."""
    always_inline()
    wide_vectors()
    zero, half, one, inf, nan, tiny, scale, bias, bias_small, sqrt2, ln2hi, ln2lo = _consts(x)
    small = x < tiny                       # subnormal (or 0, negative: discarded below)
    xs = x * scale if small else x
    bs = bias_small if small else bias
    eb, m = _split(xs)                     # xs = 2^(eb - bias) * m, m in [1, 2)
    big = m >= sqrt2
    e = eb - (bs - one if big else bs)
    f = (m * half if big else m) - one     # 1 + f in [sqrt(1/2), sqrt(2)); exact
    r = e * ln2hi + (_log1p_reduced(f) + e * ln2lo)
    r1 = r if x < inf else x               # +inf -> inf, nan -> nan
    r2 = nan if x < zero else r1           # negative (including -inf) -> nan
    return -inf if x == zero else r2       # ±0 -> -inf


@jit
def log_into(x, out):
    """``out[i] = fast_log(x[i])`` for 1-D contiguous arrays of one float dtype."""
    wide_vectors()
    for i in range(x.shape[0]):
        out[i] = fast_log(x[i])
