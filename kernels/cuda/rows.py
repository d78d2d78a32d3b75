"""softmax, log_softmax and the softmax cross-entropy on the GPU: one block per row.

Each block takes a row (rows beyond the grid: the block moves on by gridDim.x), its
threads stride over the row's columns, and the row maximum and the sum of
exp(z − m) are reduced in shared memory (:func:`block_max`, :func:`block_sum`), so a
row is read three times from global memory (max, sum, write) by coalesced loads and
written once. In place (``out`` is ``Z``) is safe: each thread writes exactly the
elements it read, after both reductions.

Non-finite input as in the CPU kernels: NaN in a row wins the maximum and makes the row
NaN; −inf entries get probability 0; a row that is all −inf or holds +inf gives NaN.

Cross-entropy: each row's loss term ``(m − z_y) + log Σ exp(z − m)`` is formed in
float64 (for target rows the weighted sum over the row's nonzero weights, reduced in a
float64 shared array) and stored per row; :func:`sum_f64` adds the terms in one block.
Labels outside [0, C) are never read: the first such row is recorded in ``bad`` (the
host raises) and its term and gradient row are left 0.
"""
from __future__ import annotations

import functools
import math

from numba import cuda, float64

from ._config import FLAT_BLOCK, ROW_BLOCK
from ._device import NUMBA_TYPES, block_max, block_sum

B = ROW_BLOCK


@functools.lru_cache(maxsize=None)
def softmax_kernel(dtype: str, log: bool):
    T = NUMBA_TYPES[dtype]

    @cuda.jit
    def k(Z, out):
        sh = cuda.shared.array(B, T)
        t = cuda.threadIdx.x
        R = Z.shape[0]
        C = Z.shape[1]
        i = cuda.blockIdx.x
        while i < R:
            m = T(-math.inf)
            for j in range(t, C, B):
                z = Z[i, j]
                if z > m or z != z:
                    m = z
            m = block_max(sh, m)
            s = T(0.0)
            for j in range(t, C, B):
                s += math.exp(Z[i, j] - m)
            s = block_sum(sh, s)
            if log:
                ls = math.log(s)
                for j in range(t, C, B):
                    out[i, j] = (Z[i, j] - m) - ls
            else:
                for j in range(t, C, B):
                    out[i, j] = math.exp(Z[i, j] - m) / s
            i += cuda.gridDim.x

    return k


@functools.lru_cache(maxsize=None)
def cross_entropy_kernel(dtype: str, labels: bool, grad: bool):
    """Loss terms (and, with ``grad``, dZ = (P·Σ_k Y_ik − Y)/N) of softmax cross-entropy;
    y: (N,) integer labels (``labels``) or (N, C) target rows."""
    T = NUMBA_TYPES[dtype]

    @cuda.jit
    def k(Z, y, dZ, terms, n, bad):
        sh = cuda.shared.array(B, T)
        sh64 = cuda.shared.array(B, float64)
        t = cuda.threadIdx.x
        R = Z.shape[0]
        C = Z.shape[1]
        nn = T(n)                  # N, passed as a float64 (exact) and used in the dtype
        i = cuda.blockIdx.x
        while i < R:
            m = T(-math.inf)
            for j in range(t, C, B):
                z = Z[i, j]
                if z > m or z != z:
                    m = z
            m = block_max(sh, m)
            s = T(0.0)
            for j in range(t, C, B):
                s += math.exp(Z[i, j] - m)
            s = block_sum(sh, s)
            ls = math.log(s)
            if labels:
                lab = y[i]
                ok = lab >= 0 and lab < C
                w = T(1.0)
                if not ok and t == 0:
                    cuda.atomic.min(bad, 0, i)
            else:
                ok = True
                lab = -1
                acc = T(0.0)
                for j in range(t, C, B):
                    acc += y[i, j]
                w = block_sum(sh, acc)
            if grad:
                for j in range(t, C, B):
                    if not ok:
                        dZ[i, j] = T(0.0)
                        continue
                    p = math.exp((Z[i, j] - m) - ls)
                    if labels:
                        tt = T(1.0) if j == lab else T(0.0)
                    else:
                        tt = y[i, j]
                    dZ[i, j] = (p * w - tt) / nn
            if labels:
                if t == 0:
                    if ok:
                        terms[i] = (float64(m) - float64(Z[i, lab])) + float64(ls)
                    else:
                        terms[i] = 0.0
            else:
                a64 = float64(0.0)
                for j in range(t, C, B):
                    yy = y[i, j]
                    if yy != 0:
                        a64 += float64(yy) * ((float64(m) - float64(Z[i, j])) + float64(ls))
                a64 = block_sum(sh64, a64)
                if t == 0:
                    terms[i] = a64
            i += cuda.gridDim.x

    return k


@cuda.jit
def sum_f64(x, out):
    """out[0] = Σ x (float64), in one block of FLAT_BLOCK threads."""
    sh = cuda.shared.array(FLAT_BLOCK, float64)
    t = cuda.threadIdx.x
    acc = float64(0.0)
    for j in range(t, x.shape[0], cuda.blockDim.x):
        acc += x[j]
    acc = block_sum(sh, acc)
    if t == 0:
        out[0] = acc
