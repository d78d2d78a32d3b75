"""Device functions shared by the cuda kernels: block reductions in shared memory and
the piecewise sigmoid, per dtype (float32 kernels stay in float32 arithmetic)."""
from __future__ import annotations

import functools
import math

from numba import cuda, float32, float64

from ._config import SIM


@cuda.jit(device=True)
def block_max(sh, v):
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
def block_sum(sh, v):
    """The sum of ``v`` over the block's threads, as :func:`block_max`."""
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


if not SIM:
    @cuda.jit(device=True)
    def warp_sum(v):            # pragma: no cover - real GPUs only (no shuffles in the simulator)
        """Sum over a full warp with shuffles: the path a GPU build may take for the last
        32 lanes (kept here for the GPU session; the registered kernels use block_sum)."""
        off = 16
        while off > 0:
            v += cuda.shfl_down_sync(0xFFFFFFFF, v, off)
            off //= 2
        return v


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
