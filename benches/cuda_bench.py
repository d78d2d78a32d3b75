"""GPU timings of the cuda kernels against PyTorch (issue 24's targets). NOT RUN YET: it
needs an NVIDIA GPU (written in a session without one; run it in a GPU session).

    python benches/cuda_bench.py > cuda_bench.json

Times with CUDA events after a synchronise, device arrays only (no host copies in the
timed region), the median of ``REPS`` runs after a warm-up; the device-to-device copy
bandwidth is measured first as the ceiling for the memory-bound kernels. PyTorch
(CUDA, TF32 off) is the comparator where it is installed.

(Not collected by pytest: the file name does not match ``bench_*.py``.)
"""
from __future__ import annotations

import json
import sys

import numpy as np

REPS = 20


def _time(fn, cuda):
    fn()
    cuda.synchronize()
    start, stop = cuda.event(), cuda.event()
    times = []
    for _ in range(REPS):
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cuda.event_elapsed_time(start, stop) / 1e3)
    return float(np.median(times))


def main():
    from numba import cuda
    if not cuda.is_available():
        sys.exit("no GPU: this benchmark needs one (the simulator would time Python threads)")
    from fastnn.kernels import IMPLS
    f32 = np.float32
    rng = np.random.default_rng(0)
    out = {"device": str(cuda.get_current_device().name)}

    n = 1 << 26
    a, b = cuda.device_array(n, f32), cuda.device_array(n, f32)
    t = _time(lambda: b.copy_to_device(a), cuda)
    out["copy_GBps"] = 2 * 4 * n / t / 1e9

    def dev(*shape, lo=-1.0, hi=1.0):
        return cuda.to_device(rng.uniform(lo, hi, shape).astype(f32))

    R, C = 65536, 1000
    Z, P = dev(R, C), cuda.device_array((R, C), f32)
    t = _time(lambda: IMPLS["softmax"]["cuda"](Z, P), cuda)
    out["softmax_65536x1000"] = {"s": t, "GBps": 2 * 4 * R * C / t / 1e9}
    y = cuda.to_device(rng.integers(0, C, R).astype(np.intp))
    t = _time(lambda: IMPLS["softmax_cross_entropy_grad"]["cuda"](Z, y, P), cuda)
    out["sce_grad_65536x1000"] = {"s": t, "GBps": 2 * 4 * R * C / t / 1e9}

    m = 16 << 20
    w, g, v = dev(m), dev(m), dev(m)
    t = _time(lambda: IMPLS["sgd_update"]["cuda"](w, g, 1e-3, 0.9, v, 1e-4, 1e-6, False), cuda)
    out["sgd_16M"] = {"s": t, "GBps": 5 * 4 * m / t / 1e9}

    for (N, D, K) in ((4096, 784, 128), (65536, 4096, 4096)):
        X, W, bb, H = dev(N, D), dev(K, D), dev(K), cuda.device_array((N, K), f32)
        t = _time(lambda: IMPLS["linear_sigmoid"]["cuda"](X, W, bb, H), cuda)
        out[f"linear_sigmoid_{N}x{D}x{K}"] = {"s": t, "TFLOPs": 2 * N * D * K / t / 1e12}

    try:
        import torch
        torch.backends.cuda.matmul.allow_tf32 = False
        tz = torch.as_tensor(Z, device="cuda")
        out["torch_softmax_s"] = _time(lambda: torch.softmax(tz, 1), cuda)
    except ImportError:
        out["torch"] = "not installed"
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
