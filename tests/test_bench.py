"""``fastnn bench``: the work model, the cases, the timer, the loop bound, the CLI, the plot."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastnn import bench as B
from fastnn.bench import cli as bench_cli


def _case(op, shape=None, variant=None, size=None):
    for c in B.all_cases():
        if c.op == op and (shape is None or c.shape == shape) and (variant is None or c.variant == variant) \
                and (size is None or c.size == size):
            return c
    raise LookupError((op, shape, variant, size))


# --- the work model, by hand -------------------------------------------------------------
def test_work_linear_sigmoid_counts_the_product():
    c = _case("linear_sigmoid", size=32)
    assert B.work(c, np.float32) == {"kind": "flop", "amount": 2.0 * 32 * 784 * 128}


def test_work_linear_backward_counts_two_products():
    c = _case("linear_backward", size=256)
    assert B.work(c, "float64") == {"kind": "flop", "amount": 4.0 * 256 * 784 * 128}


def test_work_softmax_bytes_read_and_written():
    assert B.work(_case("softmax", "Z(256,10)"), np.float32)["amount"] == 2 * 2560 * 4
    assert B.work(_case("softmax", "Z(16,16,128,128)"), np.float64)["amount"] == 2 * 16 * 16 * 128 * 128 * 8


def test_work_cross_entropy_grad_includes_labels():
    c = _case("softmax_cross_entropy_grad", "Z(4096,1000)")
    assert B.work(c, np.float32) == {"kind": "bytes", "amount": 2 * 4096 * 1000 * 4 + 8 * 4096}


def test_work_sgd_plain_and_momentum():
    assert B.work(_case("sgd_update", "n=100k", "plain"), np.float32)["amount"] == 3 * 100_000 * 4
    assert B.work(_case("sgd_update", "n=1M", "momentum+wd+l1"), np.float64)["amount"] == 5 * 1_000_000 * 8


def test_work_train_step():
    # forward 784·100 + 100·10, backward dW2 100·10, dZ·W2 10·100, dW1 100·784 (2 flops each)
    c = _case("train_step", size=10)
    assert B.work(c, np.float32)["amount"] == 2 * 10 * (784 * 100 * 2 + 100 * 10 * 3)


# --- the cases ---------------------------------------------------------------------------
def test_case_list_matches_the_issue():
    sizes = lambda op, v=None: sorted(c.size for c in B.all_cases() if c.op == op and (v is None or c.variant == v))  # noqa: E731
    assert sizes("linear_sigmoid") == [1, 32, 256, 4096]
    assert sizes("softmax", "C=10") == [32, 256, 4096, 65536]
    assert sizes("softmax_cross_entropy_grad", "C=1000") == [256, 4096]
    assert _case("softmax", variant="4-D").p["shape"] == (16, 16, 128, 128)
    assert sizes("sgd_update", "momentum+wd+l1") == [100_000, 1_000_000, 16_000_000]
    assert sizes("train_step") == [1, 10, 64, 256]
    assert sizes("epoch") == [1, 10]
    assert all(c.p["N"] == 60_000 and B.contenders(c) == ["mlp"] and not c.quick
               for c in B.all_cases() if c.op == "epoch")


def test_epoch_case_is_one_fit_epoch_in_order():
    """The epoch case's timed call trains exactly like MLP.fit(shuffle=False), one epoch."""
    from fastnn import MLP
    case = B.Case("epoch", "", "test", 2, (("B", 2), ("N", 8)))
    assert B.work(case, "float32")["amount"] == 2.0 * 8 * (2 * 784 * 100 + 3 * 100 * 10)
    prep = B.setup(case, "mlp", "float32", np.random.default_rng(3))
    inp = B.make_inputs(case, "float32", np.random.default_rng(3))
    ref = MLP([784, 100, 10], dtype=np.float32, seed=0, impl="jit")
    ref.set_parameters(weights=[inp["W1"], inp["W2"]], biases=[inp["b1"], inp["b2"]])
    ref.fit(inp["X"], inp["y"], epochs=1, batch_size=2, lr=B.LR, shuffle=False)
    prep.fn()
    got = prep.model
    for a, b in zip(got.weights + got.biases, ref.weights + ref.biases):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(got.weights[0], inp["W1"])     # it did train


