"""``fastnn.train``: the :class:`MLP` estimator and how it trains."""
from .mlp import MLP, CheckpointError, History, NonFiniteLossError

__all__ = ["MLP", "History", "NonFiniteLossError", "CheckpointError"]
