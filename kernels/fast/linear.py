"""The tuned jit bodies of the linear layer (kernels/linear.py has the formulas, the
loop and vectorized forms and the registered entry points).

The jit ``linear_sigmoid`` is fused: the matrix product is computed by BLAS (the
direct ``machine.blas.gemm``: NumPy's own OpenBLAS where it can be found) one block of rows
at a time, and bias + sigmoid are applied to that block while it is
still in cache (no second pass over a full (N, K) temporary). ``hidden_delta``
is fused the same way. The registered jit ``linear``/``linear_sigmoid`` run batches of
``NT_MAX_ROWS`` rows and more on Numba's threads (``_affine_blocks_parallel``): one
single-threaded BLAS product per block of rows, then bias + sigmoid on that block, on
the same thread; the blocks depend on N only, so the bits do not depend on the number
of threads (``linear_jit``/``linear_sigmoid_jit``, serial, let OpenBLAS thread). The
registered jit ``hidden_delta`` does the same for its product and H ⊙ (1 − H)
(``_hidden_delta_blocks_parallel``; alternating with the serial path at 2 threads, dZ (N, 10)
W (10, 100): 24 against 31 µs at 256 rows, 245 against 301 µs at 4096; dZ (4096, 128)
W (128, 784): 7.2 against 8.5 ms), and the registered jit ``linear_backward`` for dW = dZᵀX
(blocks of columns, ``tn_col_blocks_parallel``, also the compiled epoch's weight update on
large batches) and dX = dZ W (blocks of rows). Batches of fewer than ``machine.gemm.NT_MAX_ROWS``
rows skip BLAS:
``machine.gemm.gemm_nt`` (register-tiled dot products, parallel over column blocks for
larger products) computes X Wᵀ, then bias (+ sigmoid) is applied row by row.
``linear_backward`` and ``hidden_delta`` on such batches, when their products are above
OpenBLAS's small-matrix range (``machine.gemm.SMALL_GEMM_FMAS``), use ``machine.gemm.gemm_tn_acc`` for
dW = dZᵀX and dZ W (OpenBLAS's threaded path on these shapes is slower, and its pool
alternates with Numba's in a training step).
"""
from __future__ import annotations

from numba import prange

from ..machine.blas import gemm
from .._config import always_inline, jit, pjit, wide_vectors
from ..machine.gemm import (NT_MAX_ROWS, SMALL_GEMM_FMAS, TN_PARALLEL_MIN_FMAS,
                    gemm_nt, gemm_nt_parallel, gemm_tn_acc, gemm_tn_acc_parallel)
from ..machine.scalar import sigmoid as _sig
from ..tuning import BLAS_BLOCK_ELEMS, MIN_BLOCK_ROWS, PAR_BLOCK_COLS, PAR_BLOCK_ROWS


# --- Numba: BLAS per block of rows, the elementwise part fused while in cache -----
# Block sizes (BLAS_BLOCK_ELEMS, MIN_BLOCK_ROWS, PAR_BLOCK_ROWS, ...): kernels/tuning.py.


@jit
def block_rows(N, K):
    r = BLAS_BLOCK_ELEMS // max(K, 1)
    r = max(r, MIN_BLOCK_ROWS)
    return min(r, max(N, 1))


@jit
def bias_act_rows(out, b, act, i0, i1):
    """out[i] = act(out[i] + b) for rows i0..i1 (act 1: sigmoid, 0: identity)."""
    always_inline()
    wide_vectors()
    K = out.shape[1]
    for i in range(i0, i1):
        row = out[i]
        if act == 1:
            for k in range(K):
                row[k] = _sig(row[k] + b[k])
        else:
            for k in range(K):
                row[k] += b[k]


@jit
def bias_act(out, b, act):
    wide_vectors()   # the sigmoid loop may use 512-bit vectors
    bias_act_rows(out, b, act, 0, out.shape[0])
    return out


@jit
def _affine_rows(X, W, b, out, act, i0, i1):
    """Rows i0..i1 of out = act(X Wᵀ + b): one BLAS product (zeros for D = 0), then
    bias (+ sigmoid) while the block is in cache."""
    always_inline()
    wide_vectors()
    D = X.shape[1]
    K = W.shape[0]
    if D > 0:       # blkᵀ = W X_blkᵀ (column-major, see machine/blas.py)
        gemm(True, False, K, i1 - i0, D, 1.0, W, D, X[i0:i1], D, 0.0, out[i0:i1], K)
    else:
        out[i0:i1] = 0
    bias_act_rows(out, b, act, i0, i1)


