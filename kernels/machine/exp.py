"""A vectorisable ``exp`` for Numba kernels (float32 and float64).

Why
---
Numba lowers ``np.exp``/``math.exp`` to a call to the C library's scalar
``exp``/``expf``.  LLVM can only vectorise such a call through a vector math
library (Intel SVML), and the llvmlite wheels on PyPI are built without SVML, so
a loop that calls ``exp`` stays scalar: 0.2-0.5 G elements/s on one core here,
a quarter or less of what NumPy's own SIMD ``np.exp`` does.  :func:`fast_exp` is written
in plain arithmetic (multiply, add, floor, float->int conversion and a bit
reinterpretation), all of which LLVM auto-vectorises, so a loop
``out[i] = fast_exp(x[i])`` compiles to SIMD code: 16 float32 or 8 float64 lanes per
``zmm`` register on AVX-512 CPUs, because ``fast_exp`` calls ``_config.wide_vectors()``,
which marks the calling kernel for 512-bit vectors (LLVM's default there is 256-bit).

Algorithm (Cephes style)
------------------------
1. Clamp ``x`` to ``[LO, HI]`` (float32: ``[-104, 89]``, float64:
   ``[-746, 710]``) with ``min(max(x, LO), HI)`` (``vmaxps``/``vminps``).
   Outside that range the true result already rounds to 0 or overflows to inf,
   and the clamp keeps the exponent arithmetic below in range.
2. ``n = floor(x * log2(e) + 1/2)`` and ``r = x - n*C1 - n*C2`` where
   ``C1 + C2 = ln 2`` (Cody-Waite split from Cephes: ``C1`` has few mantissa
   bits so ``n*C1`` is exact), giving ``|r| <= ln(2)/2``.
3. ``exp(r) = 1 + r + r^2 * q(r)`` with ``q`` a near-minimax polynomial fitted
   (weighted for relative error, in 60-digit arithmetic) on ``[-ln2/2, ln2/2]``:
   total degree 6 for float32 (approximation error 3.1e-9) and degree 11 for
   float64 (3.7e-18), evaluated by Horner's rule in the argument's precision.
4. ``exp(x) = exp(r) * 2^n``.  On CPUs with AVX-512F (``_config.HAS_AVX512``, the
   compile target's features) this is LLVM's ``llvm.ldexp``, which the loop
   vectoriser widens and the backend lowers to one ``vscalefps``/``vscalefpd``:
   a single correctly rounded ``exp(r) * 2^n``, overflowing to ``inf`` and
   underflowing gradually (subnormals, then 0) exactly where the true result does.
   Elsewhere (LLVM would expand ``ldexp`` into scalar code) the integer ``n`` is
   split as ``n1 = n >> 1``, ``n2 = n - n1``: ``exp(r) * 2^n1`` is an integer add
   of ``n1 << mant`` to the bits of ``exp(r)`` (exact; the result stays normal),
   and ``2^n2`` is built from its bits ``(n2 + bias) << mant`` (a normal number
   over the whole clamped range); the last, ordinary IEEE multiplication then
   overflows and underflows where the true result does, with no extra branches.
   Both give the same results wherever the result is normal (they differ only in
   the rounding of subnormal results; ``tests/test_exp.py`` runs both).
5. NaN input: ``x == x`` is false and ``x + x`` (the same NaN, quietened) is
   returned; not ``x`` itself, which in an in-place loop LLVM would turn into a
   conditional store (``vmaskmovps`` on AVX2).  (Inside, a NaN passes
   the clamp and its lanes compute garbage that this final select discards.)

The bit reinterpretations are NumPy scalar ``.view`` calls, which Numba lowers to
LLVM ``bitcast``; everything in the loop body is vectorisable: the inner loop of
``exp_into`` is 20 ``zmm`` instructions per 16 float32 results with ``vscalefps``
(``vcmpnltps, vminps, vfmadd... x7, vrndscaleps, vcvttps2dq, vcvtdq2ps, vmulps,
vaddps, vscalefps, vcmpordps``, a masked store), 27 with the integer scaling
(``vpsrad, vpslld, vpaddd, vpsubd, vmulps`` instead), and no calls.

Accuracy (measured against ``np.exp`` evaluated in float64 for float32 inputs
and in x87 extended precision for float64 inputs; tested in
``tests/test_exp.py``): maximum relative error, wherever the result is a normal
number:

* float32: 8.6e-8 over *every* float32 with ``|x| < 89`` with the project's
  flags (1.2e-7 if a caller adds ``reassoc``), i.e. about 1 ulp; documented
  bound ``EXP_MAX_REL_ERR["float32"] = 2.5e-7`` (2 ulp);
* float64: 1.6e-16 on dense grids and random samples of ``[-745, 710]``
  (2.2e-16 with ``reassoc``); documented bound
  ``EXP_MAX_REL_ERR["float64"] = 5e-16``.

Special values follow ``np.exp``: ``exp(-inf) = 0``, ``exp(+inf) = inf``,
``exp(nan) = nan``, ``exp(0) = 1`` exactly, ``inf`` above the largest finite
result (x > 88.7228 float32 / 709.7827 float64) and 0 far enough below.
Subnormal results (x below -87.34 float32 / -708.40 float64) are *not* flushed
to zero: they come out of the final multiplication by ``2^n2`` and so carry one
extra rounding; their absolute error is below one unit of the smallest
subnormal plus the relative bound times the result.  Nothing here sets or reads
floating-point exception flags and no warnings are ever raised.

Floating-point flags.  ``fast_exp`` is compiled by Numba once per float type, with
the project's flags, and marked ``alwaysinline`` for LLVM (``_config.always_inline``),
which copies it into every calling loop: its instructions keep its own flags whatever
the caller's (it used to be ``inline="always"``, inlined at the Numba IR level with the
caller's flags, so it is written not to depend on them). The caller's loop takes the
caller's vector width: a kernel whose loops call it calls ``wide_vectors()`` itself.
It is tested with the project's
``FASTMATH`` (``_config.py``), without ``contract`` (``jit_strict``), with
``reassoc`` added and with no flags.  No NaN/inf test may be folded away, so
``nnan``/``ninf`` must never be used with it (the project never does).
Rounding uses ``floor`` rather than the ``x + 1.5*2^23 - 1.5*2^23`` trick
(``reassoc`` folds it); the second Cody-Waite product uses ``float(int(n))``
instead of ``n`` so that ``reassoc`` cannot merge ``n*C1 + n*C2`` into
``n*(C1 + C2)`` (that merge was observed and costs 3e-7 relative error in
float32, 2e-14 in float64); and the ``2^n`` scaling is integer arithmetic, so
no overflowing product ``2^n1 * 2^n2`` can be formed by reassociation.
``contract`` (FMA) is optional: it changes the last bit here and there.

Speed (``python benches/exp_speed.py``, one thread, 1M elements, shared
2-core Sapphire Rapids-class VM, other work running): float32 1.6 G elements/s
vs 0.2 for a Numba loop calling ``np.exp`` and 1.7 for NumPy's ``np.exp``;
float64 0.6 vs 0.1 and 0.9 (timings vary by 2x with the machine's load), with
the integer scaling; ``vscalefps`` then took an L2-resident float32 loop (65536
elements, best of 5, in one process) from 2.9 to 4.0 G elements/s.  LLVM
uses 256-bit vectors on this CPU by default (``prefer-256-bit``); the per-function
attribute that ``wide_vectors()`` sets gives ``zmm`` code instead: in a loop over an L1-
resident array, 1.5 -> 2.4-2.7 G elements/s (float32, one thread).

Typing: ``fast_exp`` has one generic body; the constants, the polynomial and the
``2^k`` construction come from small ``@overload`` helpers that pick float32 or
float64 versions by the argument type, so a float32 argument is computed
entirely in float32 (nothing is promoted to float64) and returns float32, and a
float64 argument returns float64.  Integer arguments are not supported (convert
them first).
"""
from __future__ import annotations

