"""Independent float64 references (SciPy where it has one, plain NumPy otherwise).

One function per operation, computing the formula in float64 with no code shared with
fastnn's kernels. The test suite and ``fastnn check`` (:mod:`fastnn.conformance`)
compare every implementation with these."""
from __future__ import annotations

import numpy as np
from scipy import special


def f64(*arrays):
    return [np.asarray(a, dtype=np.float64) for a in arrays]


def linear(X, W, b):
    X, W, b = f64(X, W, b)
    return X @ W.T + b


def linear_sigmoid(X, W, b):
    return special.expit(linear(X, W, b))


def sigmoid(Z):
    return special.expit(np.asarray(Z, np.float64))


def sigmoid_backward(dH, H):
    dH, H = f64(dH, H)
    return dH * H * (1 - H)


def softmax(Z):
    return special.softmax(np.asarray(Z, np.float64), axis=-1)


def log_softmax(Z):
    return special.log_softmax(np.asarray(Z, np.float64), axis=-1)


def _targets(y, N, C):
    if np.asarray(y).ndim == 1:
        Y = np.zeros((N, C))
        Y[np.arange(N), y] = 1.0
        return Y
    return np.asarray(y, np.float64)


def softmax_cross_entropy(Z, y):
    Z = np.asarray(Z, np.float64)
    N, C = Z.shape
    Y = _targets(y, N, C)
    lse = special.logsumexp(Z, axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):          # 0 · inf where Y = 0 and Z = −inf
        terms = np.where(Y != 0, Y * (lse - Z), 0.0)
    return float(np.sum(terms) / N)


def softmax_cross_entropy_grad(Z, y):
    Z = np.asarray(Z, np.float64)
    N, C = Z.shape
    Y = _targets(y, N, C)
    P = special.softmax(Z, axis=1)
    return softmax_cross_entropy(Z, y), (P * Y.sum(axis=1, keepdims=True) - Y) / N


def sigmoid_bce_grad(Z, Y):
    Z, Y = f64(Z, Y)
    N = Z.shape[0]
    J = -np.sum(Y * special.log_expit(Z) + (1 - Y) * special.log_expit(-Z)) / N
    return float(J), (special.expit(Z) - Y) / N


def sigmoid_mse_grad(Z, Y):
    Z, Y = f64(Z, Y)
    N = Z.shape[0]
    s = special.expit(Z)
    return float(np.sum((s - Y) ** 2) / (2 * N)), (s - Y) * s * (1 - s) / N


def linear_backward(dZ, X, W):
    dZ, X, W = f64(dZ, X, W)
    return dZ.T @ X, dZ.sum(axis=0), dZ @ W


def hidden_delta(dZ, W, H):
    dZ, W, H = f64(dZ, W, H)
    return (dZ @ W) * H * (1 - H)


def sgd_update(w, g, lr, momentum=0.0, v=None, weight_decay=0.0, l1=0.0, nesterov=False):
    """One step in float64; returns (w_new, v_new)."""
    w, g = f64(w, g)
    g = g + weight_decay * w
    v_new = None
    if momentum:
        v_new = momentum * np.asarray(v, np.float64) + g
        g = g + momentum * v_new if nesterov else v_new
    w = w - lr * g
    if l1:
        w = np.sign(w) * np.maximum(np.abs(w) - lr * l1, 0.0)
    return w, v_new
