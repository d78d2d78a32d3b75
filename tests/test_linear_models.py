"""The perceptron and ADALINE (notes 003): the notes' gates and numbers, the three
implementations against each other (bit for bit) and against a plain-Python float64
transcription of the rule, the estimators' behaviour and argument checks."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn import Adaline, ConvergenceWarning, NonFiniteLossError, Perceptron
from numerics import DTYPES, IMPLS

X_GATES = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
GATES = {"AND": [0, 0, 0, 1], "OR": [0, 1, 1, 1], "XOR": [0, 1, 1, 0],
         "AND1": [0, 0, 1, 0],      # AND(x₁, ¬x₂), the notes' first hidden unit
         "AND2": [0, 1, 0, 0]}      # AND(¬x₁, x₂), the second
#: the notes' gate settings: threshold 1, no bias, w starts at [1, 1], γ = 1.5
NOTES_GATE = dict(eta=1.5, threshold=1.0, fit_intercept=False)


def notes_rule(X, y, eta, theta=0.0, w0=None, fit_b=True, epochs=100, adaline=False):
    """The notes' algorithm box in plain Python floats (float64), the kernels' order of
    operations: s = x₀w₀ + x₁w₁ + ... then + b. Returns (w, b, per-epoch errors)."""
    X = [[float(v) for v in row] for row in np.asarray(X)]
    y = [float(v) for v in y]
    w = [0.0] * len(X[0]) if w0 is None else [float(v) for v in w0]
    b = 0.0
    errors = []
    for _ in range(epochs):
        count = 0
        for x, t in zip(X, y):
            s = x[0] * w[0]
            for j in range(1, len(x)):
                s = s + x[j] * w[j]
            s = s + b
            err = t - s if adaline else t - (1.0 if s >= theta else 0.0)
            count += err * err if adaline else (err != 0)
            if err != 0:
                u = eta * err
                w = [wj + u * xj for wj, xj in zip(w, x)]
                if fit_b:
                    b = b + u
        errors.append(count)
        if not adaline and count == 0:
            break
    return np.array(w), b, errors


# --- the notes' gates -------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl", IMPLS)
def test_notes_hidden_units_learn_the_notes_weights(impl, dtype):
    """γ = 1.5, θ = 1, w from [1, 1], no bias: AND1 -> [1, −0.5], AND2 -> [−0.5, 1], the
    rows of the notes' hand-weight matrix, each after one update (the notes' working)."""
    rows = []
    for gate in ("AND1", "AND2"):
        p = Perceptron(**NOTES_GATE, impl=impl, dtype=dtype).fit(X_GATES, GATES[gate],
                                                                 coef_init=[1, 1])
        assert p.converged_ and p.errors_ == [1, 0] and p.n_iter_ == 2
        assert p.coef_.dtype == dtype and p.b_ == 0
        assert list(p.predict(X_GATES)) == GATES[gate]
        rows.append(p.coef_)
        w, b, errs = notes_rule(X_GATES, GATES[gate], 1.5, 1.0, [1, 1], fit_b=False)
        np.testing.assert_array_equal(p.coef_, w)
        assert errs == p.errors_
    np.testing.assert_array_equal(np.array(rows), [[1, -0.5], [-0.5, 1]])


def test_notes_or_unit_is_right_from_the_start():
    """The OR unit, w = [1, 1] with θ = 1, classifies every input: no update at all."""
    p = Perceptron(**NOTES_GATE).fit(X_GATES, GATES["OR"], coef_init=[1, 1])
    assert p.errors_ == [0] and p.converged_
    np.testing.assert_array_equal(p.coef_, [1, 1])


def test_two_layer_xor_reproduces_the_notes_table():
    """XOR = OR[AND(x₁, ¬x₂), AND(¬x₁, x₂)] with the hand weights [[1, −0.5], [−0.5, 1]]
    and the step at 1: the notes' truth table, column by column."""
    W = np.array([[1, -0.5], [-0.5, 1]])
    H = (X_GATES @ W.T >= 1).astype(int)                     # the hidden layer
    assert H[:, 0].tolist() == [0, 0, 1, 0]                  # AND 1
    assert H[:, 1].tolist() == [0, 1, 0, 0]                  # AND 2
    out = (H @ np.array([1, 1]) >= 1).astype(int)            # OR
    assert out.tolist() == GATES["XOR"] == [0, 1, 1, 0]
    # the notes' two worked inputs: [1, 1] -> [0.5, 0.5] -> σ = [0, 0] -> 0 ...
    np.testing.assert_array_equal(W @ [1, 1], [0.5, 0.5])
    np.testing.assert_array_equal(W @ [0, 1], [-0.5, 1])     # ... [0, 1] -> [0, 1] -> 1
    # the same network from learned units: the two ANDs, then an OR unit trained on
    # their outputs with the notes' settings (already right: no update)
    units = [Perceptron(**NOTES_GATE).fit(X_GATES, GATES[g], coef_init=[1, 1])
             for g in ("AND1", "AND2")]
    np.testing.assert_array_equal(np.array([u.coef_ for u in units]), W)
    H2 = np.column_stack([u.predict(X_GATES) for u in units])
    np.testing.assert_array_equal(H2, H)
    top = Perceptron(**NOTES_GATE).fit(H2, GATES["XOR"], coef_init=[1, 1])
    assert top.errors_ == [0]
    assert top.predict(H2).tolist() == GATES["XOR"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("gate", ["AND", "OR"])
def test_algorithm_box_learns_and_or(gate, impl):
    """w := 0, b := 0, θ = 0, with γ = 1 (the algorithm box) and γ = 1.5: converges to
    weights that reproduce the truth table; from 0 the whole run scales with γ."""
    runs = {}
    for eta in (1.0, 1.5):
        p = Perceptron(eta=eta, impl=impl).fit(X_GATES, GATES[gate])
        assert p.converged_ and p.errors_[-1] == 0 and all(e > 0 for e in p.errors_[:-1])
        assert p.predict(X_GATES).tolist() == GATES[gate] and p.score(X_GATES, GATES[gate]) == 1
        w, b, errs = notes_rule(X_GATES, GATES[gate], eta)
        np.testing.assert_array_equal(p.coef_, w)
        assert p.b_ == b and p.errors_ == errs
        runs[eta] = p
    np.testing.assert_array_equal(runs[1.5].coef_, 1.5 * runs[1.0].coef_)
    assert runs[1.5].b_ == 1.5 * runs[1.0].b_ and runs[1.5].errors_ == runs[1.0].errors_


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("settings", [dict(), NOTES_GATE, dict(eta=1.5)], ids=["box", "notes", "eta1.5"])
def test_xor_never_converges_and_is_reported(settings, impl):
    init = [1, 1] if settings is NOTES_GATE else None
    with pytest.warns(ConvergenceWarning, match="not be linearly separable"):
        p = Perceptron(max_iter=50, impl=impl, **settings).fit(X_GATES, GATES["XOR"],
                                                              coef_init=init)
    assert not p.converged_ and p.n_iter_ == 50 and len(p.errors_) == 50
    assert min(p.errors_) > 0                          # no epoch without errors
    assert p.score(X_GATES, GATES["XOR"]) < 1


# --- the three implementations: one result ---------------------------------------------
def _random_problem(dtype, N=60, D=7, seed=0, dyadic=False, noise=0.3):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D))
    if dyadic:                      # multiples of 1/8, small: every sum below is exact
        X = np.round(X * 8) / 8
    y = (X @ rng.standard_normal(D) + noise * rng.standard_normal(N) > 0).astype(float)
    return X.astype(dtype), y.astype(dtype), rng.permutation(N)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op", ["perceptron_epoch", "adaline_epoch"])
