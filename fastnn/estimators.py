"""scikit-learn estimators on :class:`fastnn.MLP`: ``MLPClassifier`` and ``MLPRegressor``.

    >>> from fastnn import MLPClassifier              # needs scikit-learn (>= 1.6)
    >>> clf = MLPClassifier(hidden_layer_sizes=(32,), random_state=0).fit(X, y)
    >>> clf.predict(X_test), clf.predict_proba(X_test), clf.score(X_test, y_test)

They follow ``sklearn.neural_network.MLPClassifier`` / ``MLPRegressor``: the same
parameter names where they mean the same thing, ``get_params``/``set_params``,
``clone``, pipelines, ``cross_val_score`` and ``GridSearchCV``, any label values
(``classes_``), and the fitted attributes ``coefs_`` (shapes (in, out), as
scikit-learn's), ``intercepts_``, ``loss_curve_``, ``n_iter_``, ``n_features_in_``.
They pass ``sklearn.utils.estimator_checks.check_estimator`` (``tests/test_estimators.py``).
Training is :meth:`fastnn.MLP.fit`: with the default implementation (``"jit"``) each
epoch runs in fastnn's compiled epoch.

The network (SPEC "Losses", "Updates"; the model docstring of :mod:`fastnn.train.mlp`):

==================  ===================  =================================================
estimator           output               data loss L (mean over the batch of N samples)
==================  ===================  =================================================
classifier, 2       one sigmoid unit     −(1/N) Σ y log ŷ + (1 − y) log(1 − ŷ)
classifier, C > 2   softmax over C       (1/N) Σ logsumexp(z_i) − z[i, y_i]
regressor           identity, K outputs  (1/2N) Σ ‖z_i − y_i‖²
==================  ===================  =================================================

Hidden layers are ``activation`` ('logistic' = σ, or 'identity'). Each mini-batch of
``B`` samples takes one SGD step with classical momentum μ on ``∇L + (alpha/B) W``
(scikit-learn's L2 term, ``alpha/(2B) ‖W‖²`` per batch, on the weights, not the
biases), then, when ``l1 > 0``, fastnn's proximal L1 step ``w ← sign(w) max(|w| −
η l1, 0)``. ``loss_curve_[t]`` is epoch t's mean data loss (each batch's loss taken
before its update, as :class:`fastnn.History` reports it) plus ``alpha/(2B) Σ‖W‖²``
at the end of the epoch.

Stopping (as scikit-learn's ``sgd`` solver with a constant learning rate): training
stops after epoch t when the loss has not fallen below ``best_loss_ − tol`` for more
than ``n_iter_no_change`` consecutive epochs; reaching ``max_iter`` epochs without that
emits a ``sklearn.exceptions.ConvergenceWarning``, as scikit-learn does. Ctrl-C stops
training after the running epoch (:meth:`fastnn.MLP.fit`); the estimator keeps the epochs
done and warns (UserWarning), as scikit-learn's MLPs do.

Differences from scikit-learn's estimators, by design:

* ``activation``: 'logistic' (the default here) or 'identity'; 'relu' and 'tanh' are
  not among fastnn's kernels and raise ValueError. ``solver``: 'sgd' only.
* ``learning_rate_init`` defaults to 0.1 (scikit-learn's 0.001 is its Adam default;
  fastnn's gradients are means over the batch, as scikit-learn's).
* Momentum is classical (scikit-learn's ``nesterovs_momentum=False``); the learning
  rate is constant (``learning_rate='constant'``). Not accepted: ``learning_rate``,
  ``power_t``, ``nesterovs_momentum``, ``early_stopping``, ``validation_fraction``,
  ``warm_start``, ``beta_1``, ``beta_2``, ``epsilon``, ``max_fun``, ``partial_fit``.
* Initialisation is :class:`fastnn.MLP`'s (Glorot uniform, ``sqrt(6/(fan_in +
  fan_out))``, biases 0). An integer ``random_state`` is the ``seed`` of the
  underlying ``fastnn.MLP``: ``MLPClassifier(random_state=s)`` trains exactly the
  network ``fastnn.MLP(..., seed=s)`` would with the same settings.
* Extras: ``l1`` (proximal L1), ``dtype`` (None: float32 input trains a float32
  network, anything else float64) and ``impl`` ('loop', 'vectorized', 'jit'; None:
  :func:`fastnn.get_impl` at fit time, 'jit' unless changed). The fitted network is
  ``model_``, a :class:`fastnn.MLP`.
* Sparse input is rejected with scikit-learn's TypeError; ``fit`` takes no
  ``sample_weight``; multilabel targets are not supported by the classifier.
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import (check_is_fitted, check_random_state, column_or_1d,
                                          validate_data)
except ImportError as exc:  # scikit-learn missing, or older than 1.6 (no validate_data)
    raise ImportError(
        "fastnn.MLPClassifier and fastnn.MLPRegressor need scikit-learn >= 1.6; install it "
        'with: pip install "fastnn-kernels[sklearn]"' + f" ({exc})") from exc

from . import _validate as v
from ._impl import impls
from .functional import log_softmax, sigmoid, softmax
from .train import MLP

__all__ = ["MLPClassifier", "MLPRegressor"]

#: scikit-learn's activation names -> fastnn.MLP's ``hidden``.
ACTIVATIONS = {"logistic": "sigmoid", "identity": "identity"}

_FLOATS = (np.float64, np.float32)


class _Converged(Exception):
    """Raised from the per-epoch callback to end ``MLP.fit`` once the loss stalls."""


def _integer(name, x, lo):
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise TypeError(f"{name}: expected an integer >= {lo}, got {type(x).__name__} {x!r}")
    if x < lo:
        raise ValueError(f"{name}: expected an integer >= {lo}, got {x}")
    return int(x)


def _boolean(name, x):
    if not isinstance(x, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {type(x).__name__} {x!r}")
    return bool(x)


class _BaseMLP(BaseEstimator):
    """The parameters, their checks, training and pickling shared by both estimators."""

    def __init__(self, hidden_layer_sizes=(100,), activation="logistic", *, solver="sgd",
                 alpha=0.0001, batch_size="auto", learning_rate_init=0.1, momentum=0.9,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 n_iter_no_change=10, l1=0.0, dtype=None, impl=None):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.momentum = momentum
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.n_iter_no_change = n_iter_no_change
        self.l1 = l1
        self.dtype = dtype
        self.impl = impl

    # --- parameters -------------------------------------------------------------------
    def _checked_params(self):
        """Every parameter checked (TypeError/ValueError naming it) before fit changes
        anything; -> a dict of the values fit uses."""
        hls = self.hidden_layer_sizes
        if isinstance(hls, numbers.Integral) and not isinstance(hls, bool):
            hls = (hls,)
        if isinstance(hls, (str, bytes)) or not hasattr(hls, "__iter__"):
            raise TypeError("hidden_layer_sizes: expected an int or a sequence of ints like "
                            f"(100,) or (64, 32), got {type(hls).__name__} {hls!r}")
        hls = tuple(_integer("hidden_layer_sizes", h, 1) for h in hls)
        if not isinstance(self.activation, str) or self.activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {', '.join(map(repr, ACTIVATIONS))}, "
                             f"got {self.activation!r} (fastnn's hidden layers are sigmoid or "
                             "identity; 'relu' and 'tanh' are not implemented)")
        if self.solver != "sgd":
            raise ValueError(f"solver: only 'sgd' (fastnn's SGD epoch) is supported, "
                             f"got {self.solver!r}")
        if isinstance(self.batch_size, str) and self.batch_size == "auto":
            batch = "auto"
        else:
            batch = _integer("batch_size", self.batch_size, 1)
        dtype = self.dtype
        if dtype is not None:
            try:
                dtype = np.dtype(dtype)
            except TypeError:
                raise TypeError(f"dtype: expected None, numpy.float32 or numpy.float64, "
                                f"got {self.dtype!r}") from None
            if dtype not in (v.F32, v.F64):
                raise TypeError("dtype: expected None, numpy.float32 or numpy.float64, "
                                f"got {dtype}")
        if self.impl is not None and self.impl not in impls():
            raise ValueError(f"impl: expected None or one of {', '.join(map(repr, impls()))}, "
                             f"got {self.impl!r}")
        rs = self.random_state
        if not (rs is None or isinstance(rs, (numbers.Integral, np.random.RandomState))) \
                or isinstance(rs, bool):
            raise TypeError("random_state: expected None, an int or a numpy.random.RandomState, "
                            f"got {type(rs).__name__}")
        if isinstance(rs, numbers.Integral) and not 0 <= rs < 2**32:
            raise ValueError(f"random_state: expected an int in [0, 2**32), got {rs}")
        verbose = self.verbose
        if isinstance(verbose, (bool, np.bool_)):
            verbose = bool(verbose)
        else:
            verbose = _integer("verbose", verbose, 0) > 0
        return dict(
            hidden=hls, activation=ACTIVATIONS[self.activation], batch=batch,
            alpha=v.real("alpha", self.alpha, lo=0.0),
            lr=v.real("learning_rate_init", self.learning_rate_init, lo=0.0, lo_open=True),
            momentum=v.real("momentum", self.momentum, lo=0.0, hi=1.0, hi_open=True),
            max_iter=_integer("max_iter", self.max_iter, 1),
            shuffle=_boolean("shuffle", self.shuffle),
            tol=v.real("tol", self.tol, lo=0.0),
            n_iter_no_change=_integer("n_iter_no_change", self.n_iter_no_change, 1),
            l1=v.real("l1", self.l1, lo=0.0), dtype=dtype, impl=self.impl, verbose=verbose)

    @staticmethod
    def _seed(random_state):
        """An int random_state is the MLP's seed; None or a RandomState draws one."""
        if isinstance(random_state, numbers.Integral):
            return int(random_state)
        return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))

    # --- training ---------------------------------------------------------------------
    def _train(self, X, y_fit, n_out, output, loss, p):
        """Build and train the MLP; set the fitted attributes only once training ran."""
        n = X.shape[0]
        dt = p["dtype"] if p["dtype"] is not None else X.dtype
        mlp = MLP([X.shape[1], *p["hidden"], n_out], hidden=p["activation"], output=output,
                  loss=loss, dtype=dt, seed=self._seed(self.random_state), impl=p["impl"])
        B = min(200, n) if p["batch"] == "auto" else min(p["batch"], n)
        alpha, tol, patience = p["alpha"], p["tol"], p["n_iter_no_change"]
        curve = []
        best = [math.inf, 0]                     # best loss, epochs without improvement

        def on_epoch(rec):
            penalty = 0.0
            if alpha > 0:
                penalty = sum(float(np.sum(np.square(W, dtype=np.float64))) for W in mlp.weights)
                penalty *= alpha / (2 * B)
            curve.append(rec["loss"] + penalty)
            if p["verbose"]:
                print(f"Iteration {len(curve)}, loss = {curve[-1]:.8f}", flush=True)
            best[1] = best[1] + 1 if curve[-1] > best[0] - tol else 0
            best[0] = min(best[0], curve[-1])
            if best[1] > patience:
                raise _Converged

        converged = interrupted = False
        try:
            interrupted = mlp.fit(X, y_fit, epochs=p["max_iter"], batch_size=B, lr=p["lr"],
                                  momentum=p["momentum"], weight_decay=alpha / B, l1=p["l1"],
                                  shuffle=p["shuffle"], progress=on_epoch).interrupted
        except _Converged:
            converged = True
            if p["verbose"]:
                print(f"Training loss did not improve more than tol={tol} for {patience} "
                      "consecutive epochs. Stopping.", flush=True)
        if interrupted:             # Ctrl-C (MLP.fit stops at the next safe point)
            if not curve:
                raise KeyboardInterrupt
            warnings.warn(f"{type(self).__name__}: training interrupted by the user after "
                          f"{mlp.epoch} epochs.", UserWarning, stacklevel=3)
        self.model_ = mlp
        self.n_iter_ = mlp.epoch
        self.t_ = n * mlp.epoch
        self.loss_curve_ = curve
        self.loss_ = curve[-1]
        self.best_loss_ = best[0]
        self.n_layers_ = len(mlp.sizes)
        self.n_outputs_ = n_out
        self.out_activation_ = {"sigmoid": "logistic"}.get(output, output)
        if not converged and mlp.epoch == p["max_iter"]:
            warnings.warn(f"{type(self).__name__}: stochastic gradient descent reached "
                          f"max_iter={p['max_iter']} epochs before the training loss stopped "
                          f"improving by tol={tol} (for more than n_iter_no_change={patience} "
                          "epochs); the optimization hasn't converged yet.",
                          ConvergenceWarning, stacklevel=3)
        return self

    def _logits(self, X):
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=_FLOATS)
        return self.model_.decision_function(X)

    # --- fitted attributes shared with scikit-learn's MLPs ------------------------------
    def __sklearn_is_fitted__(self):
        return hasattr(self, "model_")

    @property
    def coefs_(self):
        """``coefs_[l]``: the weights of layer l, shape (in, out) as scikit-learn's
        (the transpose of ``model_.weights[l]``, a view: writing into it changes the model)."""
        check_is_fitted(self)
        return [W.T for W in self.model_.weights]

    @property
    def intercepts_(self):
        """``intercepts_[l]``: the biases of layer l, shape (out,) (views into the model)."""
        check_is_fitted(self)
        return list(self.model_.biases)

    # --- pickling: the MLP's weights are views of one buffer, rebuilt on load -----------
    def __getstate__(self):
        state = dict(super().__getstate__())
        mlp = state.pop("model_", None)
        if mlp is not None:
            state["_model_state"] = mlp.state()
        return state

    def __setstate__(self, state):
        state = dict(state)
        saved = state.pop("_model_state", None)
        super().__setstate__(state)
        if saved is not None:
            mlp = MLP(**saved["config"])
            mlp.set_state(saved)
            self.model_ = mlp


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """A multilayer-perceptron classifier trained by SGD on fastnn's kernels.

    scikit-learn compatible (``sklearn.neural_network.MLPClassifier``'s parameter names;
    module docstring: the network, the loss, stopping and the differences).

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default (100,)
        Widths of the hidden layers; ``()`` is logistic / softmax regression.
    activation : {'logistic', 'identity'}, default 'logistic'
        Hidden activation: σ(z) = 1/(1 + e^−z), or z.
    solver : {'sgd'}, default 'sgd'
    alpha : float >= 0, default 1e-4
        L2 penalty: ``alpha/B · W`` is added to each batch's weight gradient.
    batch_size : int >= 1 or 'auto', default 'auto'
        'auto' is ``min(200, n_samples)``; larger than n_samples means full batch.
    learning_rate_init : float > 0, default 0.1
        The (constant) learning rate η.
    momentum : float in [0, 1), default 0.9
        Classical momentum μ: ``v ← μ v + g``, ``w ← w − η v``.
    max_iter : int >= 1, default 200
        Most epochs.
    shuffle : bool, default True
        Shuffle the samples every epoch.
    random_state : None, int or numpy.random.RandomState, default None
        Initialisation and shuffling; an int is the seed of the ``fastnn.MLP``.
    tol : float >= 0, default 1e-4
    verbose : bool or int, default False
        Print the loss after every epoch.
    n_iter_no_change : int >= 1, default 10
        Stop when the loss has not improved by ``tol`` for more than this many epochs.
    l1 : float >= 0, default 0
        fastnn's proximal L1 strength on the weights (exact zeros).
    dtype : None, numpy.float32 or numpy.float64, default None
        Precision of the network; None: float32 for float32 X, float64 otherwise.
    impl : None or {'loop', 'vectorized', 'jit'}, default None
        fastnn implementation; None is :func:`fastnn.get_impl` ('jit' unless changed).

    Attributes
    ----------
    classes_ : ndarray, shape (n_classes,)
        The sorted label values; ``predict`` returns them.
    model_ : fastnn.MLP
        The trained network (``[n_features_in_, *hidden_layer_sizes, 1 or n_classes]``).
    coefs_ : list of ndarray, shape (in, out) each
    intercepts_ : list of ndarray, shape (out,) each
    loss_curve_ : list of float, one per epoch
    loss_, best_loss_ : float
        The last and the lowest entries of ``loss_curve_``.
    n_iter_ : int
        Epochs run.  ``t_`` : samples seen (``n_samples · n_iter_``).
    n_features_in_ : int;  ``feature_names_in_`` when X had string column names.
    n_layers_ : int
        Layers including input and output (``len(hidden_layer_sizes) + 2``).
    n_outputs_ : int
        1 for two classes (one sigmoid unit), else n_classes (softmax).
    out_activation_ : {'logistic', 'softmax'}
    """

    def fit(self, X, y):
        """Train on ``X`` (n_samples, n_features) and labels ``y`` (n_samples,) of any
        values (at least two distinct); returns ``self``."""
        p = self._checked_params()
        X, y = validate_data(self, X, y, dtype=_FLOATS)
        check_classification_targets(y)       # 1-D (validate_data): binary or multiclass
        classes, codes = np.unique(y, return_inverse=True)
        if classes.shape[0] < 2:
            raise ValueError(f"y: a classifier needs at least 2 classes, got 1 class "
                             f"({classes[0]!r})")
        binary = classes.shape[0] == 2
        n_out = 1 if binary else classes.shape[0]
        output = "sigmoid" if binary else "softmax"
        self._train(X, codes.astype(np.intp), n_out, output, "cross_entropy", p)
        self.classes_ = classes
        return self

    def predict_proba(self, X):
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order:
        softmax(z), or ``[1 − σ(z), σ(z)]`` for two classes. In the network's dtype."""
        Z = self._logits(X)
        if self.n_outputs_ == 1:
            p = sigmoid(np.ascontiguousarray(Z[:, 0]))
            return np.stack([1 - p, p], axis=1)
        return softmax(Z)

    def predict_log_proba(self, X):
        """``log(predict_proba(X))`` computed stably: log_softmax(z), or
        ``[−log(1 + e^z), −log(1 + e^−z)]`` for two classes."""
        Z = self._logits(X)
        if self.n_outputs_ == 1:
            z = Z[:, 0]
            return np.stack([-np.logaddexp(0, z), -np.logaddexp(0, -z)], axis=1)
        return log_softmax(Z)

    def predict(self, X):
        """Labels (n_samples,) from ``classes_``: the most probable class
        (``z > 0`` for two classes)."""
        Z = self._logits(X)
        idx = (Z[:, 0] > 0).astype(np.intp) if self.n_outputs_ == 1 else np.argmax(Z, axis=1)
        return self.classes_[idx]


