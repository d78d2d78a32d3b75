"""The ``fastnn`` command line: ``fastnn info``, ``fastnn demo``, ``fastnn bench``, ``fastnn train``."""
from __future__ import annotations

import argparse
import sys


def _cmd_info(args) -> int:
    from .info import format_info, info
    print(format_info(info()))
    return 0


def _cmd_demo(args) -> int:
    """Time the three implementations of one kernel on one input (a taste of ``bench``)."""
    import time

    import numpy as np

    import fastnn

    rng = np.random.default_rng(0)
    Z = rng.standard_normal((args.rows, 10)).astype(np.float32)
    ref = None
    print(f"softmax on Z {Z.shape} float32; median of repeated calls (first call, which compiles, excluded)")
    print(f"{'impl':<12}{'median':>14}  max |diff| vs vectorized")
    times = {}
    for impl in ("vectorized", "jit", "loop"):
        fastnn.softmax(Z, impl=impl)
        reps = 3 if impl == "loop" else 50
        ts = []
        for _ in range(reps):
            t0 = time.perf_counter()
            P = fastnn.softmax(Z, impl=impl)
            ts.append(time.perf_counter() - t0)
        times[impl] = float(np.median(ts))
        if ref is None:
            ref = P
        diff = float(np.abs(P - ref).max())
        print(f"{impl:<12}{times[impl] * 1e6:>11.1f} µs  {diff:.2e}")
    for impl in ("vectorized", "jit"):
        print(f"{impl} is {times['loop'] / times[impl]:.0f}× faster than loop")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="fastnn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="versions, threads, SVML/exp, BLAS, Numba cache")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("demo", help="time loop vs vectorized vs jit on one kernel")
    p.add_argument("--rows", type=int, default=2000)
    p.set_defaults(func=_cmd_demo)
    for modname in ("bench_cli", "train_cli", "compile_cli"):
        try:
            mod = __import__(f"fastnn.{modname}", fromlist=["add_parser"])
        except ImportError as exc:
            if f"fastnn.{modname}" not in str(exc):
                raise
            continue
        mod.add_parser(sub)
    args = parser.parse_args(argv)
    from . import _compiling
    _compiling.progress(True)       # a first run that compiles says so, with elapsed time
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
