"""sigmoid, sigmoid_backward and the sigmoid-output losses on the GPU: grid-stride loops
over the flattened arrays (coalesced, any size with a bounded grid), in the input's
dtype. The losses add their terms in float64 per thread, reduce them per block in
shared memory to one partial sum per block, and ``rows.sum_f64`` adds the partials.

BCE term: ``(z·(1−y) if z >= 0 else −z·y) + log1p(e^−|z|)`` in float64; MSE: the
residual ``r = σ(z) − y`` in the dtype, r² added in float64 (as the CPU kernels).
"""
from __future__ import annotations

import functools
import math

from numba import cuda, float64

from ._config import FLAT_BLOCK
from ._device import NUMBA_TYPES, block_sum, sigmoid_fn


@functools.lru_cache(maxsize=None)
def sigmoid_kernel(dtype: str):
    sig = sigmoid_fn(NUMBA_TYPES[dtype])

    @cuda.jit
    def k(Z, out):
        i = cuda.grid(1)
        stride = cuda.gridsize(1)
        while i < Z.shape[0]:
            out[i] = sig(Z[i])
            i += stride

    return k


@functools.lru_cache(maxsize=None)
def sigmoid_backward_kernel(dtype: str):
    T = NUMBA_TYPES[dtype]

    @cuda.jit
    def k(dH, H, out):
        i = cuda.grid(1)
        stride = cuda.gridsize(1)
        while i < H.shape[0]:
            h = H[i]
            out[i] = dH[i] * h * (T(1.0) - h)
            i += stride

    return k


#: Losses of :func:`sigmoid_loss_kernel`.
BCE, MSE, IDENTITY_MSE = 0, 1, 2


@functools.lru_cache(maxsize=None)
def sigmoid_loss_kernel(dtype: str, mode: int):
    """Z, Y, dZ flat (M,); ``partials[blockIdx.x]``: the block's float64 sum of terms.
    ``mode``: BCE, MSE (sigmoid outputs) or IDENTITY_MSE (r = z − y, dZ = r/N: the
    identity output of fastnn.MLP)."""
    T = NUMBA_TYPES[dtype]
    sig = sigmoid_fn(T)

    @cuda.jit
    def k(Z, Y, dZ, n, partials):
        sh = cuda.shared.array(FLAT_BLOCK, float64)
        i = cuda.grid(1)
        stride = cuda.gridsize(1)
        acc = float64(0.0)
        nn = T(n)                  # N, passed as a float64 (exact) and used in the dtype
        while i < Z.shape[0]:
            z = Z[i]
            y = Y[i]
            if mode == IDENTITY_MSE:
                r = z - y
                r64 = float64(r)
                acc += r64 * r64
                dZ[i] = r / nn
                i += stride
                continue
            yhat = sig(z)
            if mode == BCE:
                z64 = float64(z)
                y64 = float64(y)
                if z64 >= 0:
                    a = z64 * (1.0 - y64)
                else:
                    a = -z64 * y64
                acc += a + math.log1p(math.exp(-abs(z64)))
                dZ[i] = (yhat - y) / nn
            else:
                r = yhat - y
                r64 = float64(r)
                acc += r64 * r64
                dZ[i] = r * yhat * (T(1.0) - yhat) / nn
            i += stride
        acc = block_sum(sh, acc)
        if cuda.threadIdx.x == 0:
            partials[cuda.blockIdx.x] = acc

    return k