class MLPRegressor(RegressorMixin, _BaseMLP):
    """A multilayer-perceptron regressor trained by SGD on fastnn's kernels.

    scikit-learn compatible (``sklearn.neural_network.MLPRegressor``'s parameter names);
    the same parameters as :class:`MLPClassifier`. The output layer is linear (identity),
    the loss ``(1/2N) Σ ‖z_i − y_i‖²``; ``y`` may have several columns (multi-output).
    ``predict`` returns (n_samples,) for one output, (n_samples, n_outputs) otherwise, in
    the network's dtype; ``score`` is R² (``sklearn.metrics.r2_score``).

    Attributes
    ----------
    model_, coefs_, intercepts_, loss_curve_, loss_, best_loss_, n_iter_, t_,
    n_features_in_, n_layers_ : as :class:`MLPClassifier`.
    n_outputs_ : int
        Number of targets.
    out_activation_ : 'identity'
    """

    def fit(self, X, y):
        """Train on ``X`` (n_samples, n_features) and real targets ``y`` (n_samples,) or
        (n_samples, n_outputs); returns ``self``."""
        p = self._checked_params()
        X, y = validate_data(self, X, y, dtype=_FLOATS, multi_output=True, y_numeric=True)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        n_out = 1 if y.ndim == 1 else y.shape[1]
        return self._train(X, y, n_out, "identity", "mse", p)

    def predict(self, X):
        """Predictions (n_samples,) for one output, else (n_samples, n_outputs)."""
        Z = self._logits(X)
        return Z[:, 0].copy() if self.n_outputs_ == 1 else Z

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
