"""The documented float range of every loss and elementwise operation, at its edges
(issue 20, point 5): a table of extreme values per dtype (0, ±subnormal, ±tiny, ±1,
±1e19, ±2.2e19, ±1e38, ±max float32, ±1.4e154, ±1e300, ±max float64), every
implementation against the others and against a 60-digit ``decimal`` reference
(tests/exact.py), then Hypothesis over shapes and values drawn from bounded floats
mixed with that table. Warnings are errors in this suite, so each call also checks
"no RuntimeWarning"; NaN from finite input fails ``assert_close`` (NaN positions must
match the reference, which has none).

The ranges checked are those the docstrings state: float32 losses are the mean rounded
to float32 (+inf exactly when it rounds beyond float32's maximum); float64 losses are
+inf when the float64 total of their non-negative terms overflows; gradients, softmax
and sigmoid are finite for every finite input; log_softmax is −inf where the
log-probability is below the dtype's range.
"""
from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import exact
import fastnn
from fastnn import _validate as v
from fastnn.kernels import IMPLS as KERNELS
from numerics import DTYPES, IMPLS, assert_close

f32, f64 = np.float32, np.float64


def _all_impls(fn):
    """``fn(impl)`` for every implementation (each call: no warning, by the suite's filter)."""
    return {impl: fn(impl) for impl in IMPLS}


def _check_loss(got, want, dtype, what):
    """A loss against the reference: the same inf, else within the dtype's tolerance."""
    for impl, loss in got.items():
        assert np.asarray(loss).dtype == dtype, (what, impl)
        assert_close(np.float64(loss), want, dtype, scale=max(1.0, abs(want)) if np.isfinite(want)
                     else 1.0, what=f"{what} [{impl}]")


def _pairs(T):
    return np.array(list(itertools.product(T, T)), T.dtype)


# --- elementwise and row-wise operations ----------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_and_softmax_over_the_table(dtype):
    T = exact.extremes(dtype)
    want = np.array([exact.to_dtype(exact.sigmoid(z), dtype) for z in T])
    for impl, S in _all_impls(lambda i: fastnn.sigmoid(T, impl=i)).items():
        assert_close(S, want, dtype, what=f"sigmoid [{impl}]")
    Z = _pairs(T)                                   # every ordered pair as a row
    P_ref = np.array([[exact.to_dtype(p, dtype) for p in exact.softmax_row(r)] for r in Z])
    L_ref = np.array([[exact.to_dtype(p, dtype) for p in exact.log_softmax_row(r)] for r in Z])
    for impl in IMPLS:
        assert_close(fastnn.softmax(Z, impl=impl), P_ref, dtype, what=f"softmax [{impl}]")
        L = fastnn.log_softmax(Z, impl=impl)
        # log-probabilities reach −2·max: −inf where below the range (documented); the
        # finite ones are z − m − lse, rounded in the dtype (relative to |z − m|)
        assert_close(L, L_ref, dtype, scale=np.abs(Z).max(axis=1, keepdims=True) + 1,
                     what=f"log_softmax [{impl}]")


# --- losses over the table, one sample per call and the whole table as a batch ---------
@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_over_the_table(dtype):
    Z = _pairs(exact.extremes(dtype))
    y = np.arange(Z.shape[0]) % 2
    Y = np.tile(np.array([0.25, 0.75], dtype), (Z.shape[0], 1))
    rows = [exact.ce_row(r, int(t)) for r, t in zip(Z, y)]
    rows_t = [exact.ce_row(r, [0.25, 0.75], dtype) for r in Z]
    for i in range(Z.shape[0]):
        want = exact.mean_loss([rows[i]], 1, dtype)
        got = _all_impls(lambda im: fastnn.softmax_cross_entropy_grad(Z[i:i + 1], y[i:i + 1], impl=im))
        _check_loss({k: g[0] for k, g in got.items()}, want, dtype, f"CE row {Z[i]}")
        _check_loss(_all_impls(lambda im: fastnn.softmax_cross_entropy(Z[i:i + 1], y[i:i + 1], impl=im)),
                    want, dtype, f"CE loss only, row {Z[i]}")
        P = [exact.softmax_row(Z[i])]
        dz_ref = np.array([[exact.to_dtype(p - (1 if j == y[i] else 0), dtype)
                            for j, p in enumerate(P[0])]])
        for impl, (_, dZ) in got.items():
            assert_close(dZ, dz_ref, dtype, what=f"CE grad row {Z[i]} [{impl}]")
        want_t = exact.mean_loss([rows_t[i]], 1, dtype)
        _check_loss(_all_impls(lambda im: fastnn.softmax_cross_entropy_grad(Z[i:i + 1], Y[i:i + 1],
                                                                            impl=im)[0]),
                    want_t, dtype, f"CE target row {Z[i]}")
    N = Z.shape[0]
    _check_loss(_all_impls(lambda im: fastnn.softmax_cross_entropy_grad(Z, y, impl=im)[0]),
                exact.mean_loss(rows, N, dtype), dtype, "CE, the table as one batch")
    _check_loss(_all_impls(lambda im: fastnn.softmax_cross_entropy(Z, Y, impl=im)),
                exact.mean_loss(rows_t, N, dtype), dtype, "CE targets, one batch")


