"""softmax and log_softmax over the last axis, with max subtraction.

SPEC "Notation":  P[i,j] = exp(Z[i,j] − m_i) / Σ_k exp(Z[i,k] − m_i),  m_i = max_k Z[i,k].
Subtracting the row maximum changes nothing mathematically (SPEC worked number 5:
softmax is invariant to adding a constant to a row) and keeps every exponent <= 0.
log_softmax:  Z[i,j] − m_i − log Σ_k exp(Z[i,k] − m_i).

Raw kernels: destination passing, no validation. Z and out are 2-D (R, C),
C-contiguous, same dtype; the API reshapes any ndim >= 1 to (R, C). ``out`` may
be ``Z`` (in place: each row is read before it is written).

Non-finite input: NaN anywhere in a row makes that row NaN; ``-inf`` entries get
probability 0 (log-probability −inf); a row that is all ``-inf`` or holds ``+inf``
has no distribution and gives NaN.

    softmax(Z, out)        Z, out: (R, C)
    log_softmax(Z, out)    Z, out: (R, C)
"""
from __future__ import annotations

import math

import numpy as np

from numba import prange

from ._config import jit, pjit
from ._registry import register
from ._scalar import exp as _exp


def _row_max(row):
    # start from the first element (never from a sentinel such as -10000.0)
    m = row[0]
    for z in row:
        if z > m or z != z:      # NaN wins, so that it propagates
            m = z
    return m


# --- reference: the formula, row by row ------------------------------------------
@register("softmax", "loop", "P = softmax(Z) over the last axis (max-subtracted)")
def softmax_loop(Z, out):
    R, C = Z.shape
    for i in range(R):
        if C == 0:
            continue
        m = float(_row_max(Z[i]))
        e = [math.exp(float(Z[i, j]) - m) for j in range(C)]
        s = sum(e)
        for j in range(C):
            out[i, j] = e[j] / s
    return out


@register("log_softmax", "loop", "log softmax(Z) over the last axis")
def log_softmax_loop(Z, out):
    R, C = Z.shape
    for i in range(R):
        if C == 0:
            continue
        m = float(_row_max(Z[i]))
        s = sum(math.exp(float(Z[i, j]) - m) for j in range(C))
        lse = math.log(s)
        with np.errstate(over="ignore"):   # below float32's range: −inf, the right rounding
            for j in range(C):
                out[i, j] = (float(Z[i, j]) - m) - lse
    return out


# --- NumPy broadcasting -----------------------------------------------------------
@register("softmax", "vectorized")
def softmax_vectorized(Z, out):
    if Z.size == 0:
        return out
    with np.errstate(over="ignore", invalid="ignore"):
        # over: float32 z − m may round to −inf (then exp gives the right 0);
        # invalid: −inf − (−inf) in an all −inf row gives the documented NaN.
        np.subtract(Z, Z.max(axis=-1, keepdims=True), out=out)
        np.exp(out, out=out)
        out /= out.sum(axis=-1, keepdims=True)
    return out


@register("log_softmax", "vectorized")
def log_softmax_vectorized(Z, out):
    if Z.size == 0:
        return out
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        np.subtract(Z, Z.max(axis=-1, keepdims=True), out=out)
        out -= np.log(np.exp(out).sum(axis=-1, keepdims=True))
    return out


# --- Numba: per row, passes over a row that stays in L1 ---------------------------
# The project compiles without ``reassoc`` (see _config.py), so LLVM keeps every
# reduction in source order and cannot vectorise it. The reductions below keep 8
# independent partial results instead (vectorised by LLVM's SLP pass); the exp
# pass has no reduction and vectorises with the polynomial exp. Each row's result
# depends only on that row: the same for any number of threads.
#: Inputs of at least this many elements (R·C) go to the parallel kernels (the
#: grain size PyTorch uses on the CPU too).
PARALLEL_MIN_ELEMS = 1 << 15


