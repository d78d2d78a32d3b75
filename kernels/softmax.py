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

from ._registry import register
from .fast.softmax import (log_softmax_long_parallel, log_softmax_long_serial,
                           log_softmax_short_parallel, log_softmax_short_serial, softmax_long_parallel,
                           softmax_long_serial, softmax_short_parallel, softmax_short_serial,
                           softmax_T_parallel, softmax_T_serial)
from .tuning import (LONG_ROW, ROWS_PARALLEL_MIN_ELEMS, SOFTMAX_TRANSPOSE_MAX_C,
                     SOFTMAX_TRANSPOSE_ROWS_PER_C)


def row_max(row):
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
        m = float(row_max(Z[i]))
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
        m = float(row_max(Z[i]))
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



# --- Numba: the tuned kernels of fast/softmax.py ----------------------------------
@register("softmax", "jit")
def softmax_jit(Z, out):
    """The compiled kernel for this row length (fast/softmax.py; each compiles on its
    first use): C <= SOFTMAX_TRANSPOSE_MAX_C transposed 16 rows at a time (batches of
    at least SOFTMAX_TRANSPOSE_ROWS_PER_C·C rows), shorter than LONG_ROW row by row,
    longer one row at a time; serial below ROWS_PARALLEL_MIN_ELEMS elements,
    parallel over blocks of rows above. (The tests are written out: they run on every
    call.)"""
    R, C = Z.shape
    if C <= SOFTMAX_TRANSPOSE_MAX_C and R >= SOFTMAX_TRANSPOSE_ROWS_PER_C * C:
        if Z.size < ROWS_PARALLEL_MIN_ELEMS:
            softmax_T_serial(Z, out)
        else:
            softmax_T_parallel(Z, out)
    elif C < LONG_ROW:
        if Z.size < ROWS_PARALLEL_MIN_ELEMS:
            softmax_short_serial(Z, out)
        else:
            softmax_short_parallel(Z, out)
    elif Z.size < ROWS_PARALLEL_MIN_ELEMS:
        softmax_long_serial(Z, out)
    else:
        softmax_long_parallel(Z, out)
    return out


@register("log_softmax", "jit")
def log_softmax_jit(Z, out):
    """The kernel for this row length (shorter than LONG_ROW or not), serial below
    ROWS_PARALLEL_MIN_ELEMS elements, parallel above."""
    C = Z.shape[1]
    if C == 0:
        return out
    if Z.size < ROWS_PARALLEL_MIN_ELEMS:
        (log_softmax_short_serial if C < LONG_ROW else log_softmax_long_serial)(Z, out)
    else:
        (log_softmax_short_parallel if C < LONG_ROW else log_softmax_long_parallel)(Z, out)
    return out
