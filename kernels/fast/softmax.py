"""The tuned jit bodies of softmax and log_softmax (kernels/softmax.py has the formula,
the loop and vectorized forms and the registered entry points), and the row helpers
(max, exp-and-sum, transposed groups of 16 rows) that fast/cross_entropy.py shares.
"""
from __future__ import annotations

import numpy as np

from numba import prange, types
from numba.extending import overload

from .._config import always_inline, jit, jit_sum, pjit, wide_vectors
from ..machine.gather import LANES, gather_cols16, gather_rows16
from ..tuning import (LONG_ROW, ROW_BLOCK_ELEMS, ROWS_PARALLEL_MIN_ELEMS, SCRATCH_RUNS,
                      TRANSPOSE_MAX_C)
from ..machine.scalar import exp as _exp


# --- Numba: per row, passes over a row that stays in L1 ---------------------------
# The project compiles without ``reassoc`` (see _config.py), so LLVM keeps a
# floating-point reduction in source order and cannot vectorise it. Here:
# * the row maximum is taken over integer keys (the float's bits, with the
#   magnitude bits flipped for negative numbers: an order-preserving map), an
#   integer max reduction that LLVM vectorises without any fast-math flag;
# * sums go through ``_sum_contig``, the one function compiled with ``reassoc``
#   (it only adds; LLVM then keeps 16-lane partial sums);
# * every loop indexes a row view from 0, so no negative-index wraparound test
#   keeps LLVM from proving the loads contiguous;
# * in place (out is Z), the loops read and write one array: with two arrays at the
#   same address LLVM's runtime alias check fails and it runs its scalar loop.
# Each row's result depends only on that row: the same for any number of threads.
# Thresholds (ROWS_PARALLEL_MIN_ELEMS, LONG_ROW, ...): kernels/tuning.py.


def _order_key(z):  # pragma: no cover - typing stub
    raise NotImplementedError


def _from_key(k):  # pragma: no cover - typing stub
    raise NotImplementedError


@overload(_order_key, inline="always")
def _ov_order_key(z):
    # b >= 0 (sign clear): key = b. b < 0: the magnitude bits flipped, so a larger
    # magnitude gives a smaller key. Monotone over all non-NaN floats (−0 < +0 by
    # one); a positive NaN sorts above +inf. The map is its own inverse.
    if z == types.float32:
        def key32(z):
            b = np.float32(z).view(np.int32)
            return np.int32(b ^ ((b >> np.int32(31)) & np.int32(0x7FFFFFFF)))
        return key32
    if z == types.float64:
        def key64(z):
            b = np.float64(z).view(np.int64)
            return b ^ ((b >> np.int64(63)) & np.int64(0x7FFFFFFFFFFFFFFF))
        return key64
    return None


@overload(_from_key, inline="always")
def _ov_from_key(k):
    if k == types.int32:
        def val32(k):
            return np.int32(k ^ ((k >> np.int32(31)) & np.int32(0x7FFFFFFF))).view(np.float32)
        return val32
    if k == types.int64:
        def val64(k):
            return np.int64(k ^ ((k >> np.int64(63)) & np.int64(0x7FFFFFFFFFFFFFFF))).view(np.float64)
        return val64
    return None


