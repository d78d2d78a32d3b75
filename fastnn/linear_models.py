"""The course notes' single-unit learners: the perceptron and ADALINE.

Notes 003, "Regla de aprendizaje del perceptrón" and "ADaptive LInear NEuron"::

    w := 0, b := 0
    for t = 1..T:                          (epochs; the perceptron stops after an
        for i = 1..n:                       epoch without errors)
            ŷ   = step(xᵢᵀ w + b)           (ADALINE: ŷ = xᵢᵀ w + b, a real number)
            err = yᵢ − ŷ
            w   = w + η · err · xᵢ
            b   = b + η · err

One epoch of each rule is a registered operation with loop, vectorized and jit
implementations (``fastnn.kernels.perceptron``); this module holds their checked
functions, :func:`perceptron_epoch` and :func:`adaline_epoch`, and the estimators
:class:`Perceptron` and :class:`Adaline` (scikit-learn's conventions: constructor
arguments, ``fit``/``predict``/``score``/``decision_function``, fitted attributes
ending in ``_``).

    >>> import numpy as np, fastnn
    >>> X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    >>> p = fastnn.Perceptron(eta=1.0).fit(X, [0, 0, 0, 1])        # AND
    >>> p.predict(X), p.errors_, p.converged_
    (array([0, 0, 0, 1]), [2, 3, 3, 2, 1, 0], True)

The notes' worked gates use the threshold 1, no bias, start from w = [1, 1] and
γ = 1.5::

    >>> and1 = fastnn.Perceptron(eta=1.5, threshold=1.0, fit_intercept=False)
    >>> and1.fit(X, [0, 0, 1, 0], coef_init=[1, 1]).coef_            # AND(x₁, ¬x₂)
    array([ 1. , -0.5])

A problem that is not linearly separable (XOR) never has an epoch without errors:
``fit`` stops after ``max_iter`` epochs with ``converged_ = False`` and a
:class:`ConvergenceWarning`.
"""
from __future__ import annotations

import warnings

import numpy as np

from . import _validate as v
from ._impl import _check as _check_impl
from ._impl import kernel
from .kernels.machine.finite import all_finite
from .train.checks import _int
from .train.fit import NonFiniteLossError

__all__ = ["Perceptron", "Adaline", "ConvergenceWarning", "perceptron_epoch", "adaline_epoch"]


class ConvergenceWarning(UserWarning):
    """``fit`` ran ``max_iter`` epochs without meeting its stopping criterion: for the
    perceptron, no epoch without errors (the classes may not be linearly separable);
    for ADALINE, the epoch's sum of squared errors still changing by more than ``tol``.
    The fitted model is usable; ``converged_`` is False. (As scikit-learn's
    ``ConvergenceWarning``; silence it with ``warnings.simplefilter("ignore",
    fastnn.ConvergenceWarning)``.)"""


