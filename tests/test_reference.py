"""Every operation, every implementation, against an independent float64 reference
(SciPy/NumPy in float64) and against each other, on hypothesis-generated shapes
(N = 1 and a single class included) and bounded values, in float32 and float64."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fastnn
import reference as ref
from numerics import DTYPES, IMPLS, assert_close

dims = st.integers(1, 24)
seeds = st.integers(0, 2**32 - 1)
scales = st.sampled_from([0.1, 1.0, 5.0, 30.0])


def data(seed, shape, dtype, scale):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * scale * rng.uniform(0.2, 2.0, shape)).astype(dtype)


def run_all(fn):
    """fn(impl) for every implementation; returns {impl: result}."""
    return {impl: fn(impl) for impl in IMPLS}


@pytest.mark.parametrize("dtype", DTYPES)
@given(N=dims, D=dims, K=dims, seed=seeds, scale=scales)
def test_linear_and_linear_sigmoid(dtype, N, D, K, seed, scale):
    X = data(seed, (N, D), dtype, scale)
    W = data(seed + 1, (K, D), dtype, 1.0)
    b = data(seed + 2, (K,), dtype, scale)
    terms = np.abs(X.astype(np.float64)) @ np.abs(W.astype(np.float64)).T + np.abs(b)
    Z = run_all(lambda i: fastnn.linear(X, W, b, impl=i))
    H = run_all(lambda i: fastnn.linear_sigmoid(X, W, b, impl=i))
    for impl in IMPLS:
        assert Z[impl].dtype == dtype and H[impl].dtype == dtype
        assert_close(Z[impl], ref.linear(X, W, b), dtype, scale=terms, what=f"linear/{impl}")
        # σ' <= 1/4: the product's rounding error shrinks through the sigmoid
        assert_close(H[impl], ref.linear_sigmoid(X, W, b), dtype, scale=terms / 4,
                     what=f"linear_sigmoid/{impl}")
        assert_close(Z[impl], Z["vectorized"], dtype, scale=2 * terms, what=f"{impl} vs vectorized")


@pytest.mark.parametrize("dtype", DTYPES)
@given(shape=st.lists(st.integers(1, 9), min_size=1, max_size=4), seed=seeds, scale=scales)
def test_sigmoid_softmax_log_softmax_any_ndim(dtype, shape, seed, scale):
    Z = data(seed, tuple(shape), dtype, scale)
    C = shape[-1]
    for impl in IMPLS:
        S = fastnn.sigmoid(Z, impl=impl)
        P = fastnn.softmax(Z, impl=impl)
        L = fastnn.log_softmax(Z, impl=impl)
        assert S.dtype == P.dtype == L.dtype == dtype and P.shape == Z.shape
        assert_close(S, ref.sigmoid(Z), dtype, what=f"sigmoid/{impl}")
        assert_close(P, ref.softmax(Z), dtype, what=f"softmax/{impl}")
        # log-softmax: error relative to the magnitude of the shifted logits
        assert_close(L, ref.log_softmax(Z), dtype, scale=np.abs(Z).max() + np.log(C) + 1,
                     what=f"log_softmax/{impl}")
        assert_close(P.sum(axis=-1), np.ones(Z.shape[:-1]), dtype, scale=C, what="rows sum to 1")


@pytest.mark.parametrize("dtype", DTYPES)
@given(N=dims, C=st.integers(2, 24), seed=seeds, scale=scales, rows=st.booleans())   # one class: ValueError
def test_softmax_cross_entropy_and_grad(dtype, N, C, seed, scale, rows):
    Z = data(seed, (N, C), dtype, scale)
    rng = np.random.default_rng(seed)
    if rows:   # probability rows, some exact zeros
        Y = rng.uniform(0, 1, (N, C)) * (rng.uniform(0, 1, (N, C)) > 0.3)
        Y[:, 0] += 0.01
        y = (Y / Y.sum(axis=1, keepdims=True)).astype(dtype)
    else:
        y = rng.integers(0, C, N)
    L_ref, G_ref = ref.softmax_cross_entropy_grad(Z, y)
    loss_scale = np.abs(Z).max() + np.log(C) + 1
    for impl in IMPLS:
        loss = fastnn.softmax_cross_entropy(Z, y, impl=impl)
        loss2, dZ = fastnn.softmax_cross_entropy_grad(Z, y, impl=impl)
        assert type(loss) is np.dtype(dtype).type and type(loss2) is np.dtype(dtype).type
        assert dZ.dtype == dtype
        assert_close(loss, L_ref, dtype, scale=loss_scale, what=f"loss/{impl}")
        assert_close(loss2, L_ref, dtype, scale=loss_scale, what=f"grad loss/{impl}")
        assert_close(dZ, G_ref, dtype, scale=1.0 / N, what=f"dZ/{impl}")


@pytest.mark.parametrize("dtype", DTYPES)
@given(N=dims, K=st.integers(1, 5), seed=seeds, scale=scales)
def test_sigmoid_output_losses(dtype, N, K, seed, scale):
    Z = data(seed, (N, K), dtype, scale)
    rng = np.random.default_rng(seed)
    Y = rng.uniform(0, 1, (N, K)).astype(dtype)
    Jb, Gb = ref.sigmoid_bce_grad(Z, Y)
    Jm, Gm = ref.sigmoid_mse_grad(Z, Y)
    for impl in IMPLS:
        jb, gb = fastnn.sigmoid_bce_grad(Z, Y, impl=impl)
        jm, gm = fastnn.sigmoid_mse_grad(Z, Y, impl=impl)
        assert type(jb) is np.dtype(dtype).type and gb.dtype == gm.dtype == dtype
        assert_close(jb, Jb, dtype, scale=K * (np.abs(Z).max() + 1), what=f"bce/{impl}")
        assert_close(gb, Gb, dtype, scale=1.0 / N, what=f"bce dZ/{impl}")
        assert_close(jm, Jm, dtype, scale=K, what=f"mse/{impl}")
        assert_close(gm, Gm, dtype, scale=1.0 / N, what=f"mse dZ/{impl}")


@pytest.mark.parametrize("dtype", DTYPES)
@given(N=dims, D=dims, K=dims, seed=seeds)
def test_backward_kernels(dtype, N, D, K, seed):
    dZ = data(seed, (N, K), dtype, 1.0)
    X = data(seed + 1, (N, D), dtype, 1.0)
    W = data(seed + 2, (K, D), dtype, 1.0)
    H = np.random.default_rng(seed).uniform(0, 1, (N, D)).astype(dtype)
    dW_r, db_r, dX_r = ref.linear_backward(dZ, X, W)
    a = lambda x: np.abs(np.asarray(x, np.float64))  # noqa: E731
    for impl in IMPLS:
        dW, db, dX = fastnn.linear_backward(dZ, X, W, impl=impl)
        assert dW.dtype == db.dtype == dX.dtype == dtype
        assert_close(dW, dW_r, dtype, scale=a(dZ).T @ a(X), what=f"dW/{impl}")
        assert_close(db, db_r, dtype, scale=a(dZ).sum(0), what=f"db/{impl}")
        assert_close(dX, dX_r, dtype, scale=a(dZ) @ a(W), what=f"dX/{impl}")
        dW2, db2, none = fastnn.linear_backward(dZ, X, W, compute_dX=False, impl=impl)
        assert none is None and np.array_equal(dW2, dW) and np.array_equal(db2, db)
        hd = fastnn.hidden_delta(dZ, W, H, impl=impl)
        assert_close(hd, ref.hidden_delta(dZ, W, H), dtype, scale=a(dZ) @ a(W), what=f"δ/{impl}")
        sb = fastnn.sigmoid_backward(dX, H, impl=impl)
        assert_close(sb, ref.sigmoid_backward(dX, H), dtype, scale=a(dX), what=f"σ'/{impl}")


@pytest.mark.parametrize("dtype", DTYPES)
@given(n=st.integers(1, 300), seed=seeds, momentum=st.sampled_from([0.0, 0.5, 0.9]),
       wd=st.sampled_from([0.0, 1e-3, 0.1]), l1=st.sampled_from([0.0, 1e-3, 0.5]),
       nesterov=st.booleans(), lr=st.sampled_from([0.0, 1e-3, 0.1, 1.0]))
def test_sgd_update(dtype, n, seed, momentum, wd, l1, nesterov, lr):
    nesterov = nesterov and momentum > 0
    w0 = data(seed, (n,), dtype, 1.0)
    g = data(seed + 1, (n,), dtype, 1.0)
    v0 = data(seed + 2, (n,), dtype, 0.5)
    w_ref, v_ref = ref.sgd_update(w0, g, lr, momentum, v0, wd, l1, nesterov)
    scale = np.abs(w0.astype(np.float64)) + lr * (np.abs(g) + np.abs(v0) + wd * np.abs(w0) + l1) * 3
    for impl in IMPLS:
        w, v = w0.copy(), v0.copy()
        out = fastnn.sgd_update(w, g, lr, momentum=momentum, velocity=v if momentum else None,
                                weight_decay=wd, l1=l1, nesterov=nesterov, impl=impl)
        assert out is w and w.dtype == dtype
        # entries the L1 step zeroes in the reference are exactly zero here too,
        # unless they sit within rounding of the threshold
        assert_close(w, w_ref, dtype, scale=scale, what=f"w/{impl}")
        if momentum:
            assert_close(v, v_ref, dtype, scale=np.abs(v0) + np.abs(g) + wd * np.abs(w0),
                         what=f"v/{impl}")
        else:
            assert np.array_equal(v, v0), "velocity must be untouched without momentum"
        if l1 and lr:
            clear = np.abs(w_ref) == 0
            near = np.abs(np.abs(w0 - lr * (g + wd * w0)) - lr * l1) < 1e-3 * (1 + np.abs(w0))
            if not momentum:
                assert np.all(w[clear & ~near] == 0), "L1 must give exact zeros"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl", IMPLS)
def test_plain_sgd_is_w_minus_lr_g(dtype, impl, rng):
    w0 = rng.standard_normal(1000).astype(dtype)
    g = rng.standard_normal(1000).astype(dtype)
    w = w0.copy()
    fastnn.sgd_update(w, g, 0.05, impl=impl)
    expect = w0 - dtype(0.05) * g
    assert np.array_equal(w, expect), "plain SGD must be exactly w -= lr * g"  # bit for bit


def test_implementations_are_registered_for_every_operation():
    ops = fastnn.kernels.IMPLS
    public = {name for name in fastnn.__all__ if name in ops}
    assert set(ops) == public and len(ops) == 15
    for op, table in ops.items():
        assert tuple(table) == IMPLS or set(table) == set(IMPLS), op