def test_select_filters():
    assert {c.op for c in B.select(["softmax"], ["32"])} == {"softmax"}
    assert [c.shape for c in B.select(["softmax"], ["32"])] == ["Z(32,10)"]
    assert [c.size for c in B.select(["sgd_update"], ["16M"])] == [16_000_000] * 2
    assert [c.shape for c in B.select(["softmax"], ["C=1000"])] == ["Z(256,1000)", "Z(4096,1000)"]
    quick = B.select(quick=True)
    assert quick and all(c.quick for c in quick) and len(quick) < len(B.all_cases())
    assert B.parse_size("100k") == 100_000 and B.parse_size("Z(1,2)") is None


def test_contenders_registered_first_then_comparators():
    from fastnn.kernels import IMPL_NAMES
    ks = B.contenders(_case("linear_sigmoid", size=1))
    assert ks[:len(IMPL_NAMES)] == list(IMPL_NAMES)
    assert {"scipy", "blas", "torch", "jax"} <= set(ks)
    assert B.process_group("api_out") == B.process_group("raw") == "api"
    pair = _case("linear_sigmoid_vs_blas", size=256)
    assert B.contenders(pair) == ["jit", "blas"]
    assert B.process_group("jit", pair.op) == B.process_group("blas", pair.op) == "paired"
    assert B.process_group("jit", "linear_sigmoid") == "jit"
    assert B.work(pair, "float32") == B.work(_case("linear_sigmoid", size=256), "float32")


def test_paired_rows_time_jit_and_blas_alternately_in_one_process():
    c = _case("linear_sigmoid_vs_blas", size=32)
    res = B.run_tasks([(c, "jit"), (c, "blas")], "float32", dict(B.QUICK, budget_s=0.01))
    by = {r["contender"]: r for r in res}
    assert set(by) == {"jit", "blas"}
    for r in by.values():
        assert r["status"] == "ok" and r["interleaved"] and r["op"] == "linear_sigmoid_vs_blas"
    assert len(by["jit"]["samples_s"]) == len(by["blas"]["samples_s"]) >= B.QUICK["min_samples"]
    text = bench_cli.format_report({"settings": {"quick": True, "dtype": "float32", "threads": 1,
                                                 "loop_bound_s": 2.0}, "results": res})
    ratio = by["jit"]["median_s"] / by["blas"]["median_s"]
    assert "## linear_sigmoid_vs_blas" in text and f" {ratio:.3f} |" in text


def test_sgd_rows_time_jit_and_the_axpy_ceiling_alternately_in_one_process():
    c = _case("sgd_vs_axpy", size=1_000_000)
    assert B.contenders(c) == ["jit", "axpy"]
    assert B.process_group("jit", c.op) == B.process_group("axpy", c.op) == "paired"
    assert B.work(c, "float32") == B.work(_case("sgd_update", variant="plain", size=1_000_000),
                                          "float32") == {"kind": "bytes", "amount": 12e6}
    # the ceiling kernel does what sgd_update does: w += (−lr)·g, on a fresh copy per call
    prep = B.setup(c, "axpy", "float32")
    w0 = prep.pool.originals["w"].copy()
    prep.before_sample(1)
    prep.fn()
    ref = B.make_inputs(dataclasses.replace(c, op="sgd_update"), "float32",
                        np.random.default_rng(0))
    np.testing.assert_allclose(prep.pool.copies[0]["w"], ref["w"] + np.float32(-B.LR) * ref["g"],
                               rtol=2e-7, atol=1e-8)    # one rounding (FMA) or two
    assert not np.array_equal(prep.pool.copies[0]["w"], ref["w"])
    np.testing.assert_array_equal(prep.pool.originals["w"], w0)     # the original is untouched
    res = B.run_tasks([(c, "jit"), (c, "axpy")], "float32", dict(B.QUICK, budget_s=0.01))
    by = {r["contender"]: r for r in res}
    for r in by.values():
        assert r["status"] == "ok" and r["interleaved"] and r["op"] == "sgd_vs_axpy"
    assert len(by["jit"]["samples_s"]) == len(by["axpy"]["samples_s"]) >= B.QUICK["min_samples"]
    record = {"settings": {"quick": True, "dtype": "float32", "threads": 1, "loop_bound_s": 2.0},
              "results": res}
    bench_cli.derive(record)
    text = bench_cli.format_report(record)
    pct = 100 * by["axpy"]["median_s"] / by["jit"]["median_s"]
    gbs = 12e6 / by["jit"]["median_s"] / 1e9
    assert "## sgd_vs_axpy" in text and f" {pct:.1f}% |" in text and f" {gbs:.1f} |" in text


