"""The results of ``fastnn bench``: the derived figures (speedups, GFLOP/s, GB/s, % of
the ceilings), the report's tables and the plot."""
from __future__ import annotations

import math

from .. import bench as B
from .timing import break_even_calls, compile_seconds


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
