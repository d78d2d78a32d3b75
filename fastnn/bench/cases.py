"""The case list of ``fastnn bench`` (and of the pytest-benchmark suite in ``benches/``).

A :class:`~fastnn.bench.ops.Case` is one operation at one shape (``linear_sigmoid`` at
B=256, ...); each operation's entry in :mod:`fastnn.bench.ops` lists its own.
:func:`all_cases` lists every one in report order, and :func:`select` keeps those that
``--ops``, ``--sizes`` and ``--quick`` name.
"""
from __future__ import annotations

from typing import Optional

from .ops import OPS


def all_cases() -> list:
    """Every case, in report order (the definition shared with ``benches/``)."""
    return [c for op in OPS.values() for c in op.cases()]


CASES = {c.id: c for c in all_cases()}


def parse_size(tok: str) -> Optional[int]:
    """``"256"`` -> 256, ``"100k"`` -> 100000, ``"16M"`` -> 16000000; None if not a size."""
    t = tok.strip()
    mult = {"k": 1000, "K": 1000, "m": 1_000_000, "M": 1_000_000}.get(t[-1:], 1)
    if mult != 1:
        t = t[:-1]
    try:
        return int(float(t) * mult)
    except ValueError:
        return None


def select(ops=None, sizes=None, quick=False) -> list:
    """The cases kept by ``--ops`` (names), ``--sizes`` (sizes like 256 or 1M, or shape
    texts like ``Z(256,10)``, or variants like ``C=1000``) and ``--quick``."""
    out = []
    for c in all_cases():
        if ops and c.op not in ops:
            continue
        if sizes:
            ok = False
            for tok in sizes:
                n = parse_size(tok)
                if (n is not None and n == c.size) or tok in (c.shape, c.variant):
                    ok = True
            if not ok:
                continue
        elif quick and not c.quick:
            continue
        out.append(c)
    return out
