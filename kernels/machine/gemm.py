"""``Z = X Wᵀ`` for short batches, as register-tiled dot products (no BLAS call).

A linear layer's forward product is ``Z[i, j] = Σ_k X[i, k] W[j, k]``: X (B, K) and W
(N, K) are both contiguous along k, so each output is a dot product of two contiguous
rows. OpenBLAS packs both operands into panels first, which costs more than the product
itself when B is small: for X (32, 784) and W (128, 784), one thread, these tiles take
64 µs where OpenBLAS takes 128 µs (10 rows: 33 µs vs 77 µs; 256 rows: 640 µs vs 554 µs,
so BLAS keeps the large batches; ``NT_MAX_ROWS``).

Tiles. ``_dot_4x6`` keeps 4 rows of X and 6 rows of W in flight: 24 accumulators, and per
step of k 10 loads for 24 multiply-adds, so loads do not limit it. The k loop is a plain
loop of scalar multiply-adds; compiled with ``reassoc`` (``_config.jit_sum``: dot products
and sums only) LLVM vectorises it into 16-lane partial sums (``wide_vectors``: 512-bit
``zmm`` registers), 24 vector accumulators, and adds each up at the end. The 6 rows of W
(18.8 KiB for K = 784) stay in L1 while the rows of X stream past from L2. Edges: a 2×6
tile and a 1×6 tile for the last B mod 4 rows (1×6 tiles alone, 7 loads for 6
multiply-adds, made rows 8-9 of a batch of 10 cost as much as rows 0-7); of the last
N mod 6 columns, 4 go to a 4-column tile (4×4, 2×4, 1×4) and the rest to 4×1 and 1×1
tiles. That is for CPUs with AVX-512 (32 vector registers).
With AVX2 only (16 registers, 8 float32 lanes; e.g. AMD Zen 3) 24 accumulators spill to
the stack and the 4×6 tile ran at half speed (10 rows: 38 µs against 20 µs), so there the
main tile is ``_dot_2x6`` (12 accumulators, 2 rows of X and 1 of W: 15 registers) and
the edge ``_dot_1x6`` (``HAS_AVX512``, a compile-time constant, picks the loop). The
figures in this docstring are the Xeon's (AVX-512) unless they name another CPU.

Each output element is one tile's dot product, always summed in the same order: the
result does not depend on the number of threads, and the serial and parallel kernels give
the same bits. Accuracy is that of any dot product of length K in the input's precision
(16 interleaved partial sums: an error bound ~ K/16 · eps · Σ|x w| or better).

Raw kernels: no validation. X (B, K), W (N, K), Z (B, N): C-contiguous, one float dtype;
Z must not overlap X or W; B, N >= 1; K may be 0 (Z = 0).

    gemm_nt(X, W, Z)            serial
    gemm_nt_parallel(X, W, Z)   column blocks of 6 spread over Numba's threads

``Out += alpha · Cᵀ A`` (``gemm_tn_acc``) is the other product of training: the weight
update ``W −= lr · dZᵀ A`` (C = dZ, alpha = −lr), the weight gradient (Out = dW zeroed
first, alpha = 1) and, with C = dZᵀ and A = W, ``dA = dZ W``. Each row of Out gains a
combination of rows of A, ``Out[o] += Σ_j (alpha·C[j, o]) A[j]``: contiguous rows, no
reduction, so the loop over a row vectorises without ``reassoc``. ``_acc_4x4`` holds 4
rows of A and 4 rows of Out in flight with 16 broadcast coefficients: per vector of the
row, 8 loads, 16 multiply-adds and 4 stores (the 4 rows of Out, 12.5 KiB for 784
float32, stay in L1 while the rows of A go past 4 at a time); 2- and 1-row tiles for the
last n_in mod 4 rows of A, 1-row tiles of Out for its last n_out mod 4 rows. Measured on
one thread here, Out (100, 784), A (10, 784), 64-byte aligned: ~13-16 µs against 13-18 µs
for OpenBLAS's sgemm with beta = 1 (which packs its operands first); unaligned rows cost
these tiles up to 2x, so fastnn.MLP allocates its parameters 64-byte aligned. Every
element of Out is updated by one fixed sequence of multiply-adds, in the order of j: the
serial and parallel kernels give the same bits, whatever the number of threads.

    gemm_tn_acc(C, A, Out, alpha)            serial
    gemm_tn_acc_parallel(C, A, Out, alpha)   blocks of 4 rows of Out over Numba's threads
    gemm_tn_acc_nt_parallel(C, A, W, alpha, Xn, Zn, parts)
                                             W += alpha CᵀA, then Zn = Xn Wᵀ, one region:
                                             a weight update and the next mini-batch's
                                             forward product (the training epoch's)

Raw kernels: C (n_in, n_out) (any strides: dZᵀ is a transposed view), A (n_in, D) and
Out (n_out, D) C-contiguous, one float dtype; Out must not overlap C or A.
The entry points pass C on as a view of layout 'A' (``C[:, ::1]``), so that these
kernels are compiled once for dZ and for dZᵀ (a coefficient is loaded once per tile: its
stride costs nothing).

The tiles themselves (``_column_block``, ``_acc_row_block``) are compiled once per
dtype, as C callbacks (``_nt_tile``, ``_tn_tile``), and every product above calls them
through their address (kernels/machine/tiles.py): before, each compiled caller (these
kernels, the training epoch, the API's entry points) linked and re-optimised its own copy
of them. An empty cache on the 2-core Zen 3 guest: the first ``fastnn.linear_sigmoid``
(32×784 → 30) 3.96 s → 2.91-3.05 s; the same bits as before for every shape tested, and
the same run time (``benches/`` A/B in the closing note of issue 19).
"""
from __future__ import annotations

