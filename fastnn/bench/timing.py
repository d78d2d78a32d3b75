"""The timer of ``fastnn bench``, the machine's ceilings, the arguments of the cold-start
calls and the arithmetic of the compile time's break-even.

The timing (:func:`measure`) runs in worker processes (``fastnn.bench.worker``),
one per contender, so that one library's threads never slow another's calls. The
exceptions (``INTERLEAVED_OPS``) time their contenders alternately in one process: the
API-overhead rows, and ``linear_sigmoid_vs_blas``, the jit ``linear_sigmoid`` beside a
bare BLAS product for the ratio the performance target names. Separate processes run
minutes apart on a shared host whose speed drifts by more than the 5% that ratio
allows; alternating batches share every slow spell (see :func:`measure_interleaved`
for what keeps one library's idle threads from being charged to the other).
"""
from __future__ import annotations

import gc
import math
import time
from typing import Optional

import numpy as np

from .cases import all_cases
from .ops import INTERLEAVED_OPS, OP_ORDER, SWITCH_WARM_S, Case, Prepared, setup, work

#: A loop-implementation case runs only where one call is expected to finish
#: within this many seconds (``--loop-bound``).
LOOP_BOUND_S = 2.0


# --- timing --------------------------------------------------------------------------------
#: Timing settings: each sample is a batch of calls lasting at least target_s; at least
#: min_samples samples, at most max_samples, and no new sample once budget_s is spent.
FULL = dict(target_s=1e-3, min_samples=5, max_samples=25, budget_s=0.6, loop_min_samples=3)
QUICK = dict(target_s=1e-3, min_samples=3, max_samples=7, budget_s=0.12, loop_min_samples=1)


#: Passes of a full run (``fastnn bench --passes``): the contenders' worker processes run
#: in turn, pass after pass, each pass with a share of the samples and of the time budget
#: (:func:`pass_settings`), and the samples of all passes are pooled (:func:`pool_passes`).
#: A slow spell of a shared machine then falls on every contender alike rather than on
#: whichever one ran during it. The loop implementation runs in the first pass only.
FULL_PASSES = 3


def pass_settings(settings: dict, passes: int) -> dict:
    """The timing settings of one of ``passes`` passes: together they take about the
    samples and the time budget of ``settings``, and at least 2 samples each."""
    s = dict(settings)
    if passes > 1:
        s["min_samples"] = max(2, math.ceil(settings["min_samples"] / passes))
        s["max_samples"] = max(s["min_samples"], math.ceil(settings["max_samples"] / passes))
        s["budget_s"] = settings["budget_s"] / passes
    return s


def pool_passes(passes: list) -> list:
    """Merge the result lists of several passes: one result per (case, contender), in
    first-seen order. Where every pass measured it ("ok"), the samples are pooled and the
    summary recomputed over all of them (``passes``, ``pass_medians_s`` and
    ``inner_per_pass`` say how each pass went); otherwise the first failed pass's result
    is kept, so that an error is never hidden by a later success."""
    groups, order = {}, []
    for res in passes:
        for r in res:
            k = (r["case"], r["contender"])
            if k not in groups:
                groups[k] = []
                order.append(k)
            groups[k].append(r)
    out = []
    for k in order:
        rs = groups[k]
        if len(rs) == 1:
            out.append(rs[0])
            continue
        bad = [r for r in rs if r.get("status") != "ok"]
        r = dict(bad[0] if bad else rs[0])
        r["passes"] = len(rs)
        if not bad:
            r["samples_s"] = [x for q in rs for x in q["samples_s"]]
            r["inner_per_pass"] = [q["inner"] for q in rs]
            r["pass_medians_s"] = [q["median_s"] for q in rs]
            r["wall_s"] = sum(q.get("wall_s", 0.0) for q in rs)
            r.update(summarize(r["samples_s"]))
        out.append(r)
    return out


def _batch(prep: Prepared, n: int) -> float:
    if prep.before_sample is not None:
        prep.before_sample(n)
    fn = prep.fn
    t0 = time.perf_counter_ns()
    for _ in range(n):
        fn()
    return (time.perf_counter_ns() - t0) * 1e-9


