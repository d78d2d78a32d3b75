"""Device functions shared by the cuda kernels: block reductions in shared memory and
the piecewise sigmoid, per dtype (float32 kernels stay in float32 arithmetic)."""
from __future__ import annotations

import functools
import math

from numba import cuda, float32, float64

from ._config import SIM


@cuda.jit(device=True)
def _block_max_shared(sh, v):
    """The maximum of ``v`` over the block's threads (1-D block, blockDim.x a power of
    two, ``sh`` a shared array of at least blockDim.x): a tree in shared memory; NaN
    wins, so that it propagates. Every thread gets the result."""
    t = cuda.threadIdx.x
    sh[t] = v
    cuda.syncthreads()
    s = cuda.blockDim.x // 2
    while s > 0:
        if t < s:
            b = sh[t + s]
            if b > sh[t] or b != b:
                sh[t] = b
        cuda.syncthreads()
        s //= 2
    r = sh[0]
    cuda.syncthreads()          # sh is reused by the next reduction
    return r


@cuda.jit(device=True)
def _block_sum_shared(sh, v):
    """The sum of ``v`` over the block's threads, as :func:`_block_max_shared`."""
    t = cuda.threadIdx.x
    sh[t] = v
    cuda.syncthreads()
    s = cuda.blockDim.x // 2
    while s > 0:
        if t < s:
            sh[t] += sh[t + s]
        cuda.syncthreads()
        s //= 2
    r = sh[0]
    cuda.syncthreads()
    return r


# The warp-shuffle reductions (real GPUs: the simulator has no shuffles). Each warp
# reduces its 32 values in registers (shfl_down_sync), lane 0 of each writes its result
# to sh[warp], and thread 0 combines the blockDim.x / 32 partials (8 for 256 threads):
# two barriers instead of log2(blockDim.x). blockDim.x must be a multiple of 32.
@cuda.jit(device=True)
def _block_max_shfl(sh, v):
    off = 16
    while off > 0:
        b = cuda.shfl_down_sync(0xFFFFFFFF, v, off)
        if b > v or b != b:
            v = b
        off //= 2
    t = cuda.threadIdx.x
    if t % 32 == 0:
        sh[t // 32] = v
    cuda.syncthreads()
    if t == 0:
        r = sh[0]
        for w in range(1, cuda.blockDim.x // 32):
            b = sh[w]
            if b > r or b != b:
                r = b
        sh[0] = r
    cuda.syncthreads()
    r = sh[0]
    cuda.syncthreads()
    return r


@cuda.jit(device=True)
def _block_sum_shfl(sh, v):
    off = 16
    while off > 0:
        v += cuda.shfl_down_sync(0xFFFFFFFF, v, off)
        off //= 2
    t = cuda.threadIdx.x
    if t % 32 == 0:
        sh[t // 32] = v
    cuda.syncthreads()
    if t == 0:
        r = sh[0]
        for w in range(1, cuda.blockDim.x // 32):
            r += sh[w]
        sh[0] = r
    cuda.syncthreads()
    r = sh[0]
    cuda.syncthreads()
    return r


#: The block reductions the kernels use: shared memory on the simulator (which runs it in
#: the tests), warp shuffles on a GPU (checked by compiling to PTX: tests/cuda_ptx_check.py).
block_max = _block_max_shared if SIM else _block_max_shfl
block_sum = _block_sum_shared if SIM else _block_sum_shfl


@functools.lru_cache(maxsize=None)
def sigmoid_fn(T):
    """σ for numba float type ``T``: 1/(1+e^−z) for z >= 0, e^z/(1+e^z) below (no
    positive exponent: no overflow), in T's arithmetic; NaN propagates."""
    @cuda.jit(device=True)
    def sig(z):
        o = T(1.0)
        if z >= 0:
            return o / (o + math.exp(-z))
        e = math.exp(z)
        return e / (o + e)

    return sig


NUMBA_TYPES = {"float32": float32, "float64": float64}
