"""The tuned jit bodies of the softmax cross-entropy and its gradient (kernels/
cross_entropy.py has the formulas, the loop and vectorized forms and the registered
entry points), including ``sce_grad_labels_rows``, the training epoch's.
"""
from __future__ import annotations

import numpy as np

from numba import prange

from .._config import always_inline, jit, pjit, wide_vectors
from ..machine.scalar import exp as _exp
from ..machine.log import fast_log as _log
from ..machine.gather import LANES, gather_cols16
from ..tuning import LONG_ROW, ROW_BLOCK_ELEMS, SCRATCH_RUNS, TRANSPOSE_MAX_C
from .softmax import (_exp_shift_row_long, _exp_shift_T, _flat_exp_shift, _max_long, _max_row,
                      _max_short, _scale_T, _sum_contig, _sum_row, _sum_short,
                      _transposed_scratch, pad_rows)


# --- Numba: one pass per row (the row stays in L1) ----------------------------------
# Row helpers from softmax.py (max, exp-and-sum with vectorised exp, partial sums).
# Per-row losses are float64; the parallel kernels write them to a buffer that is
# summed serially afterwards, so the loss does not depend on the number of threads.


@jit
def _sce_grad_labels_row(Z, y, dZ, i, C, inv_n):
    """dZ[i] = (softmax(Z[i]) − onehot(y[i]))/N; returns the row's loss (float64)."""
    always_inline()
    wide_vectors()
    m = _max_long(Z[i], C)
    s = _exp_shift_row_long(Z, i, m, dZ, C)
    r = inv_n / s
    for j in range(C):
        dZ[i, j] *= r
    dZ[i, y[i]] -= inv_n
    return (np.float64(m) - np.float64(Z[i, y[i]])) + np.float64(_log(s))


@jit
def _sce_grad_targets_row(Z, Y, dZ, i, C, inv_n):
    """dZ[i] = (softmax(Z[i])·Σ_k Y[i,k] − Y[i])/N; returns the row's loss."""
    always_inline()
    wide_vectors()
    m = _max_long(Z[i], C)
    s = _exp_shift_row_long(Z, i, m, dZ, C)
    w = _sum_contig(Y[i])
    r = w * inv_n / s
    log_s = np.float64(_log(s))
    loss = 0.0
    for j in range(C):
        t = Y[i, j]
        dZ[i, j] = dZ[i, j] * r - t * inv_n
        if t != 0:
            loss += np.float64(t) * ((np.float64(m) - np.float64(Z[i, j])) + log_s)
    return loss


@jit
def sce_labels_jit(Z, y):
    """Mean loss only; a one-row scratch buffer holds exp(z − m). (One kernel for short
    and long rows: one per row length compiled 0.4 s less on a first call but ran
    C = 2 rows 16-24% slower here, 64 / 256 rows 2.29 / 8.0 µs against 2.67 / 9.9.)"""
    wide_vectors()
    N, C = Z.shape
    scratch = np.empty((1, C), Z.dtype)
    total = 0.0
    for i in range(N):
        m = _max_row(Z, i, C)
        for j in range(C):
            scratch[0, j] = _exp(Z[i, j] - m)
        s = _sum_row(scratch, 0, C)
        total += (np.float64(m) - np.float64(Z[i, y[i]])) + np.float64(_log(s))
    return Z.dtype.type(total / N)


@jit
def sce_targets_jit(Z, Y):
    wide_vectors()
    N, C = Z.shape
    scratch = np.empty((1, C), Z.dtype)
    total = 0.0
    for i in range(N):
        m = _max_row(Z, i, C)
        for j in range(C):
            scratch[0, j] = _exp(Z[i, j] - m)
        log_s = np.float64(_log(_sum_row(scratch, 0, C)))
        for j in range(C):
            t = Y[i, j]
            if t != 0:
                total += np.float64(t) * ((np.float64(m) - np.float64(Z[i, j])) + log_s)
    return Z.dtype.type(total / N)


