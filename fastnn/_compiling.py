"""Tell the user when a first call compiles, once, before it starts.

Numba compiles a kernel the first time it meets a new signature, unless its on-disk
cache holds it. A cache miss fires Numba's ``numba:compile`` event (a cache hit does
not), so a listener on that event sees exactly the compilations that happen. For the
outermost one of each nested chain (the function the user's call reached; its callees
compile inside it) it prints one line on stderr::

    fastnn: compiling the training epoch (float32) for this machine, about 5 s;
    once: later runs load it from the cache (/path/to/cache)

With a warm cache nothing is printed. ``FASTNN_COMPILE_NOTICE=0`` (or
:func:`set_notice`) turns the lines off. The command line turns on :func:`progress`,
which also ticks the elapsed seconds while a compilation runs and says when it is done.
"""
from __future__ import annotations

import os
import sys
import threading
import time

from numba.core import event

#: What a compiled function is, by the start of its module-qualified name (first match).
_DESCRIPTIONS = (
    ("fastnn.train.persistent._make_persistent", "the training epoch (one parallel region)"),
    ("fastnn.train.", "the training epoch"),     # compiled.py, persistent.py, products.py
    ("fastnn.kernels.fast.softmax._log_softmax", "log_softmax"),
    ("fastnn.kernels.fast.softmax", "softmax"),
    ("fastnn.kernels.fast.cross_entropy", "softmax cross-entropy"),
    ("fastnn.kernels.sigmoid_losses.sigmoid_bce", "sigmoid_bce_grad"),
    ("fastnn.kernels.sigmoid_losses.sigmoid_mse", "sigmoid_mse_grad"),
    ("fastnn.kernels.sigmoid.sigmoid_backward", "sigmoid_backward"),
    ("fastnn.kernels.sigmoid", "sigmoid"),
    ("fastnn.kernels.sgd", "sgd_update"),
    ("fastnn.kernels.fast.linear._backward", "linear_backward"),
    ("fastnn.kernels.fast.linear.backward_parallel", "linear_backward"),
    ("fastnn.kernels.fast.linear.linear_backward", "linear_backward"),
    ("fastnn.kernels.fast.linear.delta_tiles", "hidden_delta"),
    ("fastnn.kernels.fast.linear._hidden_delta", "hidden_delta"),
    ("fastnn.kernels.fast.linear.hidden_delta", "hidden_delta"),
    ("fastnn.kernels.fast.linear", "linear / linear_sigmoid"),
    ("fastnn.kernels.machine.gemm", "matrix-product tiles"),
    ("fastnn.kernels.perceptron", "perceptron / ADALINE epoch"),
    ("fastnn.kernels", "kernel"),
    ("fastnn", "kernel"),
)
#: Compilations too small to mention (the finite-value checks of the API: ~0.3 s).
_QUIET = ("fastnn.kernels.machine.finite",)
#: Seconds a first call took with an empty cache on the 2-core AMD EPYC (Zen 3, AVX2)
#: guest, quiet (two fresh processes each, alternating with the older code; the
#: closing note of issue 19 has the table): the "about" of the message, rounded up.
#: The training epoch: the first MLP([784, 30, 10]).fit, batch 10. Others: "a few seconds".
ESTIMATES = {
    "the training epoch": 12,
    "the training epoch (one parallel region)": 20,
    "softmax": 4,
    "log_softmax": 4,
    "softmax cross-entropy": 5,
    "linear / linear_sigmoid": 4,
    "matrix-product tiles": 2,
    "linear_backward": 4,
    "hidden_delta": 5,
    "sigmoid": 1,
    "sigmoid_backward": 1,
    "sgd_update": 1,
    "sigmoid_bce_grad": 2,
    "sigmoid_mse_grad": 1,
}