import numba
import numpy as np
from numba import carray, prange

from .._config import _SUM, HAS_AVX512, jit, jit_sum, pjit, pjit_sum, wide_vectors
from . import tiles
from .tiles import call_acc_row_blocks, call_column_blocks, nt_tiles, tn_tiles

def jit_sum_inline(fn):
    """``jit_sum``, inlined by Numba into its caller: the tiles below go into
    ``_column_block``, which is compiled once per dtype (``_nt_tile``), so their
    copies cost nothing more (its cold compile: 2.04 s → 1.90 s with ``always_inline``
    before; the same bits)."""
    return numba.njit(**dict(_SUM, inline="always"))(fn)


# NT_MAX_ROWS, NT_PARALLEL_MIN_FMAS, SMALL_GEMM_FMAS, TN_PARALLEL_MIN_FMAS: which products
# take these tiles, serial or parallel (kernels/tuning.py).
from ..tuning import (NT_MAX_ROWS, NT_PARALLEL_MIN_FMAS, SMALL_GEMM_FMAS,  # noqa: E402,F401
                      TN_PARALLEL_MIN_FMAS)


@jit_sum_inline
def _dot_4x6(X, W, Z, i, j, K):
    wide_vectors()
    x0, x1, x2, x3 = X[i], X[i + 1], X[i + 2], X[i + 3]
    w0, w1, w2, w3, w4, w5 = W[j], W[j + 1], W[j + 2], W[j + 3], W[j + 4], W[j + 5]
    z = Z.dtype.type(0.0)
    a00 = a01 = a02 = a03 = a04 = a05 = z
    a10 = a11 = a12 = a13 = a14 = a15 = z
    a20 = a21 = a22 = a23 = a24 = a25 = z
    a30 = a31 = a32 = a33 = a34 = a35 = z
    for k in range(K):
        p, q, r, s = x0[k], x1[k], x2[k], x3[k]
        w = w0[k]
        a00 += p * w
        a10 += q * w
        a20 += r * w
        a30 += s * w
        w = w1[k]
        a01 += p * w
        a11 += q * w
        a21 += r * w
        a31 += s * w
        w = w2[k]
        a02 += p * w
        a12 += q * w
        a22 += r * w
        a32 += s * w
        w = w3[k]
        a03 += p * w
        a13 += q * w
        a23 += r * w
        a33 += s * w
        w = w4[k]
        a04 += p * w
        a14 += q * w
        a24 += r * w
        a34 += s * w
        w = w5[k]
        a05 += p * w
        a15 += q * w
        a25 += r * w
        a35 += s * w
    Z[i, j], Z[i, j + 1], Z[i, j + 2] = a00, a01, a02
    Z[i, j + 3], Z[i, j + 4], Z[i, j + 5] = a03, a04, a05
    Z[i + 1, j], Z[i + 1, j + 1], Z[i + 1, j + 2] = a10, a11, a12
    Z[i + 1, j + 3], Z[i + 1, j + 4], Z[i + 1, j + 5] = a13, a14, a15
    Z[i + 2, j], Z[i + 2, j + 1], Z[i + 2, j + 2] = a20, a21, a22
    Z[i + 2, j + 3], Z[i + 2, j + 4], Z[i + 2, j + 5] = a23, a24, a25
    Z[i + 3, j], Z[i + 3, j + 1], Z[i + 3, j + 2] = a30, a31, a32
    Z[i + 3, j + 3], Z[i + 3, j + 4], Z[i + 3, j + 5] = a33, a34, a35


