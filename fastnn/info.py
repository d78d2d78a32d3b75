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
    from .kernels.machine.blas import GEMM_LIBRARY, THREAD_CONTROL
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


def _sample_kernels():
    """(dispatcher, arguments) of the first call of every operation and of a training
    epoch, float32: what ``cache_warmth`` looks up."""
    import numpy as np

    from .kernels import sgd, sigmoid, sigmoid_losses
    from .kernels.fast import cross_entropy as ce, linear, softmax
    a, b = np.zeros((4, 10), np.float32), np.zeros(10, np.float32)
    y = np.zeros(4, np.int64)
    delta = linear.delta_kernel(4, 10, 10)     # the kernel a small first call runs here
    return [
        ("sigmoid", sigmoid.sigmoid_jit, (b, b)),
        ("sigmoid_backward", sigmoid.sigmoid_backward_jit, (b, b, b)),
        ("softmax", softmax.softmax_short_serial, (a, a)),
        ("log_softmax", softmax.log_softmax_short_serial, (a, a)),
        ("softmax_cross_entropy", ce.sce_labels_jit, (a, y)),
        ("softmax_cross_entropy_grad", ce.sce_grad_labels_short, (a, y, a)),
        ("sigmoid_bce_grad", sigmoid_losses.sigmoid_bce_grad_jit, (a, a, a)),
        ("sigmoid_mse_grad", sigmoid_losses.sigmoid_mse_grad_jit, (a, a, a)),
        ("linear", *((linear.NT_INTO[0][0], (a, a, b, a)) if 400 > linear.SMALL_GEMM_FMAS
                     else (linear.affine_into, (a, a, b, a, 0)))),
        ("linear_backward", linear.backward_kernel(4, 10, 10), (a, a, a, a, b, a)),
        ("hidden_delta", delta, (a, a, a, a) if delta is linear.hidden_delta_jit
         else (a, a, a, a, True)),
        ("sgd_update", sgd.sgd_update_jit, (b, b, 0.1, 0.0, b, 0.0, 0.0, False)),
    ]


def cache_warmth() -> str:
    """How many of the sampled first-call kernels the cache holds ("warm": all)."""
    from .kernels._cache import is_cached
    samples = _sample_kernels()
    from .kernels.machine import tiles
    missing = [name for name, disp, args in samples if not is_cached(disp, args)]
    samples.append(("matrix-product tiles", None, None))
    if not (tiles.is_cached(0) and tiles.is_cached(2)):   # float32: a first linear or fit
        missing.append("matrix-product tiles")
    if not missing:
        return f"warm ({len(samples)} of {len(samples)} sampled float32 kernels cached)"
    return (f"cold for {len(missing)} of {len(samples)} sampled float32 kernels "
            f"({', '.join(missing[:4])}{', ...' if len(missing) > 4 else ''}): "
            "run `fastnn compile`")


def _cuda() -> str:
    """What ``impl="cuda"`` runs on here, or why it is unavailable (importing numba.cuda
    only where the cuda implementation is registered)."""
    from .kernels import cuda as kc
    if not kc.USABLE:
        return f"unavailable: {kc.WHY}"
    try:
        import numba_cuda
        from numba import cuda
        version = f"numba-cuda {getattr(numba_cuda, '__version__', '?')}"
        if kc.simulator_requested():
            return f"{version}, Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1): CPU, slow"
        if not cuda.is_available():
            return f"unavailable: {version}, numba.cuda.is_available() is False"
        dev = cuda.get_current_device()
        name = dev.name.decode() if isinstance(dev.name, bytes) else dev.name
        return f"{version}, {name} (compute capability {'.'.join(map(str, dev.compute_capability))})"
    except Exception as exc:  # pragma: no cover - a broken driver or toolkit
        return f"unavailable: {type(exc).__name__}: {exc}"


def info() -> dict:
    """Versions, threading and compilation facts, as a dict of strings."""
    import llvmlite
    import numba
    import numpy
    import scipy
    from numba.core.config import USING_SVML  # type: ignore[attr-defined]

    from . import _blas_threads
    from .kernels import EXP_NAME, IMPLS, UNAVAILABLE, impl_names
    from .plugins import load_entry_points
    load_entry_points()             # a user's implementations (fastnn.implementations entry points)
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
    from .kernels._cache import CACHE_INFO
    where = {"NUMBA_CACHE_DIR": "NUMBA_CACHE_DIR", "in-tree": "beside each kernel module",
             "user": "the user cache folder", "temporary": "a temporary folder (nothing else "
             "was writable)"}.get(CACHE_INFO.get("kind"), "")
    cache_dir = f"{CACHE_INFO.get('folder')} ({where}); {cache_warmth()}"
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
        "numba cache": cache_dir if CACHE else (
            "disabled (FASTNN_NO_CACHE)" if CACHE_INFO.get("kind") != "none" else
            "none: no writable folder, kernels compile in memory in every process"),
        "BLAS": "; ".join(_blas()) or "none found",
        "BLAS of the jit kernels": _gemm_library(),
        "OPENBLAS_THREAD_TIMEOUT": os.environ.get("OPENBLAS_THREAD_TIMEOUT", "(unset)") + (
            "; at import: " + "; ".join(f"{k} {v}" for k, v in _blas_threads.REPORT.items())
            if _blas_threads.REPORT else ""),
        "OpenMP spin of Numba's threads": "; ".join(_blas_threads.OMP_REPORT) or "(not set up)",
        "operations": f"{len(IMPLS)}: " + ", ".join(sorted(IMPLS)),
        "implementations": ", ".join(impl_names()) + "".join(
            f"; {k} unavailable: {v}" for k, v in UNAVAILABLE.items()),
        "cuda": _cuda(),
    }


def format_info(d: dict) -> str:
    w = max(map(len, d))
    return "\n".join(f"{k:<{w}}  {v}" for k, v in d.items())