def test_interleaved_warm_up_calls_precede_every_timed_batch():
    log = []
    preps = {"a": B.Prepared(lambda: log.append("a")), "b": B.Prepared(lambda: log.append("b"))}
    got = B.measure_interleaved(preps, dict(B.QUICK, budget_s=0.0), switch_warm_s=1e-4)
    n = len(got["a"]["samples_s"])
    assert n == len(got["b"]["samples_s"]) >= B.QUICK["min_samples"]
    runs = [k for i, k in enumerate(log) if i == 0 or log[i - 1] != k]     # alternation
    assert runs == ["a", "b"] * (2 + n)          # first calls, sizing calls, then batches
    timed = {k: got[k]["inner"] * n for k in "ab"}
    assert log.count("a") >= 2 + timed["a"] + n and log.count("b") >= 2 + timed["b"] + n
    with pytest.raises(ValueError, match="before_sample"):
        B.measure_interleaved({"a": B.Prepared(lambda: None, lambda n: None)}, B.QUICK, 1e-4)


# --- the prepared calls compute what they claim ----------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_train_step_jit_matches_vectorized(dtype):
    c = _case("train_step", size=10)
    from fastnn.kernels import IMPLS
    results = {}
    for impl in ("vectorized", "jit"):
        inp = B.make_inputs(c, dtype, np.random.default_rng(1))
        K = {op: IMPLS[op][impl] for op in IMPLS}
        step = B._fastnn_train_step(K, inp)
        losses = [float(step()) for _ in range(3)]
        results[impl] = (losses, inp["W1"].copy(), inp["b2"].copy())
    (lv, W1v, b2v), (lj, W1j, b2j) = results["vectorized"], results["jit"]
    tol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(lj, lv, rtol=tol)
    np.testing.assert_allclose(W1j, W1v, rtol=tol, atol=tol)
    np.testing.assert_allclose(b2j, b2v, rtol=tol, atol=tol)
    assert not np.array_equal(b2j, np.zeros_like(b2j))        # the update happened


def test_sgd_cases_time_fresh_copies():
    c = _case("sgd_update", "n=100k", "momentum+wd+l1")
    prep = B.setup(c, "vectorized", "float64", np.random.default_rng(0))
    inp = B.make_inputs(c, "float64", np.random.default_rng(0))
    assert prep.max_inner and prep.max_inner >= 2
    for _ in range(2):                                         # two batches of 2 calls
        prep.before_sample(2)
        prep.fn()
        prep.fn()
    with pytest.raises(IndexError):                             # a batch never reuses a copy
        prep.before_sample(prep.max_inner)
        for _ in range(prep.max_inner + 1):
            prep.fn()
    # every call saw the original parameters: copy 0 holds exactly one update of them
    prep.before_sample(1)
    prep.fn()
    from fastnn.kernels import IMPLS
    w, v = inp["w"].copy(), inp["v"].copy()
    IMPLS["sgd_update"]["vectorized"](w, inp["g"], B.LR, 0.9, v, 1e-4, 1e-5, False)
    got = prep.pool.copies[0]
    np.testing.assert_array_equal(got["w"], w)
    np.testing.assert_array_equal(got["v"], v)


def test_measure_reports_seconds_per_call():
    calls = []
    prep = B.Prepared(lambda: calls.append(1))
    r = B.measure(prep, dict(B.QUICK, budget_s=0.01))
    assert r["status"] == "ok"
    assert len(r["samples_s"]) >= B.QUICK["min_samples"]
    assert len(calls) == 2 + r["inner"] * len(r["samples_s"])   # first + sizing call + samples
    assert r["min_s"] <= r["q1_s"] <= r["median_s"] <= r["q3_s"] <= r["max_s"] < 1e-3