@jit
def _affine_blocks(X, W, b, out, act):
    """out = act(X Wᵀ + b). Short batches: gemm_nt, then bias (+ sigmoid) row by row.
    Otherwise one block of rows at a time: BLAS computes the block, then bias (and,
    for act == 1, the sigmoid) is applied while the block is in cache."""
    wide_vectors()   # the sigmoid loop below may use 512-bit vectors
    N = X.shape[0]
    K = W.shape[0]
    if N == 0 or K == 0:
        return out
    if X.shape[1] > 0 and N < NT_MAX_ROWS and N * K * X.shape[1] > SMALL_GEMM_FMAS:
        gemm_nt(X, W, out)
        bias_act_rows(out, b, act, 0, N)
        return out
    R = block_rows(N, K)
    for i0 in range(0, N, R):
        _affine_rows(X, W, b, out, act, i0, min(i0 + R, N))
    return out


@jit
def n_par_blocks(N):
    """Row blocks of the parallel path: a function of N only (never of the thread
    count), so the result has the same bits for any number of threads."""
    return 2 * ((N + 2 * PAR_BLOCK_ROWS - 1) // (2 * PAR_BLOCK_ROWS))


@jit(inline="always")
def _par_block(N, t):
    """Rows i0..i1 of block t of the parallel path (possibly empty for the last ones)."""
    nb = n_par_blocks(N)
    R = (N + nb - 1) // nb
    i0 = min(t * R, N)
    return i0, min(i0 + R, N)


@pjit
def affine_blocks_parallel(X, W, b, out, act):
    """out = act(X Wᵀ + b), blocks of rows over Numba's threads: each block is one
    single-threaded BLAS product (run under ``machine.blas.on_numba_threads``), then bias (and
    the sigmoid) on the block while it is in that core's cache. N >= 1, K >= 1."""
    N = X.shape[0]
    for t in prange(n_par_blocks(N)):
        wide_vectors()   # the sigmoid loop may use 512-bit vectors
        i0, i1 = _par_block(N, t)
        if i0 < i1:
            _affine_rows(X, W, b, out, act, i0, i1)
    return out


# Called from Python, a compiled function that returns an array pays for boxing it:
# about 0.4 µs (a jit function of these four arrays took 0.53 µs returning None, 0.93 µs
# returning out), 6% of a B = 1 call. The dispatchers below call these two, which
# return nothing, and return out themselves.
@jit
def affine_into(X, W, b, out, act):
    """_affine_blocks (serial), returning nothing."""
    _affine_blocks(X, W, b, out, act)


def _make_nt_into(parallel, act):
    """out = act(X Wᵀ + b) on the register tiles, serial or parallel, for one activation
    (``parallel`` and ``act`` are compile-time constants): what the entry points call
    for short batches, so that a first call compiles neither the BLAS path nor the other
    activation (``affine_into`` holds both, for the products' callers). The same
    operations as ``_affine_blocks``' tile path: the same bits.
    N, K, D >= 1, N < NT_MAX_ROWS. Returns nothing."""
    PARALLEL, ACT = parallel, act

    def nt_into(X, W, b, out):
        wide_vectors()   # the sigmoid loop may use 512-bit vectors
        if PARALLEL:
            gemm_nt_parallel(X, W, out)
        else:
            gemm_nt(X, W, out)
        K = out.shape[1]
        for i in range(out.shape[0]):      # bias_act_rows, its one branch
            row = out[i]
            if ACT == 1:
                for k in range(K):
                    row[k] = _sig(row[k] + b[k])
            else:
                for k in range(K):
                    row[k] += b[k]
    return jit(nt_into)


#: [parallel][act]: act 0 identity, 1 sigmoid.
NT_INTO = ((_make_nt_into(False, 0), _make_nt_into(False, 1)),
           (_make_nt_into(True, 0), _make_nt_into(True, 1)))


@jit
def linear_jit(X, W, b, out):
    """Serial (also called from the compiled training epoch)."""
    return _affine_blocks(X, W, b, out, 0)


@jit
def linear_sigmoid_jit(X, W, b, out):
    return _affine_blocks(X, W, b, out, 1)


@jit
def col_sums(dZ, db):
    N, K = dZ.shape
    for k in range(K):
        db[k] = 0
    for i in range(N):
        for k in range(K):
            db[k] += dZ[i, k]


@jit
def linear_backward_jit(dZ, X, W, dW, db, dX):
    N, K = dZ.shape
    D = X.shape[1]
    if N == 0 or D == 0 or K == 0:
        dW[:] = 0
    else:
        gemm(False, True, D, K, N, 1.0, X, D, dZ, K, 0.0, dW, D)     # dWᵀ = Xᵀ dZ
    col_sums(dZ, db)
    if dX is not None:
        if K == 0:
            dX[:] = 0
        elif N > 0 and D > 0:
            gemm(False, False, D, N, K, 1.0, W, D, dZ, K, 0.0, dX, D)  # dXᵀ = Wᵀ dZᵀ
    return dW, db, dX


@jit
def _backward_tiles(dZ, X, W, dW, db, dX):
    """linear_backward with dW = dZᵀ X and dX = dZ W as gemm_tn_acc tiles (no BLAS).
    C goes in as a view of layout 'A' (``[:, ::1]``), dZ and dZᵀ alike, so that
    gemm_tn_acc compiles once for both (its own first line does the same)."""
    dW[:] = 0
    gemm_tn_acc(dZ[:, ::1], X, dW, dW.dtype.type(1.0))
    col_sums(dZ, db)
    if dX is not None:
        dX[:] = 0
        gemm_tn_acc(dZ.T[:, ::1], W, dX, dX.dtype.type(1.0))
    return dW, db, dX


@jit
def _backward_tiles_parallel(dZ, X, W, dW, db, dX):
    """_backward_tiles on the parallel tiles (the same bits)."""
    dW[:] = 0
    gemm_tn_acc_parallel(dZ[:, ::1], X, dW, dW.dtype.type(1.0))
    col_sums(dZ, db)
    if dX is not None:
        dX[:] = 0
        gemm_tn_acc_parallel(dZ.T[:, ::1], W, dX, dX.dtype.type(1.0))
    return dW, db, dX


@jit
def n_col_blocks(D):
    return 2 * ((D + 2 * PAR_BLOCK_COLS - 1) // (2 * PAR_BLOCK_COLS))


@pjit
def tn_col_blocks_parallel(dZ, X, Out, alpha, beta):
    """``Out ← alpha dZᵀ X + beta Out`` by blocks of columns over Numba's threads, each one
    single-threaded BLAS product (run under ``machine.blas.on_numba_threads``): the weight
    gradient (alpha 1, beta 0) or the SGD update W −= lr dZᵀX (alpha −lr, beta 1). The
    blocks depend on the shapes only: the same bits for any number of threads.
    dZ (N, K), X (N, D), Out (K, D); N, K, D >= 1."""
    N, K = dZ.shape
    D = X.shape[1]
    nw = n_col_blocks(D)
    C = (D + nw - 1) // nw
    Xf = X.reshape(-1)
    Of = Out.reshape(-1)
    for t in prange(nw):
        d0 = min(t * C, D)
        d1 = min(d0 + C, D)
        if d0 < d1:      # Outᵀ[d0:d1] = alpha Xᵀ[d0:d1] dZ + beta Outᵀ[d0:d1] (leading dim D)
            gemm(False, True, d1 - d0, K, N, alpha, Xf[d0:], D, dZ, K, beta, Of[d0:], D)
    return Out


@pjit
def _dx_row_blocks_parallel(dZ, W, dX):
    """dX = dZ W by blocks of rows over Numba's threads (as hidden_delta_blocks_parallel,
    without the derivative). N, K, D >= 1."""
    N, K = dZ.shape
    D = W.shape[1]
    for t in prange(n_par_blocks(N)):
        i0, i1 = _par_block(N, t)
        if i0 < i1:      # dXᵀ[:, i0:i1] = Wᵀ dZ[i0:i1]ᵀ
            gemm(False, False, D, i1 - i0, K, 1.0, W, D, dZ[i0:i1], K, 0.0, dX[i0:i1], D)
    return dX


@jit
def backward_parallel(dZ, X, W, dW, db, dX):
    """linear_backward on Numba's threads: dW by blocks of columns, then dX by blocks of
    rows (two loops: the blocks of one are not the size of the other's)."""
    tn_col_blocks_parallel(dZ, X, dW, 1.0, 0.0)
    if dX is not None:
        _dx_row_blocks_parallel(dZ, W, dX)
    col_sums(dZ, db)
    return dW, db, dX


def backward_kernel(N, K, D):
    """The compiled kernel ``linear_backward`` runs below NT_MAX_ROWS rows (``fastnn info``
    asks it which one a first call compiles)."""
    fmas = N * K * D
    if N < NT_MAX_ROWS and fmas > SMALL_GEMM_FMAS:
        return _backward_tiles_parallel if fmas >= TN_PARALLEL_MIN_FMAS else _backward_tiles
    return linear_backward_jit


@jit
def delta_rows(dZ, W, H, out, i0, i1, sigmoid):
    """Rows i0..i1 of out = (dZ W) ⊙ H ⊙ (1 − H) (sigmoid) or dZ W: one BLAS product,
    then the sigmoid derivative while the block is in cache. K, D >= 1."""
    always_inline()
    wide_vectors()
    K = dZ.shape[1]
    D = W.shape[1]
    one = H.dtype.type(1.0)
    blk = out[i0:i1]
    gemm(False, False, D, i1 - i0, K, 1.0, W, D, dZ[i0:i1], K, 0.0, blk, D)  # blkᵀ = Wᵀ dZ_blkᵀ
    if sigmoid:
        for i in range(i1 - i0):
            for d in range(D):
                h = H[i0 + i, d]
                blk[i, d] *= h * (one - h)


@jit
def hidden_delta_jit(dZ, W, H, out):
    N, K = dZ.shape
    D = W.shape[1]
    if N == 0 or D == 0:
        return out
    if K == 0:
        out[:] = 0
        return out
    R = block_rows(N, D)
    for i0 in range(0, N, R):
        delta_rows(dZ, W, H, out, i0, min(i0 + R, N), True)
    return out


@jit
def _times_sigmoid_derivative(out, H):
    """out ⊙= H ⊙ (1 − H)."""
    wide_vectors()
    N, D = out.shape
    one = H.dtype.type(1.0)
    for i in range(N):
        for d in range(D):
            h = H[i, d]
            out[i, d] *= h * (one - h)


@jit
def delta_tiles(dZ, W, H, out, sigmoid):
    """out = (dZ W) ⊙ H ⊙ (1 − H) (sigmoid) or dZ W, with dZ W as gemm_tn_acc tiles (rows
    of out as combinations of the rows of W, C = dZᵀ; no BLAS). Also the compiled
    training epoch's backward step."""
    out[:] = 0
    gemm_tn_acc(dZ.T[:, ::1], W, out, out.dtype.type(1.0))
    if sigmoid:
        _times_sigmoid_derivative(out, H)
    return out


@jit
def delta_tiles_parallel(dZ, W, H, out, sigmoid):
    """delta_tiles on the parallel tiles (the same bits)."""
    out[:] = 0
    gemm_tn_acc_parallel(dZ.T[:, ::1], W, out, out.dtype.type(1.0))
    if sigmoid:
        _times_sigmoid_derivative(out, H)
    return out


@pjit
def hidden_delta_blocks_parallel(dZ, W, H, out, sigmoid):
    """hidden_delta_jit over blocks of rows on Numba's threads, as
    affine_blocks_parallel: one single-threaded BLAS product per block (under
    ``machine.blas.on_numba_threads``), then ⊙ H(1 − H) on that block (sigmoid; else dZ W
    only). N, K, D >= 1."""
    N = dZ.shape[0]
    for t in prange(n_par_blocks(N)):
        i0, i1 = _par_block(N, t)
        if i0 < i1:
            delta_rows(dZ, W, H, out, i0, i1, sigmoid)
    return out


def delta_kernel(N, K, D):
    """The compiled kernel ``hidden_delta`` runs below NT_MAX_ROWS rows: ``delta_tiles``
    or its parallel twin (arguments ``dZ, W, H, out, True``), or ``hidden_delta_jit``."""
    fmas = N * K * D
    if N < NT_MAX_ROWS and fmas > SMALL_GEMM_FMAS:
        return delta_tiles_parallel if fmas >= TN_PARALLEL_MIN_FMAS else delta_tiles
    return hidden_delta_jit
