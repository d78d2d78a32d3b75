"""Keep OpenBLAS's idle worker threads from spinning into fastnn's parallel kernels.

After each call, OpenBLAS's worker threads busy-wait for more work for
2^OPENBLAS_THREAD_TIMEOUT cycles (2^28 by default: ~0.1 s). On a machine with
few cores, a Numba ``prange`` kernel or another BLAS library called in that
window waits for the cores the spinning threads hold: alternating NumPy's
``A @ B`` with ``fastnn.softmax`` ran 11× slower per iteration on 2 cores
(8.3 ms instead of 0.74 ms). OpenBLAS reads the variable when it loads, so:

* fastnn sets ``OPENBLAS_THREAD_TIMEOUT=4`` (2^4 cycles) in the environment on
  import, unless the user has set it; every OpenBLAS loaded later (SciPy's, which
  Numba's ``np.dot`` uses, loads lazily) reads it;
* an OpenBLAS already loaded (NumPy's, when ``numpy`` was imported first) is told
  to read its environment again and its thread pool is shut down; OpenBLAS starts
  it again on its next call, with the short timeout. Results are unchanged; only
  idle threads sleep sooner.

Linux only (loaded libraries are found in /proc/self/maps). Set
``FASTNN_KEEP_OPENBLAS_THREADS=1`` to leave already-loaded libraries alone. Do not
import fastnn for the first time while another thread is inside a BLAS call.

The other way round: GNU OpenMP's threads, which run Numba's parallel kernels here
(threading layer ``omp``), spin after each parallel region for GOMP_SPINCOUNT
iterations, 300,000 by default: milliseconds on this machine. A 2-thread OpenBLAS
product started in that window waits for the core the spinning thread holds:
``X @ W.T`` with X (4096, 784) and W (128, 784) took 9-12 ms instead of 5.1 ms right
after ``fastnn.linear_sigmoid`` on the same shapes, and 2 ms of sleep in between did
not help. So :func:`shorten_omp_spin` starts Numba's threading layer, which loads
libgomp, with ``GOMP_SPINCOUNT=3000`` in the environment (libgomp reads it once, when
it loads), then takes the variable out again: no other library, PyTorch's own
OpenMP runtime included, sees it. A spin of 3000 iterations still covers the
microseconds between the parallel regions of fastnn's compiled training epoch.
Left alone: a GOMP_SPINCOUNT or OMP_WAIT_POLICY the user set, a libgomp loaded before
fastnn, a threading layer started before fastnn, and the other threading layers.
"""
from __future__ import annotations

import ctypes
import os

TIMEOUT = "4"
#: What was done at import: {library file name: "restarted" | "kept (...)"}.
REPORT: dict = {}
GOMP_SPINCOUNT = "3000"
#: What shorten_omp_spin did, for ``fastnn info``.
OMP_REPORT: list = []


def _loaded(word: str) -> list:
    """Paths of the loaded shared libraries whose path contains ``word``."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if word in line}
    except OSError:
        return []
    return sorted(p for p in paths if ".so" in os.path.basename(p))


def _loaded_openblas() -> list:
    return _loaded("openblas")


def shorten_spin() -> dict:
    user_set = "OPENBLAS_THREAD_TIMEOUT" in os.environ
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", TIMEOUT)
    if user_set or os.environ.get("FASTNN_KEEP_OPENBLAS_THREADS", "") not in ("", "0"):
        return REPORT
    for path in _loaded_openblas():
        name = os.path.basename(path)
        try:
            lib = ctypes.CDLL(path)
            get, read_env, shutdown = (lib.openblas_thread_timeout, lib.openblas_read_env,
                                       lib.blas_thread_shutdown_)
        except (OSError, AttributeError):
            REPORT[name] = "kept (no thread-timeout interface)"
            continue
        before = get()
        read_env()
        if get() != before:
            shutdown()       # restarted lazily by the next BLAS call, with the new timeout
            REPORT[name] = f"restarted with OPENBLAS_THREAD_TIMEOUT={get()} (was {before or 'default'})"
        else:
            REPORT[name] = f"kept (OPENBLAS_THREAD_TIMEOUT={before})"
    return REPORT


def shorten_omp_spin() -> list:
    """Start Numba's threading layer with GOMP_SPINCOUNT set (module docstring)."""
    import numba
    from numba.np.ufunc import parallel
    if getattr(parallel, "_is_initialized", False):     # a private name: guarded
        OMP_REPORT.append("kept: Numba's threading layer was started before fastnn was imported")
    elif "GOMP_SPINCOUNT" in os.environ or "OMP_WAIT_POLICY" in os.environ:
        OMP_REPORT.append("kept: GOMP_SPINCOUNT or OMP_WAIT_POLICY set by the user")
    elif any(os.path.basename(p).startswith("libgomp.so") for p in _loaded("libgomp")):
        OMP_REPORT.append("kept: libgomp was loaded before fastnn")
    else:
        os.environ["GOMP_SPINCOUNT"] = GOMP_SPINCOUNT
        try:
            numba.get_num_threads()         # loads the layer (and libgomp, for omp)
        finally:
            del os.environ["GOMP_SPINCOUNT"]
        if numba.threading_layer() == "omp":
            OMP_REPORT.append(f"GOMP_SPINCOUNT={GOMP_SPINCOUNT} for Numba's libgomp")
        else:
            OMP_REPORT.append(f"not needed (threading layer {numba.threading_layer()})")
    return OMP_REPORT
