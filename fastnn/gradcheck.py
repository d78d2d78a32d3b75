"""``fastnn.gradcheck``: backpropagation against central finite differences.

SPEC 7 (seed 004) approximates derivatives numerically; here the approximation
checks the model's backprop: for every parameter θ,

    ∂L/∂θ ≈ (L(θ + h) − L(θ − h)) / (2h)

on a float64 copy of the model (the model itself is not changed), and the result
is the maximum relative error per parameter array,

    max_j |g_j − n_j| / max(|g_j| + |n_j|, atol),

g the backprop gradient, n the numerical one. Values around 1e-7 or below mean the
gradients agree; ``atol`` keeps entries whose gradient is (numerically) zero from
dividing by zero.
"""
from __future__ import annotations

import numpy as np

__all__ = ["gradcheck"]


def gradcheck(model, X, y, *, eps=1e-6, atol=1e-8, impl=None, max_entries=None, seed=0):
    """Maximum relative error of backprop gradients vs central differences.

    Parameters
    ----------
    model : fastnn.MLP (not modified; a float64 copy is checked)
    X, y : data as for ``model.fit``; the loss is the mean loss over them
        (no weight decay or L1 term).
    eps : finite-difference step h.
    atol : floor of the denominator of the relative error.
    impl : implementation of the kernels for the backprop gradients and the losses
        (default: the model's).
    max_entries : check at most this many entries of each parameter array (chosen
        at random with ``seed``), or None for all.

    Returns
    -------
    dict : parameter name ("W1", "b1", ...) -> max relative error (float).
    """
    m = model.astype(np.float64)
    X = m._check_X(X)
    checked_y = m._check_y(y, X.shape[0])
    grads = m.gradients(X, y, impl=impl)
    impl = m._impl(impl)
    rng = np.random.default_rng(seed)

    def loss():
        return m._evaluate(X, *checked_y, impl)[0]

    out = {}
    for name, p in m.parameters().items():
        flat = p.reshape(-1)
        g = grads[name].reshape(-1)
        idx = np.arange(flat.size)
        if max_entries is not None and flat.size > max_entries:
            idx = rng.choice(flat.size, size=max_entries, replace=False)
        worst = 0.0
        for j in idx:
            old = flat[j]
            flat[j] = old + eps
            lp = loss()
            flat[j] = old - eps
            lm = loss()
            flat[j] = old
            num = (lp - lm) / (2 * eps)
            err = abs(g[j] - num) / max(abs(g[j]) + abs(num), atol)
            worst = max(worst, float(err))
        out[name] = worst
    return out
