"""The matrix products on the GPU: a shared-memory tiled GEMM with fused epilogues.

``C (M, N) = op(A) op(B)``, op a transpose or not, in TILE x TILE tiles: each block
computes one TILE x TILE tile of C, one element per thread; per step along the inner
dimension the block loads one tile of op(A) and one of op(B) into shared memory
(coalesced: consecutive threads read consecutive addresses, whichever operand is
transposed; the tiles are padded to TILE + 1 columns so that reading a column does
not conflict on the banks), synchronises, and accumulates TILE products in a
register. The epilogue runs on the accumulator in registers before the one store:

* ``linear``:          C = X Wᵀ + b                      (A = X, B = Wᵀ)
* ``linear_sigmoid``:  C = σ(X Wᵀ + b)                   bias and sigmoid fused
* ``linear_backward``: dW = dZᵀ X (A = dZᵀ), dX = dZ W, and db = the column sums of dZ
  (one thread per column, coalesced across columns)
* ``hidden_delta``:    C = (dZ W) ⊙ H ⊙ (1 − H)          the sigmoid derivative fused

Accumulation is in the dtype (float32 products accumulate in float32, as BLAS does on
the CPU). Every load and the store are guarded: any M, N, K (0 included).
"""
from __future__ import annotations

import functools

from numba import cuda

from ._config import TILE
from ._device import NUMBA_TYPES, sigmoid_fn

#: Epilogues.
NONE, BIAS, BIAS_SIGMOID, SIGMOID_DERIV = 0, 1, 2, 3


@functools.lru_cache(maxsize=None)
def gemm_kernel(dtype: str, ta: bool, tb: bool, epi: int):
    """C = op(A) op(B) (+ epilogue); A is (P, M) when ``ta`` else (M, P); B is (N, P)
    when ``tb`` else (P, N). ``v``: the bias (N,) for BIAS/BIAS_SIGMOID; ``H``: (M, N)
    for SIGMOID_DERIV (other epilogues ignore them)."""
    T = NUMBA_TYPES[dtype]
    sig = sigmoid_fn(T)
    S = TILE
    S1 = TILE + 1          # (a shared array's shape must be a compile-time constant)

    @cuda.jit
    def k(A, Bm, C, v, H):
        sA = cuda.shared.array((S, S1), T)
        sB = cuda.shared.array((S, S1), T)
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        M = C.shape[0]
        N = C.shape[1]
        P = A.shape[0] if ta else A.shape[1]
        r0 = cuda.blockIdx.y * S
        c0 = cuda.blockIdx.x * S
        row = r0 + ty
        col = c0 + tx
        acc = T(0.0)
        for p0 in range(0, P, S):
            # op(A)[r, p] into sA[r - r0, p - p0] (ta: sA holds it transposed, sA[p, r])
            if ta:
                p = p0 + ty
                r = r0 + tx
                sA[ty, tx] = A[p, r] if (p < P and r < M) else T(0.0)
            else:
                p = p0 + tx
                sA[ty, tx] = A[row, p] if (row < M and p < P) else T(0.0)
            # op(B)[p, c] (tb: B[c, p]; sB holds it transposed, sB[c, p])
            if tb:
                p = p0 + tx
                c = c0 + ty
                sB[ty, tx] = Bm[c, p] if (c < N and p < P) else T(0.0)
            else:
                p = p0 + ty
                sB[ty, tx] = Bm[p, col] if (p < P and col < N) else T(0.0)
            cuda.syncthreads()
            for e in range(S):
                a = sA[e, ty] if ta else sA[ty, e]
                b = sB[tx, e] if tb else sB[e, tx]
                acc += a * b
            cuda.syncthreads()
        if row < M and col < N:
            if epi == BIAS or epi == BIAS_SIGMOID:
                acc += v[col]
            if epi == BIAS_SIGMOID:
                acc = sig(acc)
            if epi == SIGMOID_DERIV:
                h = H[row, col]
                acc = acc * h * (T(1.0) - h)
            C[row, col] = acc

    return k


@functools.lru_cache(maxsize=None)
def colsum_kernel(dtype: str):
    """db[k] = Σ_i dZ[i, k]: one thread per column."""
    T = NUMBA_TYPES[dtype]

    @cuda.jit
    def k(dZ, db):
        j = cuda.grid(1)
        if j < dZ.shape[1]:
            acc = T(0.0)
            for i in range(dZ.shape[0]):
                acc += dZ[i, j]
            db[j] = acc

    return k
