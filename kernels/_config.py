"""The one place where Numba options are set.

Every jitted kernel in ``fastnn.kernels`` is decorated with one of the decorators
below; no other module passes options to ``numba.njit`` directly.

* ``jit``: serial kernels. ``cache=True`` (compiled code is reused by the next
  process), ``nogil=True`` (threads may call kernels concurrently),
  ``error_model="numpy"`` (division by zero gives inf/NaN as in NumPy, no Python
  exception check in the inner loop), and the safe fastmath subset.
* ``pjit``: ``parallel=True`` variants. Not cached: caching parallel functions has
  been known to segfault or miss permanently (pynndescent).
* ``FASTMATH``: only flags that keep NaN and inf semantics. ``nnan``/``ninf``
  (what ``fastmath=True`` includes) let LLVM fold ``isnan``/``isinf`` away and are
  never used. ``reassoc`` lets LLVM vectorise reductions; results then depend on
  the vector width but not on the number of threads.
"""
from __future__ import annotations

import os

import numba

FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})

#: Set FASTNN_NO_CACHE=1 to compile in memory only (e.g. read-only installs).
CACHE = os.environ.get("FASTNN_NO_CACHE", "") in ("", "0")

_SERIAL = dict(cache=CACHE, nogil=True, error_model="numpy", fastmath=set(FASTMATH))
_PARALLEL = dict(cache=False, nogil=True, error_model="numpy", fastmath=set(FASTMATH),
                 parallel=True)


def jit(*args, **overrides):
    """``numba.njit`` with the project's serial options (see module docstring)."""
    opts = dict(_SERIAL)
    opts.update(overrides)
    if args and callable(args[0]):
        return numba.njit(**opts)(args[0])
    return numba.njit(*args, **opts)


def pjit(*args, **overrides):
    """``numba.njit(parallel=True)`` with the project's options, never cached."""
    opts = dict(_PARALLEL)
    opts.update(overrides)
    if args and callable(args[0]):
        return numba.njit(**opts)(args[0])
    return numba.njit(*args, **opts)