import numpy as np
from numba import types
from llvmlite import ir
from numba.core.errors import TypingError
from numba.extending import intrinsic, overload

from .._config import HAS_AVX512, always_inline, jit, wide_vectors

__all__ = ["fast_exp", "exp_inplace", "exp_into", "EXP_NAME", "EXP_MAX_REL_ERR",
           "EXP_DEGREE"]

#: Polynomial degree used for each precision.
EXP_DEGREE = {"float32": 6, "float64": 11}

EXP_NAME = ("fastnn polynomial exp (Cephes-style, degree 6 float32 / "
            "degree 11 float64; 2^n by " + ("AVX-512 vscalef)" if HAS_AVX512
                                            else "integer exponent arithmetic)"))

#: Documented maximum relative error against the correctly rounded exp, for
#: results that are normal numbers (``tests/test_exp.py`` checks it on dense grids).
EXP_MAX_REL_ERR = {"float32": 2.5e-7, "float64": 5e-16}

# --------------------------------------------------------------------------
# Constants.  Range-reduction constants (Cody-Waite split of ln 2 from Cephes:
# C1 has 9 (float32) / 32 (float64) significant bits so n*C1 is exact).
# --------------------------------------------------------------------------
_f4 = np.float32
_f8 = np.float64

# (LO, HI, LOG2E, HALF, C1, C2)
_R32 = (_f4(-104.0), _f4(89.0), _f4(1.44269504088896341), _f4(0.5),
        _f4(0.693359375), _f4(-2.12194440e-4))
