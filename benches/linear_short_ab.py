"""The short-batch linear / linear_sigmoid kernels (``NT_INTO[parallel][act]``) against
the paths they replaced, in one process, alternating: ``affine_into`` (serial) and
gemm_nt_parallel followed by ``bias_act`` (what ``nt_parallel_into`` was). The bits are
the same (tests/test_gemm.py); this measures the speed. Prints, per shape and
activation, the medians of 31 alternating timings and the median of the paired ratios.

    python benches/linear_short_ab.py
"""
import time

import numpy as np

from fastnn.kernels._config import jit
from fastnn.kernels.fast import linear as L
from fastnn.kernels.machine.gemm import NT_PARALLEL_MIN_FMAS, gemm_nt_parallel


@jit
def old_parallel(X, W, b, out, act):
    gemm_nt_parallel(X, W, out)
    L.bias_act(out, b, act)


def per_call(f, n):
    t = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t) / n


def main():
    for B, K, D in ((1, 128, 784), (10, 100, 784), (32, 128, 784), (64, 30, 784)):
        rng = np.random.default_rng(0)
        X = rng.standard_normal((B, D)).astype(np.float32)
        W = rng.standard_normal((K, D)).astype(np.float32)
        b = rng.standard_normal(K).astype(np.float32)
        out = np.empty((B, K), np.float32)
        par = B * K * D >= NT_PARALLEL_MIN_FMAS
        for act in (0, 1):
            if par:
                def old():
                    old_parallel(X, W, b, out, act)
            else:
                def old():
                    L.affine_into(X, W, b, out, act)
            kernel = L.NT_INTO[int(par)][act]

            def new():
                kernel(X, W, b, out)
            old()
            new()
            n = max(3, 2_000_000 // (B * K * D))
            t_old, t_new = [], []
            for _ in range(31):
                t_old.append(per_call(old, n))
                t_new.append(per_call(new, n))
            mo, mn = np.median(t_old) * 1e6, np.median(t_new) * 1e6
            r = np.array(t_new) / np.array(t_old)
            print(f"X({B},{D}) W({K},{D}) act {act} {'parallel' if par else 'serial'}: "
                  f"old {mo:.2f} µs, new {mn:.2f} µs, new/old {mn / mo:.3f} (paired ratios: "
                  f"median {np.median(r):.3f}, quartiles {np.percentile(r, 25):.3f}-"
                  f"{np.percentile(r, 75):.3f})", flush=True)


if __name__ == "__main__":
    main()