@jit_sum_inline
def _dot_2x6(X, W, Z, i, j, K):
    wide_vectors()
    x0, x1 = X[i], X[i + 1]
    w0, w1, w2, w3, w4, w5 = W[j], W[j + 1], W[j + 2], W[j + 3], W[j + 4], W[j + 5]
    z = Z.dtype.type(0.0)
    a00 = a01 = a02 = a03 = a04 = a05 = z
    a10 = a11 = a12 = a13 = a14 = a15 = z
    for k in range(K):
        p, q = x0[k], x1[k]
        w = w0[k]
        a00 += p * w
        a10 += q * w
        w = w1[k]
        a01 += p * w
        a11 += q * w
        w = w2[k]
        a02 += p * w
        a12 += q * w
        w = w3[k]
        a03 += p * w
        a13 += q * w
        w = w4[k]
        a04 += p * w
        a14 += q * w
        w = w5[k]
        a05 += p * w
        a15 += q * w
    Z[i, j], Z[i, j + 1], Z[i, j + 2] = a00, a01, a02
    Z[i, j + 3], Z[i, j + 4], Z[i, j + 5] = a03, a04, a05
    Z[i + 1, j], Z[i + 1, j + 1], Z[i + 1, j + 2] = a10, a11, a12
    Z[i + 1, j + 3], Z[i + 1, j + 4], Z[i + 1, j + 5] = a13, a14, a15


@jit_sum_inline
def _dot_1x6(X, W, Z, i, j, K):
    wide_vectors()
    x0 = X[i]
    w0, w1, w2, w3, w4, w5 = W[j], W[j + 1], W[j + 2], W[j + 3], W[j + 4], W[j + 5]
    z = Z.dtype.type(0.0)
    a0 = a1 = a2 = a3 = a4 = a5 = z
    for k in range(K):
        p = x0[k]
        a0 += p * w0[k]
        a1 += p * w1[k]
        a2 += p * w2[k]
        a3 += p * w3[k]
        a4 += p * w4[k]
        a5 += p * w5[k]
    Z[i, j], Z[i, j + 1], Z[i, j + 2] = a0, a1, a2
    Z[i, j + 3], Z[i, j + 4], Z[i, j + 5] = a3, a4, a5


@jit_sum_inline
def _dot_4x4(X, W, Z, i, j, K):
    wide_vectors()
    x0, x1, x2, x3 = X[i], X[i + 1], X[i + 2], X[i + 3]
    w0, w1, w2, w3 = W[j], W[j + 1], W[j + 2], W[j + 3]
    z = Z.dtype.type(0.0)
    a00 = a01 = a02 = a03 = z
    a10 = a11 = a12 = a13 = z
    a20 = a21 = a22 = a23 = z
    a30 = a31 = a32 = a33 = z
    for k in range(K):
        p, q, r, s = x0[k], x1[k], x2[k], x3[k]
        w = w0[k]
        a00 += p * w
        a10 += q * w
        a20 += r * w
        a30 += s * w
        w = w1[k]
        a01 += p * w
        a11 += q * w
        a21 += r * w
        a31 += s * w
        w = w2[k]
        a02 += p * w
        a12 += q * w
        a22 += r * w
        a32 += s * w
        w = w3[k]
        a03 += p * w
        a13 += q * w
        a23 += r * w
        a33 += s * w
    Z[i, j], Z[i, j + 1], Z[i, j + 2], Z[i, j + 3] = a00, a01, a02, a03
    Z[i + 1, j], Z[i + 1, j + 1], Z[i + 1, j + 2], Z[i + 1, j + 3] = a10, a11, a12, a13
    Z[i + 2, j], Z[i + 2, j + 1], Z[i + 2, j + 2], Z[i + 2, j + 3] = a20, a21, a22, a23
    Z[i + 3, j], Z[i + 3, j + 1], Z[i + 3, j + 2], Z[i + 3, j + 3] = a30, a31, a32, a33


