"""fastnn.kernels: every operation in every implementation, side by side.

Installed as ``fastnn.kernels`` (never as a top-level ``kernels``). One module per
operation (or forward/backward pair); each holds its ``loop`` reference (the
formula as SPEC.md writes it), its ``vectorized`` NumPy version and its ``jit``
Numba version, registered in :data:`IMPLS`.

Raw kernels do NOT validate their arguments (wrong shapes or out-of-range labels
read or write out of bounds in jit code). Use the checked functions in ``fastnn``
unless you have validated the inputs yourself.
"""
from ._registry import (CORE_IMPLS, IMPL_NAMES, IMPLS, OPS, UNAVAILABLE,  # noqa: F401
                        available, impl_names, register)
from . import sigmoid, softmax, cross_entropy, sigmoid_losses, linear, sgd  # noqa: F401,E401
from . import perceptron  # noqa: F401
from . import cuda  # noqa: F401  (registers "cuda" where usable; loads nothing heavy)
from .machine.scalar import EXP_NAME  # noqa: F401

__all__ = ["IMPLS", "IMPL_NAMES", "CORE_IMPLS", "OPS", "UNAVAILABLE", "register",
           "available", "impl_names", "EXP_NAME"]
