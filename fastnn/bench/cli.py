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
import math
import os
import platform
import subprocess
import sys
import threading
import tempfile
import time

from .. import bench as B
from .._cli_util import UsageError, int_in, need_matplotlib, output_path, real_in, split_list

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


def _break_even_section(record) -> list:
    """Per operation: the cold compile time and, for each of its measured shapes, the
    number of calls after which the jit kernel's compile time has paid for itself
    against the vectorized one, next to both run times."""
    by_case = {}
    for r in record["results"]:
        if r.get("status") == "ok":
            by_case.setdefault(r["case"], {})[r["contender"]] = r
    rows = []
    for c in record.get("coldstart") or []:
        comp = compile_seconds(c)
        if comp is None:
            continue
        for cid, peers in by_case.items():
            j, v = peers.get("jit"), peers.get("vectorized")
            if not (j and v) or j["op"] != c["op"]:
                continue
            n = break_even_calls(comp, v["median_s"], j["median_s"])
            rows.append([c["op"], fmt_time(comp), j["shape"], fmt_time(v["median_s"]),
                         fmt_time(j["median_s"]),
                         f"{n:,.0f}" if n is not None else "never (jit not faster)"])
    if not rows:
        return []
    L = ["## the JIT's whole story: compile time and break-even calls", "",
         "compile = first call with an empty cache − first call with a warm one; break-even "
         "= compile / (vectorized − jit): the calls after which compiling has paid for itself "
         "(once per machine: later processes load the cache)", ""]
    L += _table(["operation", "compile", "shape", "vectorized", "jit", "break-even calls"],
                rows, "lrlrrr")
    L.append("")
    return L


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


# --- derived figures -------------------------------------------------------------------
def derive(record: dict) -> None:
    """Add speedups (vs loop, vectorized, torch), achieved GFLOP/s or GB/s and % of the
    ceiling to every measured result."""
    ceil = record.get("ceilings", {})
    by_case = {}
    for r in record["results"]:
        by_case.setdefault(r["case"], {})[r["contender"]] = r
    for r in record["results"]:
        if r.get("status") != "ok":
            continue
        t = r["median_s"]
        peers = by_case[r["case"]]
        for ref in ("loop", "vectorized", "torch", "raw"):
            p = peers.get(ref)
            if p is not None and p.get("status") == "ok":
                r[f"vs_{ref}"] = p["median_s"] / t
        w = r.get("work", {})
        if w.get("kind") == "flop":
            r["gflops"] = w["amount"] / t / 1e9
            c = ceil.get(f"gemm_{r['dtype']}_gflops")
            if c:
                r["pct_ceiling"] = 100 * r["gflops"] / c
        elif w.get("kind") == "bytes":
            r["gbs"] = w["amount"] / t / 1e9
            c = ceil.get("copy_gbs")
            if c:
                r["pct_ceiling"] = 100 * r["gbs"] / c


# --- the report ------------------------------------------------------------------------
def fmt_time(s) -> str:
    if s is None or not math.isfinite(s):
        return "—"
    for unit, f in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if s >= f or unit == "ns":
            return f"{s / f:.3g} {unit}"
    return f"{s:.3g} s"


def _x(v) -> str:
    if v is None:
        return ""
    return f"{v:.3g}×" if v < 1000 else f"{v:,.0f}×"


def _table(header, rows, align) -> list:
    w = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    def line(cells):
        out = []
        for c, wi, a in zip(cells, w, align):
            c = str(c)
            out.append(c.rjust(wi) if a == "r" else c.ljust(wi))
        return "| " + " | ".join(out) + " |"
    sep = "|" + "|".join(("-" * (wi + 1) + ":") if a == "r" else ("-" * (wi + 2)) for wi, a in zip(w, align)) + "|"
    return [line(header), sep] + [line(r) for r in rows]