# --- the checked epoch functions --------------------------------------------------------
def _epoch_args(X, y, w, b, eta, order, fit_intercept, *, binary):
    X = v.floats("X", X, ndim=2, shape_hint=" (N, D): one sample per row")
    N, D = X.shape
    dt = X.dtype
    if D < 1:
        raise ValueError(f"X: expected at least one feature (D >= 1), got shape {X.shape}")
    if isinstance(y, (str, bytes)) or y is None:
        raise TypeError(f"y: expected an array of {N} targets, got {type(y).__name__}")
    y_in = np.asarray(y)
    if y_in.dtype.kind in "biu":
        y = np.ascontiguousarray(y_in, dtype=dt)
    else:
        y = v.floats("y", y_in, dt)
    v.shape_is("y", y, (N,), "(one target per row of X {})", X.shape)
    if binary and N and not np.all((y == 0) | (y == 1)):
        i = int(np.flatnonzero((y != 0) & (y != 1))[0])
        raise ValueError(f"y: expected perceptron targets 0 or 1, got {float(y[i]):g} at index {i}")
    w = v.out_array("w", w, (D,), dt, (("X", X), ("y", y)))
    b = v.out_array("b", b, (1,), dt, (("X", X), ("y", y), ("w", w)))
    eta = v.real("eta", eta, lo=0.0, lo_open=True)
    if order is None:
        order = np.arange(N, dtype=np.intp)
    else:
        if isinstance(order, (str, bytes)):
            raise TypeError(f"order: expected an array of sample indices, got {type(order).__name__}")
        order = np.asarray(order)
        if order.ndim == 1 and order.size == 0:
            order = order.astype(np.intp)             # [] : no samples this epoch
        if order.dtype.kind not in "iu" or order.ndim != 1:
            raise TypeError(f"order: expected a 1-D array of integer sample indices, got "
                            f"{order.dtype} of shape {order.shape}")
        order = np.ascontiguousarray(order, dtype=np.intp)
        bad = v._first_label_out_of_range(order, N)
        if bad >= 0:
            raise ValueError(f"order: sample indices must lie in [0, {N}) for the {N} rows of X, "
                             f"got {int(order[bad])} at position {bad}")
    if not isinstance(fit_intercept, (bool, np.bool_)):
        raise TypeError(f"fit_intercept: expected a bool, got {type(fit_intercept).__name__}")
    return X, y, w, b, eta, order, bool(fit_intercept)


def perceptron_epoch(X, y, w, b, *, eta=1.0, threshold=0.0, order=None, fit_intercept=True,
                     impl=None):
    """One epoch of the perceptron rule (notes 003), updating ``w`` and ``b`` in place.

    For each sample i in ``order``: ``ŷ = 1 if xᵢᵀw + b >= threshold else 0``,
    ``err = yᵢ − ŷ``; where ``err ≠ 0``, ``w += η·err·xᵢ`` and (with
    ``fit_intercept``) ``b += η·err``.

    Parameters
    ----------
    X : (N, D) float32 or float64 array, D >= 1
    y : (N,) targets 0 or 1 (integers, bools or floats of X's dtype)
    w : (D,) array of X's dtype, updated in place
    b : (1,) array of X's dtype, updated in place (read, and left alone, when
        ``fit_intercept`` is False)
    eta : learning rate γ > 0 (1 in the notes' algorithm box, 1.5 in their gates)
    threshold : θ, the step's threshold (0 in the algorithm box, 1 in the gates)
    order : (M,) integer sample indices in [0, N) (repeats allowed), or None for
        0, 1, ..., N − 1
    fit_intercept : learn b (else only w)
    impl : "loop", "vectorized", "jit" or None (the current implementation)

    Returns
    -------
    int : the number of samples of the epoch with ``err ≠ 0`` (each judged before
        its own update); 0 means ``w``, ``b`` classify every sample of ``order``.

    All implementations give the same bits (kernels/perceptron.py). Every argument
    is checked before ``w`` or ``b`` is written.
    """
    X, y, w, b, eta, order, fi = _epoch_args(X, y, w, b, eta, order, fit_intercept, binary=True)
    threshold = v.real("threshold", threshold)
    k = kernel("perceptron_epoch", impl)
    with np.errstate(all="ignore"):        # loop/vectorized: NumPy scalars on huge inputs
        return int(k(X, y, w, b, eta, threshold, order, fi))