def test_implementations_agree_bit_for_bit(op, dtype):
    X, y, order = _random_problem(dtype)
    fn = getattr(fastnn, op)
    kw = dict(eta=0.5, threshold=0.25) if op == "perceptron_epoch" else dict(eta=0.02)
    got = {}
    for impl in IMPLS:
        w, b = np.zeros(X.shape[1], dtype), np.zeros(1, dtype)
        outs = [fn(X, y, w, b, order=order, impl=impl, **kw) for _ in range(6)]
        got[impl] = (outs, w, b)
        assert w.dtype == b.dtype == dtype
        if op == "adaline_epoch":
            assert all(type(o) is np.dtype(dtype).type for o in outs)
        else:
            assert all(type(o) is int for o in outs)
    ref_outs, ref_w, ref_b = got["loop"]
    assert not np.array_equal(ref_w, np.zeros_like(ref_w))          # something was learned
    for impl in IMPLS:
        outs, w, b = got[impl]
        assert outs == ref_outs, impl
        np.testing.assert_array_equal(w, ref_w, err_msg=impl)
        np.testing.assert_array_equal(b, ref_b, err_msg=impl)


@pytest.mark.parametrize("impl", IMPLS)
def test_perceptron_matches_the_float64_transcription(impl):
    """On data whose sums are exact (dyadic values) every dtype must give the plain-Python
    rule's weights exactly; on general float64 data, the same bits too."""
    for dtype, dyadic in ((np.float32, True), (np.float64, True), (np.float64, False)):
        X, y, _ = _random_problem(dtype, dyadic=dyadic, seed=3, noise=0.0)
        p = Perceptron(eta=0.5, max_iter=200, impl=impl, dtype=dtype).fit(X, y)
        w, b, errs = notes_rule(X, y, 0.5, epochs=200)
        assert p.errors_ == errs
        np.testing.assert_array_equal(p.coef_, w)
        assert p.b_ == b


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl", IMPLS)
def test_adaline_against_the_float64_transcription(impl, dtype):
    X, y, _ = _random_problem(dtype, seed=4)
    a = Adaline(eta=0.01, max_iter=30, tol=None, impl=impl, dtype=dtype).fit(X, y)
    w, b, errs = notes_rule(X, y, 0.01, epochs=30, adaline=True)
    rtol = 1e-12 if dtype == np.float64 else 2e-4
    np.testing.assert_allclose(a.coef_, w, rtol=rtol, atol=rtol * np.abs(w).max())
    np.testing.assert_allclose(a.b_, b, rtol=rtol, atol=rtol * np.abs(w).max())
    np.testing.assert_allclose(a.errors_, errs, rtol=rtol * 10)
    if dtype == np.float64:                     # the same operations in the same order
        np.testing.assert_array_equal(a.coef_, w)
        assert a.errors_ == errs


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("impl", IMPLS)
def test_adaline_epoch_reproduces_spec3_online_sgd(impl, dtype):
    """SPEC worked number 3 (the notes' SGD table) is ADALINE's delta rule."""
    x = np.array([[50.0], [80.0], [120.0]], dtype)
    y = np.array([150.0, 200.0, 280.0], dtype)
    w, b = np.zeros(1, dtype), np.zeros(1, dtype)
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    expect = [(0.75, 0.015), (1.86988, 0.0289985), (2.5369, 0.03455)]
    digits = [1e-12, 1e-5, 3e-4]           # the digits SPEC gives of each pair
    sse = 0.0
    for i in range(3):                      # sample by sample, as the table
        sse += float(fastnn.adaline_epoch(x, y, w, b, eta=1e-4, order=[i], impl=impl))
        np.testing.assert_allclose((w[0], b[0]), expect[i], rtol=max(digits[i], rtol))
    assert sse == pytest.approx(150.0**2 + (200 - 80 * 0.75 - 0.015)**2
                                + (280 - 120 * 1.86988 - 0.0289985)**2, rel=1e-5)
    w[:], b[:] = 0, 0
    for _ in range(10):
        fastnn.adaline_epoch(x, y, w, b, eta=1e-4, impl=impl)
    np.testing.assert_allclose((w[0], b[0]), (2.2673, 0.0515), rtol=3e-4)


