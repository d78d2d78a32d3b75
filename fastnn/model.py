"""Compatibility shim: ``fastnn.model`` was split into the package :mod:`fastnn.train`.

``from fastnn.model import MLP`` (old code, docs and pickles of ``fastnn.model.MLP``)
keeps working: this module re-exports the names it had. New code imports from
``fastnn`` or ``fastnn.train``. Settings are read where they now live: set
``fastnn.train.fit.EPOCH_PART_S``, not this module's copy.
"""
from .train.checkpoint import CheckpointError
from .train.checks import _int, _sizes  # noqa: F401  (tests/test_cli_errors.py)
from .train.fit import EPOCH_PART_ROWS, EPOCH_PART_S, History, NonFiniteLossError  # noqa: F401
from .train.fit import format_record  # noqa: F401
from .train.layout import ALIGN, HIDDEN, OUTPUT_LOSS, _aligned  # noqa: F401
from .train.mlp import MLP
from .kernels.identity_mse import (IDENTITY_MSE_GRAD,  # noqa: F401
                                   identity_mse_grad_loop, identity_mse_grad_vectorized)
from .train.python_epoch import LOSS_OP  # noqa: F401

__all__ = ["MLP", "History", "NonFiniteLossError", "CheckpointError"]
