"""fastnn.MLPClassifier and fastnn.MLPRegressor: scikit-learn's estimator checks, the
same network as fastnn.MLP, labels, dtypes, stopping, and the scikit-learn tools
(clone, Pipeline, cross_val_score, GridSearchCV)."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import scipy.sparse
from sklearn.base import clone
from sklearn.datasets import make_blobs, make_regression
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import estimator_checks_generator

import fastnn
from fastnn import MLP, MLPClassifier, MLPRegressor
from fastnn.datasets import load_digits

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def digits():
    return load_digits(dtype=np.float64)


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=240, centers=3, n_features=4, random_state=0)
    return StandardScaler().fit_transform(X), y


# --------------------------------------------------------------------------------------
# scikit-learn's own checks, every one of them (none expected to fail)
# --------------------------------------------------------------------------------------

def _run_in_array_api_mode(estimator, check):
    """check_array_api_input needs SCIPY_ARRAY_API=1 before SciPy is first imported:
    run it in a fresh interpreter with that set (in this process it would skip)."""
    code = textwrap.dedent(f"""
        import fastnn
        from sklearn.utils import estimator_checks as ec
        est = fastnn.{type(estimator).__name__}(**{estimator.get_params()!r})
        ec.{check.func.__name__}({check.args[0]!r}, est, **{check.keywords!r})
        print("passed")
    """)
    env = dict(os.environ, SCIPY_ARRAY_API="1")
    r = subprocess.run([sys.executable, "-W", "ignore::sklearn.exceptions.ConvergenceWarning",
                        "-c", code], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0 and r.stdout.strip() == "passed", r.stdout + r.stderr


def _check_id(case):
    """``MLPClassifier-check_fit2d_1sample`` (keyword arguments of the check appended)."""
    if isinstance(case, str):
        return case
    if not hasattr(case, "func"):
        return type(case).__name__
    kw = ",".join(f"{k}={v}" for k, v in case.keywords.items())
    return case.func.__name__ + (f"({kw})" if kw else "")


#: Every check sklearn's check_estimator runs, for both estimators, none expected to fail.
#: (Built with estimator_checks_generator rather than parametrize_with_checks, which in
#: scikit-learn 1.6 hands pytest a generator: a PytestRemovedIn10Warning under pytest 9.)
ESTIMATOR_CHECKS = [case for est in (MLPClassifier(random_state=0), MLPRegressor(random_state=0))
                    for case in estimator_checks_generator(est)]


@pytest.mark.parametrize("estimator, check", ESTIMATOR_CHECKS, ids=_check_id)
def test_sklearn_estimator_checks(estimator, check):
    """``check_estimator``'s checks as separate tests. A ConvergenceWarning is expected in
    many of them: they fit random labels or a handful of samples, where 200 epochs of
    SGD do not settle (this suite turns warnings into errors; the warning itself is
    tested in test_convergence_warning_and_early_stopping)."""
    name = getattr(check, "func", check).__name__
    if name == "check_array_api_input":
        _run_in_array_api_mode(estimator, check)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


# --------------------------------------------------------------------------------------
# the network: exactly fastnn.MLP's
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_classifier_trains_the_same_network_as_mlp_bit_for_bit(digits, dt):
    X, y, X_test, y_test = digits
    X, X_test = X.astype(dt), X_test.astype(dt)
    alpha, B, epochs = 1e-3, 16, 4
    clf = MLPClassifier((32,), alpha=alpha, batch_size=B, learning_rate_init=0.5, momentum=0.5,
                        max_iter=epochs, tol=0.0, n_iter_no_change=epochs, random_state=7)
    with pytest.warns(ConvergenceWarning, match="max_iter=4"):
        clf.fit(X, y)
    mlp = MLP([64, 32, 10], seed=7, dtype=dt)
    hist = mlp.fit(X, y, epochs=epochs, batch_size=B, lr=0.5, momentum=0.5,
                   weight_decay=alpha / B)
    assert clf.model_.dtype == dt and clf.out_activation_ == "softmax" and clf.n_outputs_ == 10
    for mine, W in zip(clf.coefs_, mlp.weights):
        assert mine.shape == W.T.shape
        np.testing.assert_array_equal(mine, W.T)
    for mine, b in zip(clf.intercepts_, mlp.biases):
        np.testing.assert_array_equal(mine, b)
    # loss_curve_: the epoch's data loss plus alpha/(2B) ||W||^2 at its end (the last
    # epoch's penalty recomputed here from the final weights, in float64)
    assert clf.n_iter_ == epochs and clf.t_ == epochs * X.shape[0]
    penalty = alpha / (2 * B) * sum(float(np.sum(W.astype(np.float64) ** 2)) for W in mlp.weights)
    assert clf.loss_curve_[-1] == pytest.approx(hist.loss[-1] + penalty, rel=1e-12)
    assert clf.loss_ == clf.loss_curve_[-1] and clf.best_loss_ == min(clf.loss_curve_)
    assert all(c > h for c, h in zip(clf.loss_curve_, hist.loss))
    np.testing.assert_array_equal(clf.predict(X_test), mlp.predict(X_test))
    np.testing.assert_array_equal(clf.predict_proba(X_test), mlp.predict_proba(X_test))
    assert clf.predict_proba(X_test).dtype == dt
    assert clf.score(X_test, y_test) == mlp.score(X_test, y_test)


def test_binary_classifier_is_one_sigmoid_unit(blobs):
    X, y = blobs
    y = np.where(y == 1, "yes", "no")               # string labels, sorted: ['no', 'yes']
    kw = dict(batch_size=32, learning_rate_init=0.2, max_iter=30, tol=0.0, n_iter_no_change=99,
              random_state=1)
    with pytest.warns(ConvergenceWarning):
        clf = MLPClassifier((8,), **kw).fit(X, y)
    assert list(clf.classes_) == ["no", "yes"] and clf.n_outputs_ == 1
    assert clf.out_activation_ == "logistic" and [c.shape for c in clf.coefs_] == [(4, 8), (8, 1)]
    mlp = MLP([4, 8, 1], output="sigmoid", seed=1, dtype=np.float64)
    mlp.fit(X, (y == "yes").astype(np.float64), epochs=30, batch_size=32, lr=0.2, momentum=0.9,
            weight_decay=1e-4 / 32)
    np.testing.assert_array_equal(clf.coefs_[1], mlp.weights[1].T)
    P = clf.predict_proba(X)
    p = 1 / (1 + np.exp(-mlp.decision_function(X)[:, 0]))      # independent float64 sigmoid
    np.testing.assert_allclose(P[:, 1], p, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), P, rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), np.where(P[:, 1] > 0.5, "yes", "no"))
    assert clf.score(X, y) > 0.95


def test_regressor_trains_the_same_network_as_mlp_and_multioutput():
    X, Y = make_regression(n_samples=150, n_features=5, n_targets=2, noise=0.1, random_state=3)
    X, Y = StandardScaler().fit_transform(X), StandardScaler().fit_transform(Y)
    reg = MLPRegressor((16,), batch_size=10, learning_rate_init=0.05, max_iter=60, tol=0.0,
                       n_iter_no_change=99, random_state=2)
    with pytest.warns(ConvergenceWarning):
        reg.fit(X, Y)
    mlp = MLP([5, 16, 2], output="identity", loss="mse", seed=2, dtype=np.float64)
    mlp.fit(X, Y, epochs=60, batch_size=10, lr=0.05, momentum=0.9, weight_decay=1e-4 / 10)
    np.testing.assert_array_equal(reg.predict(X), mlp.predict(X))
    assert reg.predict(X).shape == (150, 2) and reg.out_activation_ == "identity"
    assert reg.score(X, Y) > 0.95
    # one target: predictions are (n,), whether y came as (n,) or as a column (n, 1)
    reg1 = MLPRegressor((16,), max_iter=50, random_state=0, tol=1e-3).fit(X, Y[:, 0])
    assert reg1.predict(X).shape == (150,) and reg1.n_outputs_ == 1
    assert reg1.score(X, Y[:, 0]) > 0.9


def test_integer_random_state_is_the_mlp_seed_and_fit_is_repeatable(blobs):
    X, y = blobs
    a = MLPClassifier((8,), tol=1e-2, n_iter_no_change=2, random_state=5).fit(X, y)
    b = MLPClassifier((8,), tol=1e-2, n_iter_no_change=2, random_state=5).fit(X, y)
    c = MLPClassifier((8,), tol=1e-2, n_iter_no_change=2, random_state=6).fit(X, y)
    np.testing.assert_array_equal(a.coefs_[0], b.coefs_[0])
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])
    assert a.model_.seed == 5
    # a RandomState draws the seed from it, reproducibly
    quick = dict(tol=1e-2, n_iter_no_change=2)
    d = MLPClassifier((8,), random_state=np.random.RandomState(0), **quick).fit(X, y)
    e = MLPClassifier((8,), random_state=np.random.RandomState(0), **quick).fit(X, y)
    np.testing.assert_array_equal(d.coefs_[0], e.coefs_[0])


def test_implementations_follow_the_same_trajectory(blobs):
    X, y = blobs
    kw = dict(hidden_layer_sizes=(6,), batch_size=40, max_iter=5, tol=0.0, n_iter_no_change=9,
              random_state=0)
    fits = {}
    for impl in ("loop", "vectorized", "jit"):
        with pytest.warns(ConvergenceWarning):
            fits[impl] = MLPClassifier(impl=impl, **kw).fit(X[:80], y[:80])
    for impl in ("loop", "vectorized"):
        for a, b in zip(fits[impl].coefs_, fits["jit"].coefs_):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(fits[impl].loss_curve_, fits["jit"].loss_curve_, rtol=1e-10)


# --------------------------------------------------------------------------------------
# labels, dtypes, inputs
# --------------------------------------------------------------------------------------

def test_any_label_values(digits):
    X, y, X_test, y_test = digits
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                      "nine"])
    kw = dict(hidden_layer_sizes=(32,), batch_size=16, learning_rate_init=0.5, momentum=0.0,
              tol=1e-3, n_iter_no_change=2, random_state=0)
    by_int = MLPClassifier(**kw).fit(X, y)
    by_name = MLPClassifier(**kw).fit(X, names[y])
    by_odd = MLPClassifier(**kw).fit(X, 10 * y - 7)            # sorted like y: same codes
    assert list(by_name.classes_) == sorted(names)
    np.testing.assert_array_equal(by_odd.classes_, 10 * np.arange(10) - 7)
    np.testing.assert_array_equal(by_odd.predict(X_test), 10 * by_int.predict(X_test) - 7)
    np.testing.assert_array_equal(by_odd.predict_proba(X_test), by_int.predict_proba(X_test))
    # names sort differently from the digits: predict_proba's columns follow classes_
    P_name = by_name.predict_proba(X_test)
    np.testing.assert_array_equal(by_name.predict(X_test), by_name.classes_[P_name.argmax(axis=1)])
    agree = np.mean(by_name.predict(X_test) == names[by_int.predict(X_test)])
    assert agree > 0.95, agree
    assert by_name.score(X_test, names[y_test]) > 0.95
    assert by_int.score(X_test, y_test) > 0.95


def test_float32_and_float64_inputs(blobs):
    X, y = blobs
    kw = dict(hidden_layer_sizes=(8,), tol=1e-3, n_iter_no_change=2, random_state=0)
    f32 = MLPClassifier(**kw).fit(X.astype(np.float32), y)
    f64 = MLPClassifier(**kw).fit(X, y)
    forced = MLPClassifier(dtype=np.float64, **kw).fit(X.astype(np.float32), y)
    ints = MLPClassifier(**kw).fit(np.round(X * 4).astype(np.int64), y)
    assert f32.model_.dtype == np.float32 and f32.coefs_[0].dtype == np.float32
    assert f64.model_.dtype == np.float64 and forced.model_.dtype == np.float64
    assert ints.model_.dtype == np.float64
    assert f32.predict_proba(X.astype(np.float32)).dtype == np.float32
    assert f64.predict_proba(X).dtype == np.float64
    np.testing.assert_allclose(f32.predict_proba(X), f64.predict_proba(X), atol=1e-3)
    reg = MLPRegressor((8,), tol=1e-3, n_iter_no_change=2, random_state=0)
    assert reg.fit(X.astype(np.float32), X[:, 0]).predict(X).dtype == np.float32


def test_sparse_input_is_rejected(blobs):
    X, y = blobs
    with pytest.raises(TypeError, match="Sparse data was passed"):
        MLPClassifier().fit(scipy.sparse.csr_matrix(X), y)
    clf = MLPClassifier((4,), tol=1e-1, n_iter_no_change=1, random_state=0).fit(X, y)
    with pytest.raises(TypeError, match="Sparse data was passed"):
        clf.predict(scipy.sparse.csr_matrix(X))


@pytest.mark.parametrize("param, value, exc, match", [
    ("hidden_layer_sizes", (10, 0), ValueError, r"hidden_layer_sizes: expected an integer >= 1, got 0"),
    ("hidden_layer_sizes", "100", TypeError, "hidden_layer_sizes: expected an int or a sequence"),
    ("hidden_layer_sizes", (10.5,), TypeError, "hidden_layer_sizes: expected an integer"),
    ("activation", "relu", ValueError, r"activation: expected one of 'logistic', 'identity', got 'relu'"),
    ("solver", "adam", ValueError, r"solver: only 'sgd'.*got 'adam'"),
    ("alpha", -1.0, ValueError, "alpha: expected >= 0.0, got -1.0"),
    ("batch_size", 0, ValueError, "batch_size: expected an integer >= 1, got 0"),
    ("batch_size", "big", TypeError, "batch_size: expected an integer"),
    ("learning_rate_init", 0.0, ValueError, "learning_rate_init: expected > 0.0, got 0.0"),
    ("learning_rate_init", float("nan"), ValueError, "learning_rate_init: expected a finite"),
    ("momentum", 1.0, ValueError, "momentum: expected < 1.0, got 1.0"),
    ("max_iter", 0, ValueError, "max_iter: expected an integer >= 1, got 0"),
    ("shuffle", "yes", TypeError, "shuffle: expected True or False"),
    ("random_state", -1, ValueError, r"random_state: expected an int in \[0, 2\*\*32\), got -1"),
    ("random_state", 1.5, TypeError, "random_state: expected None, an int"),
    ("tol", -1e-4, ValueError, "tol: expected >= 0.0"),
    ("n_iter_no_change", 0, ValueError, "n_iter_no_change: expected an integer >= 1, got 0"),
    ("l1", -0.1, ValueError, "l1: expected >= 0.0"),
    ("dtype", np.float16, TypeError, "dtype: expected None, numpy.float32 or numpy.float64, got float16"),
    ("impl", "cuda", ValueError, r"impl: expected None or one of 'loop', 'vectorized', 'jit', got 'cuda'"),
])
def test_bad_parameters_are_named_at_fit_and_change_nothing(blobs, param, value, exc, match):
    X, y = blobs
    for Est in (MLPClassifier, MLPRegressor):
        est = Est(**{param: value})                  # scikit-learn: no checks in __init__
        with pytest.raises(exc, match=match):
            est.fit(X, y.astype(np.float64))
        assert not hasattr(est, "model_") and not hasattr(est, "n_features_in_")
        with pytest.raises(NotFittedError):
            est.predict(X)


def test_classifier_target_errors(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match=r"y: a classifier needs at least 2 classes, got 1 class"):
        MLPClassifier().fit(X, np.zeros(len(y)))
    with pytest.raises(ValueError, match="Unknown label type"):
        MLPClassifier().fit(X, X[:, 0])
    with pytest.raises(ValueError, match=r"y should be a 1d array, got an array of shape \(240, 3\)"):
        MLPClassifier().fit(X, np.eye(3, dtype=int)[y])
    clf = MLPClassifier((4,), tol=1e-1, n_iter_no_change=1, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but MLPClassifier is expecting 4"):
        clf.predict(X[:, :3])


def test_diverging_training_raises_and_keeps_the_estimator_unfitted(blobs):
    X, y = blobs
    reg = MLPRegressor((8,), activation="identity", learning_rate_init=1e30, random_state=0)
    with pytest.raises(fastnn.NonFiniteLossError, match="training loss became non-finite at epoch"):
        reg.fit(X, y * 1e3)
    assert not hasattr(reg, "model_")


# --------------------------------------------------------------------------------------
# stopping, verbose output, fitted attributes
# --------------------------------------------------------------------------------------

def _expected_stop(curve, tol, patience):
    """scikit-learn's rule, written out: the first epoch whose count of epochs without an
    improvement of tol exceeds patience (None: it never does)."""
    best, count = np.inf, 0
    for t, loss in enumerate(curve, 1):
        count = count + 1 if loss > best - tol else 0
        best = min(best, loss)
        if count > patience:
            return t
    return None


def test_convergence_warning_and_early_stopping(blobs):
    X, y = blobs
    # tol = 0 and patience = max_iter: never stops early, warns at max_iter
    with pytest.warns(ConvergenceWarning,
                      match=r"reached max_iter=25 epochs before .*tol=0.0 \(for more than "
                            r"n_iter_no_change=25 epochs\); the optimization hasn't converged"):
        full = MLPClassifier((8,), max_iter=25, tol=0.0, n_iter_no_change=25,
                             random_state=0).fit(X, y)
    assert full.n_iter_ == 25 and len(full.loss_curve_) == 25
    # a large tol stops at the epoch the rule says, with no warning (an error here)
    warnings.simplefilter("error", ConvergenceWarning)
    for tol, patience in ((0.05, 2), (1e-3, 5)):
        early = MLPClassifier((8,), max_iter=500, tol=tol, n_iter_no_change=patience,
                              random_state=0).fit(X, y)
        assert early.n_iter_ < 500
        assert _expected_stop(early.loss_curve_, tol, patience) == early.n_iter_
        assert _expected_stop(early.loss_curve_[:-1], tol, patience) is None
        # the same epochs as the 25-epoch run up to there (same seed, same steps)
        k = min(early.n_iter_, 25)
        np.testing.assert_array_equal(early.loss_curve_[:k], full.loss_curve_[:k])


def test_verbose_prints_the_loss_of_every_epoch(blobs, capsys):
    X, y = blobs
    clf = MLPClassifier((4,), max_iter=300, tol=0.05, n_iter_no_change=2, verbose=True,
                        random_state=0).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == clf.n_iter_ + 1
    assert lines[0] == f"Iteration 1, loss = {clf.loss_curve_[0]:.8f}"
    assert lines[-1].startswith("Training loss did not improve more than tol=0.05 for 2")


def test_ctrl_c_keeps_the_epochs_done(blobs, monkeypatch):
    """Ctrl-C during fit: MLP.fit stops after the running epoch; the estimator keeps the
    epochs done, fitted, with a warning (scikit-learn's MLPs do the same)."""
    import signal

    from fastnn import estimators

    def print_and_interrupt(line, **kw):          # verbose's per-epoch line
        if line.startswith("Iteration 3,"):
            os.kill(os.getpid(), signal.SIGINT)
    monkeypatch.setattr(estimators, "print", print_and_interrupt, raising=False)
    X, y = blobs
    clf = MLPClassifier((4,), max_iter=50, tol=0.0, verbose=True, random_state=0)
    before = signal.getsignal(signal.SIGINT)      # (SIG_IGN when started in the background)
    with pytest.warns(UserWarning, match="training interrupted by the user after 3 epochs"):
        clf.fit(X, y)
    assert clf.n_iter_ == 3 and len(clf.loss_curve_) == 3 and clf.model_.epoch == 3
    assert clf.predict(X).shape == (len(X),)
    assert signal.getsignal(signal.SIGINT) is before              # restored as it was


def test_coefs_are_views_and_pickling_keeps_them(blobs):
    X, y = blobs
    clf = MLPClassifier((8,), tol=1e-2, n_iter_no_change=2, random_state=0).fit(X, y)
    assert [c.shape for c in clf.coefs_] == [(4, 8), (8, 3)]
    assert [b.shape for b in clf.intercepts_] == [(8,), (3,)]
    assert clf.n_layers_ == 3 and clf.n_features_in_ == 4
    before = clf.predict_proba(X)
    back = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(back.predict_proba(X), before)
    np.testing.assert_array_equal(back.coefs_[0], clf.coefs_[0])
    assert back.loss_curve_ == clf.loss_curve_ and back.n_iter_ == clf.n_iter_
    assert back.model_.epoch == clf.model_.epoch and len(back.model_.history) == clf.n_iter_
    # writing into coefs_ changes the model, in the original and in the unpickled copy
    for est in (back, clf):
        est.coefs_[1][...] = 0
        est.intercepts_[1][...] = (0.0, 1.0, 0.0)
        np.testing.assert_array_equal(est.predict(X), np.ones(len(X), dtype=y.dtype))
    # the unpickled network trains on the buffer its weights view (MLP.fit writes _params)
    np.testing.assert_array_equal(back.model_._params[:8 * 4].reshape(8, 4), back.coefs_[0].T)


def test_unfitted_attributes_are_absent():
    clf = MLPClassifier()
    for name in ("coefs_", "intercepts_", "classes_", "loss_curve_", "n_iter_"):
        assert not hasattr(clf, name), name


# --------------------------------------------------------------------------------------
# scikit-learn's tools
# --------------------------------------------------------------------------------------

def test_clone_keeps_parameters_and_drops_the_fit(blobs):
    X, y = blobs
    clf = MLPClassifier((8, 4), alpha=1e-3, l1=1e-5, dtype=np.float32, impl="vectorized",
                        tol=1e-1, n_iter_no_change=1, random_state=3).fit(X, y)
    twin = clone(clf)
    assert twin.get_params() == clf.get_params() and not hasattr(twin, "model_")
    twin.set_params(hidden_layer_sizes=(5,), impl="jit")
    assert twin.get_params()["hidden_layer_sizes"] == (5,)
    assert clf.get_params()["hidden_layer_sizes"] == (8, 4)
    assert [c.shape for c in twin.fit(X, y).coefs_] == [(4, 5), (5, 3)]


def test_pipeline_and_cross_val_score(digits):
    X, y, _, _ = digits
    pipe = make_pipeline(StandardScaler(), MLPClassifier((32,), batch_size=32, max_iter=40,
                                                         tol=1e-3, random_state=0))
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.9, scores
    Xr, yr = make_regression(n_samples=200, n_features=6, noise=1.0, random_state=0)
    reg = Pipeline([("scale", StandardScaler()),
                    ("mlp", MLPRegressor((16,), batch_size=20, learning_rate_init=0.01,
                                         max_iter=200, tol=1e-5, random_state=0))])
    r2 = cross_val_score(reg, Xr, (yr - yr.mean()) / yr.std(), cv=3)
    assert r2.min() > 0.9, r2


def test_grid_search(digits):
    X, y, X_test, y_test = digits
    pipe = Pipeline([("scale", StandardScaler()),
                     ("mlp", MLPClassifier(batch_size=32, max_iter=30, tol=1e-3, random_state=0))])
    grid = GridSearchCV(pipe, {"mlp__hidden_layer_sizes": [(4,), (32,)],
                               "mlp__learning_rate_init": [1e-3, 0.1]}, cv=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)     # lr 1e-3 does not converge
        grid.fit(X, y)
    assert grid.best_params_ == {"mlp__hidden_layer_sizes": (32,), "mlp__learning_rate_init": 0.1}
    means = grid.cv_results_["mean_test_score"]
    assert means.shape == (4,) and means.max() > 0.9 and means.min() < 0.9
    assert grid.score(X_test, y_test) > 0.9


# --------------------------------------------------------------------------------------
# scikit-learn only when these classes are used
# --------------------------------------------------------------------------------------

def _python(code):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300, cwd=REPO)


def test_import_fastnn_does_not_import_sklearn():
    r = _python("""
        import sys, fastnn
        assert "sklearn" not in sys.modules, "import fastnn imported scikit-learn"
        assert "MLPClassifier" in dir(fastnn)
        fastnn.MLPRegressor
        assert "sklearn" in sys.modules
        print(fastnn.MLPClassifier.__module__)
    """)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "fastnn.estimators"


def test_without_sklearn_the_estimators_name_the_extra():
    r = _python("""
        import sys
        sys.modules["sklearn"] = None          # scikit-learn not installed
        import fastnn
        fastnn.MLP([2, 2])                      # the rest of fastnn works
        try:
            fastnn.MLPClassifier
        except ImportError as exc:
            print(exc)
        try:
            fastnn.NoSuchThing
        except AttributeError as exc:
            print(exc)
    """)
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.strip().splitlines()
    assert first.startswith("fastnn.MLPClassifier and fastnn.MLPRegressor need scikit-learn "
                            '>= 1.6; install it with: pip install "fastnn-kernels[sklearn]"')
    assert second == "module 'fastnn' has no attribute 'NoSuchThing'"
