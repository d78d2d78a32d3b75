"""Compatibility shim: the compiled training epoch moved to :mod:`fastnn.train.compiled`.

``import fastnn._train_jit`` gives that very module (not a copy of its names), so that
code which sets its thresholds (``_train_jit.TILE_MIN_FMAS = 0``, as the tests and old
benchmarks do) still changes what the epoch runs. New code imports
``fastnn.train.compiled``.
"""
import sys

from .train import compiled as _compiled

sys.modules[__name__] = _compiled
