"""Adversarial values: huge logits, the dtype's extremes, equal rows, −inf, NaN.
Warnings are errors in this suite (pyproject), so "no RuntimeWarning" is checked by
every call here."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
import reference as ref
from numerics import DTYPES, IMPLS, assert_close

pytestmark = pytest.mark.parametrize("impl", IMPLS)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_at_extremes(impl, dtype):
    big = np.finfo(dtype).max
    Z = np.array([-big, -1e4, -800, -100, -1, 0, 1, 100, 800, 1e4, big], dtype)
    S = fastnn.sigmoid(Z, impl=impl)
    assert S.dtype == dtype and np.all(np.isfinite(S))
    assert S[0] == 0 and S[1] == 0 and S[-1] == 1 and S[-2] == 1 and S[5] == 0.5
    assert_close(S, ref.sigmoid(Z), dtype, what="sigmoid extremes")
    H = fastnn.linear_sigmoid(np.array([[1e4], [-1e4]], dtype), np.ones((2, 1), dtype),
                              np.zeros(2, dtype), impl=impl)
    assert np.array_equal(H, np.array([[1, 1], [0, 0]], dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_huge_logits(impl, dtype):
    Z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4 + 1, -1e4 + 2], [5e3, 5e3, -5e3]], dtype)
    y = np.array([1, 2, 0])
    P = fastnn.softmax(Z, impl=impl)
    assert_close(P, ref.softmax(Z), dtype, what="softmax ±1e4")
    assert_close(fastnn.log_softmax(Z, impl=impl), ref.log_softmax(Z), dtype, scale=2e4)
    loss, dZ = fastnn.softmax_cross_entropy_grad(Z, y, impl=impl)
    L_ref, G_ref = ref.softmax_cross_entropy_grad(Z, y)
    assert np.isfinite(loss) and abs(float(loss) - L_ref) <= 1e-6 * L_ref
    assert_close(dZ, G_ref, dtype, scale=1 / 3)
    jb, gb = fastnn.sigmoid_bce_grad(Z, (Z > 0).astype(dtype), impl=impl)
    Jb, Gb = ref.sigmoid_bce_grad(Z, (Z > 0))
    assert np.isfinite(jb) and abs(float(jb) - Jb) <= 1e-6 * Jb + 1e-6
    assert_close(gb, Gb, dtype, scale=1 / 3)


def test_float32_max_logits(impl):
    t = np.float32
    Z = np.array([[3e38, -3e38, 0.0], [-3e38, -3e38, -3e38]], t)
    P = fastnn.softmax(Z, impl=impl)
    assert np.array_equal(P, np.array([[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], t))
    L = fastnn.log_softmax(Z, impl=impl)
    # log p of the second entry is −6e38: not representable in float32, so −inf
    assert L[0, 0] == 0 and L[0, 1] == -np.inf and L[0, 2] == t(-3e38)
    assert_close(L[1], np.full(3, -np.log(3)), t)
    loss0 = fastnn.softmax_cross_entropy(Z, np.array([0, 1]), impl=impl)
    assert loss0 == pytest.approx(np.log(3) / 2, rel=1e-6)
    loss1, dZ = fastnn.softmax_cross_entropy_grad(Z, np.array([1, 1]), impl=impl)
    assert loss1 == pytest.approx(3e38, rel=1e-6)     # (6e38 + log 3)/2 fits in float32
    assert np.all(np.isfinite(dZ))
    # one sample: the true loss 6e38 exceeds float32's range: +inf, not NaN, no warning
    assert fastnn.softmax_cross_entropy(Z[:1], np.array([1]), impl=impl) == np.inf
    assert_close(dZ, [[0.5, -0.5, 0], [1 / 6, -1 / 3, 1 / 6]], t)


@pytest.mark.parametrize("dtype", DTYPES)
def test_equal_rows(impl, dtype):
    Z = np.full((3, 7), 2.5, dtype)
    assert_close(fastnn.softmax(Z, impl=impl), np.full((3, 7), 1 / 7), dtype)
    assert_close(fastnn.log_softmax(Z, impl=impl), np.full((3, 7), -np.log(7)), dtype)
    loss, dZ = fastnn.softmax_cross_entropy_grad(Z, np.array([0, 3, 6]), impl=impl)
    assert_close(loss, np.log(7), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_minus_inf_entries(impl, dtype):
    Z = np.array([[-np.inf, 0.0, 1.0], [-np.inf, -np.inf, 3.0], [-np.inf, -np.inf, -np.inf]], dtype)
    P = fastnn.softmax(Z, impl=impl)
    assert P[0, 0] == 0 and P[1, 0] == 0 and P[1, 1] == 0 and P[1, 2] == 1
    assert_close(P[0], ref.softmax(Z[:1])[0], dtype)
    assert np.all(np.isnan(P[2])), "an all −inf row has no distribution: NaN (documented)"
    L = fastnn.log_softmax(Z[:2], impl=impl)
    assert L[0, 0] == -np.inf and L[1, 2] == 0
    loss, dZ = fastnn.softmax_cross_entropy_grad(Z[:2], np.array([2, 2]), impl=impl)
    L_ref, G_ref = ref.softmax_cross_entropy_grad(Z[:2], np.array([2, 2]))
    assert_close(loss, L_ref, dtype)
    assert_close(dZ, G_ref, dtype)
    # a −inf logit at the label: the loss is +inf (probability 0), not NaN
    assert fastnn.softmax_cross_entropy(Z[:1], np.array([0]), impl=impl) == np.inf
    # one-hot rows with 0 weight on the −inf entry contribute exactly 0 there
    rows = np.array([[0, 0.5, 0.5]], dtype)
    assert np.isfinite(fastnn.softmax_cross_entropy(Z[:1], rows, impl=impl))


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_propagates(impl, dtype):
    Z = np.array([[0.0, np.nan, 1.0], [0.0, 1.0, 2.0]], dtype)
    P = fastnn.softmax(Z, impl=impl)
    assert np.all(np.isnan(P[0])) and np.all(np.isfinite(P[1]))
    L = fastnn.log_softmax(Z, impl=impl)
    assert np.all(np.isnan(L[0])) and np.all(np.isfinite(L[1]))
    S = fastnn.sigmoid(Z, impl=impl)
    assert np.isnan(S[0, 1]) and np.isfinite(S[0, 0])
    assert np.isnan(fastnn.softmax_cross_entropy(Z, np.array([0, 1]), impl=impl))
    loss, dZ = fastnn.softmax_cross_entropy_grad(Z, np.array([0, 1]), impl=impl)
    assert np.isnan(loss) and np.all(np.isnan(dZ[0])) and np.all(np.isfinite(dZ[1]))
    # NaN first in the row (the running maximum starts from it)
    assert np.all(np.isnan(fastnn.softmax(np.array([[np.nan, 1.0]], dtype), impl=impl)))
    X = np.array([[np.nan, 1.0]], dtype)
    assert np.all(np.isnan(fastnn.linear_sigmoid(X, np.ones((2, 2), dtype), None, impl=impl)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_extreme_l1_and_lr(impl, dtype):
    w = np.array([1e-3, -1e-3, 0.5, -0.5, 0.0], dtype)
    fastnn.sgd_update(w, np.zeros_like(w), 1.0, l1=0.01, impl=impl)
    assert np.array_equal(w, np.array([0, 0, 0.49, -0.49, 0], dtype)) or \
        np.allclose(w, [0, 0, 0.49, -0.49, 0], rtol=1e-6, atol=0)
    assert w[0] == 0 and w[1] == 0 and w[4] == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_relative_error_down_to_subnormal_results(impl, dtype):
    """Dense grid across every region of the jit sigmoid's exp (kernels/machine/scalar.py): the
    rounding of n, the scaling by 2^(n+64)·2^-64 where σ(z) ≈ e^z is subnormal, and the
    clamp. Reference: the piecewise formula in long double. Normal results: relative error
    within 2 ulp (jit measured: 1.74e-7 float32, 3.3e-16 float64; vectorized: 3 ulp, NumPy's
    exp then e·(1/(1+e)), two roundings, 2.6e-7 float32); subnormal results: within one
    unit of the smallest subnormal (vectorized: 1.5, measured 1.27)."""
    lo = -110.0 if dtype == np.float32 else -760.0
    Z = np.concatenate([np.linspace(lo, 40.0, 400_001), [-103.97, -87.336, -744.44, -708.4]])
    Z = Z.astype(dtype)
    zl = Z.astype(np.longdouble)
    with np.errstate(under="ignore"):
        e = np.exp(-np.abs(zl))
        exact = np.where(zl >= 0, 1 / (1 + e), e / (1 + e))
    S = fastnn.sigmoid(Z, impl=impl).astype(np.longdouble)
    fi = np.finfo(dtype)
    normal = exact >= fi.tiny
    rel = np.abs(S[normal] - exact[normal]) / exact[normal]
    assert rel.max() <= (3 if impl == "vectorized" else 2) * fi.eps, (impl, float(rel.max()))
    sub = ~normal
    assert sub.sum() > 1000                       # the grid reaches the subnormal range
    units = np.abs(S[sub] - exact[sub]) / float(fi.smallest_subnormal)
    assert units.max() <= (1.5 if impl == "vectorized" else 1.0), (impl, float(units.max()))