def adaline_epoch(X, y, w, b, *, eta=0.01, order=None, fit_intercept=True, impl=None):
    """One epoch of ADALINE's delta rule (Widrow–Hoff; notes 003), in place.

    For each sample i in ``order``: ``err = yᵢ − (xᵢᵀw + b)``, ``w += η·err·xᵢ`` and
    (with ``fit_intercept``) ``b += η·err``: online SGD on ½(y − ŷ)² (SPEC
    "Updates"; SPEC worked number 3 is this rule on ``x = [50, 80, 120]``,
    ``y = [150, 200, 280]``, ``η = 1e-4``).

    Parameters
    ----------
    X : (N, D) float32 or float64 array, D >= 1
    y : (N,) real targets (floats of X's dtype, or integers)
    w : (D,) array of X's dtype, updated in place
    b : (1,) array of X's dtype, updated in place (fixed when ``fit_intercept`` is False)
    eta : learning rate η > 0
    order, fit_intercept, impl : as :func:`perceptron_epoch`

    Returns
    -------
    scalar of X's dtype : the epoch's sum of squared errors ``Σ errᵢ²`` (each err
        taken before its sample's update; summed in float64). A diverging run gives
        inf or NaN (no warning).
    """
    X, y, w, b, eta, order, fi = _epoch_args(X, y, w, b, eta, order, fit_intercept, binary=False)
    k = kernel("adaline_epoch", impl)
    with np.errstate(all="ignore"):        # a diverging run overflows: inf, not a warning
        return k(X, y, w, b, eta, order, fi)


# --- the estimators ---------------------------------------------------------------------
def _net_input(X, w, b):
    """``X w + b`` per row, summed in the kernels' order (left to right, then + b), so that
    ``predict`` decides exactly as training did (an exact tie at the threshold included)."""
    return np.add.accumulate(X * w, axis=1)[:, -1] + b[0]