@jit
def _sce_grad_groups_T(zb, yb, db, g, n, C, inv_n, T, ldt, ms, tab, loss):
    """The gradient of the g rows (a multiple of 16, g <= ldt) of the flat row-major
    ``zb`` into ``db``, transposed (softmax.py); returns ``loss`` plus the losses of the
    first n rows (float64, added in row order; the rest are padding)."""
    wide_vectors()
    _exp_shift_T(zb, g, C, T, ldt, ms)
    m = ms[0:g]
    s = ms[ldt:ldt + g]
    r = ms[2 * ldt:2 * ldt + g]      # free after _exp_shift_T
    log_s = ms[3 * ldt:3 * ldt + g]  # likewise
    for i in range(g):               # vectorised: no libm call
        log_s[i] = _log(s[i])
        r[i] = inv_n / s[i]
    for i in range(n):
        loss += (np.float64(m[i]) - np.float64(zb[i * C + yb[i]])) + np.float64(log_s[i])
    _scale_T(T, ldt, g, C, r)
    for i0 in range(0, g, LANES):
        gather_cols16(db, C, T, ldt, i0, tab)
    for i in range(n):
        db[i * C + yb[i]] -= inv_n
    return loss


@jit(inline="always")
def _sce_grad_labels_block_T(Z, y, dZ, r0, r1, C, inv_n, scratch):
    """Rows r0..r1 of the gradient (C <= TRANSPOSE_MAX_C), all through softmax.py's
    transposed path: whole groups of 16 rows, then the last n < 16 padded to one group;
    returns the sum of their losses (float64, in row order). The same bits as the
    row-by-row path (tested)."""
    T, ms, tab, ldt, pad = scratch
    g = (r1 - r0) // LANES * LANES
    loss = 0.0
    if g > 0:
        loss = _sce_grad_groups_T(Z[r0:r0 + g].reshape(g * C), y[r0:r0 + g],
                                  dZ[r0:r0 + g].reshape(g * C), g, g, C, inv_n,
                                  T, ldt, ms, tab, loss)
    n = r1 - r0 - g
    if n > 0:
        zp = pad[:LANES * C]
        op = pad[LANES * C:]
        pad_rows(Z[r0 + g:r1].reshape(n * C), n, C, zp)
        # a group of (n + 15) // 16 · 16 = 16 rows, not a literal 16 (see softmax.py)
        loss = _sce_grad_groups_T(zp, y[r0 + g:r1], op, (n + LANES - 1) // LANES * LANES,
                                  n, C, inv_n, T, ldt, ms, tab, loss)
        db = dZ[r0 + g:r1].reshape(n * C)
        for k in range(n * C):
            db[k] = op[k]
    return loss


@jit
def _labels_part_long(Z, y, dZ, r0, r1, C, inv_n, loss):
    """Rows r0..r1 (C >= LONG_ROW) one at a time; returns ``loss`` plus their losses
    (float64, added in row order)."""
    always_inline()
    wide_vectors()
    for i in range(r0, r1):
        loss += _sce_grad_labels_row(Z, y, dZ, i, C, inv_n)
    return loss


@jit
def _labels_part_short(Z, y, dZ, r0, r1, C, inv_n, loss):
    """Rows r0..r1 (C < LONG_ROW): z − m row by row, one flat exp pass, then each row's
    sum, scale and loss; returns ``loss`` plus their losses (in row order)."""
    always_inline()
    wide_vectors()
    if r0 == r1:
        return loss
    _flat_exp_shift(Z, dZ, r0, r1, C)
    for i in range(r0, r1):
        m = _max_short(Z[i], C)
        s = _sum_short(dZ[i], C)
        r = inv_n / s
        dr = dZ[i]
        for j in range(C):
            dr[j] *= r
        dr[y[i]] -= inv_n
        loss += (np.float64(m) - np.float64(Z[i, y[i]])) + np.float64(_log(s))
    return loss


@jit
def _labels_part_short_vlog(Z, y, dZ, r0, r1, C, inv_n, loss, sl):
    """_labels_part_short with the rows' logarithms in one vector loop (``sl``: scratch
    of at least 2·(r1 − r0) elements): the per-row scalar log was most of the gap to
    softmax on short rows (the Zen 3, one thread, Z (64, 10): 2.58 -> 2.15 µs, against
    2.37 transposed). The same bits: the same operations on the same values, the losses
    added in row order."""
    always_inline()
    wide_vectors()
    n = r1 - r0
    if n == 0:
        return loss
    _flat_exp_shift(Z, dZ, r0, r1, C)
    s = sl[:n]
    lg = sl[n:2 * n]
    for i in range(r0, r1):
        si = _sum_short(dZ[i], C)
        s[i - r0] = si
        r = inv_n / si
        dr = dZ[i]
        for j in range(C):
            dr[j] *= r
        dr[y[i]] -= inv_n
    for k in range(n):
        lg[k] = _log(s[k])
    for i in range(r0, r1):
        m = _max_short(Z[i], C)
        loss += (np.float64(m) - np.float64(Z[i, y[i]])) + np.float64(lg[i - r0])
    return loss


