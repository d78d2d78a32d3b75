"""``fastnn compile``: compile every kernel and training path now (see fastnn.warmup)."""
from __future__ import annotations


def _cmd_compile(args) -> int:
    import sys

    from . import warmup
    dtypes = warmup.DTYPES if args.dtype == "all" else (args.dtype,)
    only = [s.strip() for s in args.only.split(",") if s.strip()] if args.only else None
    if args.jobs is not None and args.jobs < 1:
        print(f"fastnn compile: error: --jobs: expected an integer >= 1, got {args.jobs}",
              file=sys.stderr)
        return 2
    try:
        names = {j.name for j in warmup.jobs(dtypes)}
        if only:
            unknown = [o for o in only if o not in names and not any(
                n.split()[0] == o for n in names)]
            if unknown:
                print(f"fastnn compile: error: --only: no job named {', '.join(unknown)} "
                      f"(jobs: the operation names and 'MLP')", file=sys.stderr)
                return 2
        warmup.compile_all(dtypes, n_jobs=args.jobs, only=only)
    except KeyboardInterrupt:
        print("fastnn compile: interrupted", file=sys.stderr)
        return 130
    from .kernels._cache import CACHE_INFO
    where = CACHE_INFO.get("folder") or "(nowhere: no writable folder)"
    print(f"compiled kernels are cached in {where}")
    return 0


def add_parser(sub):
    p = sub.add_parser(
        "compile", help="compile every kernel and training path now (for install scripts)",
        description="Compile every kernel and training path of this machine ahead of use, in "
                    "parallel processes, into Numba's on-disk cache.")
    p.add_argument("--dtype", choices=("float32", "float64", "all"), default="all",
                   help="which float type to compile for (default: %(default)s)")
    p.add_argument("--jobs", type=int, default=None,
                   help="worker processes (default: the CPU count, at most 4)")
    p.add_argument("--only", default=None,
                   help="comma-separated job names: operations (softmax, linear, ...) or MLP")
    p.set_defaults(func=_cmd_compile)
