"""High-precision references for the float extremes (``decimal``, 60 digits; no
dependency, the same answer on every platform), and the table of extreme values.

Each function takes float64 numbers, computes in ``Decimal`` (exact input, 60
significant digits, exponents far beyond float64's) and rounds once, to the dtype asked
for (:func:`to_dtype`), so that overflow is decided on the exact value.
"""
from __future__ import annotations

import decimal
from decimal import Decimal

import numpy as np

CTX = decimal.Context(prec=60, Emax=10**6, Emin=-10**6,
                      traps=[decimal.InvalidOperation, decimal.DivisionByZero])
#: sums, differences and products of float values, exactly (no float has more than
#: 767 significant decimal digits)
EXACT = decimal.Context(prec=4000, Emax=10**6, Emin=-10**6,
                        traps=[decimal.InvalidOperation, decimal.DivisionByZero])
F32_MAX = float(np.finfo(np.float32).max)
F64_MAX = float(np.finfo(np.float64).max)
#: |x| at and above which round-to-nearest gives inf: the maximum plus half an ulp
OVERFLOW = {np.dtype(np.float32): Decimal(2) ** 128 - Decimal(2) ** 103,
            np.dtype(np.float64): Decimal(2) ** 1024 - Decimal(2) ** 970}


def extremes(dtype) -> np.ndarray:
    """The table: 0, ±smallest subnormal, ±tiny (smallest normal), ±1, ±1e19, ±2.2e19
    (its square exceeds float32's range), ±1e38, ±max float32, and for float64 also
    ±1.4e154 (square beyond float64's range), ±1e300, ±max float64; sorted."""
    fi = np.finfo(dtype)
    mags = [float(fi.smallest_subnormal), float(fi.tiny), 1.0, 1e19, 2.2e19, 1e38, F32_MAX]
    if np.dtype(dtype) == np.float64:
        mags += [1.4e154, 1e300, F64_MAX]
    vals = [0.0] + mags + [-m for m in mags]
    return np.array(sorted(vals), dtype)


def D(x) -> Decimal:
    return Decimal(float(x))


def to_dtype(d: Decimal, dtype) -> float:
    """Round the exact value ``d`` to ``dtype`` (ties and overflow as IEEE round to
    nearest: ±inf from half an ulp above the maximum)."""
    dtype = np.dtype(dtype)
    if d.is_nan():
        return float("nan")
    if abs(d) >= OVERFLOW[dtype]:
        return float("inf") if d > 0 else float("-inf")
    x = float(d)       # correctly rounded to float64; float32: float64 has >= 2·24 + 2 bits,
    if dtype == np.float32:                     # so the second rounding is innocuous
        with np.errstate(over="ignore"):
            x = float(np.float32(x))
    return x


def overflows(d: Decimal, dtype) -> bool:
    return abs(d) >= OVERFLOW[np.dtype(dtype)]


def exp_neg(a: Decimal) -> Decimal:
    """e^(−a) for a >= 0 (0 where it is below 1e-600000: nothing here needs it)."""
    if a > 10**5:
        return Decimal(0)
    return CTX.exp(-a)


def sub(a, b) -> Decimal:
    """a − b exactly (float inputs have at most ~770 significant digits)."""
    return EXACT.subtract(a, b)


def sigmoid(z) -> Decimal:
    z = D(z)
    e = exp_neg(abs(z))
    return CTX.divide(1, 1 + e) if z >= 0 else CTX.divide(e, 1 + e)


def bce_term(z, y) -> Decimal:
    """−[y log σ(z) + (1 − y) log(1 − σ(z))] = max(z, 0) − z·y + log(1 + e^(−|z|))."""
    z, y = D(z), D(y)
    return EXACT.add(sub(max(z, Decimal(0)), EXACT.multiply(z, y)),
                     CTX.ln(1 + exp_neg(abs(z))))


def mse_term(z, y) -> Decimal:
    """(σ(z) − y)²."""
    r = sub(sigmoid(z), D(y))
    return EXACT.multiply(r, r)


def _max_logsum(row):
    """(m, log Σ_j e^(z_j − m)), z_j − m exact."""
    m = max(D(z) for z in row)
    return m, CTX.ln(sum((exp_neg(sub(m, D(z))) for z in row), Decimal(0)))


def softmax_row(row):
    m, log_s = _max_logsum(row)
    return [exp_neg(EXACT.add(sub(m, D(z)), log_s)) for z in row]


def log_softmax_row(row):
    m, log_s = _max_logsum(row)
    return [sub(sub(D(z), m), log_s) for z in row]


def ce_row(row, target, dtype=np.float64) -> Decimal:
    """Σ_j Y_j (logsumexp(row) − z_j), ``target`` an int label or a row of weights.
    float64: +Infinity where a term's (m − z_j) + log Σ, before its weight, is beyond
    float64 (documented: the kernels compute it in float64)."""
    m, log_s = _max_logsum(row)
    if isinstance(target, (int, np.integer)):
        return EXACT.add(sub(m, D(row[int(target)])), log_s)
    total = Decimal(0)
    for z, t in zip(row, target):
        if t != 0:
            u = EXACT.add(sub(m, D(z)), log_s)
            if np.dtype(dtype) == np.float64 and overflows(u, np.float64):
                return Decimal("Infinity")
            total = EXACT.add(total, EXACT.multiply(D(t), u))
    return total


def mean_loss(terms, denom: int, dtype) -> float:
    """The documented loss from its non-negative terms: ``Σ terms / denom`` rounded to
    ``dtype``; in float64, +inf where the float64 total of the terms overflows (the
    range the docstrings state), also where the mean itself would be representable."""
    total = Decimal(0)
    for t in terms:
        total = EXACT.add(total, t)
    if np.dtype(dtype) == np.float64 and overflows(total, np.float64):
        return float("inf")
    return to_dtype(CTX.divide(total, denom), dtype)