def measure(prep: Prepared, settings: dict = FULL, bound_s: Optional[float] = None) -> dict:
    """Time ``prep.fn``: a first call (compiles, warms caches; its time is kept), a second
    call to size the batches, then samples of n calls each. Returns seconds per call.

    ``bound_s``: if the first call takes longer, stop there with status "not run (too slow)".
    """
    gc_was = gc.isenabled()
    first = _batch(prep, 1)
    if bound_s is not None and first > bound_s:
        return {"status": "not run (too slow)", "first_call_s": first, "bound_s": bound_s}
    slow = bound_s is not None and first > 0.05
    est = first if slow else _batch(prep, 1)
    n = max(1, math.ceil(settings["target_s"] / max(est, 1e-9)))
    if prep.max_inner:
        n = min(n, prep.max_inner)
    min_s = settings["loop_min_samples"] if slow else settings["min_samples"]
    samples = []
    t_start = time.perf_counter()
    try:
        gc.disable()
        while len(samples) < settings["max_samples"]:
            samples.append(_batch(prep, n) / n)
            if len(samples) >= min_s and time.perf_counter() - t_start > settings["budget_s"]:
                break
    finally:
        if gc_was:
            gc.enable()
    return {"status": "ok", "first_call_s": first, "inner": n, "samples_s": samples,
            **summarize(samples)}


def measure_interleaved(preps: dict, settings: dict = FULL, switch_warm_s: float = 0.0) -> dict:
    """Time several contenders of one case round-robin (one batch of each in turn), so
    that a slow spell of the machine hits all of them alike: for differences of a
    microsecond between calls of a few microseconds (the API overhead), and for ratios
    between libraries (``linear_sigmoid_vs_blas``). Returns {contender: the same fields
    as :func:`measure`}.

    ``switch_warm_s`` > 0: before each timed batch, untimed calls of the contender for
    at least that long. Idle threads of the previous contender may still be spinning:
    GNU OpenMP's, under Numba's parallel kernels, spin for milliseconds after each
    region by default, and a 2-thread OpenBLAS product started right after one took
    twice as long here. The warm-up calls absorb that, and leave this contender's own
    threads awake, as in a run of its calls alone. (An idle pause instead let the
    virtual CPUs go idle: both contenders' next calls then took up to twice as long.)"""
    if switch_warm_s > 0 and any(p.before_sample is not None for p in preps.values()):
        raise ValueError("switch_warm_s: the warm-up calls need contenders without before_sample")
    firsts = {k: _batch(p, 1) for k, p in preps.items()}
    ns = {}
    for k, p in preps.items():
        est = _batch(p, 1)
        ns[k] = max(1, math.ceil(settings["target_s"] / max(est, 1e-9)))
        if p.max_inner:
            ns[k] = min(ns[k], p.max_inner)
    samples = {k: [] for k in preps}
    gc_was = gc.isenabled()
    t_start = time.perf_counter()
    try:
        gc.disable()
        while len(samples[next(iter(preps))]) < settings["max_samples"]:
            for k, p in preps.items():
                if switch_warm_s > 0:
                    t_warm = time.perf_counter()
                    while True:
                        p.fn()
                        if time.perf_counter() - t_warm >= switch_warm_s:
                            break
                samples[k].append(_batch(p, ns[k]) / ns[k])
            if (len(samples[next(iter(preps))]) >= settings["min_samples"]
                    and time.perf_counter() - t_start > settings["budget_s"] * len(preps)):
                break
    finally:
        if gc_was:
            gc.enable()
    return {k: {"status": "ok", "first_call_s": firsts[k], "inner": ns[k], "samples_s": samples[k],
                "interleaved": True, **summarize(samples[k])} for k in preps}


def summarize(samples) -> dict:
    a = np.asarray(samples, float)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {"median_s": float(med), "q1_s": float(q1), "q3_s": float(q3),
            "min_s": float(a.min()), "max_s": float(a.max())}