class _LinearUnit:
    """What the perceptron and ADALINE share: arguments, data checks, the epoch loop,
    prediction."""

    _op = ""
    _name = ""

    def __init__(self, *, eta, max_iter, threshold, fit_intercept, shuffle, random_state,
                 impl, dtype):
        self.eta = eta
        self.max_iter = max_iter
        self.threshold = threshold
        self.fit_intercept = fit_intercept
        self.shuffle = shuffle
        self.random_state = random_state
        self.impl = impl
        self.dtype = dtype
        self._checked_params()

    def _checked_params(self):
        """The constructor's arguments checked (again at ``fit``: they may be reassigned)."""
        p = dict(eta=v.real("eta", self.eta, lo=0.0, lo_open=True),
                 max_iter=_int("max_iter", self.max_iter, 1),
                 threshold=v.real("threshold", self.threshold))
        for name in ("fit_intercept", "shuffle"):
            val = getattr(self, name)
            if not isinstance(val, (bool, np.bool_)):
                raise TypeError(f"{name}: expected a bool, got {type(val).__name__}")
            p[name] = bool(val)
        rs = self.random_state
        p["random_state"] = None if rs is None else _int("random_state", rs, 0)
        if self.impl is not None:
            _check_impl(self.impl)
        try:
            dt = np.dtype(self.dtype)
        except TypeError:
            raise TypeError(f"dtype: expected float32 or float64, got {self.dtype!r}") from None
        if dt not in (v.F32, v.F64):
            raise TypeError(f"dtype: expected float32 or float64, got {dt}")
        p["dtype"] = dt
        return p

    # --- data -------------------------------------------------------------------------
    @staticmethod
    def _check_X(X, dtype, D=None, name="X"):
        if isinstance(X, (str, bytes)) or X is None:
            raise TypeError(f"{name}: expected an array of shape (N, D), got {type(X).__name__}")
        try:
            X = np.asarray(X)
        except Exception as exc:
            raise TypeError(f"{name}: could not convert {type(X).__name__} to an array: {exc}") from None
        if X.dtype.kind not in "biuf":
            raise TypeError(f"{name}: expected real numbers, got dtype {X.dtype}")
        want = "(N, D)" if D is None else f"(N, {D}) for the {D} features seen in fit"
        if X.ndim != 2 or (D is not None and X.shape[1] != D):
            raise ValueError(f"{name}: expected shape {want}, got {X.shape}"
                             + ("; use X[None, :] for one sample" if X.ndim == 1 else ""))
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(f"{name}: expected at least one sample and one feature, got shape {X.shape}")
        X = np.ascontiguousarray(X, dtype=dtype)
        if not all_finite(X.reshape(-1)):
            raise ValueError(f"{name}: contains NaN or infinite values (or values beyond {dtype}'s range)")
        return X

    @staticmethod
    def _encode(y, N, dtype):
        """``y`` (N,) of two distinct values -> (classes_, targets 0/1 in ``dtype``)."""
        if y is None or isinstance(y, (str, bytes)):
            raise TypeError(f"y: expected {N} class labels, got {type(y).__name__}")
        y = np.asarray(y)
        if y.shape != (N,):
            raise ValueError(f"y: expected shape ({N},), one label per row of X, got {y.shape}")
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            raise ValueError("y: contains NaN or infinite labels")
        classes, codes = np.unique(y, return_inverse=True)
        if classes.shape[0] != 2:
            raise ValueError(f"y: expected labels of exactly two classes (e.g. 0 and 1), got "
                             f"{classes.shape[0]}: {classes[:5].tolist()}"
                             + ("..." if classes.shape[0] > 5 else ""))
        return classes, codes.reshape(N).astype(dtype)

    def _fitted(self):
        if not hasattr(self, "coef_"):
            raise ValueError(f"{self._name}: not fitted yet; call fit(X, y) first")

    # --- training -----------------------------------------------------------------------
    def fit(self, X, y, coef_init=None, intercept_init=None):
        """Learn ``w`` and ``b`` from ``(X, y)``, from scratch; returns ``self``.

        Parameters
        ----------
        X : (N, D) array of real numbers (converted to ``dtype``)
        y : (N,) labels of two classes (any two values; ``classes_`` sorts them and
            the larger is the positive class, target 1)
        coef_init : (D,) starting weights, default 0 (the notes' ``w := 0``)
        intercept_init : starting bias (a number), default 0

        Every argument is checked before anything changes.
        """
        p = self._checked_params()
        dt = p["dtype"]
        X = self._check_X(X, dt)
        N, D = X.shape
        classes, t = self._encode(y, N, dt)
        w = np.zeros(D, dt)
        b = np.zeros(1, dt)
        if coef_init is not None:
            c = np.asarray(coef_init)
            if c.dtype.kind not in "biuf" or c.shape != (D,):
                raise ValueError(f"coef_init: expected {D} real numbers (one per feature), got "
                                 f"{c.dtype} of shape {c.shape}")
            w[...] = c
            if not np.all(np.isfinite(w)):
                raise ValueError("coef_init: expected finite values")
        if intercept_init is not None:
            b[0] = v.real("intercept_init", intercept_init)
        k = kernel(self._op, self.impl)
        self._p, self._n_samples = p, N                        # every check passed
        rng = np.random.default_rng(p["random_state"])
        order = np.arange(N, dtype=np.intp)
        self.classes_ = classes
        self.n_features_in_ = D
        self.errors_ = []
        self.converged_ = False
        self.coef_, self.intercept_ = w, b
        for epoch in range(1, p["max_iter"] + 1):
            if p["shuffle"]:
                order = rng.permutation(N).astype(np.intp, copy=False)
            before = (w.copy(), b.copy())
            with np.errstate(all="ignore"):
                e = self._epoch(k, X, t, w, b, p, order)
            if not (np.isfinite(e) and all_finite(w) and np.isfinite(b[0])):
                w[...], b[...] = before
                self.n_iter_ = epoch - 1
                raise NonFiniteLossError(
                    f"{self._name}: the weights or the epoch's error became non-finite in epoch "
                    f"{epoch} (eta={p['eta']}); the model holds the weights after epoch "
                    f"{epoch - 1}. Try a smaller eta or scale the features.", epoch, None)
            self.errors_.append(e)
            self.n_iter_ = epoch
            if self._converged():
                self.converged_ = True
                break
        if not self.converged_ and self._warn_unconverged():
            warnings.warn(self._unconverged_message(), ConvergenceWarning, stacklevel=2)
        return self

    # --- inference ------------------------------------------------------------------------
    @property
    def w_(self):
        """The weights (D,) (the name of the course's code; the same array as ``coef_``)."""
        self._fitted()
        return self.coef_

    @property
    def b_(self):
        """The bias, a number (``intercept_[0]``)."""
        self._fitted()
        return self.intercept_[0]

    def net_input(self, X):
        """``X w + b`` (N,) in ``dtype``, summed in the training kernels' order."""
        self._fitted()
        X = self._check_X(X, self.coef_.dtype, self.n_features_in_)
        return _net_input(X, self.coef_, self.intercept_)

    def decision_function(self, X):
        """``X w + b − threshold`` (N,): ``>= 0`` predicts ``classes_[1]``, ``< 0``
        ``classes_[0]`` (the step of the notes, ``σ = 1 if ... >= θ``)."""
        return self.net_input(X) - self.coef_.dtype.type(self._p["threshold"])

    def predict(self, X):
        """Class labels (N,) from ``classes_``: ``classes_[1]`` where ``Xw + b >= threshold``."""
        d = self.decision_function(X)               # checks first (fitted? X's shape?)
        return self.classes_[(d >= 0).astype(np.intp)]

    def score(self, X, y):
        """Accuracy: the fraction of rows of X whose predicted label equals y's."""
        pred = self.predict(X)
        y = np.asarray(y)
        if y.shape != pred.shape:
            raise ValueError(f"y: expected shape {pred.shape}, one label per row of X, got {y.shape}")
        return float(np.mean(pred == y))

    def __repr__(self):
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in
                         ("eta", "max_iter", "threshold", "fit_intercept", "shuffle", "impl"))
        return f"{type(self).__name__}({args})"