@jit(inline="always")
def _max_row(Z, i, C):
    """max_j Z[i, j] (C >= 1). NaN need not win here: a NaN entry makes its own
    exp(z − m) NaN, and through the row sum the whole row NaN."""
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = Z[i, 0]
    j = 0
    while j + 8 <= C:
        z = Z[i, j]
        m0 = z if z > m0 else m0
        z = Z[i, j + 1]
        m1 = z if z > m1 else m1
        z = Z[i, j + 2]
        m2 = z if z > m2 else m2
        z = Z[i, j + 3]
        m3 = z if z > m3 else m3
        z = Z[i, j + 4]
        m4 = z if z > m4 else m4
        z = Z[i, j + 5]
        m5 = z if z > m5 else m5
        z = Z[i, j + 6]
        m6 = z if z > m6 else m6
        z = Z[i, j + 7]
        m7 = z if z > m7 else m7
        j += 8
    while j < C:
        z = Z[i, j]
        m0 = z if z > m0 else m0
        j += 1
    m0 = m1 if m1 > m0 else m0
    m2 = m3 if m3 > m2 else m2
    m4 = m5 if m5 > m4 else m4
    m6 = m7 if m7 > m6 else m6
    m0 = m2 if m2 > m0 else m0
    m4 = m6 if m6 > m4 else m4
    return m4 if m4 > m0 else m0


@jit(inline="always")
def _sum_row(E, i, C):
    """Σ_j E[i, j] with 8 partial sums."""
    zero = E.dtype.type(0.0)
    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = zero
    j = 0
    while j + 8 <= C:
        s0 += E[i, j]
        s1 += E[i, j + 1]
        s2 += E[i, j + 2]
        s3 += E[i, j + 3]
        s4 += E[i, j + 4]
        s5 += E[i, j + 5]
        s6 += E[i, j + 6]
        s7 += E[i, j + 7]
        j += 8
    while j < C:
        s0 += E[i, j]
        j += 1
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


@jit(inline="always")
def _exp_shift_row(Z, i, m, out, C):
    """out[i, j] = exp(Z[i, j] − m); returns Σ_j out[i, j]."""
    for j in range(C):
        out[i, j] = _exp(Z[i, j] - m)
    return _sum_row(out, i, C)


@jit(inline="always")
def _log_softmax_row(Z, i, out, C):
    m = _max_row(Z, i, C)
    s = _exp_shift_row(Z, i, m, out, C)     # out as scratch for exp(z − m)
    lse = np.log(s)
    for j in range(C):
        out[i, j] = (Z[i, j] - m) - lse


#: Rows per block in softmax: a block's exp pass is one flat loop over ROWS_PER_BLOCK·C
#: contiguous elements, so short rows (C = 10) do not leave a scalar remainder per row.
ROWS_PER_BLOCK = 512


def _softmax_rows(Z, out):
    # compiled twice below: serially (prange is range there) and with parallel=True.
    # Per block of rows: z − m into out (row by row), exp over the block as one flat
    # vectorised loop, then each row scaled by 1/Σ.
    R, C = Z.shape
    if C == 0:
        return out
    one = Z.dtype.type(1.0)
    for bi in prange((R + ROWS_PER_BLOCK - 1) // ROWS_PER_BLOCK):
        r0 = bi * ROWS_PER_BLOCK
        r1 = min(r0 + ROWS_PER_BLOCK, R)
        for i in range(r0, r1):
            m = _max_row(Z, i, C)
            for j in range(C):
                out[i, j] = Z[i, j] - m
        flat = out[r0:r1].reshape((r1 - r0) * C)
        for k in range(flat.shape[0]):
            flat[k] = _exp(flat[k])
        for i in range(r0, r1):
            r = one / _sum_row(out, i, C)
            for j in range(C):
                out[i, j] *= r
    return out


def _log_softmax_rows(Z, out):
    R, C = Z.shape
    if C == 0:
        return out
    for i in prange(R):
        _log_softmax_row(Z, i, out, C)
    return out


softmax_serial = jit(_softmax_rows)
softmax_parallel = pjit(_softmax_rows)
log_softmax_serial = jit(_log_softmax_rows)
log_softmax_parallel = pjit(_log_softmax_rows)


@register("softmax", "jit")
def softmax_jit(Z, out):
    """Serial below PARALLEL_MIN_ELEMS elements, parallel over rows above."""
    if Z.size >= PARALLEL_MIN_ELEMS:
        return softmax_parallel(Z, out)
    return softmax_serial(Z, out)


@register("log_softmax", "jit")
def log_softmax_jit(Z, out):
    if Z.size >= PARALLEL_MIN_ELEMS:
        return log_softmax_parallel(Z, out)
    return log_softmax_serial(Z, out)
