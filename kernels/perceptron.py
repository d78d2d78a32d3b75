"""The perceptron and ADALINE learning rules: one epoch over the samples, in place.

Course notes 003 ("Regla de aprendizaje del perceptrón", "ADaptive LInear NEuron").
The perceptron, for each sample i of the epoch, in the given order::

    s    = xᵢᵀ w + b
    ŷ    = step(s) = 1 if s >= θ else 0          (θ the threshold: 0 in the notes'
    err  = yᵢ − ŷ                                  algorithm box, 1 in their gates)
    w   ← w + η · err · xᵢ                        (only where err ≠ 0: "corrige
    b   ← b + η · err      (if fit_intercept)      únicamente ... las entradas activas")

returning the number of samples with err ≠ 0 (misclassifications during the epoch).
ADALINE (the Widrow–Hoff delta rule) is the same loop with the real-valued
prediction and no step::

    err  = yᵢ − (xᵢᵀ w + b)
    w   ← w + η · err · xᵢ,   b ← b + η · err      (if fit_intercept)

which is online SGD on ½ (y − ŷ)² (SPEC "Updates"; SPEC worked number 3 is exactly
this rule on a linear regression), returning the epoch's sum of squared errors
Σᵢ errᵢ², each err taken before its sample's update.

Both rules are sequential in the samples: each update depends on the last, so no
implementation vectorises across samples; ``vectorized`` vectorises the dot product
and the update of one sample (the notes' "Vectorizado" box).

Arithmetic order, the same in all three implementations, so that they give the same
bits: ``s`` is summed left to right, ``s = x₀w₀; s = s + xⱼwⱼ`` for j = 1..D−1, then
``s + b`` (NumPy's ``add.accumulate`` is that sequential sum; the jit kernels have no
``reassoc`` and no FMA contraction); ``u = η·err`` and ``wⱼ = wⱼ + u·xⱼ`` with two
roundings; all of it in the arrays' dtype (η and θ rounded to it first). The sum of
squared errors is accumulated in float64 and rounded to the dtype at the end.

Raw kernels: destination passing, no validation (an index in ``order`` outside [0, N)
reads out of bounds in jit code). X (N, D) C-contiguous, D >= 1; y (N,), w (D,), b (1,)
of X's dtype (w and b updated in place); order (M,) intp sample indices (any M >= 0,
repeats allowed)::

    perceptron_epoch(X, y, w, b, eta, threshold, order, fit_intercept) -> int errors
    adaline_epoch(X, y, w, b, eta, order, fit_intercept)                -> SSE (X's dtype)

ADALINE has no threshold while it learns (it learns on the real-valued output); one
matters only when its output is turned into a class (``fastnn.Adaline.predict``).
"""
from __future__ import annotations

import numpy as np

from ._config import jit_strict
from ._registry import register
from .machine.scalar import as_dtype_scalar

_DOC_P = "perceptron: ŷ = step(xᵀw + b ≥ θ), w += η(y − ŷ)x, b += η(y − ŷ), per sample; → #errors"
_DOC_A = "ADALINE: err = y − (xᵀw + b), w += η·err·x, b += η·err, per sample; → Σ err²"


# --- reference: the notes' loops, one scalar at a time, in the dtype -------------------
def _net_loop(X, i, w, b):
    s = X[i, 0] * w[0]
    for j in range(1, X.shape[1]):
        s = s + X[i, j] * w[j]
    return s + b[0]


def _update_loop(X, i, w, b, u, fit_intercept):
    for j in range(X.shape[1]):
        w[j] = w[j] + u * X[i, j]
    if fit_intercept:
        b[0] = b[0] + u


@register("perceptron_epoch", "loop", _DOC_P)
def perceptron_epoch_loop(X, y, w, b, eta, threshold, order, fit_intercept):
    T = X.dtype.type
    eta, theta, one, zero = T(eta), T(threshold), T(1), T(0)
    errors = 0
    for k in range(order.shape[0]):
        i = order[k]
        yhat = one if _net_loop(X, i, w, b) >= theta else zero
        err = y[i] - yhat
        if err != 0:
            errors += 1
            _update_loop(X, i, w, b, eta * err, fit_intercept)
    return errors


@register("adaline_epoch", "loop", _DOC_A)
def adaline_epoch_loop(X, y, w, b, eta, order, fit_intercept):
    T = X.dtype.type
    eta = T(eta)
    sse = 0.0
    for k in range(order.shape[0]):
        i = order[k]
        err = y[i] - _net_loop(X, i, w, b)
        e = float(err)
        sse += e * e
        _update_loop(X, i, w, b, eta * err, fit_intercept)
    return as_dtype_scalar(sse, X.dtype)


