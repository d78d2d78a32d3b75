"""One registry, ``IMPLS[op][impl]``, feeding the API, the tests and the benchmarks.

A kernel module registers each implementation of its operations with::

    @register("softmax", "loop")
    def softmax_loop(Z, out): ...

Every implementation of an operation has the same signature and semantics (see
the operation's module). A new implementation shows up in the API (``impl=``), the
test suite (agreement with the float64 reference) and the benchmarks by being
registered here; nothing else needs to change.
"""
from __future__ import annotations

from typing import Callable, Dict

#: The implementations every operation provides, in the order reports list them.
IMPL_NAMES = ("loop", "vectorized", "jit")

#: IMPLS[op][impl] -> kernel (destination passing, no validation).
IMPLS: Dict[str, Dict[str, Callable]] = {}

#: OPS[op] -> one-line description (the formula), for reports and ``fastnn info``.
OPS: Dict[str, str] = {}


def register(op: str, impl: str, doc: str | None = None):
    """Decorator: record ``fn`` as implementation ``impl`` of operation ``op``."""
    if impl not in IMPL_NAMES:
        raise ValueError(f"impl: expected one of {IMPL_NAMES}, got {impl!r}")

    def deco(fn):
        table = IMPLS.setdefault(op, {})
        if impl in table:
            raise ValueError(f"{op}/{impl} registered twice")
        table[impl] = fn
        if doc is not None:
            OPS[op] = doc
        return fn

    return deco
