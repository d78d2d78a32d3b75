"""Scalar helpers for the jit kernels, compiled per float type (inlined).

Each helper is a Numba ``overload``: at typing time it picks constants of the
argument's own type, so a float32 kernel stays in float32 (a bare ``1.0`` next
to a float32 value would promote the expression to float64).

``exp`` here is the exponential every jit kernel uses. Numba's own ``np.exp`` is
a scalar libm call on PyPI's llvmlite (no SVML), which blocks vectorisation;
``fastnn.kernels.machine.exp`` provides a polynomial exp that LLVM vectorises.
"""
from __future__ import annotations

import math

import numpy as np
from numba import types
from numba.extending import overload

from .exp import EXP_NAME, _poly, fast_exp as exp  # noqa: F401  (exp in x's precision, jit only)


def _float_type(t):
    if isinstance(t, types.Float):
        return np.float32 if t.bitwidth == 32 else np.float64
    return None


def sigmoid(z):
    """Piecewise-stable logistic (jit code only)."""
    raise NotImplementedError("jit-only helper")


# The sigmoid's own exponential. SPEC "Forward": σ(z) = 1/(1+e^-z) for z >= 0 and
# e^z/(1+e^z) for z < 0; both come from e = e^t with t = -|z| <= 0, so nothing
# overflows. e^t is fast_exp's algorithm (exp.py: clamp, Cody-Waite reduction, the same
# degree-6 / degree-11 polynomial) cut down to t <= 0 (one clamp) and rewritten so that
# the loop has fewer and shorter dependency chains; in the bias + sigmoid pass of
# linear_sigmoid (a float32 block in L2, one thread) 1.02 -> 0.77 ns per element:
# * n = round(t log2 e) from one multiply-add with the "magic" constant 1.5·2^mant:
#   t·log2e + magic rounds to an integer, whose bits are magic's plus n. n comes back
#   out of the bits by an INTEGER subtraction and a conversion, so reassociation (never
#   used with this helper, but cheap to rule out) cannot fold "+ magic − magic" away.
# * 2^n for n down to −150 (float32) / −1077 (float64) is not a normal number, so the
#   polynomial's value p is scaled by 2^(n+64) instead (an integer add to its exponent
#   field: exact, and normal over the whole clamped range) and the result then by 2^-64,
#   one multiplication that rounds once, to a subnormal where the true e^t is one,
#   exactly as fast_exp's final multiplication does. The exponent-field addend
#   (n+64)·2^mant is the low bits of magic + n + 64 shifted into place: magic's own
#   bits shift out.
# * σ = num/(1+e), num = 1 (z >= 0) or e (z < 0): one rounding, not e·(1/(1+e)).
# NaN in, NaN out (the last select); ±inf give 1 and 0.
_F4, _F8 = np.float32, np.float64
# (lo, log2e, magic + 64, bits(magic), 64, mantissa bits, C1, C2, 2^-64), magic = 1.5·2^mant
_SIG32 = (_F4(-104.0), _F4(1.44269504088896341), _F4(1.5 * 2**23 + 64),
          np.int32(np.float32(1.5 * 2**23 + 64).view(np.int32) - 64), np.int32(64),
          np.int32(23), _F4(0.693359375), _F4(-2.12194440e-4), _F4(2.0**-64))
_SIG64 = (_F8(-746.0), _F8(1.4426950408889634074), _F8(1.5 * 2**52 + 64),
          np.int64(np.float64(1.5 * 2**52 + 64).view(np.int64) - 64), np.int64(64),
          np.int64(52), _F8(6.93145751953125e-1), _F8(1.42860682030941723212e-6),
          _F8(2.0**-64))


def _sig_consts(z):  # pragma: no cover - typing stub
    raise NotImplementedError


@overload(_sig_consts, inline="always")
def _ol_sig_consts(z):
    if z == types.float32:
        return lambda z: _SIG32
    if z == types.float64:
        return lambda z: _SIG64
    return None


def _bits(x):  # pragma: no cover - typing stub
    raise NotImplementedError


@overload(_bits, inline="always")
def _ol_bits(x):
    if x == types.float32:
        return lambda x: np.float32(x).view(np.int32)
    if x == types.float64:
        return lambda x: np.float64(x).view(np.int64)
    return None


def _float_of(bits):  # pragma: no cover - typing stub
    raise NotImplementedError


@overload(_float_of, inline="always")
def _ol_float_of(bits):
    if bits == types.int32:
        return lambda bits: np.int32(bits).view(np.float32)
    if bits == types.int64:
        return lambda bits: np.int64(bits).view(np.float64)
    return None


@overload(sigmoid)
def _ol_sigmoid(z):
    T = _float_type(z)
    if T is None:
        return None
    one = T(1.0)
    I = np.int32 if T is np.float32 else np.int64

    def impl(z):
        lo, log2e, magic, magic_bits, i64, mant, c1, c2, down = _sig_consts(z)
        t = -abs(z)
        t = lo if t < lo else t                 # a NaN passes ("t < lo" is false)
        kk = t * log2e + magic                  # magic + 64 + n, n = round(t log2 e)
        kb = _bits(kk)
        n = T(I(I(kb - magic_bits) - i64))      # n, from the integer bits
        r = t - n * c1
        r = r - n * c2
        p = _poly(r)                            # e^r, as in fast_exp
        e = _float_of(I(_bits(p) + I(kb << mant))) * down     # p·2^(n+64)·2^-64
        num = one if z >= 0 else e
        s = num / (one + e)
        return s if z == z else z + z

    return impl


def log1p(x):
    """log1p in x's precision (jit code only)."""
    raise NotImplementedError("jit-only helper")


@overload(log1p)
def _ol_log1p(x):
    if _float_type(x) is None:
        return None

    def impl(x):
        return np.log1p(x)

    return impl


#: Magnitudes that round to inf in float32 (half an ulp above its maximum and beyond).
_F32_OVERFLOW = 2.0 ** 128 - 2.0 ** 103


def as_dtype_scalar(x, dtype):
    """float -> scalar of ``dtype``, rounded to nearest as a jit kernel's conversion
    rounds it: magnitudes from half an ulp above float32's maximum become ±inf, without
    NumPy's overflow warning (the true value is not representable)."""
    if dtype == np.float32 and abs(x) >= _F32_OVERFLOW and x == x:
        return dtype.type(math.copysign(math.inf, x))
    return dtype.type(x)
