"""``fastnn bench``: loop vs vectorized vs jit (and SciPy, BLAS, PyTorch, JAX), timed
honestly and shown as a table, a JSON file of every raw figure, and a plot.

How it measures (see ``fastnn.bench`` for the cases, the contenders and the timer):

1. A worker process measures this machine's ceilings: float32 GEMM GFLOP/s through
   NumPy's BLAS and copy GB/s on arrays far larger than the last-level cache.
2. Every contender runs in its own worker process (``fastnn.bench.worker``), one
   after the other, with one thread setting for everyone (BLAS through
   threadpoolctl and the usual variables, Numba, PyTorch, XLA), so that one
   library's spinning threads never slow another's calls.
3. Cold start: fresh processes time ``import fastnn`` and the first call of each jit
   kernel, first with an empty Numba cache (a new NUMBA_CACHE_DIR), then with the
   cache that run filled.
"""
from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
import threading
import tempfile
import time

from .. import bench as B
from .._cli_util import UsageError, int_in, need_matplotlib, output_path, real_in, split_list
from .report import derive, format_report, plot

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
               "NUMBA_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
QUICK_COLDSTART_OPS = ("softmax",)


def _log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def worker_env(threads: int) -> dict:
    """The environment of every worker: thread variables set before NumPy loads a BLAS."""
    env = dict(os.environ)
    for v in THREAD_VARS:
        env[v] = str(threads)
    env.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    if threads == 1:      # XLA's CPU client has no thread-count flag; one thread is "no Eigen pool"
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
    env.setdefault("JAX_PLATFORMS", "cpu")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _run_worker(spec: dict, env: dict, timeout: float = 1800) -> dict:
    with tempfile.TemporaryDirectory(prefix="fastnn-bench-") as d:
        sp, op = os.path.join(d, "spec.json"), os.path.join(d, "out.json")
        with open(sp, "w") as f:
            json.dump(spec, f)
        p = subprocess.Popen([sys.executable, "-m", "fastnn.bench.worker", sp, op], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        err = []

        def relay():
            # the worker's "fastnn: compiling ..." lines reach the user as they happen
            for line in p.stderr:
                err.append(line)
                if line.startswith("fastnn: compiling"):
                    sys.stderr.write("[bench] " + line)
                    sys.stderr.flush()
        t = threading.Thread(target=relay, daemon=True)
        t.start()
        killer = threading.Timer(timeout, p.kill)
        killer.start()
        try:
            out = p.stdout.read()
            p.wait()
        finally:
            killer.cancel()
        t.join()
        if p.returncode != 0 or not os.path.exists(op):
            tail = ("".join(err) or out or "").strip().splitlines()[-3:]
            return {"error": f"worker exited with {p.returncode}: " + " | ".join(tail)}
        with open(op) as f:
            return json.load(f)


def installed(contender: str) -> bool:
    mod = B.NEEDS.get(contender)
    return mod is None or importlib.util.find_spec(mod) is not None


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version
        return version(dist)
    except Exception:
        return "not installed"


_COLD_CODE = r"""
import json, sys, time
t0 = time.perf_counter()
import fastnn
t1 = time.perf_counter()
from fastnn.bench import coldstart_args
args = coldstart_args(sys.argv[1], sys.argv[2])
k = fastnn.kernels.IMPLS[sys.argv[1]]["jit"]
t2 = time.perf_counter()
k(*args)
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_call_s": t3 - t2}))
"""


def coldstart(ops, dtype: str, env: dict) -> list:
    """Per jit kernel, in fresh processes: import time and time to the first result with an
    empty Numba cache, then again with the cache the first run wrote."""
    out = []
    for op in ops:
        row = {"op": op, "dtype": dtype}
        with tempfile.TemporaryDirectory(prefix="fastnn-numba-cache-") as cache:
            e = dict(env, NUMBA_CACHE_DIR=cache)
            e.pop("FASTNN_NO_CACHE", None)
            for state in ("cold", "warm"):
                t0 = time.perf_counter()
                p = subprocess.run([sys.executable, "-c", _COLD_CODE, op, dtype], env=e,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                wall = time.perf_counter() - t0
                if p.returncode != 0:
                    row[state] = {"error": (p.stderr.strip().splitlines() or ["?"])[-1]}
                    continue
                d = json.loads(p.stdout.strip().splitlines()[-1])
                d["process_s"] = wall
                row[state] = d
        out.append(row)
        _log(f"cold start {op}: " + ", ".join(
            f"{s} {row[s].get('first_call_s', float('nan')):.3f} s" for s in ("cold", "warm")))
    return out


def run(args) -> dict:
    """Run the benchmark described by the parsed arguments; returns the raw record."""
    t_start = time.perf_counter()
    threads = args.threads or os.cpu_count() or 1
    ops = _split(args.ops, "--ops")
    cases = _cases(args)
    want = _split(args.contenders, "--contenders")
    plugin_specs = user_contenders(want, ops)
    passes = args.passes if args.passes is not None else (1 if args.quick else B.FULL_PASSES)
    if passes < 1:
        raise UsageError(f"--passes: expected a positive integer, got {passes}")
    env = worker_env(threads)
    record = {"settings": {"quick": bool(args.quick), "dtype": args.dtype, "threads": threads,
                           "loop_bound_s": args.loop_bound, "ops": ops, "sizes": _split(args.sizes),
                           "contenders": want, "timing": B.QUICK if args.quick else B.FULL,
                           "passes": passes,
                           "command": " ".join(["fastnn"] + sys.argv[1:]) if sys.argv else ""}}
    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    _log(f"{len(cases)} cases, dtype {args.dtype}, {threads} threads; measuring ceilings")
    ceil = _run_worker({"mode": "ceilings", "dtype": args.dtype, "threads": threads,
                        "copy_mib": args.copy_mib}, env)
    record["ceilings"] = ceil.get("ceilings", {})
    machine = dict(ceil.get("info", {}))
    machine.update({
        "platform": platform.platform(),
        "logical cores": str(os.cpu_count()),
        "threads used": str(threads),
        "thread settings": json.dumps(ceil.get("threads", {})),
        "dtype": args.dtype,
        "torch": _version("torch"), "jax": _version("jax"), "jaxlib": _version("jaxlib"),
        "threadpoolctl": _version("threadpoolctl"),
        "OPENBLAS_THREAD_TIMEOUT": env.get("OPENBLAS_THREAD_TIMEOUT"),
        "XLA_FLAGS": env.get("XLA_FLAGS") or "(unset: XLA's default pool, all cores)",
        "load average at start": load_start,
    })
    if "error" in ceil:
        machine["ceilings error"] = ceil["error"]
    record["machine"] = machine

    groups, results = {}, []
    for c in cases:
        for k in B.contenders(c):
            if want and k not in want:
                continue
            if not installed(k):
                results.append({"case": c.id, "op": c.op, "variant": c.variant, "shape": c.shape,
                                "size": c.size, "contender": k, "dtype": args.dtype,
                                "work": B.work(c, args.dtype), "status": "not installed"})
                continue
            groups.setdefault(B.process_group(k, c.op), []).append([c.id, k])
    base = B.QUICK if args.quick else B.FULL
    per_pass = []
    for p in range(passes):
        got = []
        for g, tasks in groups.items():
            if g == "loop" and p > 0:
                continue                  # the loop implementation: first pass only, all samples
            timing = base if g == "loop" else B.pass_settings(base, passes)
            t0 = time.perf_counter()
            out = _run_worker({"mode": "cases", "tasks": tasks, "dtype": args.dtype, "threads": threads,
                               "quick": bool(args.quick), "loop_bound": args.loop_bound, "seed": 0,
                               "timing": timing, "plugins": plugin_specs, "cwd": os.getcwd()}, env)
            if "error" in out:
                for cid, k in tasks:
                    c = B.CASES[cid]
                    got.append({"case": cid, "op": c.op, "variant": c.variant, "shape": c.shape,
                                "size": c.size, "contender": k, "dtype": args.dtype,
                                "work": B.work(c, args.dtype), "status": f"error: {out['error']}"})
            else:
                got.extend(out["results"])
            _log(f"{g}: {len(tasks)} cases in {time.perf_counter() - t0:.1f} s"
                 + (f" (pass {p + 1} of {passes})" if passes > 1 else ""))
        per_pass.append(got)
    results.extend(B.pool_passes(per_pass))
    order = {c.id: i for i, c in enumerate(B.all_cases())}
    rank = {k: i for i, k in enumerate(("loop", "vectorized", "jit", "mlp", "scipy", "blas", "torch", "jax",
                                        "raw", "api_out", "api"))}
    results.sort(key=lambda r: (order[r["case"]], rank.get(r["contender"], 6.5), r["contender"]))
    record["results"] = results
    derive(record)

    if args.no_coldstart:
        record["coldstart"] = []
    else:
        from ..kernels import IMPLS
        cold_ops = QUICK_COLDSTART_OPS if args.quick else [o for o in IMPLS if "jit" in IMPLS[o]]
        record["coldstart"] = coldstart(cold_ops, args.dtype, env)
    record["wall_s"] = time.perf_counter() - t_start
    record["machine"]["load average at end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return record


def _split(s, option="--sizes"):
    """A comma-separated option as a list (None if empty); commas inside parentheses
    belong to the item, so ``Z(256,10),C=1000`` is two items."""
    try:
        return split_list(s)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


def _matches(tok: str, case) -> bool:
    """Whether one ``--sizes`` item selects ``case`` (as :func:`fastnn.bench.select` does)."""
    try:
        n = B.parse_size(tok)
    except OverflowError:           # "inf", "1e400"
        n = None
    return (n is not None and n == case.size) or tok in (case.shape, case.variant)


def user_contenders(want, ops) -> list:
    """Register the ``module:function`` contenders of ``--contenders`` (and load the
    ``fastnn.implementations`` entry points): ``[[spec, ops], ...]`` for the workers, which
    register them again in their own processes."""
    from .. import plugins
    plugins.load_entry_points()
    specs = []
    for k in want or ():
        if ":" not in k:
            continue
        if not ops:
            raise UsageError(f"--contenders: {k!r} is a module:function; say which operation it "
                             f"implements with --ops (e.g. --ops softmax)")
        try:
            plugins.resolve(k, ops)
        except (ValueError, TypeError) as exc:
            raise UsageError(f"--contenders: {str(exc).removeprefix('impl: ')}") from None
        specs.append([k, ops])
    return specs


def known_contenders() -> list:
    """Every contender name of some case, in report order."""
    return list(dict.fromkeys(k for c in B.all_cases() for k in B.contenders(c)))


def _cases(args) -> list:
    """The cases that --ops, --sizes and --quick select; a UsageError naming the option
    for an unknown operation, a size that no case has, or an empty selection."""
    ops = _split(args.ops, "--ops")
    if ops:
        unknown = [o for o in ops if o not in B.OP_ORDER]
        if unknown:
            raise UsageError(f"--ops: unknown {', '.join(map(repr, unknown))}; choose from "
                             f"{', '.join(B.OP_ORDER)}")
    sizes = _split(args.sizes)
    if sizes:
        every = B.all_cases()
        unknown = [t for t in sizes if not any(_matches(t, c) for c in every)]
        if unknown:
            raise UsageError(f"--sizes: no case has {', '.join(map(repr, unknown))}; give sizes "
                             "(256, 100k, 16M), shapes (Z(256,10)) or families (C=1000, plain)")
    cases = B.select(ops, sizes, args.quick)
    if not cases:
        raise UsageError(f"--sizes: no case of --ops {args.ops or '(all)'} has the sizes "
                         f"{args.sizes}" if sizes else "no case matches --ops/--quick")
    return cases


def check_args(args) -> None:
    """Every check on the arguments, before anything runs: a UsageError naming the option."""
    if args.threads is not None and args.threads < 1:
        raise UsageError(f"--threads: expected a positive integer, got {args.threads}")
    if args.plot:
        output_path(args.plot, "--plot")
        need_matplotlib("--plot")
    if args.from_json:
        if not os.path.isfile(args.from_json):
            raise UsageError(f"--from-json: no such file: {args.from_json}")
        return
    if args.json:
        output_path(args.json, "--json")
    _cases(args)
    want = _split(args.contenders, "--contenders")
    user_contenders(want, _split(args.ops, "--ops"))
    if want:
        known = known_contenders()
        unknown = [k for k in want if k not in known]
        if unknown:
            raise UsageError(f"--contenders: unknown {', '.join(map(repr, unknown))}; choose from "
                             f"{', '.join(known)}")


def _read_record(path: str) -> dict:
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--from-json: cannot read {path}: {exc}") from None
    if not (isinstance(record, dict) and isinstance(record.get("settings"), dict)
            and isinstance(record.get("results"), list)):
        raise UsageError(f"--from-json: {path} is not a fastnn bench record "
                         "(a JSON object with 'settings' and 'results')")
    return record


# --- the command --------------------------------------------------------------------------
def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "bench", help="benchmark loop vs vectorized vs jit (and SciPy, PyTorch, JAX)",
        description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="a subset of sizes and fewer samples (about a minute on 2 cores)")
    p.add_argument("--ops", help=f"comma-separated operations: {', '.join(B.OP_ORDER)}")
    p.add_argument("--sizes", help="comma-separated sizes (256, 100k, 16M), shapes (Z(256,10)) "
                                   "or families (C=1000, plain)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--threads", type=int_in(1), default=None,
                   help="threads for everyone (default: all cores)")
    p.add_argument("--contenders", help="comma-separated subset (loop, vectorized, jit, scipy, blas, "
                                        "torch, jax, raw, api_out, api)")
    p.add_argument("--loop-bound", type=real_in(0.0, allow_inf=True), default=B.LOOP_BOUND_S,
                   help="run the loop implementation only where one call takes at most this many "
                        "seconds (default %(default)s)")
    p.add_argument("--json", metavar="PATH", help="write every raw figure and the machine's description")
    p.add_argument("--plot", metavar="PATH.png", help="draw time against size (needs matplotlib)")
    p.add_argument("--passes", type=int_in(1), default=None,
                   help="run the contenders' processes in turn this many times, pooling their samples "
                        f"(default {B.FULL_PASSES}, 1 with --quick)")
    p.add_argument("--no-coldstart", action="store_true", help="skip the cold-start measurement")
    p.add_argument("--copy-mib", type=int_in(1), default=512,
                   help="size of each array of the copy-bandwidth ceiling (default %(default)s MiB)")
    p.add_argument("--from-json", metavar="PATH", help="print (and plot) a saved run instead of measuring")
    p.set_defaults(func=main)


def main(args) -> int:
    """``fastnn bench``: every argument is checked (:func:`check_args`) before anything runs."""
    check_args(args)
    if args.from_json:
        record = _read_record(args.from_json)
        try:
            report = format_report(record)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UsageError(f"--from-json: {args.from_json} is not a complete fastnn bench "
                             f"record ({type(exc).__name__}: {exc})") from None
    else:
        record = run(args)
        report = format_report(record)
    print(report, end="")
    if args.json and not args.from_json:
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)
        _log(f"raw figures written to {args.json}")
    if args.plot:
        plot(record, args.plot)
        _log(f"plot written to {args.plot}")
    return 1 if any(str(r.get("status", "")).startswith("error") for r in record["results"]) else 0