# --- ADALINE as a classifier -------------------------------------------------------------
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("gate", ["AND", "OR"])
def test_adaline_learns_and_or(gate, impl):
    a = Adaline(eta=0.1, max_iter=500, impl=impl).fit(X_GATES, GATES[gate])
    assert a.converged_ and a.n_iter_ < 500
    assert a.predict(X_GATES).tolist() == GATES[gate]
    assert a.errors_[-1] < a.errors_[0]
    # near the least-squares solution: AND w ≈ [0.5, 0.5], b ≈ −0.25 (OR: b ≈ +0.25)
    np.testing.assert_allclose(a.coef_, [0.5, 0.5], atol=0.1)
    assert a.b_ == pytest.approx(-0.25 if gate == "AND" else 0.25, abs=0.1)


def test_adaline_cannot_learn_xor():
    a = Adaline(eta=0.05, max_iter=500).fit(X_GATES, GATES["XOR"])
    assert a.score(X_GATES, GATES["XOR"]) < 1
    assert min(a.errors_) > 0.9                 # least squares of XOR: 4 × 0.5² = 1


def test_adaline_without_tol_runs_every_epoch_and_warns_with_tol():
    a = Adaline(eta=0.1, max_iter=7, tol=None).fit(X_GATES, GATES["AND"])
    assert a.n_iter_ == 7 and not a.converged_
    with pytest.warns(ConvergenceWarning, match="tol=1e-12"):
        b = Adaline(eta=0.001, max_iter=5, tol=1e-12).fit(X_GATES, GATES["AND"])
    assert b.n_iter_ == 5 and not b.converged_