@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_losses_over_the_table(dtype):
    T = exact.extremes(dtype)
    targets = (0.0, 0.25, 0.5, 1.0)
    for z, t in itertools.product(T, targets):
        Z, Y = np.array([[z]], dtype), np.array([[t]], dtype)
        got = _all_impls(lambda im: fastnn.sigmoid_bce_grad(Z, Y, impl=im))
        _check_loss({k: g[0] for k, g in got.items()},
                    exact.mean_loss([exact.bce_term(z, t)], 1, dtype), dtype, f"BCE z={z} y={t}")
        g_ref = np.array([[exact.to_dtype(exact.sigmoid(z) - exact.D(t), dtype)]])
        for impl, (_, dZ) in got.items():
            assert_close(dZ, g_ref, dtype, what=f"BCE grad z={z} y={t} [{impl}]")
    for z, t in itertools.product(T, T):                       # MSE: any real target
        Z, Y = np.array([[z]], dtype), np.array([[t]], dtype)
        got = _all_impls(lambda im: fastnn.sigmoid_mse_grad(Z, Y, impl=im))
        _check_loss({k: g[0] for k, g in got.items()},
                    exact.mean_loss([exact.mse_term(z, t)], 2, dtype), dtype, f"MSE z={z} Y={t}")
        s = exact.sigmoid(z)
        g_ref = exact.to_dtype((s - exact.D(t)) * s * (1 - s), dtype)
        for impl, (_, dZ) in got.items():
            assert_close(dZ, [[g_ref]], dtype, scale=abs(t) + 1, what=f"MSE grad z={z} Y={t} [{impl}]")
    # the whole table as one batch of K = 4 outputs (BCE) and (N, 1) (MSE, all pairs)
    Z = np.repeat(T[:, None], len(targets), axis=1)
    Y = np.tile(np.array(targets, dtype), (len(T), 1))
    want = exact.mean_loss([exact.bce_term(z, t) for z in T for t in targets], len(T), dtype)
    _check_loss(_all_impls(lambda im: fastnn.sigmoid_bce_grad(Z, Y, impl=im)[0]), want, dtype,
                "BCE, the table as one batch")
    ZY = _pairs(T)
    want = exact.mean_loss([exact.mse_term(z, t) for z, t in ZY], 2 * len(ZY), dtype)
    _check_loss(_all_impls(lambda im: fastnn.sigmoid_mse_grad(ZY[:, 0], ZY[:, 1], impl=im)[0]),
                want, dtype, "MSE, all pairs as one batch")


# --- the cases of the issue: each failed before this change ----------------------------
def test_jit_float32_bce_sums_a_row_in_float64():
    """A row of four logits 1e38 with targets 0: the jit kernel summed the row in float32
    (4e38 -> inf); loop and vectorized gave the mean, 4e38/N."""
    Z = np.zeros((10, 4), f32)
    Z[0] = 1e38
    Z[1, :2] = -1e38
    Y = (Z < 0).astype(f32)
    want = exact.mean_loss([exact.bce_term(z, t) for z, t in zip(Z.ravel(), Y.ravel())], 10, f32)
    assert 5.9e37 < want < 6.1e37
    _check_loss(_all_impls(lambda im: fastnn.sigmoid_bce_grad(Z, Y, impl=im)[0]), want, f32,
                "BCE rows of 1e38")


def test_jit_float32_mse_squares_in_float64():
    """Targets 2.2e19: r² = 4.8e38 overflows float32; E = 2.42e38 is representable."""
    Z, Y = np.zeros((1, 1), f32), np.full((1, 1), 2.2e19, f32)
    want = exact.mean_loss([exact.mse_term(0.0, float(Y[0, 0]))], 2, f32)
    assert np.isfinite(want) and 2.4e38 < want < 2.5e38
    _check_loss(_all_impls(lambda im: fastnn.sigmoid_mse_grad(Z, Y, impl=im)[0]), want, f32,
                "MSE Y = 2.2e19")


