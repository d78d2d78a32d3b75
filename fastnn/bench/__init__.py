"""Benchmark cases, contenders and timing: one definition behind ``fastnn bench``
and the pytest-benchmark suite in ``benches/``.

* :mod:`fastnn.bench.ops`: one :class:`Op` entry per operation: its description, its
  cases (a :class:`Case` is one operation at one shape), contenders, work model, inputs
  and prepared calls (:func:`setup`);
* :mod:`fastnn.bench.cases`: the case list and the ``--sizes`` selection;
* :mod:`fastnn.bench.timing`: the timer, the loop bound, the machine's ceilings, the
  cold-start arguments and the compile time's break-even;
* :mod:`fastnn.bench.report`: the derived figures, the report's tables and the plot;
* :mod:`fastnn.bench.cli`: the ``fastnn bench`` command (its options, the worker and
  cold-start processes);
* :mod:`fastnn.bench.worker`: one worker process (``python -m fastnn.bench.worker``).

Everything the command, ``benches/`` and the tests use is importable from here.
"""
from .cases import CASES, all_cases, parse_size, select  # noqa: F401
from .ops import (  # noqa: F401
    API_CONTENDERS, COMPARATORS, D_HID, D_IN, DESCRIPTIONS, EPOCH_N, EXTRAS, INTERLEAVED_OPS,
    LR, NEEDS, NET, OP_ORDER, OPS, SGD_MOMENTUM, SWITCH_WARM_S, Case, Op, Prepared,
    contenders, make_inputs, process_group, setup, work)
from .ops import _fastnn_train_step  # noqa: F401  (tests/test_bench.py times it directly)
from .timing import (  # noqa: F401
    FULL, FULL_PASSES, LOOP_BOUND_S, QUICK, LoopGate, break_even_calls, coldstart_args,
    compile_seconds, measure, measure_ceilings, measure_interleaved, pass_settings,
    pool_passes, run_tasks, summarize)
