"""A worker process of ``fastnn bench``: ``python -m fastnn.bench.worker SPEC.json OUT.json``.

The parent starts one worker per contender (and one for the ceilings), with the
thread variables (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS,
NUMBA_NUM_THREADS, OPENBLAS_THREAD_TIMEOUT, XLA_FLAGS) already in its
environment, so that they are in force before NumPy loads any BLAS. Here the
same thread count is applied once more through threadpoolctl, Numba and
PyTorch, then the tasks of SPEC are timed and the results written to OUT as JSON.

SPEC: {"mode": "cases", "tasks": [[case_id, contender], ...], "dtype", "threads",
       "quick", "loop_bound", "seed", optional "timing" (the settings of one pass)}
  or  {"mode": "ceilings", "dtype", "threads", "copy_mib"}.
"""
from __future__ import annotations

import json
import os
import sys
import time


def apply_threads(threads: int, torch_too: bool = False, numba_too: bool = True) -> dict:
    """One thread setting for everyone: BLAS (threadpoolctl), Numba, PyTorch.

    Numba's thread pool is started only in workers that run fastnn kernels: an idle
    OpenMP pool of one library beside another's is what this isolation avoids."""
    got = {}
    try:
        import scipy.linalg  # noqa: F401  (loads SciPy's OpenBLAS too, so that its threads are set as well)
        from threadpoolctl import threadpool_info, threadpool_limits
        apply_threads._keep = threadpool_limits(limits=threads)     # keep the limit in force
        got["blas"] = [f"{d.get('internal_api')} {d.get('version')}: {d.get('num_threads')} threads"
                       for d in threadpool_info() if d.get("user_api") == "blas"]
    except ImportError:
        got["blas"] = ["threadpoolctl not installed: BLAS threads from OPENBLAS_NUM_THREADS"]
    if numba_too:
        import numba
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        got["numba"] = numba.get_num_threads()
    if torch_too:
        import torch
        torch.set_num_threads(threads)
        got["torch"] = torch.get_num_threads()
    return got


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec_path, out_path = argv
    with open(spec_path) as f:
        spec = json.load(f)
    t0 = time.perf_counter()
    from .. import bench
    threads = int(spec["threads"])
    out = {"pid": os.getpid()}
    if spec["mode"] == "ceilings":
        out["threads"] = apply_threads(threads)
        out["ceilings"] = bench.measure_ceilings(spec["dtype"], spec.get("copy_mib", 512))
        from ..info import info
        out["info"] = info()
    else:
        contenders = {c for _, c in spec["tasks"]}
        torch_too = "torch" in contenders
        numba_too = not contenders <= {"torch", "jax", "scipy", "blas"}
        try:
            out["threads"] = apply_threads(threads, torch_too, numba_too)
        except ImportError:                     # torch not installed: its tasks report it
            out["threads"] = apply_threads(threads, False, numba_too)
        if "jax" in contenders and spec["dtype"] == "float64":
            try:
                import jax
                jax.config.update("jax_enable_x64", True)
            except ImportError:
                pass
        from .. import plugins                  # a user's contenders: entry points, module:function
        if spec.get("cwd") and spec["cwd"] not in sys.path:
            sys.path.insert(0, spec["cwd"])
        plugins.load_entry_points()
        for name, ops in spec.get("plugins") or ():
            plugins.resolve(name, ops)
        settings = spec.get("timing") or (bench.QUICK if spec.get("quick") else bench.FULL)
        tasks = [(bench.CASES[cid], c) for cid, c in spec["tasks"]]
        out["results"] = bench.run_tasks(tasks, spec["dtype"], settings,
                                         float(spec.get("loop_bound", bench.LOOP_BOUND_S)),
                                         int(spec.get("seed", 0)))
    out["wall_s"] = time.perf_counter() - t0
    with open(out_path, "w") as f:
        json.dump(out, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