def test_float32_mean_just_above_the_maximum_rounds_to_it():
    """A mean between float32's maximum and half an ulp above rounds to the maximum (as the
    jit kernels' conversion rounds it); loop and vectorized made it inf."""
    Z = np.array([[exact.F32_MAX, 2.0 ** 100]], f32)           # J = max + 2^100 + 2 log 2
    Y = np.zeros_like(Z)
    want = exact.mean_loss([exact.bce_term(z, 0.0) for z in Z[0]], 1, f32)
    assert want == exact.F32_MAX
    for impl, loss in _all_impls(lambda im: fastnn.sigmoid_bce_grad(Z, Y, impl=im)[0]).items():
        assert loss == f32(exact.F32_MAX), impl


@pytest.mark.parametrize("impl", IMPLS)
def test_float64_losses_at_the_maximum_warn_nothing(impl):
    """float64 at ±max: the vectorized kernels warned (overflow in subtract, reduce, square)."""
    M = exact.F64_MAX
    Z = np.array([[M, -M]])
    assert fastnn.softmax_cross_entropy(Z, np.array([1]), impl=impl) == np.inf     # 2·max
    assert fastnn.softmax_cross_entropy(Z, np.array([0]), impl=impl) == 0
    loss, dZ = fastnn.softmax_cross_entropy_grad(np.vstack([Z, Z]), np.array([1, 1]), impl=impl)
    assert loss == np.inf and np.array_equal(dZ, [[0.5, -0.5], [0.5, -0.5]])
    J, dZ = fastnn.sigmoid_bce_grad(np.array([-M, -M]), np.array([1.0, 1.0]), impl=impl)
    assert J == np.inf and np.array_equal(dZ, [-0.5, -0.5])    # total 2·max overflows (documented)
    J, _ = fastnn.sigmoid_bce_grad(np.array([-M]), np.array([1.0]), impl=impl)
    assert J == M                                               # max + log 2 rounds to max
    E, dZ = fastnn.sigmoid_mse_grad(np.array([M, -M]), np.array([M, -M]), impl=impl)
    assert E == np.inf and np.all(np.isfinite(dZ))              # r² overflows: +inf, no NaN


# --- convert_floats: the conversion a float32 model does on float64 input -------------
def test_convert_floats_names_out_of_range_values_without_warning():
    X = np.array([[1.0, -1e300], [np.nan, 3.0]])
    with pytest.raises(ValueError, match=r"X: values out of float32 range \(max \|x\| = 1e\+300"):
        v.convert_floats("X", X, f32)
    ok = v.convert_floats("X", np.array([[1e-300, -2.5], [np.nan, np.inf]]), f32)
    assert ok.dtype == f32 and ok.flags.c_contiguous
    assert ok[0, 0] == 0 and ok[0, 1] == -2.5 and np.isnan(ok[1, 0]) and ok[1, 1] == np.inf
    big = np.array([exact.F32_MAX * (1 + 2.0 ** -25)])             # rounds to the maximum
    assert v.convert_floats("X", big, f32)[0] == f32(exact.F32_MAX)
    with pytest.raises(ValueError, match="X: values out of float32 range"):
        v.convert_floats("X", np.array([2.0 ** 128 - 2.0 ** 103]), f32)   # rounds to inf
    assert v.convert_floats("X", np.arange(4, dtype=np.int64), f32).dtype == f32
    assert v.convert_floats("X", [[1, 2]], f64).dtype == f64
    assert v.convert_floats("X", np.ones((2, 3)).T, f64).flags.c_contiguous
    with pytest.raises(ValueError, match="X: values out of float64 range"):
        v.convert_floats("X", np.array([np.longdouble(10) ** 400]), f64)
    with pytest.raises(TypeError, match="X: masked arrays"):
        v.convert_floats("X", np.ma.array([1.0, 2.0], mask=[0, 1]), f32)
    with pytest.raises(TypeError, match="X: expected real numbers"):
        v.convert_floats("X", np.ones(2, np.complex128), f32)


# --- Hypothesis: shapes × dtypes × values (bounded floats mixed with the table) ---------
def _values(dtype, extremes_only=False):
    table = st.sampled_from([float(x) for x in exact.extremes(dtype)])
    if extremes_only:
        return table
    bounded = st.floats(-1e4, 1e4, allow_nan=False, width=32 if dtype == f32 else 64)
    return st.one_of(bounded, table)


@st.composite
def logits(draw):
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(st.tuples(st.integers(1, 5), st.integers(1, 4)))
    Z = draw(hnp.arrays(dtype, shape, elements=_values(dtype)))
    return dtype, Z


