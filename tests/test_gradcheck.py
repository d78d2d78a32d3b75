"""Central finite differences in float64 for every backward/grad operation and for a
complete 1-hidden-layer sigmoid/softmax network (loss w.r.t. W1, b1, W2, b2)."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from numerics import IMPLS

H_STEP = 1e-6
MAX_REL, MEAN_REL = 1e-6, 1e-8


def numeric_grad(f, x):
    """Central differences of scalar f() w.r.t. every entry of x (modified in place)."""
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + H_STEP
        fp = f()
        flat[i] = old - H_STEP
        fm = f()
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * H_STEP)
    return g


def check(analytic, numeric, what):
    a, n = np.asarray(analytic).ravel(), np.asarray(numeric).ravel()
    rel = np.abs(a - n) / np.maximum(np.maximum(np.abs(a), np.abs(n)), 1e-7)
    assert rel.max() < MAX_REL, f"{what}: max relative error {rel.max():.2e}"
    assert rel.mean() < MEAN_REL * 100, f"{what}: mean relative error {rel.mean():.2e}"
    assert np.abs(a).max() > 0, f"{what}: gradient is identically zero (test is vacuous)"


@pytest.fixture
def r():
    return np.random.default_rng(7)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("targets", ["labels", "rows"])
def test_softmax_cross_entropy_grad(impl, targets, r):
    Z = r.standard_normal((5, 4)) * 2
    y = r.integers(0, 4, 5)
    if targets == "rows":
        y = r.dirichlet(np.ones(4), 5)
    _, dZ = fastnn.softmax_cross_entropy_grad(Z, y, impl=impl)
    num = numeric_grad(lambda: float(fastnn.softmax_cross_entropy(Z, y, impl=impl)), Z)
    check(dZ, num, "dL/dZ")


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("op", ["sigmoid_bce_grad", "sigmoid_mse_grad"])
def test_sigmoid_output_grads(impl, op, r):
    Z = r.standard_normal((6, 3)) * 2
    Y = r.uniform(0, 1, (6, 3))
    fn = getattr(fastnn, op)
    _, dZ = fn(Z, Y, impl=impl)
    num = numeric_grad(lambda: float(fn(Z, Y, impl=impl)[0]), Z)
    check(dZ, num, op)


@pytest.mark.parametrize("impl", IMPLS)
def test_linear_backward_and_sigmoid_backward(impl, r):
    X, W, b = r.standard_normal((5, 4)), r.standard_normal((3, 4)), r.standard_normal(3)
    G = r.standard_normal((5, 3))            # upstream gradient of L = Σ G ⊙ Z
    loss = lambda: float(np.sum(G * fastnn.linear(X, W, b, impl=impl)))  # noqa: E731
    dW, db, dX = fastnn.linear_backward(G, X, W, impl=impl)
    check(dW, numeric_grad(loss, W), "dW")
    check(db, numeric_grad(loss, b), "db")
    check(dX, numeric_grad(loss, X), "dX")
    A = r.standard_normal((5, 4))
    G2 = r.standard_normal((5, 4))
    loss2 = lambda: float(np.sum(G2 * fastnn.sigmoid(A, impl=impl)))  # noqa: E731
    dA = fastnn.sigmoid_backward(G2, fastnn.sigmoid(A, impl=impl), impl=impl)
    check(dA, numeric_grad(loss2, A), "σ backward")


@pytest.mark.parametrize("impl", IMPLS)
def test_hidden_delta(impl, r):
    A = r.standard_normal((5, 4))            # pre-activation of the hidden layer
    W, b = r.standard_normal((3, 4)), r.standard_normal(3)
    G = r.standard_normal((5, 3))            # upstream gradient of the next layer's output
    loss = lambda: float(np.sum(G * fastnn.linear(fastnn.sigmoid(A, impl=impl), W, b, impl=impl)))  # noqa: E731
    d = fastnn.hidden_delta(G, W, fastnn.sigmoid(A, impl=impl), impl=impl)
    check(d, numeric_grad(loss, A), "δ¹")


def network_loss_and_grads(X, y, W1, b1, W2, b2, impl):
    """A 1-hidden-layer sigmoid/softmax network, forward and backward on the kernels."""
    H = fastnn.linear_sigmoid(X, W1, b1, impl=impl)
    Z = fastnn.linear(H, W2, b2, impl=impl)
    loss, dZ = fastnn.softmax_cross_entropy_grad(Z, y, impl=impl)
    dW2, db2, _ = fastnn.linear_backward(dZ, H, W2, compute_dX=False, impl=impl)
    d1 = fastnn.hidden_delta(dZ, W2, H, impl=impl)
    dW1, db1, _ = fastnn.linear_backward(d1, X, W1, compute_dX=False, impl=impl)
    return float(loss), {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


@pytest.mark.parametrize("impl", IMPLS)
def test_one_hidden_layer_network(impl, r):
    X = r.standard_normal((8, 5))
    y = r.integers(0, 3, 8)
    params = {"W1": r.standard_normal((6, 5)), "b1": r.standard_normal(6) * 0.1,
              "W2": r.standard_normal((3, 6)), "b2": r.standard_normal(3) * 0.1}
    _, grads = network_loss_and_grads(X, y, *params.values(), impl=impl)
    f = lambda: network_loss_and_grads(X, y, *params.values(), impl=impl)[0]  # noqa: E731
    for name, p in params.items():
        check(grads[name], numeric_grad(f, p), name)