def status_text(r, bound) -> str:
    s = r.get("status", "?")
    if s == "not run (too slow)":
        b = r.get("bound_s", bound)
        return f"not run (too slow, > {b:g} s/call)"
    return s if len(s) <= 40 else s[:37] + "..."


def format_report(record: dict) -> str:
    st, m, ceil = record["settings"], record.get("machine", {}), record.get("ceilings", {})
    L = []
    mode = "quick" if st.get("quick") else "full"
    L.append(f"# fastnn bench ({mode}): {st['dtype']}, {st['threads']} threads")
    L.append("")
    L.append(f"- machine: {m.get('cpu', '?')}; {m.get('platform', '')}")
    L.append(f"- libraries: fastnn {m.get('fastnn', '?')}, Python {m.get('python', '?')}, "
             f"NumPy {m.get('numpy', '?')}, SciPy {m.get('scipy', '?')}, Numba {m.get('numba', '?')} "
             f"(llvmlite {m.get('llvmlite', '?')}), PyTorch {m.get('torch', '?')}, "
             f"JAX {m.get('jax', '?')} (jaxlib {m.get('jaxlib', '?')})")
    L.append(f"- jit kernels: SVML {m.get('SVML', '?')}; exp: {m.get('exp in jit kernels', '?')}; "
             f"fastmath: {m.get('fastmath flags', '?')}")
    L.append(f"- BLAS: {m.get('BLAS', '?')}")
    L.append(f"- threads: {st['threads']} for every contender (BLAS through threadpoolctl and "
             f"OMP/OPENBLAS/MKL_NUM_THREADS, NUMBA_NUM_THREADS, torch.set_num_threads; XLA: one thread "
             f"with --threads 1, else its own pool over all cores); "
             f"OPENBLAS_THREAD_TIMEOUT={m.get('OPENBLAS_THREAD_TIMEOUT', '?')}; each contender in its own process "
             "(except the linear_sigmoid_vs_blas, sgd_vs_axpy and api_overhead rows: one process each, "
             "alternating)")
    if st.get("passes", 1) > 1:
        L.append(f"- {st['passes']} passes: the contenders' processes ran in turn, pass after pass, "
                 f"each with a share of the samples, and the samples of all passes are pooled (a slow "
                 f"spell of the machine falls on every contender alike); the loop implementation "
                 f"ran in the first pass only")
    if ceil:
        g32 = ceil.get("gemm_float32_gflops")
        gd = ceil.get(f"gemm_{st['dtype']}_gflops")
        extra = f", {st['dtype']} {gd:.1f}" if st["dtype"] != "float32" and gd else ""
        L.append(f"- ceilings measured at the start: GEMM {ceil.get('gemm_n')}³ float32 "
                 f"{g32:.1f} GFLOP/s{extra} (NumPy BLAS, best of 7); copy {ceil.get('copy_gbs', 0):.1f} GB/s "
                 f"({'a copy on all threads' if ceil.get('copy_by') == 'threads' else 'np.copyto'} of "
                 f"{ceil.get('copy_mib')} MiB, bytes read + written, best of 5; np.copyto alone "
                 f"{ceil.get('copy_gbs_numpy', ceil.get('copy_gbs', 0)):.1f} GB/s)")
    L.append(f"- loop implementation: run only where one call is expected within "
             f"{st['loop_bound_s']:g} s (judged from the smallest size; never extrapolated)")
    L.append("- GB/s of small cases can pass the copy ceiling: their arrays stay in the caches, "
             "while the ceiling is measured far beyond them")
    L.append("- median: seconds per call (samples of ≥ 1 ms of calls each); ± half the "
             "interquartile range, relative; vs X = time(X) / time(row), > 1 is faster than X; "
             "GFLOP/s for matrix-product-bound cases (% of GEMM), GB/s for memory-bound ones "
             "(bytes that must be read and written; % of copy)")
    if record.get("wall_s"):
        L.append(f"- wall time of this run: {record['wall_s']:.0f} s; load average (1, 5, 15 min) "
                 f"at start {m.get('load average at start', '?')}, at end {m.get('load average at end', '?')}")
    busy = _busy(m)
    if busy and st["threads"] > 1:
        L.append(f"- WARNING: other processes were running (load average {busy:.2f} on "
                 f"{m.get('logical cores', '?')} cores): with {st['threads']} threads, a contender "
                 "waits for its cores at each parallel step, and its times can be many times too slow; "
                 "rerun on an idle machine, or with --threads 1")
    elif busy:
        L.append(f"- note: other processes were running (load average {busy:.2f} on "
                 f"{m.get('logical cores', '?')} cores); single-threaded times suffer little from it, "
                 "but the spread grows")
    L.append("")

    by_op = {}
    for r in record["results"]:
        by_op.setdefault(r["op"], []).append(r)
    bound = st.get("loop_bound_s", B.LOOP_BOUND_S)
    for op in B.OP_ORDER:
        rs = by_op.get(op)
        if not rs:
            continue
        L.append(f"## {op}: {B.DESCRIPTIONS[op]}")
        L.append("")
        if op == "api_overhead":
            rows = []
            for r in rs:
                ok = r.get("status") == "ok"
                raw = next((p for p in rs if p["case"] == r["case"] and p["contender"] == "raw"), None)
                over = (r["median_s"] - raw["median_s"]) if ok and raw and raw.get("status") == "ok" else None
                rows.append([f"{r['variant']} {r['shape']}", _API_NAMES.get(r["contender"], r["contender"]),
                             fmt_time(r["median_s"]) if ok else status_text(r, bound),
                             _spread(r), "" if over is None or r["contender"] == "raw" else "+" + fmt_time(over)])
            L += _table(["case", "call", "median", "±", "overhead vs raw"], rows, "llrrr")
            L.append("")
            continue
        if op == "linear_sigmoid_vs_blas":
            rows = _paired_rows(rs, ("jit", "blas"), bound, False,
                                lambda j, o: f"{j['median_s'] / o['median_s']:.3f}")
            L += _table(["shape", "jit linear_sigmoid", "±", "bare BLAS X @ Wᵀ", "±",
                         "jit / BLAS"], rows, "lrrrrr")
            L.append("")
            continue
        if op == "sgd_vs_axpy":
            rows = _paired_rows(rs, ("jit", "axpy"), bound, True,
                                lambda j, o: f"{100 * o['median_s'] / j['median_s']:.1f}%")
            L += _table(["shape", "jit sgd_update", "±", "GB/s", "axpy ceiling", "±", "GB/s",
                         "jit, % of the ceiling"], rows, "lrrrrrrr")
            L.append("")
            continue
        kind = next((r["work"].get("kind") for r in rs if r.get("work")), None)
        unit = "GFLOP/s" if kind == "flop" else "GB/s"
        rows = []
        last = None
        for r in rs:
            ok = r.get("status") == "ok"
            shape = f"{r['variant']} {r['shape']}".strip() if op == "sgd_update" else r["shape"]
            show = shape if shape != last else ""
            last = shape
            perf = r.get("gflops", r.get("gbs"))
            rows.append([show, r["contender"],
                         fmt_time(r["median_s"]) if ok else status_text(r, bound),
                         _spread(r),
                         _x(r.get("vs_loop")) if r["contender"] != "loop" else "",
                         _x(r.get("vs_vectorized")) if r["contender"] != "vectorized" else "",
                         _x(r.get("vs_torch")) if r["contender"] != "torch" else "",
                         f"{perf:.3g}" if perf is not None else "",
                         f"{r['pct_ceiling']:.1f}%" if r.get("pct_ceiling") is not None else ""])
        L += _table(["shape", "contender", "median", "±", "vs loop", "vs vectorized", "vs torch",
                     unit, "% ceiling"], rows, "llrrrrrrr")
        L.append("")

    cold = record.get("coldstart") or []
    if cold:
        L.append("## cold start: time to the first result of each jit kernel, in a fresh process")
        L.append("")
        L.append("empty Numba cache (compiles) vs warm cache (loads what the first run wrote); "
                 "import = `import fastnn`; process = the whole `python -c` run; the warm first call "
                 "includes Numba's one-time start-up (type registries, BLAS bindings), paid once per process"
                 + ("; --quick measures softmax only" if st.get("quick") else ""))
        L.append("")
        rows = []
        tot = {"cold": 0.0, "warm": 0.0}
        for c in cold:
            cells = [c["op"]]
            for s in ("cold", "warm"):
                d = c.get(s, {})
                if "error" in d:
                    cells += [d["error"], "", ""]
                    continue
                tot[s] += d["first_call_s"]
                cells += [fmt_time(d["import_s"]), fmt_time(d["first_call_s"]), fmt_time(d["process_s"])]
            rows.append(cells)
        rows.append(["total (first calls)", "", fmt_time(tot["cold"]), "", "", fmt_time(tot["warm"]), ""])
        L += _table(["kernel", "import (empty)", "first call (empty)", "process (empty)",
                     "import (warm)", "first call (warm)", "process (warm)"], rows, "lrrrrrr")
        L.append("")
        L += _break_even_section(record)
    else:
        L.append("cold start: not measured (--no-coldstart)")
    errors = [r for r in record["results"] if str(r.get("status", "")).startswith("error")]
    if errors:
        L.append("errors:")
        for r in errors:
            L.append(f"- {r['case']} {r['contender']}: {r['status']}")
    return "\n".join(L).rstrip() + "\n"