class Perceptron(_LinearUnit):
    """Rosenblatt's perceptron, trained by the notes' rule (notes 003).

    ``ŷ = step(xᵀw + b)``, 1 where ``xᵀw + b >= threshold``; per sample
    ``w += η (y − ŷ) x``, ``b += η (y − ŷ)``; samples in order (or shuffled each
    epoch); stops after the first epoch without errors.

    Parameters
    ----------
    eta : learning rate γ > 0 (default 1.0, the notes' algorithm box; their gates
        use 1.5)
    max_iter : maximum number of epochs (>= 1)
    threshold : θ of the step (default 0; the notes' gates use 1)
    fit_intercept : learn the bias b (the notes' gates learn only w)
    shuffle : a new order of the samples every epoch (default False: the notes'
        ``for i = 1..n``; scikit-learn's default is True)
    random_state : int >= 0 or None, seeds the shuffling
    impl : "loop", "vectorized", "jit" or None (the current implementation): the
        epoch kernel; all three give the same bits
    dtype : float32 or float64 (default): weights and arithmetic

    Attributes
    ----------
    coef_ (also ``w_``) : (D,) weights
    intercept_ : (1,) bias (``b_`` its value)
    classes_ : (2,) the labels seen in fit, sorted; target 1 is ``classes_[1]``
    errors_ : list of int, misclassifications of each epoch (counted during the
        epoch, each sample before its own update), as the course's plots show
    n_iter_ : epochs run
    converged_ : whether the last epoch had no errors
    n_features_in_ : D

    When no epoch is error free within ``max_iter`` (XOR: not linearly separable),
    ``fit`` returns with ``converged_ = False`` and warns :class:`ConvergenceWarning`.
    """

    _op = "perceptron_epoch"
    _name = "Perceptron"

    def __init__(self, *, eta=1.0, max_iter=100, threshold=0.0, fit_intercept=True,
                 shuffle=False, random_state=0, impl=None, dtype=np.float64):
        super().__init__(eta=eta, max_iter=max_iter, threshold=threshold,
                         fit_intercept=fit_intercept, shuffle=shuffle,
                         random_state=random_state, impl=impl, dtype=dtype)

    def _epoch(self, k, X, t, w, b, p, order):
        return int(k(X, t, w, b, p["eta"], p["threshold"], order, p["fit_intercept"]))

    def _converged(self):
        return self.errors_[-1] == 0

    def _warn_unconverged(self):
        return True

    def _unconverged_message(self):
        return (f"Perceptron: no epoch without errors in max_iter={self.n_iter_} epochs (the "
                f"last one misclassified {self.errors_[-1]} of {self._n_samples} samples); the "
                f"classes may not be linearly separable (XOR is not). converged_ is False.")