@jit_sum_inline
def _dot_2x4(X, W, Z, i, j, K):
    wide_vectors()
    x0, x1 = X[i], X[i + 1]
    w0, w1, w2, w3 = W[j], W[j + 1], W[j + 2], W[j + 3]
    z = Z.dtype.type(0.0)
    a00 = a01 = a02 = a03 = z
    a10 = a11 = a12 = a13 = z
    for k in range(K):
        p, q = x0[k], x1[k]
        w = w0[k]
        a00 += p * w
        a10 += q * w
        w = w1[k]
        a01 += p * w
        a11 += q * w
        w = w2[k]
        a02 += p * w
        a12 += q * w
        w = w3[k]
        a03 += p * w
        a13 += q * w
    Z[i, j], Z[i, j + 1], Z[i, j + 2], Z[i, j + 3] = a00, a01, a02, a03
    Z[i + 1, j], Z[i + 1, j + 1], Z[i + 1, j + 2], Z[i + 1, j + 3] = a10, a11, a12, a13


@jit_sum_inline
def _dot_1x4(X, W, Z, i, j, K):
    wide_vectors()
    x0 = X[i]
    w0, w1, w2, w3 = W[j], W[j + 1], W[j + 2], W[j + 3]
    z = Z.dtype.type(0.0)
    a0 = a1 = a2 = a3 = z
    for k in range(K):
        p = x0[k]
        a0 += p * w0[k]
        a1 += p * w1[k]
        a2 += p * w2[k]
        a3 += p * w3[k]
    Z[i, j], Z[i, j + 1], Z[i, j + 2], Z[i, j + 3] = a0, a1, a2, a3


@jit_sum_inline
def _dot_4x1(X, W, Z, i, j, K):
    wide_vectors()
    x0, x1, x2, x3 = X[i], X[i + 1], X[i + 2], X[i + 3]
    w0 = W[j]
    z = Z.dtype.type(0.0)
    a0 = a1 = a2 = a3 = z
    for k in range(K):
        w = w0[k]
        a0 += x0[k] * w
        a1 += x1[k] * w
        a2 += x2[k] * w
        a3 += x3[k] * w
    Z[i, j], Z[i + 1, j], Z[i + 2, j], Z[i + 3, j] = a0, a1, a2, a3


@jit_sum_inline
def _dot_1x1(X, W, Z, i, j, K):
    wide_vectors()
    x0 = X[i]
    w0 = W[j]
    a = Z.dtype.type(0.0)
    for k in range(K):
        a += x0[k] * w0[k]
    Z[i, j] = a