@jit
def sce_grad_labels_short(Z, y, dZ):
    """Serial, C < LONG_ROW, row by row with the logarithms vectorised (one scratch
    allocation per call): what the entry points take for short batches of short rows.
    The same bits as ``sce_grad_labels_rows``."""
    wide_vectors()
    N, C = Z.shape
    inv_n = Z.dtype.type(1.0) / Z.dtype.type(N)
    rows = min(max(1, ROW_BLOCK_ELEMS // C), N)
    sl = np.empty(2 * rows, Z.dtype)
    total = 0.0
    for r0 in range(0, N, rows):
        total += _labels_part_short_vlog(Z, y, dZ, r0, min(r0 + rows, N), C, inv_n, 0.0, sl)
    return Z.dtype.type(total / N)


@jit
def _sce_grad_labels_rows_part(Z, y, dZ, r0, r1, C, inv_n, loss):
    """Rows r0..r1 one at a time, long or short; returns ``loss`` plus their losses."""
    always_inline()
    if C >= LONG_ROW:
        return _labels_part_long(Z, y, dZ, r0, r1, C, inv_n, loss)
    return _labels_part_short(Z, y, dZ, r0, r1, C, inv_n, loss)


@jit
def _sce_grad_targets_block(Z, Y, dZ, r0, r1, C, inv_n):
    wide_vectors()
    loss = 0.0
    if C >= LONG_ROW:
        for i in range(r0, r1):
            loss += _sce_grad_targets_row(Z, Y, dZ, i, C, inv_n)
        return loss
    _flat_exp_shift(Z, dZ, r0, r1, C)
    for i in range(r0, r1):
        m = _max_short(Z[i], C)
        s = _sum_short(dZ[i], C)
        w = _sum_short(Y[i], C)
        r = w * inv_n / s
        log_s = np.float64(_log(s))
        for j in range(C):
            t = Y[i, j]
            dZ[i, j] = dZ[i, j] * r - t * inv_n
            if t != 0:
                loss += np.float64(t) * ((np.float64(m) - np.float64(Z[i, j])) + log_s)
    return loss


# Blocks of max(1, ROW_BLOCK_ELEMS // C) rows (tuning.py): the serial kernels add the
# blocks' losses in block order; the parallel ones write them to a buffer and add it
# up in the same order afterwards, so the loss is bit-identical for any number of
# threads and between the serial and parallel kernels.
def _make_labels_rows(short, long):
    """The serial row-by-row labels gradient: both row paths (the generic kernel), or,
    with ``short`` or ``long`` (compile-time constants; Numba prunes the other branches),
    only the one a caller that knows its row length needs (less to compile, the same
    bits). Blocks of ROW_BLOCK_ELEMS // C rows, their losses added in block order."""
    SHORT, LONG = short, long

    def labels_rows(Z, y, dZ):
        wide_vectors()
        N, C = Z.shape
        inv_n = Z.dtype.type(1.0) / Z.dtype.type(N)
        rows = max(1, ROW_BLOCK_ELEMS // C)
        total = 0.0
        for r0 in range(0, N, rows):
            r1 = min(r0 + rows, N)
            if SHORT:
                total += _labels_part_short(Z, y, dZ, r0, r1, C, inv_n, 0.0)
            elif LONG:
                total += _labels_part_long(Z, y, dZ, r0, r1, C, inv_n, 0.0)
            else:
                total += _sce_grad_labels_rows_part(Z, y, dZ, r0, r1, C, inv_n, 0.0)
        return Z.dtype.type(total / N)
    return jit(labels_rows)


#: Serial and allocation-free: every row on the row-by-row path. The same bits as
#: ``sce_grad_labels_jit``.
sce_grad_labels_rows = _make_labels_rows(False, False)
#: ... for C < LONG_ROW only, and for C >= LONG_ROW only (what the compiled epochs call).
sce_grad_labels_rows_short = _make_labels_rows(True, False)
sce_grad_labels_rows_long = _make_labels_rows(False, True)


def sce_grad_labels_rows_for(C):
    """The row-by-row labels kernel for rows of C elements (short or long)."""
    return sce_grad_labels_rows_long if C >= LONG_ROW else sce_grad_labels_rows_short


@jit
def sce_grad_labels_T(Z, y, dZ):
    """Serial, C <= TRANSPOSE_MAX_C: short rows 16 at a time through the transposed
    path. The same bits as ``sce_grad_labels_rows``."""
    N, C = Z.shape
    inv_n = Z.dtype.type(1.0) / Z.dtype.type(N)
    rows = max(1, ROW_BLOCK_ELEMS // C)
    total = 0.0
    scratch = _transposed_scratch(Z, rows)
    for r0 in range(0, N, rows):
        total += _sce_grad_labels_block_T(Z, y, dZ, r0, min(r0 + rows, N), C, inv_n, scratch)
    return Z.dtype.type(total / N)


def sce_grad_labels_jit(Z, y, dZ):
    """Serial: the transposed kernel for short rows, the row-by-row one otherwise (each
    compiled on its first use)."""
    if Z.shape[1] <= TRANSPOSE_MAX_C:
        return sce_grad_labels_T(Z, y, dZ)
    return sce_grad_labels_rows(Z, y, dZ)


@jit
def sce_grad_targets_jit(Z, Y, dZ):
    N, C = Z.shape
    inv_n = Z.dtype.type(1.0) / Z.dtype.type(N)
    rows = max(1, ROW_BLOCK_ELEMS // C)
    total = 0.0
    for r0 in range(0, N, rows):
        total += _sce_grad_targets_block(Z, Y, dZ, r0, min(r0 + rows, N), C, inv_n)
    return Z.dtype.type(total / N)


def _labels_parallel(Z, y, dZ):
    N, C = Z.shape
    inv_n = Z.dtype.type(1.0) / Z.dtype.type(N)
    rows = max(1, ROW_BLOCK_ELEMS // C)
    nb = (N + rows - 1) // rows
    losses = np.empty(nb, np.float64)
    nc = min(nb, SCRATCH_RUNS)          # runs of consecutive blocks, one scratch each
    for c in prange(nc):
        scratch = _transposed_scratch(Z, rows)
        for bi in range(c * nb // nc, (c + 1) * nb // nc):
            r0 = bi * rows
            losses[bi] = _sce_grad_labels_block_T(Z, y, dZ, r0, min(r0 + rows, N), C, inv_n,
                                                  scratch)
    total = 0.0
    for bi in range(nb):
        total += losses[bi]
    return Z.dtype.type(total / N)


def _labels_rows_parallel(Z, y, dZ):
    N, C = Z.shape
    inv_n = Z.dtype.type(1.0) / Z.dtype.type(N)
    rows = max(1, ROW_BLOCK_ELEMS // C)
    nb = (N + rows - 1) // rows
    losses = np.empty(nb, np.float64)
    for bi in prange(nb):
        r0 = bi * rows
        losses[bi] = _sce_grad_labels_rows_part(Z, y, dZ, r0, min(r0 + rows, N), C, inv_n, 0.0)
    total = 0.0
    for bi in range(nb):
        total += losses[bi]
    return Z.dtype.type(total / N)


sce_grad_labels_T_parallel = pjit(_labels_parallel)
_sce_grad_labels_rows_parallel = pjit(_labels_rows_parallel)


def sce_grad_labels_parallel(Z, y, dZ):
    """Parallel over blocks of rows: transposed for short rows, row by row otherwise."""
    if Z.shape[1] <= TRANSPOSE_MAX_C:
        return sce_grad_labels_T_parallel(Z, y, dZ)
    return _sce_grad_labels_rows_parallel(Z, y, dZ)


@pjit
def sce_grad_targets_parallel(Z, Y, dZ):
    N, C = Z.shape
    inv_n = Z.dtype.type(1.0) / Z.dtype.type(N)
    rows = max(1, ROW_BLOCK_ELEMS // C)
    nb = (N + rows - 1) // rows
    losses = np.empty(nb, np.float64)
    for bi in prange(nb):
        r0 = bi * rows
        losses[bi] = _sce_grad_targets_block(Z, Y, dZ, r0, min(r0 + rows, N), C, inv_n)
    total = 0.0
    for bi in range(nb):
        total += losses[bi]
    return Z.dtype.type(total / N)


