"""Compatibility shim: :class:`fastnn.MLP` moved to the package :mod:`fastnn.train`.

``from fastnn.model import MLP`` (old code, docs and pickles) keeps working: this module
is :mod:`fastnn.train.mlp` itself. New code imports from ``fastnn`` or ``fastnn.train``.
"""
import sys

from .train import mlp as _mlp

sys.modules[__name__] = _mlp
