"""sgd_update at the edges of the float range (issue 20, point 7): every implementation,
bit for bit, against an emulation of the documented order in which each step is
rounded to the parameters' dtype (float32 steps are done in float64 and rounded once:
for +, − and × that is exactly float32's own rounding, 53 >= 2·24 + 2 bits). Values:
bounded floats mixed with the table of extremes (tests/exact.py); hyperparameters:
ordinary ones and extremes (lr = l1 = 1e20, weight decay 1e30, subnormal momentum).
Warnings are errors in this suite: each call also checks that nothing warns.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import exact
import fastnn
from fastnn.kernels import IMPLS as KERNELS
from numerics import DTYPES, IMPLS

f32, f64 = np.float32, np.float64


def _rounder(dtype):
    if np.dtype(dtype) == np.float64:
        return float

    def r(x):
        with np.errstate(over="ignore"):
            return float(np.float32(x))
    return r


def sgd_reference(w, g, v, lr, momentum=0.0, weight_decay=0.0, l1=0.0, nesterov=False):
    """The documented order, one element at a time, each step rounded to w's dtype;
    returns (w_new, v_new) as arrays of that dtype. L1: sign(w)·max(|w| − thr, 0) with
    thr = lr·l1 in the dtype; |w| <= thr gives ±0 (thr = inf included), NaN stays NaN."""
    dt = w.dtype
    r = _rounder(dt)
    lr_, mu, wd, l1_ = r(lr), r(momentum), r(weight_decay), r(l1)
    thr = r(lr_ * l1_)
    w_out, v_out = [], []
    for i in range(w.size):
        wi, gi = float(w.flat[i]), float(g.flat[i])
        if weight_decay:
            gi = r(gi + r(wd * wi))
        if momentum:
            vi = r(r(mu * float(v.flat[i])) + gi)
            v_out.append(vi)
            gi = r(gi + r(mu * vi)) if nesterov else vi
        if lr:
            wi = r(wi - r(lr_ * gi))
        if l1:
            a = abs(wi)
            if a > thr:
                wi = math.copysign(r(a - thr), wi)
            elif a <= thr:
                wi = math.copysign(0.0, wi)
        w_out.append(wi)
    with np.errstate(over="ignore"):
        return (np.array(w_out, dt).reshape(w.shape),
                np.array(v_out, dt).reshape(w.shape) if momentum else None)


def _run(impl, w, g, v, lr, **kw):
    w, v = w.copy(), None if v is None else v.copy()
    fastnn.sgd_update(w, g, lr, velocity=v, impl=impl, **kw)
    return w, v


def _assert_bits(got, want, what):
    assert got.dtype == want.dtype, what
    assert np.array_equal(got, want, equal_nan=True), (
        f"{what}: got {got[~np.isclose(got, want, equal_nan=True)][:4]}, "
        f"want {want[~np.isclose(got, want, equal_nan=True)][:4]}")


def _check_all(w, g, v, lr, **kw):
    want_w, want_v = sgd_reference(w, g, v, lr, **kw)
    for impl in IMPLS:
        got_w, got_v = _run(impl, w, g, v, lr, **kw)
        _assert_bits(got_w, want_w, f"param [{impl}] lr={lr} {kw}")
        if want_v is not None:
            _assert_bits(got_v, want_v, f"velocity [{impl}] lr={lr} {kw}")
        if np.all(np.isfinite(w)) and np.all(np.isfinite(g)) and (v is None or np.all(np.isfinite(v))):
            assert not np.isnan(got_w).any(), f"NaN from finite input [{impl}] lr={lr} {kw}"


# --- the cases: each failed before this change -------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_huge_lr_and_l1_give_the_soft_threshold_zero_not_nan(dtype):
    """lr·l1 = 1e40 overflows float32 (inf): every parameter is then within the
    threshold and becomes ±0, also where w − lr·g overflowed to ±inf (|w| − thr was
    inf − inf = NaN, and 0·w NaN; loop and vectorized warned)."""
    big = float(np.finfo(dtype).max)
    w = np.array([1.0, -2.0, 0.5, 3e38, -3e38, 0.0], dtype)
    g = np.array([1e20, -1e20, 0.0, big, -big, 1.0], dtype)
    lr = l1 = 1e20 if dtype == f32 else 1e160
    for impl in IMPLS:
        got, _ = _run(impl, w, g, None, lr, l1=l1)
        assert np.array_equal(got, np.zeros(6, dtype)), (impl, got)
        # sign(w − lr·g)·0
        assert np.array_equal(np.signbit(got), [True, False, False, True, False, True]), impl
    _check_all(w, g, None, lr, l1=l1)


def test_tiny_momentum_is_rejected_and_raw_kernels_agree():
    """momentum 1e-300 rounds to 0 in float32: the API rejects it (every implementation,
    nothing written); the raw kernels all branch on the value given (velocity updated
    with μ = 0, v = g), where loop and vectorized skipped the velocity and jit did not."""
    w = np.array([1.0, -2.0], f32)
    g = np.array([1.0, -1.0], f32)
    for impl in IMPLS:
        p, vel = w.copy(), np.full(2, 5.0, f32)
        with pytest.raises(ValueError, match=r"momentum: 1e-300 rounds to 0 in float32"):
            fastnn.sgd_update(p, g, 0.1, momentum=1e-300, velocity=vel, impl=impl)
        assert np.array_equal(p, w) and np.array_equal(vel, np.full(2, 5.0, f32))
    outs = []
    for impl in IMPLS:
        p, vel = w.copy(), np.full(2, 5.0, f32)
        KERNELS["sgd_update"][impl](p, g, 0.1, 1e-300, vel, 0.0, 0.0, False)
        outs.append((p, vel))
    for p, vel in outs:
        assert np.array_equal(vel, g) and np.array_equal(p, w - f32(0.1) * g)


@pytest.mark.parametrize("impl", IMPLS)
def test_hyperparameters_beyond_the_dtype_are_rejected(impl):
    p, g = np.ones(3, f32), np.ones(3, f32)
    for name, kw in (("lr", dict(lr=1e39)), ("weight_decay", dict(lr=0.1, weight_decay=1e39)),
                     ("l1", dict(lr=0.1, l1=3.5e38)), ("lr", dict(lr=1e-46))):
        with pytest.raises(ValueError, match=f"^{name}: "):
            fastnn.sgd_update(p, g, impl=impl, **kw)
        assert np.array_equal(p, np.ones(3, f32))
    fastnn.sgd_update(p, g, 3.4e38, impl=impl)                  # representable: accepted
    fastnn.sgd_update(p, g, 1e-45, impl=impl)                   # a float32 subnormal: accepted
    q = np.ones(3)
    fastnn.sgd_update(q, np.ones(3), 1e-300, momentum=1e-300, velocity=np.zeros(3), impl=impl)


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_lr_keeps_the_parameters_when_the_gradient_overflows(dtype):
    """grad + wd·w beyond the range is ±inf; with lr = 0 the parameter stays (0·inf would
    be NaN), and the velocity takes the ±inf."""
    big = float(np.finfo(dtype).max)
    w = np.array([big, -big, 1.0], dtype)
    g = np.array([big, -big, 0.0], dtype)
    for kw in (dict(weight_decay=1.0), dict(weight_decay=1.0, momentum=0.5, nesterov=True),
               dict(weight_decay=1.0, l1=0.5)):
        v = np.zeros(3, dtype) if "momentum" in kw else None
        for impl in IMPLS:
            got, vel = _run(impl, w, g, v, 0.0, **kw)
            assert np.array_equal(got, w), (impl, kw, got)
            if v is not None:
                assert np.array_equal(vel, [np.inf, -np.inf, 1.0]), (impl, vel)
        _check_all(w, g, v, 0.0, **kw)
    p = np.array([1.0, 2.0], dtype)                            # plain SGD: lr = 0 too
    for impl in IMPLS:
        fastnn.sgd_update(p, np.array([np.nan, 1.0], dtype), 0.0, impl=impl)
        assert np.array_equal(p, [1.0, 2.0]), impl


# --- the whole table, and Hypothesis -----------------------------------------------
HYPER = [dict(), dict(l1=0.01), dict(weight_decay=0.1), dict(momentum=0.9),
         dict(momentum=0.9, nesterov=True, weight_decay=0.5, l1=0.1), dict(l1=1e20),
         dict(weight_decay=1e30), dict(momentum=0.5, weight_decay=1e20, l1=1e-30)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lr", [0.0, 1e-3, 1.0, 1e20])
def test_every_pair_of_the_table(dtype, lr):
    T = exact.extremes(dtype)
    w = np.repeat(T, len(T))
    g = np.tile(T, len(T))
    for kw in HYPER:
        _check_all(w, g, g[::-1].copy() if kw.get("momentum") else None, lr, **kw)


def _elements(dtype):
    width = 32 if dtype == f32 else 64
    return st.one_of(st.floats(-1e6, 1e6, allow_nan=False, width=width),
                     st.sampled_from([float(x) for x in exact.extremes(dtype)]))


@st.composite
def updates(draw):
    dtype = draw(st.sampled_from(DTYPES))
    n = draw(st.integers(0, 12))
    w, g, v = (draw(hnp.arrays(dtype, n, elements=_elements(dtype))) for _ in range(3))
    lr = draw(st.sampled_from([0.0, 1e-30, 1e-3, 0.5, 1.0, 1e20]))
    kw = {}
    if draw(st.booleans()):
        kw["momentum"] = draw(st.sampled_from([1e-40, 0.5, 0.9, 0.999]))
        kw["nesterov"] = draw(st.booleans())
    for name in ("weight_decay", "l1"):
        if draw(st.booleans()):
            kw[name] = draw(st.sampled_from([1e-30, 1e-4, 0.1, 1.0, 1e20]))
    return w, g, (v if "momentum" in kw else None), lr, kw


@given(updates())
def test_sgd_matches_the_rounded_reference_bit_for_bit(case):
    w, g, v, lr, kw = case
    _check_all(w, g, v, lr, **kw)


def test_the_parallel_jit_update_gives_the_same_bits_at_extremes():
    """Above PARALLEL_MIN_ELEMS the jit update runs on all threads (the same code)."""
    from fastnn.kernels.tuning import SGD_PARALLEL_MIN_ELEMS as PARALLEL_MIN_ELEMS
    for dtype in DTYPES:
        T = exact.extremes(dtype)
        pairs = np.array([(a, b) for a in T for b in T], dtype)
        reps = PARALLEL_MIN_ELEMS // len(pairs) + 1
        w, g = np.tile(pairs[:, 0], reps), np.tile(pairs[:, 1], reps)
        for kw in (dict(l1=1e20), dict(momentum=0.9, nesterov=True, weight_decay=0.5, l1=0.1)):
            v = g[::-1].copy() if "momentum" in kw else None
            runs = [_run(impl, w, g, v, 1e20, **kw) for impl in ("vectorized", "jit")]
            _assert_bits(runs[1][0], runs[0][0], f"parallel jit param {kw}")
            if v is not None:
                _assert_bits(runs[1][1], runs[0][1], f"parallel jit velocity {kw}")
