"""Where Numba caches fastnn's compiled kernels, on any install.

Numba looks for a cache folder per function, in order: ``NUMBA_CACHE_DIR`` if set; the
``__pycache__`` folder beside the source file, if it can be written; the user's cache
folder (``~/.cache/numba`` on Linux, from ``$XDG_CACHE_HOME`` or ``$HOME``). When none
of them can be written (a read-only site-packages of a system or shared environment, a
container running as a user with no home), it raises ``RuntimeError: cannot cache
function ...: no locator available`` while the module defining the function is
imported: ``import fastnn`` failed.

fastnn adds a last locator for its own files: a folder in the system's temporary
directory, ``fastnn-numba-cache-<uid>`` (created with mode 0700), and says so once with a
:class:`FastnnCacheWarning`. When even that cannot be written, the kernels compile in
memory only (as with ``FASTNN_NO_CACHE=1``), with the same one warning. Nothing fails at
import either way.

:func:`probe` decides which case holds before any kernel is defined; ``CACHE_INFO``
says what was chosen (``fastnn info`` prints it).
"""
from __future__ import annotations

import os
import tempfile
import warnings

from numba.core import caching, config


class FastnnCacheWarning(UserWarning):
    """The compiled kernels are cached in a temporary folder, or not at all."""


_HERE = os.path.dirname(os.path.abspath(__file__))
_PACKAGE_ROOTS = (_HERE, os.path.dirname(_HERE))     # fastnn.kernels and fastnn itself
_FASTNN_DIR = None                                    # fastnn/ (installed next to kernels/)


def _is_fastnn_file(py_file):
    path = os.path.abspath(py_file)
    roots = _PACKAGE_ROOTS + ((_FASTNN_DIR,) if _FASTNN_DIR else ())
    return any(path.startswith(r + os.sep) for r in roots)


def temp_root():
    """The temporary cache folder of this user."""
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    return os.path.join(tempfile.gettempdir(), f"fastnn-numba-cache-{uid}")


def _writable(folder):
    try:
        os.makedirs(folder, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
        return True
    except OSError:
        return False


def _user_wide_root():
    try:
        from numba.misc.appdirs import AppDirs
        return AppDirs(appname="numba", appauthor=False).user_cache_dir
    except Exception:       # an unusual Numba layout: no such folder then
        return None


#: Numba's locator for the user-wide folder (its name lost the underscore in 0.66).
_UserWide = getattr(caching, "UserWideCacheLocator", None) or getattr(
    caching, "_UserWideCacheLocator")


class FastnnTempCacheLocator(_UserWide):
    """The last resort for fastnn's own source files: the temporary folder."""

    def __init__(self, py_func, py_file):
        super().__init__(py_func, py_file)
        self._cache_path = os.path.join(temp_root(), self.get_suitable_cache_subpath(py_file))

    @classmethod
    def from_function(cls, py_func, py_file):
        if not _is_fastnn_file(py_file):
            return None
        return super().from_function(py_func, py_file)


#: What ``probe`` found: kind ("NUMBA_CACHE_DIR", "in-tree", "user", "temporary", "none")
#: and folder.
CACHE_INFO = {"kind": None, "folder": None}


def _fastnn_dir():
    import sys
    pkg = sys.modules.get("fastnn")
    path = getattr(pkg, "__path__", None)
    return os.path.abspath(list(path)[0]) if path else None


def probe():
    """Decide where fastnn's kernels will be cached and install the fallback locator;
    returns False if they cannot be cached anywhere (compile in memory). Warns once
    when the fallback is a temporary folder or nothing."""
    global _FASTNN_DIR
    _FASTNN_DIR = _fastnn_dir()
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")
    if FastnnTempCacheLocator not in impl._locator_classes:
        impl._locator_classes.append(FastnnTempCacheLocator)
    in_tree = [os.path.join(d, "__pycache__") for d in (_HERE, _FASTNN_DIR) if d]
    user = _user_wide_root()
    if config.CACHE_DIR and _writable(config.CACHE_DIR):
        CACHE_INFO.update(kind="NUMBA_CACHE_DIR", folder=config.CACHE_DIR)
    elif all(_writable(d) for d in in_tree):
        CACHE_INFO.update(kind="in-tree", folder=in_tree[0])
    elif user and _writable(user):
        CACHE_INFO.update(kind="user", folder=user)
    elif _writable(temp_root()):
        CACHE_INFO.update(kind="temporary", folder=temp_root())
        warnings.warn(
            f"fastnn: no writable cache folder (neither the package folder "
            f"{os.path.dirname(_HERE)} nor the user cache folder {user or '(none)'}); "
            f"compiled kernels are cached in {temp_root()} instead, for as long as it "
            "lasts. Set NUMBA_CACHE_DIR to a writable folder to keep them.",
            FastnnCacheWarning, stacklevel=2)
    else:
        CACHE_INFO.update(kind="none", folder=None)
        warnings.warn(
            "fastnn: no writable cache folder at all (package, user and temporary "
            "folders); the kernels are compiled in memory in every process. Set "
            "NUMBA_CACHE_DIR to a writable folder.", FastnnCacheWarning, stacklevel=2)
        return False
    return True


def is_cached(dispatcher, args) -> bool:
    """Whether Numba's on-disk cache holds ``dispatcher`` compiled for the types of
    ``args`` on this CPU (it would be loaded, not compiled). False where the
    dispatcher does not cache or Numba's internals differ from what this reads."""
    try:
        cache = dispatcher._cache
        sig = tuple(dispatcher.typeof_pyval(a) for a in args)
        if tuple(sig) in dispatcher.overloads:
            return True
        key = cache._index_key(sig, dispatcher.targetctx.codegen())
        index = cache._cache_file._load_index()
        return key in index
    except Exception:
        return False
