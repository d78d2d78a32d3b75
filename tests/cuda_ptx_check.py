"""Compile every cuda kernel for a real GPU (PTX, compute capability 9.0) without one.

Run as ``python tests/cuda_ptx_check.py`` WITHOUT the simulator (tests/test_cuda.py runs
it in a subprocess): the kernels then take their GPU code paths (the warp-shuffle block
reductions, which the simulator cannot run), and ``numba.cuda.compile_ptx`` types and
compiles them with NVVM (the CUDA toolkit wheels of ``numba-cuda[cu13]``). Prints one
JSON object: per kernel variant, whether it compiled and what its PTX holds.

Without a GPU, numba-cuda asks the driver for the current device's compute capability
when it types a call to a device function; this script answers (9, 0) in its place
(``numba.cuda.dispatcher.get_current_device``), nothing else is changed.
"""
from __future__ import annotations

import json
import os
import sys
import time

if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
    sys.exit("run without NUMBA_ENABLE_CUDASIM: this checks the GPU code paths")

from numba import boolean, cuda, float32, float64, int64, intp  # noqa: E402

CC = (9, 0)
if not cuda.is_available():
    import numba.cuda.dispatcher as _dispatcher

    class _Device:
        compute_capability = CC

    _dispatcher.get_current_device = lambda: _Device()

from fastnn.kernels.cuda import _kernels as K  # noqa: E402
from fastnn.kernels.cuda import elementwise as ew  # noqa: E402
from fastnn.kernels.cuda import matmul as mm  # noqa: E402
from fastnn.kernels.cuda import rows, update  # noqa: E402


def variants():
    for name, T in (("float32", float32), ("float64", float64)):
        T1, T2 = T[::1], T[:, ::1]
        yield f"softmax {name}", rows.softmax_kernel(name, False), (T2, T2), "shfl"
        yield f"log_softmax {name}", rows.softmax_kernel(name, True), (T2, T2), "shfl"
        for labels in (True, False):
            for grad in (True, False):
                yv = intp[::1] if labels else T2
                yield (f"cross_entropy {name} labels={labels} grad={grad}",
                       rows.cross_entropy_kernel(name, labels, grad),
                       (T2, yv, T2, float64[::1], float64, int64[::1]), "shfl")
        yield f"sigmoid {name}", ew.sigmoid_kernel(name), (T1, T1), ""
        yield f"sigmoid_backward {name}", ew.sigmoid_backward_kernel(name), (T1, T1, T1), ""
        for mode in (ew.BCE, ew.MSE, ew.IDENTITY_MSE):
            yield (f"sigmoid_loss {name} mode={mode}", ew.sigmoid_loss_kernel(name, mode),
                   (T1, T1, T1, float64, float64[::1]), "shfl")
        for ta, tb, epi, what in ((False, True, mm.BIAS, "linear"),
                                  (False, True, mm.BIAS_SIGMOID, "linear_sigmoid"),
                                  (True, False, mm.NONE, "dW = dZ^T X"),
                                  (False, False, mm.NONE, "dX = dZ W"),
                                  (False, False, mm.SIGMOID_DERIV, "hidden_delta")):
            yield (f"gemm {name} {what}", mm.gemm_kernel(name, ta, tb, epi),
                   (T2, T2, T2, T1, T2), "bar")
        yield f"colsum {name}", mm.colsum_kernel(name), (T2, T1), ""
        yield (f"sgd_update {name}", update.sgd_kernel(name),
               (T1, T1, float64, float64, T1, float64, float64) + (boolean,) * 5, "")
        yield f"gather_rows {name}", K._gather_rows, (T2, intp[::1], T2), ""
        yield (f"count_correct {name}", K._count_correct, (T2, intp[::1], T2, int64, int64[::1]),
               "")
    yield "sum_f64", rows.sum_f64, (float64[::1], float64[::1]), "shfl"
    yield "gather", K._gather, (intp[::1], intp[::1], intp[::1]), ""


def main():
    report = {}
    t0 = time.perf_counter()
    for name, kern, sig, expect in variants():
        try:
            ptx, _ = cuda.compile_ptx(kern.py_func, sig, cc=CC)
            report[name] = {"ok": True, "entry": ".entry" in ptx,
                            "shfl": "shfl.sync" in ptx, "bar": "bar.sync" in ptx,
                            "expect": expect}
        except Exception as exc:  # noqa: BLE001 - reported, the test asserts on it
            report[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:2000],
                            "expect": expect}
    print(json.dumps({"wall_s": round(time.perf_counter() - t0, 2), "cc": list(CC),
                      "kernels": report}))


if __name__ == "__main__":
    main()