def _busy(m: dict) -> float:
    """The 1-minute load average taken just before the run, if other processes kept the
    machine busy (> 0.7), else 0."""
    try:
        load = float(m.get("load average at start", "0").split()[0])
    except (ValueError, IndexError):
        return 0.0
    return load if load > 0.7 else 0.0


_API_NAMES = {"raw": "jit kernel (raw, no checks)", "api_out": "fastnn.<op>(..., out=)",
              "api": "fastnn.<op>(...) (allocates)"}


def _paired_rows(rs, pair, bound, gbs, ratio) -> list:
    """Rows of a section whose two contenders were timed alternately in one process: per
    shape, each one's median and spread (and GB/s when ``gbs``), then ``ratio(first,
    second)`` of their results where both ran."""
    rows = []
    for shape in dict.fromkeys(r["shape"] for r in rs):
        by = {r["contender"]: r for r in rs if r["shape"] == shape}
        cells = [shape]
        for k in pair:
            r = by.get(k, {})
            ok = r.get("status") == "ok"
            cells += [fmt_time(r["median_s"]) if ok else (status_text(r, bound) if r else "—"),
                      _spread(r)]
            if gbs:
                cells.append(f"{r['gbs']:.1f}" if ok and r.get("gbs") else "")
        both = all(by.get(k, {}).get("status") == "ok" for k in pair)
        cells.append(ratio(by[pair[0]], by[pair[1]]) if both else "")
        rows.append(cells)
    return rows