_R64 = (_f8(-746.0), _f8(710.0), _f8(1.4426950408889634074), _f8(0.5),
        _f8(6.93145751953125e-1), _f8(1.42860682030941723212e-6))

# Integer constants for the exponent-field arithmetic, typed so that nothing
# silently widens (float32 path) or narrows.
_I4_1, _I4_23, _I4_127 = np.int32(1), np.int32(23), np.int32(127)
_I8_1, _I8_52, _I8_1023 = np.int64(1), np.int64(52), np.int64(1023)

# q(r) coefficients, c0 + c1 r + ... ; exp(r) ~ 1 + r + r^2 q(r).
_Q32 = tuple(_f4(c) for c in (
    0.49999993412261011449, 0.16666520105546228914, 0.041668394259156949209,
    0.0083687806222261855031, 0.0013814464752135269143))
_Q64 = tuple(_f8(c) for c in (
    0.50000000000000107218, 0.16666666666666410222, 0.041666666666529181737,
    0.0083333333334956268264, 0.0013888888943924334879,
    0.00019841269504765117688, 0.000024801492761147636597,
    2.7557587338643291193e-6, 2.7630379173482604275e-7,
    2.4999967314067660759e-8))

_A0, _A1, _A2, _A3, _A4 = _Q32
_B0, _B1, _B2, _B3, _B4, _B5, _B6, _B7, _B8, _B9 = _Q64


# --------------------------------------------------------------------------
# Type-dispatching helpers (resolved at compile time, inlined at the IR level).
# They are stubs in Python; only their overloads are ever executed.
# --------------------------------------------------------------------------
def _consts(x):  # pragma: no cover - typing stub
    raise NotImplementedError


def _to_int(n):  # pragma: no cover - typing stub
    raise NotImplementedError


def _to_float(n):  # pragma: no cover - typing stub
    raise NotImplementedError


def _poly(r):  # pragma: no cover - typing stub
    raise NotImplementedError


def _scale(p, n):  # pragma: no cover - typing stub
    raise NotImplementedError


def _check(x, name):
    if x not in (types.float32, types.float64):
        raise TypingError(f"fast_exp: {name} must be float32 or float64, got {x}")


@overload(_consts, inline="always")
def _ov_consts(x):
    _check(x, "x")
    if x == types.float32:
        return lambda x: _R32
    return lambda x: _R64


@overload(_to_int, inline="always")
def _ov_to_int(n):
    # An integral float to the same-width integer (exact for |n| < 2^31).
    _check(n, "n")
    if n == types.float32:
        return lambda n: np.int32(n)
    return lambda n: np.int64(n)


@overload(_to_float, inline="always")
def _ov_to_float(n):
    if n == types.int32:
        return lambda n: np.float32(n)
    if n == types.int64:
        return lambda n: np.float64(n)
    raise TypingError(f"_to_float: unexpected {n}")


@overload(_poly, inline="always")
def _ov_poly(r):
    _check(r, "r")
    if r == types.float32:
        def p32(r):
            q = _A4
            q = q * r + _A3
            q = q * r + _A2
            q = q * r + _A1
            q = q * r + _A0
            return (r * r) * q + r + _f4(1.0)
        return p32

    def p64(r):
        q = _B9
        q = q * r + _B8
        q = q * r + _B7
        q = q * r + _B6
        q = q * r + _B5
        q = q * r + _B4
        q = q * r + _B3
        q = q * r + _B2
        q = q * r + _B1
        q = q * r + _B0
        return (r * r) * q + r + _f8(1.0)
    return p64


