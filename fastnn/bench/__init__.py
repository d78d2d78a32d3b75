"""Benchmark cases, contenders and timing: one definition behind ``fastnn bench``
and the pytest-benchmark suite in ``benches/``.

* :mod:`fastnn.bench.cases`: the :class:`Case` (one operation at one shape) and the
  case list;
* :mod:`fastnn.bench.ops`: per operation, its contenders, work model, inputs and the
  prepared calls (:func:`setup`);
* :mod:`fastnn.bench.timing`: the timer, the loop bound, the machine's ceilings and the
  cold-start arguments;
* :mod:`fastnn.bench.cli`: the ``fastnn bench`` command (worker processes, cold start,
  the report, the plot);
* :mod:`fastnn.bench.worker`: one worker process (``python -m fastnn.bench.worker``).

Everything the command, ``benches/`` and the tests use is importable from here.
"""
from .cases import (  # noqa: F401
    CASES, D_HID, D_IN, EPOCH_N, LR, NET, SGD_MOMENTUM, Case, all_cases, parse_size, select)
from .ops import (  # noqa: F401
    API_CONTENDERS, DESCRIPTIONS, EXTRAS, INTERLEAVED_OPS, NEEDS, OP_ORDER, SWITCH_WARM_S,
    Prepared, contenders, make_inputs, process_group, setup, work)
from .ops import _fastnn_train_step  # noqa: F401  (tests/test_bench.py times it directly)
from .timing import (  # noqa: F401
    FULL, FULL_PASSES, LOOP_BOUND_S, QUICK, LoopGate, coldstart_args, measure,
    measure_ceilings, measure_interleaved, pass_settings, pool_passes, run_tasks, summarize)