def _spread(r) -> str:
    if r.get("status") != "ok" or not r.get("median_s"):
        return ""
    return f"{50 * (r['q3_s'] - r['q1_s']) / r['median_s']:.1f}%"


# --- the plot ----------------------------------------------------------------------------
#: The x axis of each operation's panel (``Op.xlabel``; "size" where it has none).
_XLABEL = {op.name: op.xlabel for op in B.OPS.values() if op.xlabel}


#: Operations whose cases are different workloads, not sizes of one (the epoch at batch 1
#: and at batch 10; API overhead of two operations): bars, not a line over sizes.
_NOT_SIZES = tuple(op.name for op in B.OPS.values() if not op.sizes)


def _order(names):
    known = ["loop", "vectorized", "jit", "mlp", "scipy", "blas", "torch", "jax"]
    return sorted(names, key=lambda n: (known.index(n) if n in known else len(known), n))


def plot(record: dict, path: str) -> dict:
    """One panel per operation (and family), one colour per contender: time per call
    against size, log-log, where the cases are sizes of one workload; bars where they are
    not (the epochs, API overhead) or where a panel has a single size. A last panel, the
    roofline view: each contender's fraction of the ceiling measured at the start
    (GFLOP/s of GEMM or GB/s of copy), case by case. Returns {panel title: "lines", "bars"
    or "roofline"}."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter
    kinds = {}
    panels = {}
    for r in record["results"]:
        if r["op"] in B.INTERLEAVED_OPS or r.get("status") != "ok":
            continue
        panels.setdefault((r["op"], r["variant"]), []).append(r)
    keys = list(dict.fromkeys(k for op in B.OP_ORDER for k in panels if k[0] == op))
    if not keys:
        raise ValueError("nothing measured to plot")
    roof = [r for k in keys for r in panels[k] if r.get("pct_ceiling") is not None]
    n = len(keys) + (1 if roof else 0)
    ncol = min(3, n)
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.2 * ncol, 3.9 * nrow), squeeze=False)
    names = _order({r["contender"] for rs in panels.values() for r in rs})
    colors = {c: f"C{i % 10}" for i, c in enumerate(names)}
    flat = list(axes.flat)
    for ax, key in zip(flat, keys):
        rs = panels[key]
        op, var = key
        sizes = sorted({r["size"] for r in rs})
        if op in _NOT_SIZES or len(sizes) == 1:
            shapes = list(dict.fromkeys(r["shape"] for r in rs))
            here = [c for c in names if any(r["contender"] == c for r in rs)]
            w = 0.8 / max(1, len(here))
            for j, c in enumerate(here):
                xs, ys = [], []
                for i, shp in enumerate(shapes):
                    m = [r["median_s"] for r in rs if r["contender"] == c and r["shape"] == shp]
                    if m:
                        xs.append(i + (j - (len(here) - 1) / 2) * w)
                        ys.append(m[0])
                ax.bar(xs, ys, width=w, color=colors[c], label=c)
            ax.set_xticks(range(len(shapes)), shapes, fontsize=7)
            ax.set_yscale("log")
            kind = "bars"
        else:
            for c in names:
                pts = sorted((r["size"], r["median_s"]) for r in rs if r["contender"] == c)
                if pts:
                    xs, ys = zip(*pts)
                    ax.plot(xs, ys, "o-", color=colors[c], label=c, ms=4)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel(_XLABEL.get(op, "size"))
            kind = "lines"
        title = f"{op}" + (f" ({var})" if var else "")
        kinds[title] = kind
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("time per call (s)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    if roof:
        ax = flat[len(keys)]
        cases = list(dict.fromkeys(r["case"] for r in roof))
        for c in names:
            pts = [(cases.index(r["case"]), r["pct_ceiling"]) for r in roof if r["contender"] == c]
            if pts:
                xs, ys = zip(*sorted(pts))
                ax.plot(xs, ys, "o", color=colors[c], label=c, ms=4)
        labels = [f"{B.CASES[cid].op.replace('softmax_cross_entropy_grad', 'sce_grad')} "
                  f"{B.CASES[cid].shape}" if cid in B.CASES else cid for cid in cases]
        ax.set_xticks(range(len(cases)), labels, rotation=90, fontsize=5)
        ax.set_yscale("log")
        ax.axhline(100, color="k", lw=0.8)
        ax.set_ylabel("% of the measured ceiling")
        ax.set_title("roofline view: % of GEMM GFLOP/s or copy GB/s", fontsize=10)
        kinds["roofline"] = "roofline"
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in flat[n:]:
        ax.axis("off")
    st, m = record["settings"], record.get("machine", {})
    fig.suptitle(f"fastnn bench: {st['dtype']}, {st['threads']} threads; {m.get('cpu', '')}", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return kinds


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