class LoopGate:
    """Decides whether a slow contender (the loop implementation) runs a case: one call is
    expected within ``bound_s`` seconds. The time of one call of the smallest case of the
    same family (op, variant), measured first as a probe, scaled by the work, decides; a
    measured case refines the rate. The estimate only decides; it is never reported."""

    def __init__(self, bound_s: float, dtype, seed: int = 0):
        self.bound_s, self.dtype, self.seed = bound_s, dtype, seed
        self.rate = {}                          # (op, variant) -> seconds per unit of work

    def units(self, case: Case) -> float:
        w = work(case, self.dtype)["amount"]
        return w if w else float(case.size)

    def estimate(self, case: Case, contender: str) -> float:
        key = (case.op, case.variant)
        if key not in self.rate:
            small = min((c for c in all_cases() if (c.op, c.variant) == key), key=self.units)
            prep = setup(small, contender, self.dtype, np.random.default_rng(self.seed))
            self.rate[key] = _batch(prep, 1) / self.units(small)
        return self.rate[key] * self.units(case)

    def allows(self, case: Case, contender: str) -> bool:
        return self.estimate(case, contender) <= self.bound_s

    def observed(self, case: Case, seconds: float) -> None:
        self.rate[(case.op, case.variant)] = seconds / self.units(case)


def run_tasks(tasks, dtype, settings=FULL, loop_bound=LOOP_BOUND_S, seed=0, progress=None) -> list:
    """Time (case, contender) pairs in this process, smallest cases first. The loop
    implementation runs a case only where :class:`LoopGate` expects one call within
    ``loop_bound`` seconds, and stops after its first call if that took longer."""
    results = []
    # the contenders of an INTERLEAVED_OPS case are timed together, round-robin
    together = {}
    for case, contender in tasks:
        if case.op in INTERLEAVED_OPS:
            together.setdefault(case, []).append(contender)
    for case, contenders in together.items():
        t0 = time.perf_counter()
        try:
            preps = {c: setup(case, c, dtype, np.random.default_rng(seed)) for c in contenders}
            got = measure_interleaved(preps, settings, SWITCH_WARM_S[case.op])
        except Exception as exc:  # reported, not fatal
            got = {c: {"status": f"error: {type(exc).__name__}: {exc}"} for c in contenders}
        for c in contenders:
            r = {"case": case.id, "op": case.op, "variant": case.variant, "shape": case.shape,
                 "size": case.size, "contender": c, "dtype": np.dtype(dtype).name,
                 "work": work(case, dtype), **got[c], "wall_s": time.perf_counter() - t0}
            results.append(r)
            if progress:
                progress(r)
    tasks = [t for t in tasks if t[0].op not in INTERLEAVED_OPS]
    gate = LoopGate(loop_bound, dtype, seed)
    key = lambda t: (t[1], OP_ORDER.index(t[0].op), t[0].variant, gate.units(t[0]))  # noqa: E731
    for case, contender in sorted(tasks, key=key):
        r = {"case": case.id, "op": case.op, "variant": case.variant, "shape": case.shape,
             "size": case.size, "contender": contender, "dtype": np.dtype(dtype).name,
             "work": work(case, dtype)}
        t0 = time.perf_counter()
        try:
            bound = loop_bound if contender == "loop" else None
            if bound is not None and not gate.allows(case, contender):
                r.update(status="not run (too slow)", bound_s=bound)
                results.append(r)
                continue
            prep = setup(case, contender, dtype, np.random.default_rng(seed))
            res = measure(prep, settings, bound)
            if bound is not None:
                gate.observed(case, res["first_call_s"])
            r.update(res)
            del prep
        except ImportError as exc:
            r.update(status="not installed", error=str(exc))
        except Exception as exc:  # a failing contender is reported, not fatal
            r.update(status=f"error: {type(exc).__name__}: {exc}")
        r["wall_s"] = time.perf_counter() - t0
        results.append(r)
        if progress:
            progress(r)
    return results


# --- ceilings and cold start (run in their own worker processes) ----------------------------------
def _parallel_copy(src, dst):
    from numba import prange

    from ..kernels._config import pjit

    global _parallel_copy_kernel
    if _parallel_copy_kernel is None:
        def copy(a, b):
            for i in prange(a.shape[0]):
                b[i] = a[i]
        _parallel_copy_kernel = pjit(copy)
    _parallel_copy_kernel(src, dst)


_parallel_copy_kernel = None