@pytest.mark.parametrize("impl", IMPLS)
def test_adaline_divergence_raises_and_keeps_finite_weights(impl):
    X = np.array([[0, 0], [0, 10], [10, 0], [10, 10]])
    a = Adaline(eta=1.0, max_iter=100, impl=impl, dtype=np.float32)
    with pytest.raises(NonFiniteLossError, match="smaller eta") as info:
        a.fit(X, GATES["AND"])
    assert info.value.epoch > 1 and info.value.step is None
    assert np.isfinite(a.coef_).all() and np.isfinite(a.b_)
    assert a.n_iter_ == info.value.epoch - 1 == len(a.errors_)


# --- estimator behaviour -----------------------------------------------------------------
def test_any_two_labels_via_classes_():
    y = np.array(["no", "no", "no", "yes"])
    p = Perceptron().fit(X_GATES, y)
    assert p.classes_.tolist() == ["no", "yes"] and p.predict(X_GATES).tolist() == y.tolist()
    q = Perceptron().fit(X_GATES, [-1, -1, -1, 1])
    np.testing.assert_array_equal(q.coef_, p.coef_)              # -1 coded 0, 1 coded 1
    assert q.predict(X_GATES).tolist() == [-1, -1, -1, 1] and q.score(X_GATES, [-1, -1, -1, 1]) == 1


def test_decision_function_net_input_and_aliases():
    p = Perceptron().fit(X_GATES, GATES["AND"])
    net = p.net_input(X_GATES)
    np.testing.assert_array_equal(net, X_GATES @ p.coef_ + p.b_)    # exact on the gates
    np.testing.assert_array_equal(p.decision_function(X_GATES), net - p.threshold)
    assert (p.decision_function(X_GATES) >= 0).astype(int).tolist() == GATES["AND"]
    assert p.w_ is p.coef_ and p.b_ == p.intercept_[0]
    assert p.n_features_in_ == 2 and "Perceptron(eta=1.0" in repr(p)


@pytest.mark.parametrize("dtype", DTYPES)
def test_converged_means_every_training_sample_right(dtype):
    """predict sums as training did, so a converged fit scores 1 on its data (also where
    a BLAS product could round a near-tie the other way)."""
    X, y, _ = _random_problem(dtype, N=300, D=20, seed=5)
    y = (X.astype(np.float64) @ np.arange(1, 21) > 0).astype(int)       # separable
    p = Perceptron(eta=0.1, max_iter=1000, dtype=dtype).fit(X, y)
    assert p.converged_ and p.score(X, y) == 1.0