@intrinsic
def _ldexp(typingctx, p, n):
    """``p * 2^n`` as LLVM's ``llvm.ldexp`` (float32 with int32, float64 with int64).

    The loop vectoriser widens it like any other arithmetic, and on AVX-512 the
    backend lowers it to a single ``vscalefps``/``vscalefpd``: one correctly rounded
    result, overflowing to inf and rounding to subnormals or 0 exactly where the true
    ``p * 2^n`` does. (Without AVX-512, LLVM expands it into branches and scalar
    code; ``_scale`` then uses the integer construction instead.)"""
    if (p, n) not in ((types.float32, types.int32), (types.float64, types.int64)):
        return None
    fty = ir.FloatType() if p == types.float32 else ir.DoubleType()
    ity = ir.IntType(p.bitwidth)
    name = f"llvm.ldexp.{'f32' if p == types.float32 else 'f64'}.i{p.bitwidth}"

    def codegen(context, builder, signature, args):
        mod = builder.module
        fn = mod.globals.get(name)
        if fn is None:
            fn = ir.Function(mod, ir.FunctionType(fty, [fty, ity]), name)
        return builder.call(fn, args)
    return p(p, n), codegen


@overload(_scale, inline="always")
def _ov_scale(p, n):
    # p * 2^n for p in [0.7, 1.42] and n in [-150, 128] (float32) /
    # [-1076, 1024] (float64), n an integer of p's width.  n = n1 + n2 with
    # n1 = n >> 1; p * 2^n1 is an integer add to p's exponent field (exact, the
    # result stays normal); 2^n2 is built from its bits, (n2 + bias) << mant,
    # and the final float multiplication rounds to a subnormal, 0 or inf
    # exactly where the true result does.  Integer arithmetic cannot be
    # reassociated by the fastmath flags, so no overflowing 2^n is ever formed.
    # Numba widens int32 arithmetic to int64; the np.int32() casts keep (and
    # let LLVM keep) every step 32-bit.
    _check(p, "p")
    if HAS_AVX512:
        return lambda p, n: _ldexp(p, n)
    if p == types.float32:
        def s32(p, n):
            n1 = np.int32(n >> _I4_1)
            n2 = np.int32(n - n1)
            a = np.int32(np.float32(p).view(np.int32) + np.int32(n1 << _I4_23))
            b = np.int32(np.int32(n2 + _I4_127) << _I4_23)
            return a.view(np.float32) * b.view(np.float32)
        return s32

    def s64(p, n):
        n1 = n >> _I8_1
        n2 = n - n1
        a = np.int64(np.float64(p).view(np.int64) + (n1 << _I8_52))
        b = np.int64((n2 + _I8_1023) << _I8_52)
        return a.view(np.float64) * b.view(np.float64)
    return s64


@jit
def fast_exp(x):
    """``exp(x)`` for a float32 or float64 scalar, vectorisable inside loops.

    Returns the argument's type. See the module docstring for the algorithm and
    the error bound (``EXP_MAX_REL_ERR``)."""
    always_inline()
    wide_vectors()      # (its own function; callers mark themselves, see the module docstring)
    lo, hi, log2e, half, c1, c2 = _consts(x)
    # Clamp (vmaxps/vminps).  A NaN passes through; its lane computes garbage
    # that the final select replaces by the NaN.
    xc = lo if x < lo else x          # a NaN passes both: "x < lo" is false
    xc = hi if xc > hi else xc
    n = np.floor(xc * log2e + half)
    ni = _to_int(n)
    # Cody-Waite.  The second product uses float(int(n)) rather than n: the same
    # value, but a different SSA value, so that "reassoc" cannot fold
    # n*c1 + n*c2 into n*(c1 + c2) (costs 3e-7 relative error in float32).
    r = xc - n * c1
    r = r - _to_float(ni) * c2
    p = _poly(r)
    y = _scale(p, ni)
    # NaN in, NaN out. "x + x" rather than "x": in an in-place loop a[i] = exp(a[i]),
    # "else x" stores the loaded value back, which LLVM turns into a conditional
    # store (vmaskmovps on AVX2, slow on AMD); x + x is the same NaN, quietened.
    return y if x == x else x + x


@jit
def exp_into(x, out):
    """``out[i] = fast_exp(x[i])`` for 1-D contiguous arrays of one float dtype."""
    wide_vectors()
    for i in range(x.shape[0]):
        out[i] = fast_exp(x[i])


@jit
def exp_inplace(x):
    """``x[i] = fast_exp(x[i])`` for a 1-D contiguous float array."""
    wide_vectors()
    for i in range(x.shape[0]):
        x[i] = fast_exp(x[i])
