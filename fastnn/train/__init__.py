"""``fastnn.train``: the :class:`MLP` estimator and how it trains.

=================  ==================================================================
``mlp``            the estimator class :class:`MLP` (its public methods)
``checks``         the checks of its arguments, inputs and targets
``layout``         the flat parameter buffers (:class:`~fastnn.train.layout.Net`)
``fit``            the fit loop: rollback, Ctrl-C, non-finite losses, checkpoints
``comm``           the same over MPI (``fit(comm=...)``)
``checkpoint``     ``save``/``load`` and the archive format
``python_epoch``   the Python-driven epoch, one registered kernel at a time
``cuda``           the epoch on the GPU (``impl="cuda"``)
``compiled``       the compiled epoch and data-parallel step (``impl="jit"``)
``persistent``     the compiled epoch in one parallel region
``products``       the compiled pieces of both (gathers, losses, a layer's products)
=================  ==================================================================
"""
from .checkpoint import CheckpointError
from .fit import History, NonFiniteLossError, format_record
from .mlp import MLP

__all__ = ["MLP", "History", "NonFiniteLossError", "CheckpointError", "format_record"]
