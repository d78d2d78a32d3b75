"""fastnn: neural-network kernels written three ways, behind one validated API.

    >>> import numpy as np, fastnn
    >>> P = fastnn.softmax(np.array([[1.0, 2.0, 3.0]], dtype=np.float32))

Every operation exists as a plain-Python ``loop`` reference, a NumPy
``vectorized`` version and a Numba ``jit`` version (the default); choose with
``impl=``, :func:`set_impl` or ``with use_impl(...)``. The raw kernels live in
``fastnn.kernels`` (no validation).
"""
import os as _os

# In the source tree, fastnn/ and kernels/ are siblings; an install maps kernels/ to
# fastnn/kernels (an editable one through its finder). Python run from the checkout after
# a non-editable install imports the checkout's fastnn/, which has no kernels/ inside it:
# let it find ../kernels there, so that the checkout works as it is.
_here = _os.path.dirname(_os.path.abspath(__file__))
if not _os.path.isdir(_os.path.join(_here, "kernels")):
    _root = _os.path.dirname(_here)
    if (_os.path.isfile(_os.path.join(_root, "kernels", "__init__.py"))
            and _os.path.isfile(_os.path.join(_root, "pyproject.toml"))):
        __path__.append(_root)  # type: ignore[name-defined]  # noqa: F821

from . import _blas_threads, _compiling  # noqa: E402,F401  (_compiling: the first-call notice)

# OpenBLAS worker threads spin after each call and slow fastnn's parallel kernels
# down many times on a few cores; see fastnn/_blas_threads.py.
_blas_threads.shorten_spin()
# ... and so do GNU OpenMP's threads under Numba's parallel kernels, into BLAS calls.
_blas_threads.shorten_omp_spin()

from . import kernels  # noqa: E402
from ._impl import get_impl, impls, set_impl, use_impl  # noqa: E402
from .functional import (  # noqa: E402
    hidden_delta, linear, linear_backward, linear_sigmoid, log_softmax, sgd_update,
    sigmoid, sigmoid_backward, sigmoid_bce_grad, sigmoid_mse_grad, softmax,
    softmax_cross_entropy, softmax_cross_entropy_grad,
)
from .info import info  # noqa: E402
from .train import MLP, CheckpointError, History, NonFiniteLossError  # noqa: E402
from .gradcheck import gradcheck  # noqa: E402
from .linear_models import (  # noqa: E402
    Adaline, ConvergenceWarning, Perceptron, adaline_epoch, perceptron_epoch,
)
from . import autodiff, datasets  # noqa: E402
from .plugins import register, unregister  # noqa: E402


def check(op, impl, *, seed=0):
    """The conformance sweep of ``op`` on ``impl`` (a name, ``"module:function"`` or a
    function): :func:`fastnn.conformance.check`, imported on first use (it needs SciPy's
    special functions for the float64 reference)."""
    from .conformance import check as _check
    return _check(op, impl, seed=seed)


__version__ = "0.1.0"

__all__ = [
    "linear", "linear_sigmoid", "sigmoid", "softmax", "log_softmax",
    "softmax_cross_entropy", "softmax_cross_entropy_grad", "sigmoid_bce_grad",
    "sigmoid_mse_grad", "linear_backward", "sigmoid_backward", "hidden_delta",
    "sgd_update", "impls", "set_impl", "get_impl", "use_impl", "info", "kernels",
    "MLP", "History", "NonFiniteLossError", "CheckpointError", "gradcheck", "datasets",
    "perceptron_epoch", "adaline_epoch", "Perceptron", "Adaline", "ConvergenceWarning",
    "autodiff", "register", "unregister", "check",
]

#: Defined in fastnn.estimators, imported on first access: they need scikit-learn.
_ESTIMATORS = ("MLPClassifier", "MLPRegressor")


def __getattr__(name):
    """``fastnn.MLPClassifier`` / ``fastnn.MLPRegressor``: imported (with scikit-learn)
    only when first used, so that ``import fastnn`` needs only NumPy, SciPy and Numba."""
    if name in _ESTIMATORS:
        from . import estimators   # raises ImportError naming the extra when sklearn is missing
        return getattr(estimators, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_ESTIMATORS))