@jit
def _max_short(row, C):
    """Row maximum for short rows: 4 partial maxima, no vector loop to set up."""
    always_inline()
    m0 = m1 = m2 = m3 = row[0]
    for c in range(C // 4):
        j = 4 * c
        z = row[j]
        m0 = z if z > m0 else m0
        z = row[j + 1]
        m1 = z if z > m1 else m1
        z = row[j + 2]
        m2 = z if z > m2 else m2
        z = row[j + 3]
        m3 = z if z > m3 else m3
    for j in range(C - C % 4, C):
        z = row[j]
        m0 = z if z > m0 else m0
    m0 = m1 if m1 > m0 else m0
    m2 = m3 if m3 > m2 else m2
    return m2 if m2 > m0 else m0


@jit
def _max_long(row, C):
    """Row maximum for rows of at least LONG_ROW elements: integer keys (see above)."""
    always_inline()
    wide_vectors()
    m = _order_key(row[0])
    for j in range(C):
        k = _order_key(row[j])
        m = k if k > m else m
    return _from_key(m)


@jit
def _max_row(Z, i, C):
    """max_j Z[i, j] (C >= 1). A NaN need not win here: a NaN entry makes its own
    exp(z − m) NaN, and through the row sum the whole row NaN."""
    always_inline()
    wide_vectors()
    row = Z[i]
    if C < LONG_ROW:
        return _max_short(row, C)
    m = _order_key(row[0])
    for j in range(C):
        k = _order_key(row[j])
        m = k if k > m else m
    return _from_key(m)


@jit
def _sum_short(row, C):
    """Σ row[j] for short rows: 4 partial sums."""
    always_inline()
    zero = row.dtype.type(0.0)
    s0 = s1 = s2 = s3 = zero
    for c in range(C // 4):
        j = 4 * c
        s0 += row[j]
        s1 += row[j + 1]
        s2 += row[j + 2]
        s3 += row[j + 3]
    for j in range(C - C % 4, C):
        s0 += row[j]
    return (s0 + s1) + (s2 + s3)


@jit_sum
def _sum_contig(a):
    """Σ a[j] for a 1-D contiguous array (LLVM: 16-lane partial sums)."""
    s = a.dtype.type(0.0)
    for j in range(a.shape[0]):
        s += a[j]
    return s


@jit
def _sum_row(E, i, C):
    """Σ_j E[i, j] (C is E.shape[1])."""
    always_inline()
    if C < LONG_ROW:
        return _sum_short(E[i], C)
    return _sum_contig(E[i])


@jit
def _exp_shift_into(Z, i, m, out, C):
    """out[i, j] = exp(Z[i, j] − m). out may be Z."""
    always_inline()
    wide_vectors()
    zr = Z[i]
    orow = out[i]
    if zr.ctypes.data == orow.ctypes.data:
        for j in range(C):
            orow[j] = _exp(orow[j] - m)
    else:
        for j in range(C):
            orow[j] = _exp(zr[j] - m)


@jit
def _exp_shift_row_long(Z, i, m, out, C):
    """out[i, j] = exp(Z[i, j] − m) for rows of at least LONG_ROW elements; returns
    Σ_j out[i, j] (out may be Z)."""
    always_inline()
    _exp_shift_into(Z, i, m, out, C)
    return _sum_contig(out[i])


@jit
def _sum_exp_shift_short(row, m, C):
    """Σ_j exp(row[j] − m) for short rows, without storing the exponentials: the same
    four partial sums in the same order as ``_sum_short`` over the stored ones, so the
    in-place log_softmax gives the bits of the out-of-place one."""
    always_inline()
    zero = row.dtype.type(0.0)
    s0 = s1 = s2 = s3 = zero
    for c in range(C // 4):
        j = 4 * c
        s0 += _exp(row[j] - m)
        s1 += _exp(row[j + 1] - m)
        s2 += _exp(row[j + 2] - m)
        s3 += _exp(row[j + 3] - m)
    for j in range(C - C % 4, C):
        s0 += _exp(row[j] - m)
    return (s0 + s1) + (s2 + s3)


@jit
def _log_softmax_row_short(Z, i, out, C):
    """One row of log_softmax, C < LONG_ROW. out may be Z."""
    always_inline()
    zr = Z[i]
    orow = out[i]
    m = _max_short(zr, C)
    if zr.ctypes.data == orow.ctypes.data:
        lse = np.log(_sum_exp_shift_short(zr, m, C))
        for j in range(C):
            orow[j] = (orow[j] - m) - lse
    else:
        for j in range(C):
            orow[j] = _exp(zr[j] - m)     # out as scratch
        lse = np.log(_sum_short(orow, C))
        for j in range(C):
            orow[j] = (zr[j] - m) - lse


@jit
def _log_softmax_row_long(Z, i, out, C, e):
    """One row of log_softmax, C >= LONG_ROW, through the scratch row ``e`` (C
    elements), so that in place (out is Z) and not give the same bits. out may be Z."""
    always_inline()
    wide_vectors()
    zr = Z[i]
    orow = out[i]
    m = _max_long(zr, C)
    for j in range(C):
        e[j] = _exp(zr[j] - m)
    lse = np.log(_sum_contig(e))
    for j in range(C):
        orow[j] = (zr[j] - m) - lse


@jit
def _flat_exp_shift(Z, dZ, r0, r1, C):
    """dZ[i] = exp(Z[i] − max Z[i]) for rows r0..r1 (short rows): z − m row by row,
    then one flat exp pass over the block, which vectorises whatever C is."""
    always_inline()
    wide_vectors()
    for i in range(r0, r1):
        m = _max_short(Z[i], C)      # short rows only: _max_row's short branch
        zr = Z[i]
        dr = dZ[i]
        for j in range(C):
            dr[j] = zr[j] - m
    flat = dZ[r0:r1].reshape((r1 - r0) * C)
    for k in range(flat.shape[0]):
        flat[k] = _exp(flat[k])


@jit
def _transposed_scratch(Z, rows):
    """Scratch for the transposed path on blocks of ``rows`` rows (C <= TRANSPOSE_MAX_C):
    T (C·ldt), ms (5·ldt), the gather table of ``gather_cols16``, ldt (rows, at most R,
    rounded up to 16, so at least 16) and pad (2·16·C: the last rows of a block, fewer
    than 16, padded with zeros to one group and back)."""
    R, C = Z.shape
    rows = min(rows, R)
    ldt = (rows + LANES - 1) // LANES * LANES
    tab = np.empty(LANES * C, np.int32)
    for k in range(tab.shape[0]):
        tab[k] = (k % C) * ldt + k // C
    # ms and pad in one allocation (each np.empty costs ~50 ns, 2.5% of a 32×10 call)
    msp = np.empty(5 * ldt + 2 * LANES * C, Z.dtype)
    return np.empty(C * ldt, Z.dtype), msp[:5 * ldt], tab, ldt, msp[5 * ldt:]


@jit
def _exp_shift_T(zb, g, C, T, ldt, ms):
    """Short rows, 16 at a time, transposed (see machine/gather.py): for the first g rows
    (a multiple of 16) of the flat row-major block ``zb`` (row length C):

        T[j·ldt + i] = exp(z[i, j] − m_i),  ms[i] = m_i,  ms[ldt + i] = Σ_j T[j·ldt + i].

    The maximum and the sum are taken over the same elements in the same order as
    the row-by-row path (_max_short, and _sum_short's four partial sums), so both
    paths give identical bits (tested); every loop here runs over contiguous lanes."""
    always_inline()
    wide_vectors()
    zero = zb.dtype.type(0.0)
    for i0 in range(0, g, LANES):
        gather_rows16(T, ldt, zb, C, i0)
    m = ms[0:g]
    t = T[0:g]
    for i in range(g):
        m[i] = t[i]
    for j in range(1, C):
        t = T[j * ldt:j * ldt + g]
        for i in range(g):
            # np.maximum, not "t[i] if t[i] > m[i] else m[i]": LLVM turns that
            # into a conditional store (vmaskmovps on AVX2, 4x slower on Zen 3).
            # It differs only for NaN, which then wins: the row is NaN either way.
            m[i] = np.maximum(m[i], t[i])
    for q in range(4):
        acc = ms[(1 + q) * ldt:(1 + q) * ldt + g]
        for i in range(g):
            acc[i] = zero
    C4 = C - C % 4
    for j in range(C):
        q = j % 4 if j < C4 else 0
        acc = ms[(1 + q) * ldt:(1 + q) * ldt + g]
        t = T[j * ldt:j * ldt + g]
        for i in range(g):
            e = _exp(t[i] - m[i])
            t[i] = e
            acc[i] += e
    s0 = ms[ldt:ldt + g]
    s1 = ms[2 * ldt:2 * ldt + g]
    s2 = ms[3 * ldt:3 * ldt + g]
    s3 = ms[4 * ldt:4 * ldt + g]
    for i in range(g):
        s0[i] = (s0[i] + s1[i]) + (s2[i] + s3[i])


@jit
def _scale_T(T, ldt, g, C, r):
    """T[j·ldt + i] *= r[i] for i < g, j < C."""
    always_inline()
    wide_vectors()
    for j in range(C):
        t = T[j * ldt:j * ldt + g]
        for i in range(g):
            t[i] *= r[i]


@jit
def pad_rows(src, n, C, pad):
    """pad[:16·C] = the n < 16 rows of the flat row-major ``src``, then zero rows (a
    padded row's lanes are computed and dropped: every row's result depends only on
    its own lane, so the real rows get the bits of a full group)."""
    always_inline()
    zero = pad.dtype.type(0.0)
    for k in range(n * C):
        pad[k] = src[k]
    for k in range(n * C, LANES * C):
        pad[k] = zero


@jit
def _softmax_groups_T(zb, ob, g, C, T, ldt, ms, tab):
    """softmax of the g rows (a multiple of 16, g <= ldt) of the flat row-major
    ``zb`` into ``ob`` (which may be ``zb``): exp(z − m) and the sums transposed,
    then the reciprocal, the scaling and the transpose back."""
    wide_vectors()
    one = zb.dtype.type(1.0)
    _exp_shift_T(zb, g, C, T, ldt, ms)
    r = ms[ldt:ldt + g]
    for i in range(g):
        r[i] = one / r[i]
    _scale_T(T, ldt, g, C, r)
    for i0 in range(0, g, LANES):
        gather_cols16(ob, C, T, ldt, i0, tab)


@jit(inline="always")
def _softmax_block_T(Z, out, r0, r1, C, scratch):
    """softmax of rows r0..r1 (1 <= C <= TRANSPOSE_MAX_C), all through the transposed
    path: whole groups of 16 rows in place, the last n < 16 rows padded to one group in
    ``pad`` (the same bits as the row-by-row path, tested)."""
    T, ms, tab, ldt, pad = scratch
    g = (r1 - r0) // LANES * LANES
    if g > 0:
        _softmax_groups_T(Z[r0:r0 + g].reshape(g * C), out[r0:r0 + g].reshape(g * C),
                          g, C, T, ldt, ms, tab)
    n = r1 - r0 - g
    if n > 0:
        zp = pad[:LANES * C]
        op = pad[LANES * C:]
        pad_rows(Z[r0 + g:r1].reshape(n * C), n, C, zp)
        # (n + 15) // 16 · 16 is 16, but not a compile-time constant: a literal 16
        # would compile the group kernel a second time for it
        _softmax_groups_T(zp, op, (n + LANES - 1) // LANES * LANES, C, T, ldt, ms, tab)
        ob = out[r0 + g:r1].reshape(n * C)
        for k in range(n * C):
            ob[k] = op[k]


@jit
def _softmax_block_short(Z, out, r0, r1, C):
    """softmax of rows r0..r1 (TRANSPOSE_MAX_C < C < LONG_ROW): z − m row by row, one
    flat exp pass over the block, then each row's sum and scale."""
    wide_vectors()
    one = Z.dtype.type(1.0)
    _flat_exp_shift(Z, out, r0, r1, C)
    for i in range(r0, r1):
        r = one / _sum_short(out[i], C)
        orow = out[i]
        for j in range(C):
            orow[j] *= r


@jit
def _softmax_block_long(Z, out, r0, r1, C):
    """softmax of rows r0..r1 (C >= LONG_ROW), one row at a time (max, fused
    exp(z − m) and sum, scale)."""
    wide_vectors()
    one = Z.dtype.type(1.0)
    for i in range(r0, r1):
        m = _max_long(Z[i], C)
        r = one / _exp_shift_row_long(Z, i, m, out, C)
        orow = out[i]
        for j in range(C):
            orow[j] *= r


# Each row length has its own compiled kernel, chosen by softmax_jit: a first call
# compiles only the path it takes (one kernel for every path cost 5.4 s of compiling on
# a 64×10 first call here; see kernels/README or the first-run notes in docs/).
# Compiled twice each: serially (prange is range there) and with parallel=True.
# Threads share out runs of consecutive blocks (at most SCRATCH_RUNS runs), with one
# scratch (a few KiB) per run rather than per block: about 5% on Z (65536,10) at
# 2 threads here (0.65 -> 0.62 ms). The blocks, and so the bits, are the same for
# any number of threads. (A run count from numba.get_num_threads() would stop Numba
# caching this function.)
def _softmax_rows_T(Z, out):
    R, C = Z.shape
    if C == 0:
        return
    rows = max(1, ROW_BLOCK_ELEMS // C)
    nb = (R + rows - 1) // rows
    nc = min(nb, SCRATCH_RUNS)
    for c in prange(nc):
        scratch = _transposed_scratch(Z, rows)
        for bi in range(c * nb // nc, (c + 1) * nb // nc):
            r0 = bi * rows
            _softmax_block_T(Z, out, r0, min(r0 + rows, R), C, scratch)
    return


def _softmax_rows_short(Z, out):
    R, C = Z.shape
    rows = max(1, ROW_BLOCK_ELEMS // C)
    for bi in prange((R + rows - 1) // rows):
        r0 = bi * rows
        _softmax_block_short(Z, out, r0, min(r0 + rows, R), C)
    return


def _softmax_rows_long(Z, out):
    R, C = Z.shape
    rows = max(1, ROW_BLOCK_ELEMS // C)
    for bi in prange((R + rows - 1) // rows):
        r0 = bi * rows
        _softmax_block_long(Z, out, r0, min(r0 + rows, R), C)
    return


@jit
def _log_softmax_block_short(Z, out, r0, r1, C):
    for i in range(r0, r1):
        _log_softmax_row_short(Z, i, out, C)


@jit
def _log_softmax_block_long(Z, out, r0, r1, C):
    wide_vectors()
    e = np.empty(C, Z.dtype)
    for i in range(r0, r1):
        _log_softmax_row_long(Z, i, out, C, e)


def _log_softmax_rows_short(Z, out):
    R, C = Z.shape
    rows = max(1, ROW_BLOCK_ELEMS // C)
    for bi in prange((R + rows - 1) // rows):
        r0 = bi * rows
        _log_softmax_block_short(Z, out, r0, min(r0 + rows, R), C)
    return


def _log_softmax_rows_long(Z, out):
    R, C = Z.shape
    rows = max(1, ROW_BLOCK_ELEMS // C)
    for bi in prange((R + rows - 1) // rows):
        r0 = bi * rows
        _log_softmax_block_long(Z, out, r0, min(r0 + rows, R), C)
    return


# The softmax kernels, serial and parallel, per row length: C <= TRANSPOSE_MAX_C (also
# C = 0), < LONG_ROW, longer. They return nothing (returning an array costs a call from
# Python ~0.3 µs, 15% of a 32×10 softmax): the entry point returns out.
softmax_T_serial, softmax_T_parallel = jit(_softmax_rows_T), pjit(_softmax_rows_T)
softmax_short_serial, softmax_short_parallel = jit(_softmax_rows_short), pjit(_softmax_rows_short)
softmax_long_serial, softmax_long_parallel = jit(_softmax_rows_long), pjit(_softmax_rows_long)
SOFTMAX_KERNELS = ((softmax_T_serial, softmax_T_parallel),
                   (softmax_short_serial, softmax_short_parallel),
                   (softmax_long_serial, softmax_long_parallel))
# log_softmax likewise: C < LONG_ROW, and longer (C >= 1; C = 0 returns before).
log_softmax_short_serial = jit(_log_softmax_rows_short)
log_softmax_short_parallel = pjit(_log_softmax_rows_short)
log_softmax_long_serial = jit(_log_softmax_rows_long)
log_softmax_long_parallel = pjit(_log_softmax_rows_long)


def log_softmax_serial(Z, out):
    """The serial log_softmax kernel for this row length (the same bits as the parallel
    one)."""
    C = Z.shape[1]
    if C:
        (log_softmax_short_serial if C < LONG_ROW else log_softmax_long_serial)(Z, out)
    return out


def log_softmax_parallel(Z, out):
    """The parallel log_softmax kernel for this row length."""
    C = Z.shape[1]
    if C:
        (log_softmax_short_parallel if C < LONG_ROW else log_softmax_long_parallel)(Z, out)
    return out


def _path(C):
    return 0 if C <= TRANSPOSE_MAX_C else (1 if C < LONG_ROW else 2)


def softmax_serial(Z, out):
    """The serial kernel for this row length, whatever the size (the same bits as the
    parallel one)."""
    C = Z.shape[1]
    if C:
        SOFTMAX_KERNELS[_path(C)][0](Z, out)
    return out


def softmax_parallel(Z, out):
    """The parallel kernel for this row length, whatever the size."""
    C = Z.shape[1]
    if C:
        SOFTMAX_KERNELS[_path(C)][1](Z, out)
    return out


