"""The cases of ``fastnn.bench`` under pytest-benchmark.

Every case (operation × shape) × contender (each registered implementation, plus
SciPy, bare BLAS, PyTorch and JAX where installed), grouped per operation, shape
and dtype (``benchmark.group = "op|shape|dtype"``), with a warm-up call (which
compiles) outside the timed code. In-place cases (``sgd_update``) are timed with
``benchmark.pedantic`` and a fresh copy restored before every round.

    pytest benches --benchmark-enable                           # time everything
    pytest benches --benchmark-enable -k "softmax and jit" --benchmark-json out.json
    pytest benches --benchmark-enable --benchmark-compare        # against the last saved run
    pytest benches --benchmark-enable --benchmark-histogram      # SVG per group
    pytest benches --benchmark-enable --bench-dtype float64

All contenders share one process here, so one library's threads can slow the next
one's calls (OpenBLAS's spinning threads did, by 17-22×, on a 2-core machine);
select one contender per run (``-k torch``) for clean figures, or use
``fastnn bench``, which runs each contender in its own process.

In the normal test run (``--benchmark-disable``, the default) every case of the
``--quick`` subset runs once as a smoke test, and the loop implementation only on the
smallest quick case of each family (op, variant): a fixed list, so the test count does
not depend on the machine's speed. With timing on, the loop implementation is collected
where one call is expected within ``fastnn bench``'s bound (a timed probe decides).

The learners' epochs (``perceptron_epoch``, ``adaline_epoch``: one epoch of the
perceptron / ADALINE rule over N samples of D features) are not cases of
``fastnn bench``; ``test_learner_epoch`` times their three implementations here, side
by side (group ``op|N=..,D=..|dtype``), each round from w = b = 0. In the smoke run the
loop implementation runs on the smaller size only.

    pytest benches --benchmark-enable -k learner
"""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from fastnn import bench as B
from fastnn.kernels import IMPL_NAMES, IMPLS
from fastnn.kernels.perceptron import make_inputs

#: The loop implementation runs where one call is expected within this bound (seconds).
ENABLED_LOOP_BOUND = B.LOOP_BOUND_S
_gates = {}


#: (N, D) of the learners' epoch benchmarks.
LEARNER_SIZES = ((1000, 20), (10000, 100))
LEARNER_OPS = ("perceptron_epoch", "adaline_epoch")


def pytest_generate_tests(metafunc):
    if "learner" in metafunc.fixturenames:
        _learner_params(metafunc)
        return
    if "case" not in metafunc.fixturenames:
        return
    cfg = metafunc.config
    enabled = _enabled(cfg)
    cases = B.all_cases() if enabled else [c for c in B.all_cases() if c.quick]
    d = cfg.getoption("bench_dtype", "float32")
    dtypes = ["float32", "float64"] if d == "both" else [d]
    # the loop implementation is slow by design: in the smoke run only on each family's
    # smallest case; with timing on, only where one call is expected within the bound
    # (judged from a call at the case's smallest size); the rest are not generated at all
    # (the report calls them "not run (too slow)")
    # comparators from optional extras (torch, jax) appear only where installed
    smallest = _smallest(cases)
    params = [pytest.param(c, k, dt, id=f"{c.op}|{c.variant}|{c.shape}|{k}|{dt}".replace(" ", ""))
              for c in cases for k in B.contenders(c) for dt in dtypes
              if _installed(k) and (k != "loop" or (_gate(cfg, dt).allows(c, k) if enabled
                                                    else c in smallest))]
    metafunc.parametrize("case,contender,dtype", params)


def _learner_params(metafunc):
    cfg = metafunc.config
    d = cfg.getoption("bench_dtype", "float32")
    dtypes = ["float32", "float64"] if d == "both" else [d]
    enabled = _enabled(cfg)
    params = [pytest.param(op, n, dim, impl, dt, id=f"{op}|N={n},D={dim}|{impl}|{dt}")
              for op in LEARNER_OPS for (n, dim) in LEARNER_SIZES for impl in IMPL_NAMES
              for dt in dtypes
              if enabled or impl != "loop" or (n, dim) == LEARNER_SIZES[0]]
    metafunc.parametrize("learner,N,D,impl,dtype", params)


def _smallest(cases) -> list:
    """The smallest case (by its work) of each (op, variant) family among cases."""
    best = {}
    for c in cases:
        key = (c.op, c.variant)
        units = B.work(c, "float32")["amount"] or c.size
        if key not in best or units < best[key][0]:
            best[key] = (units, c)
    return [c for _, c in best.values()]


def _installed(contender) -> bool:
    need = B.NEEDS.get(contender)
    return need is None or importlib.util.find_spec(need) is not None


def _enabled(config) -> bool:
    """Timing is on: ``--benchmark-enable`` overrides the ``--benchmark-disable`` of addopts."""
    return bool(config.getoption("benchmark_enable", False)) or not config.getoption("benchmark_disable", True)


def _gate(config, dtype):
    if dtype not in _gates:
        _gates[dtype] = B.LoopGate(ENABLED_LOOP_BOUND, dtype)
    return _gates[dtype]


def test_kernel(benchmark, request, case, contender, dtype):
    if contender == "jax" and dtype == "float64":
        import jax
        jax.config.update("jax_enable_x64", True)
    prep = B.setup(case, contender, dtype, np.random.default_rng(0))
    benchmark.group = case.group(dtype)
    benchmark.extra_info.update(contender=contender, work=B.work(case, dtype))
    if prep.before_sample is not None:            # in place: a fresh copy for every round
        def fresh():
            prep.before_sample(1)
        benchmark.pedantic(prep.fn, setup=fresh, rounds=10, warmup_rounds=1)
    else:
        prep.fn()                                 # warm-up (compiles), not timed
        benchmark(prep.fn)


def test_learner_epoch(benchmark, learner, N, D, impl, dtype):
    """One epoch of the perceptron or ADALINE rule, from w = b = 0 every round."""
    args = make_inputs(learner, dtype, N=N, D=D, seed=0)
    w, b = args[2], args[3]
    kern = IMPLS[learner][impl]
    benchmark.group = f"{learner}|N={N},D={D}|{dtype}"
    benchmark.extra_info.update(contender=impl, work={"kind": "samples", "amount": N})

    def fresh():
        w[...] = 0
        b[...] = 0
    fresh()
    first = kern(*args)                           # warm-up (compiles), not timed
    benchmark.pedantic(lambda: kern(*args), setup=fresh, rounds=5 if impl == "loop" else 10,
                       warmup_rounds=0)
    assert kern(*args) <= first or learner == "adaline_epoch"   # the rule made progress
    assert np.isfinite(w).all() and np.isfinite(b).all()
