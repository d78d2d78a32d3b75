"""The ``fastnn`` command line: ``fastnn info``, ``demo``, ``bench``, ``train``, ``compile``, ``check``.

A bad argument is one line on stderr, ``fastnn <cmd>: error: <message>``, and exit
status 2, before any work; Ctrl-C is one line and status 130.
"""
from __future__ import annotations

import sys

from ._cli_util import Parser, UsageError, int_in, one_line


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


def build_parser() -> Parser:
    """The parser of every subcommand (errors: one line, exit status 2)."""
    parser = Parser(prog="fastnn", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="versions, threads, SVML/exp, BLAS, Numba cache")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("demo", help="time loop vs vectorized vs jit on one kernel")
    p.add_argument("--rows", type=int_in(1), default=2000, help="rows of Z (>= 1)")
    p.set_defaults(func=_cmd_demo)
    for modname in ("bench.cli", "train_cli", "compile_cli", "check_cli"):
        try:
            mod = __import__(f"fastnn.{modname}", fromlist=["add_parser"])
        except ImportError as exc:
            if f"fastnn.{modname}" not in str(exc):
                raise
            continue
        mod.add_parser(sub)
    parser.commands = sub.choices          # name -> subcommand parser
    return parser


def main(argv=None) -> int:
    """Run ``fastnn``; returns the exit status (argparse's own errors and ``--help``
    raise SystemExit, as usual).

    The subcommands check their arguments before any work and raise UsageError; as a
    safety net, a ValueError, TypeError, OSError, ArithmeticError or MemoryError that
    escapes a subcommand is also printed as one line (status 2) rather than a
    traceback."""
    prog = "fastnn"
    try:
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        prog = f"fastnn {args.command}"
        if extra:               # named by the subcommand, not by "fastnn"
            parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
        from . import _compiling
        _compiling.progress(True)   # a first run that compiles says so, with elapsed time
        return args.func(args)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except UsageError as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError, ArithmeticError, MemoryError) as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
