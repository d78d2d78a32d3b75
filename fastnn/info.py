"""``fastnn info``: what this installation runs on."""
from __future__ import annotations

import os
import platform


def _vector_width() -> str:
    """What ``wide_vectors()`` gives the exp/softmax/sigmoid/gemm loops on this CPU."""
    import llvmlite.binding as ll
    feats = ll.get_host_cpu_features()
    if feats.get("avx512f"):
        return ("512-bit (zmm) in the exp, softmax, sigmoid and gemm_nt loops; LLVM's 256-bit "
                "default elsewhere; short softmax rows transposed 16 at a time with vgatherdps")
    if feats.get("avx2") or feats.get("avx"):
        return "256-bit (ymm): no AVX-512 on this CPU"
    return "128-bit (SSE)"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gemm_library():
    from .kernels._blas import GEMM_LIBRARY, THREAD_CONTROL
    how = ("linear, linear_sigmoid, linear_backward and hidden_delta on >= 256 rows, and "
           "MLP.fit's epoch on batches of >= 256 rows, call it single-threaded on Numba's "
           "threads" if THREAD_CONTROL else "no thread control: it threads on its own")
    return f"{GEMM_LIBRARY}; {how}"


def _blas() -> list:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        import numpy as np
        try:
            cfg = np.show_config(mode="dicts")
            b = cfg.get("Build Dependencies", {}).get("blas", {})
            return [f"{b.get('name')} {b.get('version')} (threadpoolctl not installed: threads unknown)"]
        except Exception:  # pragma: no cover
            return ["unknown"]
    import scipy.linalg  # noqa: F401  (loads SciPy's BLAS too, so that both are listed)
    out = []
    for d in threadpool_info():
        if d.get("user_api") == "blas":
            out.append(f"{d.get('internal_api')} {d.get('version')} ({d.get('filepath', '').split('site-packages/')[-1]}),"
                       f" {d.get('num_threads')} threads, {d.get('architecture', '?')}")
    return out


def info() -> dict:
    """Versions, threading and compilation facts, as a dict of strings."""
    import llvmlite
    import numba
    import numpy
    import scipy
    from numba.core.config import USING_SVML  # type: ignore[attr-defined]

    from . import _blas_threads
    from .kernels import EXP_NAME, IMPL_NAMES, IMPLS
    from .kernels._config import CACHE, FASTMATH

    try:
        @numba.njit(parallel=True)
        def _touch(n):
            acc = 0
            for i in numba.prange(n):
                acc += i
            return acc

        _touch(4)
        layer = numba.threading_layer()
    except Exception as exc:  # pragma: no cover
        layer = f"unavailable ({exc})"
    cache_dir = numba.config.CACHE_DIR or "(beside each kernel module, in __pycache__)"
    return {
        "fastnn": __import__("fastnn").__version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "llvmlite": llvmlite.__version__,
        "cpu": f"{_cpu_model()}, {os.cpu_count()} logical cores",
        "numba threading layer": layer,
        "numba threads": str(numba.get_num_threads()),
        "SVML": "active" if USING_SVML else "off (llvmlite built without SVML)",
        "exp in jit kernels": EXP_NAME,
        "fastmath flags": ", ".join(sorted(FASTMATH)) + " (+ reassoc in sum and dot-product loops)",
        "vector width": _vector_width(),
        "numba cache": cache_dir if CACHE else "disabled (FASTNN_NO_CACHE)",
        "BLAS": "; ".join(_blas()) or "none found",
        "BLAS of the jit kernels": _gemm_library(),
        "OPENBLAS_THREAD_TIMEOUT": os.environ.get("OPENBLAS_THREAD_TIMEOUT", "(unset)") + (
            "; at import: " + "; ".join(f"{k} {v}" for k, v in _blas_threads.REPORT.items())
            if _blas_threads.REPORT else ""),
        "OpenMP spin of Numba's threads": "; ".join(_blas_threads.OMP_REPORT) or "(not set up)",
        "operations": f"{len(IMPLS)}: " + ", ".join(sorted(IMPLS)),
        "implementations": ", ".join(IMPL_NAMES),
    }


def format_info(d: dict) -> str:
    w = max(map(len, d))
    return "\n".join(f"{k:<{w}}  {v}" for k, v in d.items())