class Adaline(_LinearUnit):
    """ADALINE (ADaptive LInear NEuron), trained by the Widrow–Hoff delta rule (notes 003).

    The perceptron's loop with the real-valued output ``ŷ = xᵀw + b`` and a
    learning rate: per sample ``w += η (y − ŷ) x``, ``b += η (y − ŷ)`` with the
    classes coded 0 and 1, which is online SGD on ½ (y − ŷ)². A class is predicted
    by thresholding the real output: ``classes_[1]`` where ``xᵀw + b >= threshold``
    (default 0.5, midway between the codes).

    Parameters
    ----------
    eta : learning rate η > 0 (default 0.01)
    max_iter : maximum number of epochs (>= 1)
    tol : float >= 0 or None. Training stops (``converged_ = True``) after the first
        epoch whose sum of squared errors differs from the previous epoch's by at
        most ``tol`` times the previous one (or is 0). None: run ``max_iter`` epochs,
        ``converged_`` stays False and nothing is warned.
    threshold : decision threshold on ``xᵀw + b`` for ``predict`` (not used in training)
    fit_intercept, shuffle, random_state, impl, dtype : as :class:`Perceptron`

    Attributes
    ----------
    coef_, w_, intercept_, b_, classes_, n_iter_, converged_, n_features_in_ : as
        :class:`Perceptron`
    errors_ : list of float, the sum of squared errors ``Σ (y − ŷ)²`` of each epoch
        (each taken before its sample's update), the cost curve of the course's plots

    A learning rate too large for the data makes the weights diverge: ``fit`` then
    raises :class:`fastnn.NonFiniteLossError` (``epoch`` set, ``step`` None) and leaves
    the weights of the last finite epoch.
    """

    _op = "adaline_epoch"
    _name = "Adaline"

    def __init__(self, *, eta=0.01, max_iter=100, tol=1e-4, threshold=0.5, fit_intercept=True,
                 shuffle=False, random_state=0, impl=None, dtype=np.float64):
        self.tol = tol
        super().__init__(eta=eta, max_iter=max_iter, threshold=threshold,
                         fit_intercept=fit_intercept, shuffle=shuffle,
                         random_state=random_state, impl=impl, dtype=dtype)

    def _checked_params(self):
        p = super()._checked_params()
        p["tol"] = None if self.tol is None else v.real("tol", self.tol, lo=0.0)
        return p

    def _epoch(self, k, X, t, w, b, p, order):
        return float(k(X, t, w, b, p["eta"], order, p["fit_intercept"]))

    def _converged(self):
        tol = self._p["tol"]
        e = self.errors_
        if tol is None:
            return False
        if e[-1] == 0:
            return True
        return len(e) >= 2 and abs(e[-1] - e[-2]) <= tol * e[-2]

    def _warn_unconverged(self):
        return self._p["tol"] is not None

    def _unconverged_message(self):
        e = self.errors_
        change = abs(e[-1] - e[-2]) / e[-2] if len(e) >= 2 and e[-2] > 0 else float("nan")
        return (f"Adaline: the sum of squared errors still changed by {change:.3g} of itself in "
                f"the last of max_iter={self.n_iter_} epochs (tol={self._p['tol']}); raise "
                f"max_iter or eta. converged_ is False.")