@pytest.mark.parametrize("impl", IMPLS)
def test_shuffle_is_seeded_and_the_same_across_impls(impl):
    X, y, _ = _random_problem(np.float64, seed=6, dyadic=True, noise=0.0)
    a = Perceptron(shuffle=True, random_state=3, impl=impl, max_iter=500).fit(X, y)
    b = Perceptron(shuffle=True, random_state=3, impl="loop", max_iter=500).fit(X, y)
    c = Perceptron(shuffle=True, random_state=4, impl=impl, max_iter=500).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    assert a.errors_ == b.errors_ and a.errors_ != c.errors_


def test_refit_starts_over_and_intercept_init():
    p = Perceptron()
    first = p.fit(X_GATES, GATES["AND"]).coef_.copy()
    np.testing.assert_array_equal(p.fit(X_GATES, GATES["AND"]).coef_, first)
    q = Perceptron(eta=1.0).fit(X_GATES, GATES["AND"], coef_init=[0, 0], intercept_init=-0.5)
    w, b, errs = notes_rule(X_GATES, GATES["AND"], 1.0)
    assert q.converged_ and q.predict(X_GATES).tolist() == GATES["AND"]
    assert q.errors_ != errs                    # another start, another path


# --- argument checks -------------------------------------------------------------------------
@pytest.mark.parametrize("kw,exc,match", [
    (dict(eta=0), ValueError, "eta: expected > 0"),
    (dict(eta="fast"), TypeError, "eta: expected a real number"),
    (dict(eta=float("nan")), ValueError, "eta: expected a finite number"),
    (dict(max_iter=0), ValueError, "max_iter: expected an integer >= 1, got 0"),
    (dict(max_iter=2.5), TypeError, "max_iter: expected an integer, got float"),
    (dict(threshold=None), TypeError, "threshold: expected a real number"),
    (dict(shuffle="yes"), TypeError, "shuffle: expected a bool, got str"),
    (dict(fit_intercept=1), TypeError, "fit_intercept: expected a bool, got int"),
    (dict(random_state=-1), ValueError, "random_state: expected an integer >= 0"),
    (dict(impl="fast"), ValueError, "impl: expected one of"),
    (dict(dtype=np.int32), TypeError, "dtype: expected float32 or float64, got int32"),
    (dict(dtype="nonsense"), TypeError, "dtype: expected float32 or float64"),
])
@pytest.mark.parametrize("cls", [Perceptron, Adaline])
def test_constructor_checks(cls, kw, exc, match):
    with pytest.raises(exc, match=match):
        cls(**kw)


def test_adaline_tol_is_checked():
    with pytest.raises(ValueError, match="tol: expected >= 0"):
        Adaline(tol=-1)


@pytest.mark.parametrize("args,kw,exc,match", [
    ((X_GATES[0], [0]), {}, ValueError, r"X: expected shape \(N, D\), got \(2,\); use X\[None, :\]"),
    ((X_GATES, [0, 1, 2, 1]), {}, ValueError, "y: expected labels of exactly two classes"),
    ((X_GATES, [1, 1, 1, 1]), {}, ValueError, "exactly two classes .* got 1"),
    ((X_GATES, [0, 1]), {}, ValueError, r"y: expected shape \(4,\)"),
    ((X_GATES * np.nan, GATES["AND"]), {}, ValueError, "X: contains NaN"),
    ((np.array([["a", "b"]]), [0]), {}, TypeError, "X: expected real numbers"),
    ((X_GATES, GATES["AND"]), dict(coef_init=[1, 1, 1]), ValueError, "coef_init: expected 2 real"),
    ((X_GATES, GATES["AND"]), dict(intercept_init="b"), TypeError, "intercept_init: expected a real"),
])
def test_fit_checks(args, kw, exc, match):
    p = Perceptron().fit(X_GATES, GATES["OR"])
    before = (p.coef_.copy(), p.b_, p.errors_)
    with pytest.raises(exc, match=match):
        p.fit(*args, **kw)
    np.testing.assert_array_equal(p.coef_, before[0])             # the fitted model is kept
    assert (p.b_, p.errors_) == before[1:]


