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
(18.8 KiB for K = 784) stay in L1 while the rows of X stream past from L2. Edges: 1×6
tiles for the last B mod 4 rows, 4×1 and 1×1 tiles for the last N mod 6 columns.

Each output element is one tile's dot product, always summed in the same order: the
result does not depend on the number of threads, and the serial and parallel kernels give
the same bits. Accuracy is that of any dot product of length K in the input's precision
(16 interleaved partial sums: an error bound ~ K/16 · eps · Σ|x w| or better).

Raw kernels: no validation. X (B, K), W (N, K), Z (B, N): C-contiguous, one float dtype;
Z must not overlap X or W; B, N >= 1; K may be 0 (Z = 0).

    gemm_nt(X, W, Z)            serial
    gemm_nt_parallel(X, W, Z)   column blocks of 6 spread over Numba's threads
"""
from __future__ import annotations

from numba import prange

from ._config import jit, jit_sum, pjit_sum, wide_vectors

#: Batches of at least this many rows go to BLAS instead (measured above).
NT_MAX_ROWS = 256
#: Products of at least this many multiply-adds (B·N·K) use the parallel kernel.
NT_PARALLEL_MIN_FMAS = 1 << 19


@jit(inline="always")
def _dot_4x6(X, W, Z, i, j, K):
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


@jit(inline="always")
def _dot_1x6(X, W, Z, i, j, K):
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


@jit(inline="always")
def _dot_4x1(X, W, Z, i, j, K):
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


@jit(inline="always")
def _dot_1x1(X, W, Z, i, j, K):
    x0 = X[i]
    w0 = W[j]
    a = Z.dtype.type(0.0)
    for k in range(K):
        a += x0[k] * w0[k]
    Z[i, j] = a


@jit(inline="always")
def _column_block(X, W, Z, c):
    """Columns 6c .. 6c+5 of Z (c < N // 6), or the single edge column N − N % 6 + c'
    for c = N // 6 + c'."""
    B, K = X.shape
    N = W.shape[0]
    n6 = N // 6
    b4 = B - B % 4
    if c < n6:
        j = 6 * c
        for i in range(0, b4, 4):
            _dot_4x6(X, W, Z, i, j, K)
        for i in range(b4, B):
            _dot_1x6(X, W, Z, i, j, K)
    else:
        j = 6 * n6 + (c - n6)
        for i in range(0, b4, 4):
            _dot_4x1(X, W, Z, i, j, K)
        for i in range(b4, B):
            _dot_1x1(X, W, Z, i, j, K)


@jit(inline="always")
def n_column_blocks(N):
    return N // 6 + N % 6


@jit_sum
def gemm_nt(X, W, Z):
    """Z = X Wᵀ, serial."""
    wide_vectors()
    for c in range(n_column_blocks(W.shape[0])):
        _column_block(X, W, Z, c)
    return Z


@pjit_sum
def gemm_nt_parallel(X, W, Z):
    """Z = X Wᵀ, column blocks over threads."""
    for c in prange(n_column_blocks(W.shape[0])):
        wide_vectors()
        _column_block(X, W, Z, c)
    return Z


__all__ = ["gemm_nt", "gemm_nt_parallel", "NT_MAX_ROWS", "NT_PARALLEL_MIN_FMAS"]