@jit_sum
def _column_block(X, W, Z, c):
    """Column block c of Z: for c < N // 6 the 6 columns 6c .. 6c+5; then, of the last
    r = N % 6 columns, one block of 4 if r >= 4, and single columns for the rest
    (``_col_block_start``). (Four single columns, three loads per two multiply-adds
    each, made the last 4 columns of N = 100 cost about as much as 10 others: in the
    training epoch's fused region that share was the last to finish.)"""
    wide_vectors()
    B, K = X.shape
    N = W.shape[0]
    n6 = N // 6
    b4 = B - B % 4
    j = _col_block_start(c, N)
    if c < n6:
        i0 = 0
        if HAS_AVX512:      # a compile-time constant: only one branch is compiled
            for i in range(0, b4, 4):
                _dot_4x6(X, W, Z, i, j, K)
            i0 = b4
        for t in range((B - i0) // 2):
            _dot_2x6(X, W, Z, i0 + 2 * t, j, K)
        if (B - i0) % 2:
            _dot_1x6(X, W, Z, B - 1, j, K)
    elif c == n6 and N % 6 >= 4:
        i0 = 0
        if HAS_AVX512:
            for i in range(0, b4, 4):
                _dot_4x4(X, W, Z, i, j, K)
            i0 = b4
        for t in range((B - i0) // 2):
            _dot_2x4(X, W, Z, i0 + 2 * t, j, K)
        if (B - i0) % 2:
            _dot_1x4(X, W, Z, B - 1, j, K)
    else:
        for i in range(0, b4, 4):
            _dot_4x1(X, W, Z, i, j, K)
        for i in range(b4, B):
            _dot_1x1(X, W, Z, i, j, K)


def _nt_tile(x, w, z, B, K, N, c0, c1):
    """The cfunc body of tiles.py's "nt" tile: column blocks c0 .. c1 − 1
    (``_column_block``) on C-contiguous views."""
    wide_vectors()
    X, W, Z = carray(x, (B, K)), carray(w, (N, K)), carray(z, (B, N))
    for c in range(c0, c1):
        _column_block(X, W, Z, c)


tiles.register("nt", _nt_tile)


@jit(inline="always")
def _col_block_start(c, N):
    """First column of column block c (see ``_column_block``)."""
    n6 = N // 6
    if c <= n6:
        return 6 * c
    return 6 * n6 + (4 if N % 6 >= 4 else 0) + (c - n6 - (1 if N % 6 >= 4 else 0))


@jit(inline="always")
def _col_block_end(c, N):
    """One past the last column of column block c."""
    n6 = N // 6
    if c < n6:
        return 6 * c + 6
    if c == n6 and N % 6 >= 4:
        return 6 * n6 + 4
    return _col_block_start(c, N) + 1


@jit(inline="always")
def n_column_blocks(N):
    r = N % 6
    return N // 6 + (1 + r - 4 if r >= 4 else r)


@jit_sum
def gemm_nt(X, W, Z):
    """Z = X Wᵀ, serial."""
    call_column_blocks(nt_tiles(Z), X, W, Z, 0, n_column_blocks(W.shape[0]))
    return Z


@jit(inline="always")
def spread_block(p, N):
    """The column block at position p of the parallel loop: the r edge blocks (of 4
    columns and of one, see ``_column_block``; lighter than a 6-column block) are spread
    evenly among the N // 6 others, edge block k at position (2k + 1)·n / (2r) of n
    blocks, so that the
    contiguous share of each thread holds a like mix. (In block order, with 100 columns
    the first of two threads got 60 columns and the second 40: X (10, 784) took 15 µs
    against 21.5 µs on one thread.) Only the assignment to threads changes, not how a
    block is computed: the bits are those of gemm_nt."""
    n6 = N // 6
    n = n_column_blocks(N)
    r = n - n6
    before = 0
    for k in range(r):
        q = ((2 * k + 1) * n) // (2 * r)
        if q == p:
            return n6 + k
        if q < p:
            before += 1
    return p - before


@pjit_sum
def gemm_nt_parallel(X, W, Z):
    """Z = X Wᵀ, column blocks over threads (in the order of spread_block)."""
    N = W.shape[0]
    f = nt_tiles(Z)
    for p in prange(n_column_blocks(N)):
        c = spread_block(p, N)
        call_column_blocks(f, X, W, Z, c, c + 1)
    return Z



@jit(inline='always')
def _acc_4x4(C, A, Out, o, j, D, alpha):
    wide_vectors()
    c00, c01, c02, c03 = alpha * C[j, o], alpha * C[j + 1, o], alpha * C[j + 2, o], alpha * C[j + 3, o]
    o1, o2, o3 = o + 1, o + 2, o + 3
    c10, c11, c12, c13 = alpha * C[j, o1], alpha * C[j + 1, o1], alpha * C[j + 2, o1], alpha * C[j + 3, o1]
    c20, c21, c22, c23 = alpha * C[j, o2], alpha * C[j + 1, o2], alpha * C[j + 2, o2], alpha * C[j + 3, o2]
    c30, c31, c32, c33 = alpha * C[j, o3], alpha * C[j + 1, o3], alpha * C[j + 2, o3], alpha * C[j + 3, o3]
    j1, j2, j3 = j + 1, j + 2, j + 3
    for d in range(D):
        x0, x1, x2, x3 = A[j, d], A[j1, d], A[j2, d], A[j3, d]
        t = Out[o, d]
        t += c00 * x0
        t += c01 * x1
        t += c02 * x2
        t += c03 * x3
        Out[o, d] = t
        t = Out[o1, d]
        t += c10 * x0
        t += c11 * x1
        t += c12 * x2
        t += c13 * x3
        Out[o1, d] = t
        t = Out[o2, d]
        t += c20 * x0
        t += c21 * x1
        t += c22 * x2
        t += c23 * x3
        Out[o2, d] = t
        t = Out[o3, d]
        t += c30 * x0
        t += c31 * x1
        t += c32 * x2
        t += c33 * x3
        Out[o3, d] = t


@jit(inline='always')
def _acc_2x4(C, A, Out, o, j, D, alpha):
    wide_vectors()
    o1, o2, o3 = o + 1, o + 2, o + 3
    j1 = j + 1
    c00, c01 = alpha * C[j, o], alpha * C[j1, o]
    c10, c11 = alpha * C[j, o1], alpha * C[j1, o1]
    c20, c21 = alpha * C[j, o2], alpha * C[j1, o2]
    c30, c31 = alpha * C[j, o3], alpha * C[j1, o3]
    for d in range(D):
        x0, x1 = A[j, d], A[j1, d]
        t = Out[o, d]
        t += c00 * x0
        t += c01 * x1
        Out[o, d] = t
        t = Out[o1, d]
        t += c10 * x0
        t += c11 * x1
        Out[o1, d] = t
        t = Out[o2, d]
        t += c20 * x0
        t += c21 * x1
        Out[o2, d] = t
        t = Out[o3, d]
        t += c30 * x0
        t += c31 * x1
        Out[o3, d] = t


@jit(inline='always')
def _acc_1x4(C, A, Out, o, j, D, alpha):
    wide_vectors()
    o1, o2, o3 = o + 1, o + 2, o + 3
    c0, c1, c2, c3 = alpha * C[j, o], alpha * C[j, o1], alpha * C[j, o2], alpha * C[j, o3]
    for d in range(D):
        x0 = A[j, d]
        Out[o, d] += c0 * x0
        Out[o1, d] += c1 * x0
        Out[o2, d] += c2 * x0
        Out[o3, d] += c3 * x0


@jit(inline='always')
def _acc_1x1(C, A, Out, o, j, D, alpha):
    wide_vectors()
    c0 = alpha * C[j, o]
    for d in range(D):
        Out[o, d] += c0 * A[j, d]


@jit
def _acc_row_block(C, A, Out, alpha, r):
    """Rows 4r .. 4r+3 of Out (r < n_out // 4), or its single edge row
    n_out − n_out % 4 + r' for r = n_out // 4 + r'. Not inlined: the parallel kernel's
    loop body calls this one compiled function, as the serial kernel does (same bits)."""
    wide_vectors()
    n_in, n_out = C.shape
    D = A.shape[1]
    a = Out.dtype.type(alpha)
    n4 = n_out // 4
    if r < n4:
        o = 4 * r
        j4 = n_in - n_in % 4
        for j in range(0, j4, 4):
            _acc_4x4(C, A, Out, o, j, D, a)
        j = j4
        if n_in - j >= 2:
            _acc_2x4(C, A, Out, o, j, D, a)
            j += 2
        if j < n_in:
            _acc_1x4(C, A, Out, o, j, D, a)
    else:
        o = 4 * n4 + (r - n4)
        for j in range(n_in):
            _acc_1x1(C, A, Out, o, j, D, a)


def _tn_tile(c, cs0, cs1, a, out, n_in, n_out, D, alpha, r0, r1):
    """The cfunc body of tiles.py's "tn" tile: row blocks r0 .. r1 − 1
    (``_acc_row_block``) on views (C: any strides, in bytes)."""
    wide_vectors()
    C = np.lib.stride_tricks.as_strided(carray(c, (1,)), shape=(n_in, n_out),
                                        strides=(cs0, cs1))
    A, Out = carray(a, (n_in, D)), carray(out, (n_out, D))
    for r in range(r0, r1):
        _acc_row_block(C, A, Out, alpha, r)


tiles.register("tn", _tn_tile)


@jit(inline="always")
def n_row_blocks(n_out):
    return n_out // 4 + n_out % 4


@jit
def gemm_tn_acc(C, A, Out, alpha):
    """Out += alpha · Cᵀ A, serial."""
    # the row blocks are tiles.py's "tn" tile, compiled once for any layout of C; callers
    # that pass C[:, ::1] (dZ and dZᵀ) compile this function once as well
    call_acc_row_blocks(tn_tiles(Out), C, A, Out, alpha, 0, n_row_blocks(C.shape[1]))
    return Out


@pjit
def gemm_tn_acc_parallel(C, A, Out, alpha):
    """Out += alpha · Cᵀ A, blocks of rows of Out over threads."""
    f = tn_tiles(Out)
    for r in prange(n_row_blocks(C.shape[1])):
        call_acc_row_blocks(f, C, A, Out, alpha, r, r + 1)
    return Out


#: gemm_tn_acc_nt_parallel splits the rows of W into parts made of groups of this many
#: rows: a multiple of both tiles' widths (4 rows of Out, 6 columns of Z), so that every
#: element is computed by the same tile as in the separate kernels.
FUSED_GROUP = 12


@jit_sum
def _acc_then_dot(C, A, W, alpha, Xn, Zn, g0, g1):
    """Rows 12·g0 .. 12·g1 − 1 of W (the last group ends at W's last row): each block of 4
    rows gets ``W[rows] += alpha Cᵀ A[:, rows]`` (``_acc_row_block``), and as soon as the
    rows of a column block of Zn are updated, ``Zn[:, cols] = Xn W[cols]ᵀ``
    (``_column_block``), while those rows are still in this core's L1."""
    wide_vectors()
    N = W.shape[0]
    n4 = N // 4
    r1 = min(FUSED_GROUP * g1, N)
    rb1 = r1 // 4 if r1 < N else n_row_blocks(N)
    cb = (FUSED_GROUP * g0) // 6
    cb1 = r1 // 6 if r1 < N else n_column_blocks(N)
    ft = tn_tiles(W)
    fn = nt_tiles(Zn)
    for rb in range((FUSED_GROUP * g0) // 4, rb1):
        call_acc_row_blocks(ft, C, A, W, alpha, rb, rb + 1)
        done = 4 * rb + 4 if rb < n4 else 4 * n4 + (rb - n4) + 1     # rows < done are updated
        while cb < cb1 and _col_block_end(cb, N) <= done:
            call_column_blocks(fn, Xn, W, Zn, cb, cb + 1)
            cb += 1
    if cb < cb1:      # not reached: the last row block completes every column
        call_column_blocks(fn, Xn, W, Zn, cb, cb1)


@pjit_sum
def gemm_tn_acc_nt_parallel(C, A, W, alpha, Xn, Zn, parts):
    """``W += alpha · Cᵀ A``, then ``Zn = Xn Wᵀ`` with the updated W: the weight update of
    one mini-batch and the next mini-batch's forward product in one parallel region. Each
    of Numba's threads owns a contiguous share of W's rows (groups of FUSED_GROUP) and runs
    both products on it, so those rows go from the update to the product in its own
    cache, and one region is started instead of two. Every element is computed by the same
    tile, in the same order, as ``gemm_tn_acc`` followed by ``gemm_nt``: the same bits,
    whatever the number of threads.

    C (n_in, N), A (n_in, D), W (N, D), Xn (B, D), Zn (B, N): as for the two kernels
    (Zn overlaps none of the others). B, N >= 1. parts >= 1: the number of shares, one
    per thread (``numba.get_num_threads()``; not read here: a cached kernel cannot call
    it)."""
    G = (W.shape[0] + FUSED_GROUP - 1) // FUSED_GROUP
    P = max(1, min(parts, G))
    for p in prange(P):
        wide_vectors()
        _acc_then_dot(C, A, W, alpha, Xn, Zn, (p * G) // P, ((p + 1) * G) // P)
    return Zn


@jit_sum
def acc_then_dot_share(C, A, W, alpha, Xn, Zn, p, parts):
    """Share p (0 <= p < parts) of ``gemm_tn_acc_nt_parallel``: the same rows of W, each
    element computed by the same tile, so the same bits; for a caller that runs the
    shares on threads it already holds (``fastnn._train_jit``'s persistent epoch).
    parts <= the number of groups of FUSED_GROUP rows. Xn may have 0 rows (the update
    alone)."""
    wide_vectors()
    G = (W.shape[0] + FUSED_GROUP - 1) // FUSED_GROUP
    _acc_then_dot(C, A, W, alpha, Xn, Zn, (p * G) // parts, ((p + 1) * G) // parts)


__all__ = ["gemm_nt", "gemm_nt_parallel", "gemm_tn_acc", "gemm_tn_acc_parallel",
           "gemm_tn_acc_nt_parallel", "acc_then_dot_share", "NT_MAX_ROWS", "NT_PARALLEL_MIN_FMAS",
           "SMALL_GEMM_FMAS", "TN_PARALLEL_MIN_FMAS"]
