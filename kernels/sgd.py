"""In-place SGD update with momentum, L2 weight decay and L1 soft thresholding.

SPEC "Updates". One pass over the parameters, in this exact order (the order of
torch.optim.SGD with dampening = 0, then the proximal L1 step):

    g ← grad + weight_decay · w                 (L2: adds λ w to the gradient)
    if momentum > 0:
        v ← momentum · v + g                     (classical momentum)
        g ← g + momentum · v   if nesterov else  v
    w ← w − lr · g                              (skipped when lr rounds to 0: w stays w)
    if l1 > 0:
        w ← sign(w) · max(|w| − lr · l1, 0)      (proximal step: |w| <= lr·l1 -> exactly ±0)

With momentum = weight_decay = l1 = 0 this is exactly ``w -= lr * grad``.

Raw kernels: in place, no validation. param, grad, velocity are 1-D contiguous
of one dtype (the API flattens); ``velocity`` is ignored (and may be any array of
the dtype, e.g. empty) when momentum == 0. Scalars are rounded to the parameter's
dtype before use (round to nearest: ``T(lr)``, ``T(momentum)``, ...), so a float32
update is computed in float32; which terms take part (momentum, weight decay, L1)
is decided by the scalars as given (the API rejects a nonzero value that rounds to
0, or one that rounds to inf, so the two readings agree). The jit kernel is
compiled without FMA contraction: plain SGD agrees bit for bit with NumPy.

Extremes (finite input): every step is rounded to the dtype, so an intermediate
beyond its range (grad + wd·w, lr·g) is ±inf, as NumPy's arithmetic in that dtype
gives, and the parameter becomes ±inf; never NaN, and no warning. The L1 threshold
lr·l1 is its product in the dtype: where it overflows (lr = l1 = 1e20 in float32) it
is +inf and every parameter becomes ±0, an infinite parameter included (|w| <= inf),
so that ``|w| − thr`` (inf − inf) is never formed as a result. NaN propagates.

    sgd_update(param, grad, lr, momentum, velocity, weight_decay, l1, nesterov)
"""
from __future__ import annotations

import numpy as np

from numba import prange

from ._config import jit_strict, pjit_strict
from ._registry import register
from .tuning import SGD_PARALLEL_MIN_ELEMS


def _soft_threshold_py(w, thr, zero):
    """sign(w)·max(|w| − thr, 0) for thr >= 0, thr = inf included: ±0 when |w| <= thr
    (compared, never subtracted, so that inf − inf is never formed), NaN stays NaN."""
    a = abs(w)
    if a > thr:
        return np.copysign(a - thr, w)
    return np.copysign(zero, w) if a <= thr else w


@register("sgd_update", "loop", "w ← w − lr·(g + λw) (+momentum, +L1 prox), in place")
def sgd_update_loop(param, grad, lr, momentum, velocity, weight_decay, l1, nesterov):
    T = param.dtype.type
    use_wd, use_mu, use_l1 = weight_decay != 0, momentum != 0, l1 != 0    # as given
    lr, mu, wd, l1 = T(lr), T(momentum), T(weight_decay), T(l1)
    use_lr = lr != 0                      # lr·g with lr = 0 skipped, as in the jit kernel
    zero = T(0)
    with np.errstate(over="ignore"):      # dtype arithmetic beyond its range: ±inf (above)
        thr = lr * l1
        for i in range(param.shape[0]):
            w = param[i]
            g = grad[i] + wd * w if use_wd else grad[i]
            if use_mu:
                v = mu * velocity[i] + g
                velocity[i] = v
                g = g + mu * v if nesterov else v
            if use_lr:
                w = w - lr * g
            if use_l1:
                w = _soft_threshold_py(w, thr, zero)
            param[i] = w


@register("sgd_update", "vectorized")
def sgd_update_vectorized(param, grad, lr, momentum, velocity, weight_decay, l1, nesterov):
    T = param.dtype.type
    use_wd, use_mu, use_l1 = weight_decay != 0, momentum != 0, l1 != 0    # as given
    lr, mu, wd, l1 = T(lr), T(momentum), T(weight_decay), T(l1)
    use_lr = lr != 0                      # lr·g with lr = 0 skipped, as in the jit kernel
    with np.errstate(over="ignore"):      # dtype arithmetic beyond its range: ±inf (above)
        g = grad + wd * param if use_wd else grad
        if use_mu:
            velocity *= mu
            velocity += g
            g = g + mu * velocity if nesterov else velocity
        if not use_l1:
            if use_lr:
                param -= lr * g
            return
        w = param - lr * g if use_lr else param
        thr = lr * l1
        if np.isinf(thr):                 # lr·l1 overflowed: all but NaN become ±0
            np.copysign(np.where(np.isnan(w), w, T(0)), w, out=param)
        else:                             # (np.maximum keeps a NaN)
            np.copysign(np.maximum(np.abs(w) - thr, T(0)), w, out=param)


def _sgd_update(param, grad, lr, momentum, velocity, weight_decay, l1, nesterov):
    # compiled twice below: serially (where prange is range) and with parallel=True
    # (soft threshold as _soft_threshold_py; lr_ == 0 leaves w as it is: 0·inf would be
    # NaN where grad + wd·w overflowed)
    T = param.dtype.type
    lr_ = T(lr)
    mu = T(momentum)
    wd = T(weight_decay)
    thr = lr_ * T(l1)
    zero = T(0.0)
    n = param.shape[0]
    if momentum == 0 and weight_decay == 0 and l1 == 0:
        if lr_ != zero:
            for i in prange(n):                      # plain SGD: an axpy
                param[i] -= lr_ * grad[i]
    elif momentum == 0:
        for i in prange(n):
            w = param[i]
            w = w if lr_ == zero else w - lr_ * (grad[i] + wd * w)
            a = abs(w)
            s = (np.copysign(a - thr, w) if a > thr
                 else (np.copysign(zero, w) if a <= thr else w))
            param[i] = s if l1 != 0 else w
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
            w = w if lr_ == zero else w - lr_ * g
            if l1 != 0:
                a = abs(w)
                w = (np.copysign(a - thr, w) if a > thr
                     else (np.copysign(zero, w) if a <= thr else w))
            param[i] = w


#: Serial update (callable from other jit code, e.g. the training epoch).
sgd_update_jit = jit_strict(_sgd_update)
#: Parallel update: elementwise, so the result is the same for any number of threads.
sgd_update_parallel = pjit_strict(_sgd_update)



@register("sgd_update", "jit")
def sgd_update_dispatch(param, grad, lr, momentum, velocity, weight_decay, l1, nesterov):
    """Serial below SGD_PARALLEL_MIN_ELEMS parameters, parallel above."""
    if param.shape[0] >= SGD_PARALLEL_MIN_ELEMS:
        sgd_update_parallel(param, grad, lr, momentum, velocity, weight_decay, l1, nesterov)
    else:
        sgd_update_jit(param, grad, lr, momentum, velocity, weight_decay, l1, nesterov)