# --- NumPy: one sample at a time (the rule is sequential), its features at once -------
def _net_vectorized(x, w, b):
    # add.accumulate sums left to right (np.dot, np.sum would sum in another order)
    return np.add.accumulate(x * w)[-1] + b[0]


@register("perceptron_epoch", "vectorized")
def perceptron_epoch_vectorized(X, y, w, b, eta, threshold, order, fit_intercept):
    """Sequential over the samples (each update depends on the last); the dot product
    and the update of one sample are NumPy operations over its features."""
    T = X.dtype.type
    eta, theta = T(eta), T(threshold)
    errors = 0
    for i in order:
        x = X[i]
        err = y[i] - (T(1) if _net_vectorized(x, w, b) >= theta else T(0))
        if err != 0:
            errors += 1
            u = eta * err
            w += u * x
            if fit_intercept:
                b += u
    return errors


@register("adaline_epoch", "vectorized")
def adaline_epoch_vectorized(X, y, w, b, eta, order, fit_intercept):
    """Sequential over the samples; per sample, NumPy over the features."""
    eta = X.dtype.type(eta)
    sse = 0.0
    for i in order:
        x = X[i]
        err = y[i] - _net_vectorized(x, w, b)
        e = float(err)
        sse += e * e
        u = eta * err
        w += u * x
        if fit_intercept:
            b += u
    return as_dtype_scalar(sse, X.dtype)


# --- Numba: the loops compiled, serial, without FMA contraction or reassociation -------
@jit_strict
def _net_jit(X, i, w, b):
    s = X[i, 0] * w[0]
    for j in range(1, X.shape[1]):
        s = s + X[i, j] * w[j]
    return s + b[0]


@jit_strict
def _update_jit(X, i, w, b, u, fit_intercept):
    for j in range(X.shape[1]):
        w[j] = w[j] + u * X[i, j]
    if fit_intercept:
        b[0] = b[0] + u


@jit_strict
def perceptron_epoch_jit(X, y, w, b, eta, threshold, order, fit_intercept):
    T = X.dtype.type
    eta_ = T(eta)
    theta = T(threshold)
    one = T(1.0)
    zero = T(0.0)
    errors = 0
    for k in range(order.shape[0]):
        i = order[k]
        yhat = one if _net_jit(X, i, w, b) >= theta else zero
        err = y[i] - yhat
        if err != zero:
            errors += 1
            _update_jit(X, i, w, b, eta_ * err, fit_intercept)
    return errors


@jit_strict
def adaline_epoch_jit(X, y, w, b, eta, order, fit_intercept):
    T = X.dtype.type
    eta_ = T(eta)
    sse = 0.0
    for k in range(order.shape[0]):
        i = order[k]
        err = y[i] - _net_jit(X, i, w, b)
        e = np.float64(err)
        sse += e * e
        _update_jit(X, i, w, b, eta_ * err, fit_intercept)
    return sse


register("perceptron_epoch", "jit")(perceptron_epoch_jit)


@register("adaline_epoch", "jit")
def adaline_epoch_dispatch(X, y, w, b, eta, order, fit_intercept):
    """The compiled epoch; its float64 sum of squares rounded to X's dtype."""
    return as_dtype_scalar(float(adaline_epoch_jit(X, y, w, b, eta, order, fit_intercept)),
                           X.dtype)


def make_inputs(op, dtype, N=8, D=16, seed=0):
    """Arguments for one call of ``op`` ("perceptron_epoch" or "adaline_epoch") on N
    random samples of D features: a linearly separable problem with 0/1 targets,
    w = b = 0, η = 1 (perceptron) or 1/(4D) (ADALINE: stable for features of unit
    variance), every sample once in order. For the benchmarks and the cold-start
    checks (``fastnn.bench``'s own table does not list these operations)."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D)).astype(dt)
    y = (X.astype(np.float64) @ rng.standard_normal(D) > 0).astype(dt)
    w, b, order = np.zeros(D, dt), np.zeros(1, dt), np.arange(N, dtype=np.intp)
    if op == "perceptron_epoch":
        return (X, y, w, b, 1.0, 0.0, order, True)
    if op == "adaline_epoch":
        return (X, y, w, b, 1.0 / (4 * D), order, True)
    raise KeyError(op)