#: Compilations whose kernels call the matrix-product tiles (kernels/machine/tiles.py),
#: and which tiles: those are compiled meanwhile in helper processes (``tiles.prefetch``).
_TILE_USERS = {
    "the training epoch": ("nt", "tn"),
    "the training epoch (one parallel region)": ("nt", "tn"),
    "linear / linear_sigmoid": ("nt",),
    "linear_backward": ("tn",),
    "hidden_delta": ("tn",),
}


def _prefetch_tiles(dtype, kinds):
    try:
        from .kernels.machine import tiles
        tiles.prefetch(dtype, kinds)
    except Exception:       # pragma: no cover - a missed head start must never fail a call
        pass


_state = threading.local()
_config = {"notice": os.environ.get("FASTNN_COMPILE_NOTICE", "1") not in ("0", "", "no"),
           "progress": False, "stream": None}


def set_notice(on: bool) -> None:
    """Print (True, the default) or not (False) a line when a first call compiles."""
    _config["notice"] = bool(on)


def progress(on: bool = True, stream=None) -> None:
    """Also tick the elapsed seconds while compiling and say when it is done (the
    command line's mode)."""
    _config["progress"] = bool(on)
    _config["stream"] = stream


def describe(name: str) -> str:
    for prefix, text in _DESCRIPTIONS:
        if name.startswith(prefix):
            return text
    return name


def _dtype_of(args):
    for a in args or ():
        dt = getattr(a, "dtype", None)
        if dt is not None and str(dt) in ("float32", "float64"):
            return str(dt)
    return None


def _cache_folder():
    try:
        from .kernels._cache import CACHE_INFO
        return CACHE_INFO.get("folder")
    except Exception:       # pragma: no cover - the notice must never fail a call
        return None


class _Ticker(threading.Thread):
    def __init__(self, stream, text):
        super().__init__(daemon=True)
        self.stream, self.text, self.t0 = stream, text, time.perf_counter()
        self.done = threading.Event()

    def run(self):
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        while not self.done.wait(1.0):
            if tty:
                self.stream.write(f"\r{self.text} {time.perf_counter() - self.t0:.0f} s")
                self.stream.flush()

    def stop(self):
        self.done.set()
        self.join()
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.stream.write(("\r" if tty else "") + f"{self.text} done in "
                          f"{time.perf_counter() - self.t0:.1f} s\n")
        self.stream.flush()


class _Listener(event.Listener):
    """Numba compile events -> one notice per outermost compilation."""

    def on_start(self, ev):
        depth = getattr(_state, "depth", 0)
        _state.depth = depth + 1
        if depth:
            return
        disp = ev.data.get("dispatcher")
        fn = getattr(disp, "py_func", None)
        name = f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', '')}"
        if not name.startswith("fastnn") or name.startswith(_QUIET):
            return
        what = describe(name)
        dt = _dtype_of(ev.data.get("args"))
        if dt and what in _TILE_USERS:
            _prefetch_tiles(dt, _TILE_USERS[what])
        if not _config["notice"]:
            return
        est = ESTIMATES.get(what)
        about = f"about {est} s" if est else "a few seconds"
        where = _cache_folder()
        later = (f"later runs load it from the cache ({where})" if where else
                 "this process keeps it (no cache folder)")
        stream = _config["stream"] or sys.stderr
        head = f"fastnn: compiling {what}{f' ({dt})' if dt else ''} for this machine"
        if _config["progress"]:
            stream.write(f"{head}, {about}, once; {later}\n")
            stream.flush()
            _state.ticker = _Ticker(stream, f"fastnn: compiling {what}")
            _state.ticker.start()
        else:
            stream.write(f"{head}, {about}; once: {later}\n")
            stream.flush()

    def on_end(self, ev):
        _state.depth = max(0, getattr(_state, "depth", 1) - 1)
        if _state.depth == 0:
            ticker = getattr(_state, "ticker", None)
            if ticker is not None:
                _state.ticker = None
                ticker.stop()


_LISTENER = _Listener()
event.register("numba:compile", _LISTENER)