def test_predict_checks():
    with pytest.raises(ValueError, match="not fitted yet"):
        Perceptron().predict(X_GATES)
    p = Perceptron().fit(X_GATES, GATES["AND"])
    with pytest.raises(ValueError, match=r"X: expected shape \(N, 2\) for the 2 features seen in fit"):
        p.predict(np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"y: expected shape \(4,\)"):
        p.score(X_GATES, [0, 1])


def _epoch_call(**over):
    args = dict(X=X_GATES.astype(float), y=np.array(GATES["AND"]), w=np.zeros(2), b=np.zeros(1))
    args.update(over)
    kw = {k: args.pop(k) for k in list(args) if k not in ("X", "y", "w", "b")}
    return args, kw


@pytest.mark.parametrize("over,exc,match", [
    (dict(X=X_GATES), TypeError, "X: expected a float32 or float64 array, got int64"),
    (dict(X=np.ones((4, 0))), ValueError, "X: expected at least one feature"),
    (dict(y=np.array([0, 1, 2, 1])), ValueError, "y: expected perceptron targets 0 or 1, got 2"),
    (dict(y=np.zeros(3)), ValueError, r"y: expected shape \(4,\)"),
    (dict(y=np.zeros(4, np.float32)), TypeError, "y: dtype float32 does not match"),
    (dict(w=np.zeros(2, np.float32)), TypeError, "w: expected dtype float64"),
    (dict(w=np.zeros(3)), ValueError, r"w: expected shape \(2,\)"),
    (dict(w=[0.0, 0.0]), TypeError, "w: expected a numpy.ndarray"),
    (dict(b=np.zeros(2)), ValueError, r"b: expected shape \(1,\)"),
    (dict(eta=0.0), ValueError, "eta: expected > 0"),
    (dict(threshold=float("inf")), ValueError, "threshold: expected a finite number"),
    (dict(order=[0, 4]), ValueError, r"order: sample indices must lie in \[0, 4\).* got 4 at position 1"),
    (dict(order=[-1]), ValueError, "got -1 at position 0"),
    (dict(order=[0.0, 1.0]), TypeError, "order: expected a 1-D array of integer sample indices"),
    (dict(fit_intercept="no"), TypeError, "fit_intercept: expected a bool"),
    (dict(impl="gpu"), ValueError, "impl: expected one of"),
])
def test_epoch_function_checks_before_writing(over, exc, match):
    args, kw = _epoch_call(**over)
    w, b = args["w"], args["b"]
    w_before = np.array(w, copy=True) if isinstance(w, np.ndarray) else None
    with pytest.raises(exc, match=match):
        fastnn.perceptron_epoch(args["X"], args["y"], w, b, **kw)
    if w_before is not None:
        np.testing.assert_array_equal(w, w_before)


def test_epoch_function_rejects_read_only_and_overlapping_outputs():
    X = X_GATES.astype(float)
    w = np.zeros(2)
    w.flags.writeable = False
    with pytest.raises(ValueError, match="w: the array is read-only"):
        fastnn.perceptron_epoch(X, GATES["AND"], w, np.zeros(1))
    buf = np.zeros(3)
    with pytest.raises(ValueError, match="b: must not overlap the input w"):
        fastnn.adaline_epoch(X, GATES["AND"], buf[:2], buf[1:2])


def test_epoch_functions_on_empty_order_and_repeats():
    X = X_GATES.astype(float)
    w, b = np.zeros(2), np.zeros(1)
    assert fastnn.perceptron_epoch(X, GATES["AND"], w, b, order=np.array([], int)) == 0
    assert fastnn.adaline_epoch(X, GATES["AND"], w, b, order=[]) == 0
    np.testing.assert_array_equal(w, 0)
    # the same sample twice: the second visit sees the first update
    n = fastnn.perceptron_epoch(X, GATES["AND"], w, b, order=[0, 0])
    assert n == 1 and b[0] == -1.0
