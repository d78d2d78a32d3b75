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
  (what a bare ``fastmath`` switch turns on) let LLVM fold ``isnan``/``isinf`` away and are
  never used. ``reassoc`` is left out too: it lets LLVM rewrite ``(z − m) − lse``
  as ``z − (m + lse)``, which loses ``lse`` entirely when |m| is ~3e38 in float32
  (a test caught exactly that). Reductions that must vectorise use explicit
  independent partial sums instead.
"""
from __future__ import annotations

import os

import numba

FASTMATH = frozenset({"nsz", "arcp", "contract", "afn"})

#: Set FASTNN_NO_CACHE=1 to compile in memory only (e.g. read-only installs).
CACHE = os.environ.get("FASTNN_NO_CACHE", "") in ("", "0")

_SERIAL = dict(cache=CACHE, nogil=True, error_model="numpy", fastmath=set(FASTMATH))
#: Without "contract": no fused multiply-add, so ``w - lr * g`` rounds twice exactly
#: as NumPy's ``w -= lr * g`` does (bit-for-bit agreement of the sgd_update kernels).
_STRICT = dict(_SERIAL, fastmath=set(FASTMATH - {"contract"}))
_PARALLEL = dict(cache=False, nogil=True, error_model="numpy", fastmath=set(FASTMATH),
                 parallel=True)


def jit(*args, **overrides):
    """``numba.njit`` with the project's serial options (see module docstring)."""
    opts = dict(_SERIAL)
    opts.update(overrides)
    if args and callable(args[0]):
        return numba.njit(**opts)(args[0])
    return numba.njit(*args, **opts)


def jit_strict(fn):
    """``jit`` without FMA contraction (see ``_STRICT``)."""
    return numba.njit(**_STRICT)(fn)


def pjit_strict(fn):
    """``pjit`` without FMA contraction (see ``_STRICT``)."""
    return numba.njit(**dict(_PARALLEL, fastmath=set(FASTMATH - {"contract"})))(fn)


def pjit(*args, **overrides):
    """``numba.njit(parallel=True)`` with the project's options, never cached."""
    opts = dict(_PARALLEL)
    opts.update(overrides)
    if args and callable(args[0]):
        return numba.njit(**opts)(args[0])
    return numba.njit(*args, **opts)
