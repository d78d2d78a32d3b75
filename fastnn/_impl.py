"""Choosing the implementation: ``impls``, ``set_impl``, ``get_impl``, ``use_impl``."""
from __future__ import annotations

import contextlib
from contextvars import ContextVar

from .kernels import IMPLS, UNAVAILABLE, impl_names

DEFAULT_IMPL = "jit"
_default = [DEFAULT_IMPL]                      # process-wide, set_impl()
_override: ContextVar = ContextVar("fastnn_impl", default=None)   # use_impl()


def impls() -> tuple:
    """The names of the registered implementations: ``("loop", "vectorized", "jit")``
    and any other registered (``cuda`` where a GPU is available, a user's own: see
    :func:`fastnn.register`)."""
    from .plugins import load_entry_points
    load_entry_points()
    return tuple(impl_names())


def _check(name):
    names = impl_names()
    if isinstance(name, str) and name not in names:
        from .plugins import load_entry_points
        load_entry_points()                 # a user's implementation from an entry point
        names = impl_names()
    if not isinstance(name, str) or name not in names:
        why = (f" ({name} is unavailable here: {UNAVAILABLE[name]})"
               if isinstance(name, str) and name in UNAVAILABLE else "")
        raise ValueError(f"impl: expected one of {', '.join(map(repr, names))}, got {name!r}{why}")
    return name


def set_impl(name: str) -> None:
    """Set the process-wide default implementation (initially ``"jit"``)."""
    _default[0] = _check(name)


def get_impl() -> str:
    """The implementation used when a call passes no ``impl=``."""
    o = _override.get()
    return _default[0] if o is None else o


@contextlib.contextmanager
def use_impl(name: str):
    """``with fastnn.use_impl("vectorized"):`` use ``name`` inside the block
    (this thread/context only), then restore what was in force."""
    token = _override.set(_check(name))
    try:
        yield name
    finally:
        _override.reset(token)


def kernel(op: str, impl):
    """The registered kernel for ``op`` under ``impl`` (or the current one)."""
    if impl is None:
        o = _override.get()
        impl = _default[0] if o is None else o
    try:
        return IMPLS[op][impl]
    except KeyError:
        if isinstance(impl, str) and ":" in impl and op in IMPLS:
            from .plugins import resolve      # "module:function", registered for op
            if resolve(impl, [op]) in IMPLS[op]:
                return IMPLS[op][impl]
        _check(impl)
        have = ", ".join(repr(n) for n in impl_names() if n in IMPLS[op])
        raise ValueError(f"impl: operation {op!r} has no {impl!r} implementation "
                         f"(it has {have})") from None
