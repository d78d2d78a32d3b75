"""``fastnn bench``: the cases, contenders and timer (:mod:`fastnn.bench.core`), the
command (:mod:`fastnn.bench.cli`) and its worker processes (:mod:`fastnn.bench.worker`)."""
from .core import *  # noqa: F401,F403
from .core import _fastnn_train_step  # noqa: F401  (tests/test_bench.py)