def measure_ceilings(dtype="float32", copy_mib=512, n_gemm=1024) -> dict:
    """This machine's ceilings: GEMM GFLOP/s through NumPy's BLAS (n³ products, float32 and
    the run's dtype) and copy GB/s (between two arrays of ``copy_mib`` MiB, far beyond the last-level
    cache; bytes read + bytes written; the faster of np.copyto and a copy on all the
    run's threads). Best and median of samples."""
    rng = np.random.default_rng(0)
    out = {}
    for dt in sorted({"float32", np.dtype(dtype).name}):
        A = rng.standard_normal((n_gemm, n_gemm)).astype(dt)
        Bm = rng.standard_normal((n_gemm, n_gemm)).astype(dt)
        C = np.empty_like(A)
        np.matmul(A, Bm, out=C)
        ts = []
        for _ in range(7):
            t0 = time.perf_counter_ns()
            np.matmul(A, Bm, out=C)
            ts.append((time.perf_counter_ns() - t0) * 1e-9)
        fl = 2.0 * n_gemm ** 3
        out[f"gemm_{dt}_gflops"] = fl / min(ts) / 1e9
        out[f"gemm_{dt}_gflops_median"] = fl / float(np.median(ts)) / 1e9
    n = (copy_mib << 20) // 8
    src = np.ones(n, np.float64)
    dst = np.zeros(n, np.float64)
    # np.copyto runs on one core; a prange copy on all the run's threads (a streaming
    # kernel with one load and one store per element): the ceiling is the faster one
    copies = {"numpy": lambda: np.copyto(dst, src), "threads": lambda: _parallel_copy(src, dst)}
    best = {}
    for name, fn in copies.items():
        fn()
        ts = []
        for _ in range(5):
            t0 = time.perf_counter_ns()
            fn()
            ts.append((time.perf_counter_ns() - t0) * 1e-9)
        best[name] = ts
    name = min(best, key=lambda k: min(best[k]))
    ts = best[name]
    out["copy_gbs"] = 2.0 * src.nbytes / min(ts) / 1e9
    out["copy_gbs_median"] = 2.0 * src.nbytes / float(np.median(ts)) / 1e9
    out["copy_by"] = name
    out["copy_gbs_numpy"] = 2.0 * src.nbytes / min(best["numpy"]) / 1e9
    out["copy_mib"] = copy_mib
    out["gemm_n"] = n_gemm
    return out


def coldstart_args(op: str, dtype):
    """Small arguments for one call of every registered operation (for the cold-start
    timing of its jit kernel)."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(0)
    X = rng.random((8, 16)).astype(dt)
    W = rng.standard_normal((4, 16)).astype(dt)
    b = np.zeros(4, dt)
    Z = rng.standard_normal((8, 4)).astype(dt)
    y = rng.integers(0, 4, 8).astype(np.int64)
    Y01 = rng.random((8, 4)).astype(dt)
    v = rng.standard_normal(32).astype(dt)
    table = {
        "linear": (X, W, b, np.empty((8, 4), dt)),
        "linear_sigmoid": (X, W, b, np.empty((8, 4), dt)),
        "sigmoid": (v, np.empty_like(v)),
        "sigmoid_backward": (v, 1 / (1 + np.exp(-v)), np.empty_like(v)),
        "softmax": (Z, np.empty_like(Z)),
        "log_softmax": (Z, np.empty_like(Z)),
        "softmax_cross_entropy": (Z, y),
        "softmax_cross_entropy_grad": (Z, y, np.empty_like(Z)),
        "sigmoid_bce_grad": (Z, Y01, np.empty_like(Z)),
        "sigmoid_mse_grad": (Z, Y01, np.empty_like(Z)),
        "linear_backward": (Z, X, W, np.empty_like(W), np.empty(4, dt), np.empty_like(X)),
        "hidden_delta": (Z, W, X, np.empty_like(X)),
        "sgd_update": (v.copy(), v, 0.1, 0.9, np.zeros_like(v), 1e-4, 1e-5, False),
    }
    if op in ("perceptron_epoch", "adaline_epoch"):
        from ..kernels import perceptron
        return perceptron.make_inputs(op, dt)
    return table[op]


def compile_seconds(row: dict):
    """An operation's cold compile time: its first call with an empty cache minus its
    first call with a warm one (which still pays Numba's start-up in that process)."""
    try:
        return max(0.0, row["cold"]["first_call_s"] - row["warm"]["first_call_s"])
    except (KeyError, TypeError):
        return None


def break_even_calls(compile_s, vectorized_s, jit_s):
    """Calls after which jit's compile time has paid for itself against vectorized:
    compile / (vectorized − jit) per call; None when jit is not faster (never pays)."""
    if compile_s is None or vectorized_s is None or jit_s is None or vectorized_s <= jit_s:
        return None
    return compile_s / (vectorized_s - jit_s)
