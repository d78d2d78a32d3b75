"""``fastnn check OP IMPL``: the conformance sweep of :mod:`fastnn.conformance` on one
implementation (fastnn's own, one registered through an entry point, or a user's
``module:function``). Exit status 0 when every case passes, 1 when one fails (the report
names it and prints a reproducer), 2 for a bad argument."""
from __future__ import annotations

from ._cli_util import UsageError, int_in


def _cmd_check(args) -> int:
    from . import conformance, plugins
    if args.op not in conformance.SWEEPS:
        raise UsageError(f"OP: expected one of {', '.join(sorted(conformance.SWEEPS))}, got {args.op!r}")
    try:
        name = plugins.resolve(args.impl, [args.op])
    except (ValueError, TypeError) as exc:
        raise UsageError(f"IMPL: {str(exc).removeprefix('impl: ')}") from None
    from .kernels import IMPLS, UNAVAILABLE, available
    if name not in IMPLS[args.op]:
        why = f" ({UNAVAILABLE[name]})" if name in UNAVAILABLE else ""
        raise UsageError(f"IMPL: operation {args.op!r} has no {name!r} implementation (it has "
                         f"{', '.join(available(args.op))}; a function of yours: module:function){why}")
    report = conformance.check(args.op, name, seed=args.seed)
    print(report)
    return 0 if report.ok else 1


def add_parser(sub) -> None:
    p = sub.add_parser("check", help="check an implementation of an operation against the float64 "
                                     "reference (yours too: module:function)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("op", metavar="OP", help="the operation, e.g. softmax")
    p.add_argument("impl", metavar="IMPL",
                   help="an implementation name (loop, vectorized, jit, one from an entry point) or "
                        "module:function, importable from the current directory or PYTHONPATH")
    p.add_argument("--seed", type=int_in(0), default=0, help="seed of the random inputs")
    p.set_defaults(func=_cmd_check)
