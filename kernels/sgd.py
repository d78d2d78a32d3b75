"""In-place SGD update with momentum, L2 weight decay and L1 soft thresholding.

SPEC "Updates". One pass over the parameters, in this exact order (the order of
torch.optim.SGD with dampening = 0, then the proximal L1 step):

    g ← grad + weight_decay · w                 (L2: adds λ w to the gradient)
    if momentum > 0:
        v ← momentum · v + g                     (classical momentum)
        g ← g + momentum · v   if nesterov else  v
    w ← w − lr · g
    if l1 > 0:
        w ← sign(w) · max(|w| − lr · l1, 0)      (proximal step: |w| <= lr·l1 -> exactly 0)

With momentum = weight_decay = l1 = 0 this is exactly ``w -= lr * grad``.

Raw kernels: in place, no validation. param, grad, velocity are 1-D contiguous
of one dtype (the API flattens); ``velocity`` is ignored (and may be any array of
the dtype, e.g. empty) when momentum == 0. Scalars are rounded to the parameter's
dtype before use, so a float32 update is computed in float32. The jit kernel is
compiled without FMA contraction: plain SGD agrees bit for bit with NumPy.

    sgd_update(param, grad, lr, momentum, velocity, weight_decay, l1, nesterov)
"""
from __future__ import annotations

import numpy as np

from numba import prange

from ._config import jit_strict, pjit_strict
from ._registry import register


@register("sgd_update", "loop", "w ← w − lr·(g + λw) (+momentum, +L1 prox), in place")
def sgd_update_loop(param, grad, lr, momentum, velocity, weight_decay, l1, nesterov):
    T = param.dtype.type
    lr, mu, wd, l1 = T(lr), T(momentum), T(weight_decay), T(l1)
    thr = lr * l1
    for i in range(param.shape[0]):
        w = param[i]
        g = grad[i] + wd * w if wd != 0 else grad[i]
        if mu != 0:
            v = mu * velocity[i] + g
            velocity[i] = v
            g = g + mu * v if nesterov else v
        w = w - lr * g
        if l1 != 0:
            a = abs(w) - thr
            w = np.copysign(a, w) if a > 0 else T(0) * w   # sign(w)·max(|w| − thr, 0)
        param[i] = w


@register("sgd_update", "vectorized")
def sgd_update_vectorized(param, grad, lr, momentum, velocity, weight_decay, l1, nesterov):
    T = param.dtype.type
    lr, mu, wd, l1 = T(lr), T(momentum), T(weight_decay), T(l1)
    g = grad + wd * param if wd != 0 else grad
    if mu != 0:
        velocity *= mu
        velocity += g
        g = g + mu * velocity if nesterov else velocity
    if l1 == 0:
        param -= lr * g
        return
    w = param - lr * g
    np.multiply(np.sign(w), np.maximum(np.abs(w) - lr * l1, 0), out=param)


def _sgd_update(param, grad, lr, momentum, velocity, weight_decay, l1, nesterov):
    # compiled twice below: serially (where prange is range) and with parallel=True
    T = param.dtype.type
    lr_ = T(lr)
    mu = T(momentum)
    wd = T(weight_decay)
    thr = lr_ * T(l1)
    zero = T(0.0)
    n = param.shape[0]
    if momentum == 0 and weight_decay == 0 and l1 == 0:
        for i in prange(n):                          # plain SGD: an axpy
            param[i] -= lr_ * grad[i]
    elif momentum == 0:
        for i in prange(n):
            w = param[i]
            w = w - lr_ * (grad[i] + wd * w)
            a = abs(w) - thr
            param[i] = (np.copysign(a, w) if a > zero else zero * w) if l1 != 0 else w
    else:
        for i in prange(n):
            w = param[i]
            g = grad[i] + wd * w
            v = mu * velocity[i] + g
            velocity[i] = v
            if nesterov:
                g = g + mu * v
            else:
                g = v
            w = w - lr_ * g
            if l1 != 0:
                a = abs(w) - thr
                w = np.copysign(a, w) if a > zero else zero * w
            param[i] = w


#: Serial update (callable from other jit code, e.g. the training epoch).
sgd_update_jit = jit_strict(_sgd_update)
#: Parallel update: elementwise, so the result is the same for any number of threads.
sgd_update_parallel = pjit_strict(_sgd_update)

#: Parameter vectors of at least this many elements are updated by all threads.
PARALLEL_MIN_ELEMS = 1 << 18


@register("sgd_update", "jit")
def sgd_update_dispatch(param, grad, lr, momentum, velocity, weight_decay, l1, nesterov):
    """Serial below PARALLEL_MIN_ELEMS parameters, parallel above."""
    if param.shape[0] >= PARALLEL_MIN_ELEMS:
        sgd_update_parallel(param, grad, lr, momentum, velocity, weight_decay, l1, nesterov)
    else:
        sgd_update_jit(param, grad, lr, momentum, velocity, weight_decay, l1, nesterov)