@given(logits(), st.data())
def test_losses_agree_with_the_exact_mean_everywhere(case, data):
    dtype, Z = case
    N, C = Z.shape
    y = np.array(data.draw(st.lists(st.integers(0, C - 1), min_size=N, max_size=N)))
    if C == 1:                  # a cross-entropy over one class: the API refuses it
        with pytest.raises(ValueError, match="one class"):
            fastnn.softmax_cross_entropy_grad(Z, y)
    else:
        rows = [exact.ce_row(r, int(t)) for r, t in zip(Z, y)]
        _check_loss(_all_impls(lambda im: fastnn.softmax_cross_entropy_grad(Z, y, impl=im)[0]),
                    exact.mean_loss(rows, N, dtype), dtype, "CE")
    Yb = data.draw(hnp.arrays(dtype, Z.shape, elements=st.sampled_from([0.0, 0.3, 1.0])))
    got = _all_impls(lambda im: fastnn.sigmoid_bce_grad(Z, Yb, impl=im))
    _check_loss({k: g[0] for k, g in got.items()},
                exact.mean_loss([exact.bce_term(z, t) for z, t in zip(Z.ravel(), Yb.ravel())], N, dtype),
                dtype, "BCE")
    Ym = data.draw(hnp.arrays(dtype, Z.shape, elements=_values(dtype)))
    got_m = _all_impls(lambda im: fastnn.sigmoid_mse_grad(Z, Ym, impl=im))
    _check_loss({k: g[0] for k, g in got_m.items()},
                exact.mean_loss([exact.mse_term(z, t) for z, t in zip(Z.ravel(), Ym.ravel())], 2 * N,
                                dtype), dtype, "MSE")
    for results in (got, got_m):
        for impl, (_, dZ) in results.items():
            assert np.all(np.isfinite(dZ)), impl          # gradients: finite for finite input
    P = fastnn.softmax(Z)
    assert np.all(np.isfinite(P)) and np.all((P >= 0) & (P <= 1))


@given(st.sampled_from(DTYPES), st.data())
def test_raw_kernels_at_extremes_only(dtype, data):
    """The raw kernels (no validation in the way) on shapes filled from the table only."""
    shape = data.draw(st.tuples(st.integers(1, 4), st.integers(1, 3)))
    Z = data.draw(hnp.arrays(dtype, shape, elements=_values(dtype, extremes_only=True)))
    Y = data.draw(hnp.arrays(dtype, shape, elements=_values(dtype, extremes_only=True)))
    outs = {}
    for impl in IMPLS:
        dZ = np.empty_like(Z)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            loss = KERNELS["sigmoid_mse_grad"][impl](Z, Y, dZ)
        outs[impl] = (dtype(loss), dZ)      # (the raw jit kernel returns a Python float)
    want = exact.mean_loss([exact.mse_term(z, t) for z, t in zip(Z.ravel(), Y.ravel())],
                           2 * shape[0], dtype)
    _check_loss({k: o[0] for k, o in outs.items()}, want, dtype, "raw MSE")
    for impl, (_, dZ) in outs.items():
        assert_close(dZ, outs["loop"][1], dtype, scale=np.abs(Y) + 1, what=f"raw MSE grad [{impl}]")


@pytest.mark.parametrize("impl", IMPLS)
def test_cross_entropy_target_rows_are_checked(impl):
    """Target rows scale P by their sum: a float32 row [3e38, 3e38] summed to inf and gave
    NaN gradients (0·inf) with warnings; negative weights could cancel infinities. Both
    are now a ValueError naming y, before anything is written."""
    Z = np.zeros((2, 2), f32)
    out = np.full((2, 2), 7.0, f32)
    for Y, msg in ((np.array([[0.5, 0.5], [3e38, 3e38]], f32), r"y: each target row must sum to "
                    r"at most 1\.70141e\+38 .* got a row summing to 6e\+38 at index 1"),
                   (np.array([[0.5, 0.5], [1.5, -0.5]], f32),
                    r"y: target rows must be non-negative weights .* got -0\.5 at \[1, 1\]")):
        with pytest.raises(ValueError, match=msg):
            fastnn.softmax_cross_entropy_grad(Z, Y, out=out, impl=impl)
        with pytest.raises(ValueError, match=msg):
            fastnn.softmax_cross_entropy(Z, Y, impl=impl)
        assert np.all(out == 7)
    M = exact.F64_MAX / 2                                  # at the bound: accepted, finite dZ
    loss, dZ = fastnn.softmax_cross_entropy_grad(np.zeros((1, 2)), np.array([[M / 2, M / 2]]),
                                                 impl=impl)
    assert np.isfinite(loss) and np.all(np.isfinite(dZ))
    Yn = np.array([[np.nan, 1.0]])                         # NaN is not checked: it propagates
    assert np.isnan(fastnn.softmax_cross_entropy(np.zeros((1, 2)), Yn, impl=impl))
