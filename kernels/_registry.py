"""One registry, ``IMPLS[op][impl]``, feeding the API, the tests and the benchmarks.

A kernel module registers each implementation of its operations with::

    @register("softmax", "loop")
    def softmax_loop(Z, out): ...

Every implementation of an operation has the same signature and semantics (see
the operation's module). Every operation has the three core implementations
(``CORE_IMPLS``: ``loop``, ``vectorized``, ``jit``); others (``cuda``, or one a user
registers) may exist for some operations only. A registered implementation shows up
in the API (``impl=``), the agreement tests and the benchmarks by being registered
here; :func:`available` says which an operation has, :data:`UNAVAILABLE` why a known
one is missing on this machine (e.g. ``cuda`` without a GPU). Users register theirs
through :mod:`fastnn.plugins` (``fastnn.register``, entry points, ``module:function``).
"""
from __future__ import annotations

import re
from typing import Callable, Dict, List

#: The implementations every operation provides, in the order reports list them.
CORE_IMPLS = ("loop", "vectorized", "jit")
#: Kept for callers of earlier versions: the core implementations.
IMPL_NAMES = CORE_IMPLS

#: IMPLS[op][impl] -> kernel (destination passing, no validation).
IMPLS: Dict[str, Dict[str, Callable]] = {}

#: OPS[op] -> one-line description (the formula), for reports and ``fastnn info``.
OPS: Dict[str, str] = {}

#: UNAVAILABLE[impl] -> why an implementation fastnn knows of is not registered here.
UNAVAILABLE: Dict[str, str] = {}

#: What an implementation's name may be (":" for a user's "module:function").
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:\-]*$")


def register(op: str, impl: str, doc: str | None = None):
    """Decorator: record ``fn`` as implementation ``impl`` of operation ``op``."""
    if not isinstance(impl, str) or not NAME.match(impl):
        raise ValueError(f"impl: expected a name of letters, digits, '_', '.', '-', got {impl!r}")

    def deco(fn):
        table = IMPLS.setdefault(op, {})
        if impl in table:
            raise ValueError(f"{op}/{impl} registered twice")
        table[impl] = fn
        if doc is not None:
            OPS[op] = doc
        return fn

    return deco


def impl_names() -> List[str]:
    """Every registered implementation name: the core ones first, then the others in
    the order they were first registered."""
    names = list(CORE_IMPLS)
    for table in IMPLS.values():
        for name in table:
            if name not in names:
                names.append(name)
    return names


def available(op: str) -> List[str]:
    """The implementations registered for ``op``, in :func:`impl_names` order."""
    table = IMPLS.get(op)
    if table is None:
        raise ValueError(f"op: expected one of {', '.join(sorted(IMPLS))}, got {op!r}")
    return [n for n in impl_names() if n in table]
