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
"""
from __future__ import annotations

import ctypes
import os

TIMEOUT = "4"
#: What was done at import: {library file name: "restarted" | "kept (...)"}.
REPORT: dict = {}


def _loaded_openblas() -> list:
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line}
    except OSError:
        return []
    return sorted(p for p in paths if ".so" in os.path.basename(p))


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
