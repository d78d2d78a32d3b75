"""``fastnn.gradcheck``: backpropagation against central finite differences, or
against automatic differentiation.

SPEC 7 (seed 004) approximates derivatives numerically; here the approximation
checks the model's backprop: for every parameter θ,

    ∂L/∂θ ≈ (L(θ + h) − L(θ − h)) / (2h)

on a float64 copy of the model (the model itself is not changed). With
``method="autodiff"`` the reference is instead the gradient of the loss written
out from SPEC's formulas with :mod:`fastnn.autodiff` (reverse mode): exact up to
rounding, so the errors are ~1e-15 instead of ~1e-9, and independent of the
hand-written backward kernels. The result is the maximum relative error per
parameter array,

    max_j |g_j − n_j| / max(|g_j| + |n_j|, atol),

g the backprop gradient, n the numerical one. Values around 1e-7 or below mean the
gradients agree; ``atol`` keeps entries whose gradient is (numerically) zero from
dividing by zero.
"""
from __future__ import annotations

import numpy as np

from .train.checks import check_X, check_y
from .train.python_epoch import evaluate

__all__ = ["gradcheck"]


def _autodiff_loss(m, X, labels, Y):
    """The model's mean loss as a function of its parameters (W1, b1, W2, ...), written
    with fastnn.autodiff from SPEC "Forward" and "Losses" (not from the kernels)."""
    from . import autodiff as ad
    L = m.n_layers

    def loss(*params):
        A = X
        for l in range(L):
            W, b = params[2 * l], params[2 * l + 1]
            Z = A @ W.T + b                                   # Z = A Wᵀ + b
            if l < L - 1:
                A = ad.sigmoid(Z) if m.hidden == "sigmoid" else Z
        if m.output == "softmax":
            return ad.softmax_cross_entropy(Z, labels)
        if m.loss == "cross_entropy":
            return ad.binary_cross_entropy(Z, Y)
        return ad.mse(ad.sigmoid(Z) if m.output == "sigmoid" else Z, Y)
    return loss


def gradcheck(model, X, y, *, eps=1e-6, atol=1e-8, impl=None, max_entries=None, seed=0,
              method="central"):
    """Maximum relative error of backprop gradients vs central differences (or autodiff).

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
    method : "central" (central differences with step ``eps``) or "autodiff" (reverse
        mode through :mod:`fastnn.autodiff`: every entry in one pass; ``eps`` is not
        used).

    Returns
    -------
    dict : parameter name ("W1", "b1", ...) -> max relative error (float).
    """
    if method not in ("central", "autodiff"):
        raise ValueError(f"method: expected 'central' or 'autodiff', got {method!r}")
    m = model.astype(np.float64)
    X = check_X(m.net, X)
    checked_y = check_y(m.net, y, X.shape[0])
    grads = m.gradients(X, y, impl=impl)
    impl = m.resolve_impl(impl)
    rng = np.random.default_rng(seed)
    if method == "autodiff":
        from .autodiff import grad
        params = m.parameters()
        f = _autodiff_loss(m, X, checked_y[0], checked_y[1])
        ref = grad(f, argnums=tuple(range(len(params))))(*(p.copy() for p in params.values()))
        out = {}
        for (name, p), r in zip(params.items(), ref):
            g, r = grads[name].reshape(-1), r.reshape(-1)
            idx = np.arange(g.size)
            if max_entries is not None and g.size > max_entries:
                idx = rng.choice(g.size, size=max_entries, replace=False)
            err = np.abs(g[idx] - r[idx]) / np.maximum(np.abs(g[idx]) + np.abs(r[idx]), atol)
            out[name] = float(err.max()) if idx.size else 0.0
        return out

    def loss():
        return evaluate(m.net, X, *checked_y, impl)[0]

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
