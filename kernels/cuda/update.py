"""sgd_update on the GPU: one grid-stride pass, each parameter read once and written once
(and its velocity, with momentum), L2, momentum (Nesterov or not) and the L1 proximal
step applied in registers in the CPU kernel's order, in the parameters' dtype. Which
terms take part is passed as flags (uniform over the grid: no divergence).

Note: NVVM contracts a·b + c into fused multiply-adds, so a step may differ from the
CPU's (compiled without contraction) in the last bit.
"""
from __future__ import annotations

import functools
import math

from numba import cuda

from ._device import NUMBA_TYPES


@functools.lru_cache(maxsize=None)
def sgd_kernel(dtype: str):
    T = NUMBA_TYPES[dtype]

    @cuda.jit
    def k(p, g, lr_, mu_, v, wd_, thr_, use_wd, use_mu, use_lr, use_l1, nesterov):
        # the scalars come as float64 holding values already rounded to the dtype: exact
        lr = T(lr_)
        mu = T(mu_)
        wd = T(wd_)
        thr = T(thr_)
        i = cuda.grid(1)
        stride = cuda.gridsize(1)
        while i < p.shape[0]:
            w = p[i]
            gg = g[i]
            if use_wd:
                gg = gg + wd * w
            if use_mu:
                vv = mu * v[i] + gg
                v[i] = vv
                if nesterov:
                    gg = gg + mu * vv
                else:
                    gg = vv
            if use_lr:
                w = w - lr * gg
            if use_l1:
                a = abs(w)
                if a > thr:
                    w = math.copysign(a - thr, w)
                elif a <= thr:                  # |w| <= thr, thr = inf included: ±0
                    w = math.copysign(T(0.0), w)
                # NaN: neither, stays NaN
            p[i] = w
            i += stride

    return k
