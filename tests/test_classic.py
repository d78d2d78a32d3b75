"""The classic models of the course notes (SPEC), trained with fastnn.MLP."""
from __future__ import annotations

import numpy as np
import pytest

from fastnn.model import MLP

IMPLS = ("loop", "vectorized", "jit")


def _seed_loop(x, y, lr, epochs):
    """SPEC 3 as the seed writes it, in float64: w ← w + η (y − ŷ) x, b ← b + η (y − ŷ)."""
    w = b = 0.0
    trace = []
    for _ in range(epochs):
        for xi, yi in zip(x, y):
            err = yi - (w * xi + b)
            w += lr * err * xi
            b += lr * err
            trace.append((w, b))
    return trace


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", (np.float64, np.float32))
def test_linear_regression_online_sgd_reproduces_spec3(impl, dtype):
    x, y = np.array([50.0, 80.0, 120.0]), np.array([150.0, 200.0, 280.0])
    trace = _seed_loop(x, y, 1e-4, 10)
    # the seed's printed numbers, exact to their digits (SPEC 3)
    np.testing.assert_allclose(trace[0], (0.75, 0.015), rtol=1e-12)
    np.testing.assert_allclose(trace[1], (1.86988, 0.0289985), rtol=1e-5)
    np.testing.assert_allclose(trace[2], (2.5369, 0.03455), rtol=3e-4)
    np.testing.assert_allclose(trace[-1], (2.2673, 0.0515), rtol=3e-4)
    rtol = 1e-12 if dtype == np.float64 else 1e-4
    m = MLP([1, 1], output="identity", loss="mse", dtype=dtype, impl=impl)
    m.set_parameters(weights=[[[0.0]]], biases=[[0.0]])                  # w = b = 0
    for i in range(3):                                                     # sample by sample
        m.fit(x[i:i + 1], y[i:i + 1], epochs=1, batch_size=1, lr=1e-4, shuffle=False)
        np.testing.assert_allclose((m.weights[0].item(), m.biases[0].item()), trace[i], rtol=rtol)
    m.set_parameters(weights=[[[0.0]]], biases=[[0.0]])
    h = m.fit(x, y, epochs=10, batch_size=1, lr=1e-4, shuffle=False)
    np.testing.assert_allclose((m.weights[0].item(), m.biases[0].item()), trace[-1], rtol=rtol)
    assert len(h) == 10 and np.isnan(h.accuracy[0])


def test_softmax_regression_reproduces_spec2_loss():
    A = np.array([[0.3792, 0.3104, 0.3104], [0.3072, 0.4147, 0.2780],
                  [0.4263, 0.2248, 0.3490], [0.2668, 0.2978, 0.4354]])
    y = np.array([0, 1, 2, 2])
    for impl in IMPLS:
        m = MLP([3, 3], dtype=np.float64, impl=impl)          # zero hidden layers
        m.set_parameters(weights=[np.eye(3)], biases=[np.zeros(3)])
        loss = m.evaluate(np.log(A), y)["loss"]                # logits Z = log A
        assert loss == pytest.approx(0.93352, abs=5e-6)
        assert loss == pytest.approx(np.mean([0.969692, 0.880200, 1.05268, 0.831490]), rel=1e-5)


@pytest.mark.parametrize("impl", ("vectorized", "jit"))
def test_logistic_regression_learns_a_separable_problem(impl):
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(-2, 0.7, (60, 2)), rng.normal(2, 0.7, (60, 2))])
    y = np.repeat([0, 1], 60)
    m = MLP([2, 1], output="sigmoid", loss="cross_entropy", seed=0, impl=impl)
    h = m.fit(X, y, epochs=30, batch_size=8, lr=0.5)
    assert m.score(X, y) == 1.0
    assert h.loss[-1] < h.loss[0]
    assert set(np.unique(m.predict(X))) == {0, 1}


@pytest.mark.parametrize("impl", ("vectorized", "jit"))
def test_xor_2_2_1_sigmoid_quadratic_cost_batch_gd(impl):
    # SPEC 4: N=4, 2-2-1 sigmoid network, quadratic cost, batch gradient descent.
    # seed=1, lr=2, 5000 epochs learns it (seeds 0 and 4 end in the classic
    # local minimum where two outputs sit at 0.5).
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    y = np.array([0, 1, 1, 0])
    m = MLP([2, 2, 1], hidden="sigmoid", output="sigmoid", loss="mse", seed=1, impl=impl)
    epochs = 5000 if impl == "jit" else 2500
    m.fit(X, y, epochs=epochs, batch_size=None, lr=2.0 if impl == "jit" else 4.0)
    p = m.predict_proba(X)[:, 0]
    assert (p[[0, 3]] < 0.5).all() and (p[[1, 2]] > 0.5).all(), p
    assert (m.predict(X) == y).all()


def test_linear_bottleneck_rank_at_most_width():
    # SPEC 8: a 100-10-100 linear network computes W2 W1 of rank <= 10;
    # a 20-20 one learns a full-rank map.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 100))
    M = rng.standard_normal((100, 100)) / 10
    m = MLP([100, 10, 100], hidden="identity", output="identity", loss="mse",
            dtype=np.float64, impl="jit")
    h = m.fit(X, X @ M.T, epochs=20, batch_size=20, lr=0.05)
    assert h.loss[-1] < h.loss[0]
    prod = m.weights[1] @ m.weights[0]
    assert prod.shape == (100, 100)
    assert np.linalg.matrix_rank(prod) <= 10
    X2 = rng.standard_normal((400, 20))
    M2 = rng.standard_normal((20, 20)) / 5
    full = MLP([20, 20], output="identity", loss="mse", dtype=np.float64, impl="jit")
    full.fit(X2, X2 @ M2.T, epochs=60, batch_size=10, lr=0.05)
    assert np.linalg.matrix_rank(full.weights[0]) == 20
    np.testing.assert_allclose(full.weights[0], M2, atol=1e-3)
    assert full.score(X2, X2 @ M2.T) > 0.999


def test_l1_makes_weights_exactly_zero_more_as_l1_grows():
    from fastnn.datasets import load_digits
    X, y, _, _ = load_digits(dtype=np.float64)
    zeros = []
    for l1 in (0.0, 1e-3, 1e-2, 5e-2):
        m = MLP([64, 10], dtype=np.float64, seed=0, impl="jit")
        m.fit(X, y, epochs=5, batch_size=32, lr=0.2, l1=l1)
        zeros.append(int(np.count_nonzero(m.weights[0] == 0.0)))
    assert zeros[0] == 0
    assert zeros[1] > 0
    assert zeros == sorted(zeros) and len(set(zeros)) == 4, zeros