# --- the loop bound -----------------------------------------------------------------------
def test_loop_not_run_beyond_the_bound():
    c = _case("softmax", "Z(4096,10)")
    res = B.run_tasks([(c, "loop"), (c, "jit")], "float32", B.QUICK, loop_bound=1e-6)
    by = {r["contender"]: r for r in res}
    assert by["loop"]["status"] == "not run (too slow)"
    assert "median_s" not in by["loop"] and by["loop"]["bound_s"] == 1e-6
    assert by["jit"]["status"] == "ok"
    text = bench_cli.format_report({"settings": {"quick": True, "dtype": "float32", "threads": 1,
                                                 "loop_bound_s": 1e-6}, "results": res})
    assert "not run (too slow, > 1e-06 s/call)" in text


def test_loop_runs_within_the_bound():
    c = _case("softmax", "Z(32,10)")
    (r,) = B.run_tasks([(c, "loop")], "float32", dict(B.QUICK, budget_s=0.01), loop_bound=5.0)
    assert r["status"] == "ok" and r["median_s"] > 0


# --- the command, end to end ---------------------------------------------------------------
@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    out = d / "run.json"
    cmd = [sys.executable, "-m", "fastnn", "bench", "--quick", "--ops", "softmax", "--sizes", "32",
           "--contenders", "loop,vectorized,jit", "--threads", "1", "--copy-mib", "32",
           "--no-coldstart", "--json", str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    return p, out


def test_cli_json_has_every_raw_figure(quick_run):
    p, out = quick_run
    assert p.returncode == 0, p.stderr
    rec = json.loads(out.read_text())
    assert set(rec) >= {"settings", "machine", "ceilings", "results", "coldstart", "wall_s"}
    assert rec["machine"]["dtype"] == "float32" and rec["machine"]["threads used"] == "1"
    for k in ("cpu", "numpy", "numba", "SVML", "exp in jit kernels", "BLAS", "torch"):
        assert k in rec["machine"]
    assert rec["ceilings"]["gemm_float32_gflops"] > 0 and rec["ceilings"]["copy_gbs"] > 0
    res = {r["contender"]: r for r in rec["results"]}
    assert set(res) == {"loop", "vectorized", "jit"}
    for r in res.values():
        assert r["status"] == "ok" and r["case"] == "softmax|C=10|Z(32,10)"
        assert len(r["samples_s"]) >= 3
        assert r["gbs"] == pytest.approx(2 * 320 * 4 / r["median_s"] / 1e9)
    assert res["jit"]["vs_loop"] == pytest.approx(res["loop"]["median_s"] / res["jit"]["median_s"])


def test_cli_prints_the_table(quick_run):
    p, _ = quick_run
    assert "## softmax" in p.stdout
    assert "| Z(32,10)" in p.stdout and "vs vectorized" in p.stdout and "GB/s" in p.stdout
    assert "1 threads" in p.stdout


def test_pass_settings_share_samples_and_budget():
    s = B.pass_settings(B.FULL, 3)
    assert s["min_samples"] == 2 and s["max_samples"] == 9
    assert s["budget_s"] == pytest.approx(B.FULL["budget_s"] / 3)
    assert s["target_s"] == B.FULL["target_s"]
    assert B.pass_settings(B.FULL, 1) == B.FULL


def test_pool_passes_pools_samples_and_keeps_failures():
    def ok(case, k, samples, inner):
        return {"case": case, "contender": k, "status": "ok", "samples_s": samples, "inner": inner,
                "first_call_s": 1.0, **B.summarize(samples)}
    p1 = [ok("a", "jit", [1.0, 3.0], 10), ok("a", "torch", [5.0, 5.0], 4),
          {"case": "a", "contender": "loop", "status": "not run (too slow)"}]
    p2 = [ok("a", "jit", [2.0, 10.0], 20), {"case": "a", "contender": "torch", "status": "error: boom"}]
    got = B.pool_passes([p1, p2])
    assert [(r["case"], r["contender"]) for r in got] == [("a", "jit"), ("a", "torch"), ("a", "loop")]
    jit, torch, loop = got
    assert jit["samples_s"] == [1.0, 3.0, 2.0, 10.0] and jit["passes"] == 2
    assert jit["median_s"] == pytest.approx(2.5) and jit["min_s"] == 1.0 and jit["max_s"] == 10.0
    assert jit["pass_medians_s"] == [2.0, 6.0] and jit["inner_per_pass"] == [10, 20]
    assert torch["status"] == "error: boom" and torch["passes"] == 2   # a failure is never hidden
    assert loop["status"] == "not run (too slow)" and "passes" not in loop


def test_cli_passes_pool_every_pass(tmp_path):
    out = tmp_path / "run.json"
    cmd = [sys.executable, "-m", "fastnn", "bench", "--quick", "--passes", "2", "--ops", "softmax",
           "--sizes", "32", "--contenders", "vectorized,jit", "--threads", "1", "--copy-mib", "32",
           "--no-coldstart", "--json", str(out)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "pass 2 of 2" in p.stderr and "2 passes" in p.stdout
    rec = json.loads(out.read_text())
    assert rec["settings"]["passes"] == 2
    res = {r["contender"]: r for r in rec["results"]}
    assert set(res) == {"vectorized", "jit"}
    for r in res.values():
        assert r["status"] == "ok" and r["passes"] == 2 and len(r["pass_medians_s"]) == 2
        assert len(r["samples_s"]) >= 2 * B.pass_settings(B.QUICK, 2)["min_samples"]
        assert r["median_s"] == pytest.approx(float(np.median(r["samples_s"])))


def test_missing_contender_is_not_installed_never_an_error(monkeypatch):
    monkeypatch.setitem(B.NEEDS, "torch", "fastnn_no_such_module_xyz")
    assert not bench_cli.installed("torch")
    assert bench_cli.installed("jit")


def test_plot_written(quick_run, tmp_path):
    pytest.importorskip("matplotlib")
    _, out = quick_run
    png = tmp_path / "b.png"
    rc = bench_cli.main(_args(from_json=str(out), plot=str(png)))
    assert rc == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def _args(**kw):
    import argparse
    d = dict(quick=False, ops=None, sizes=None, dtype="float32", threads=None, contenders=None,
             loop_bound=B.LOOP_BOUND_S, json=None, plot=None, no_coldstart=True, copy_mib=32,
             from_json=None, passes=None)
    d.update(kw)
    return argparse.Namespace(**d)


def test_bench_subcommand_is_registered():
    p = subprocess.run([sys.executable, "-m", "fastnn", "bench", "--help"], capture_output=True, text=True)
    assert p.returncode == 0
    for flag in ("--quick", "--json", "--plot", "--ops", "--sizes", "--dtype", "--threads"):
        assert flag in p.stdout


def test_worker_env_sets_threads_before_numpy_loads():
    env = bench_cli.worker_env(3)
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        assert env[v] == "3"
    assert "OPENBLAS_THREAD_TIMEOUT" in env
    assert "--xla_cpu_multi_thread_eigen=false" in bench_cli.worker_env(1)["XLA_FLAGS"]


LEARNER_OPS = ("perceptron_epoch", "adaline_epoch")


def test_coldstart_args_cover_every_jit_kernel():
    from fastnn.kernels import IMPLS, perceptron
    for op in IMPLS:
        if "jit" in IMPLS[op]:
            # fastnn.bench's table does not list the learners' epochs (issue 23): their
            # small arguments come from their own module
            args = (perceptron.make_inputs(op, "float32") if op in LEARNER_OPS
                    else B.coldstart_args(op, "float32"))
            IMPLS[op]["jit"](*args)
            assert all(not isinstance(a, np.ndarray) or np.isfinite(a).all() for a in args), op


def test_plot_draws_sizes_as_lines_and_workloads_as_bars(tmp_path):
    """The kept full run (docs/bench/full.json): lines over sizes, bars for the epochs
    (batch 1 and batch 10 are two workloads, not two sizes) and single-size panels, and
    the roofline panel of % of the measured ceiling."""
    pytest.importorskip("matplotlib")
    import json
    record = json.loads((Path(__file__).parent.parent / "docs" / "bench" / "full.json").read_text())
    kinds = bench_cli.plot(record, str(tmp_path / "p.png"))
    assert kinds["epoch"] == "bars" and kinds["softmax (4-D)"] == "bars"
    assert kinds["softmax (C=10)"] == "lines" and kinds["linear_sigmoid"] == "lines"
    assert kinds["roofline"] == "roofline"
    assert (tmp_path / "p.png").stat().st_size > 10_000
