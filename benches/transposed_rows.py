"""The transposed short-row kernels against the row-by-row ones, one thread, float32:
where each is faster decides TRANSPOSE_MIN_ROWS and SOFTMAX_TRANSPOSE_MAX_C
(kernels/tuning.py). Both give the same bits (tests/test_transposed.py).

    python benches/transposed_rows.py
    python benches/transposed_rows.py --cs 10 --rows 16,32,64,128

Prints the median of 9 timing runs (best of two passes) per kernel, in µs, and the
ratio rows / transposed (> 1: the transposed kernel is faster).
"""
import argparse
import os
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
import numpy as np  # noqa: E402

from fastnn.kernels.fast import cross_entropy as CE, softmax as S  # noqa: E402


def median_us(kernel, args, n):
    ts = []
    for _ in range(9):
        t = time.perf_counter()
        for _ in range(n):
            kernel(*args)
        ts.append((time.perf_counter() - t) / n)
    return float(np.median(ts)) * 1e6


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cs", default="2,3,4,6,8,10,16")
    p.add_argument("--rows", default="16,32,64,128,256,4096")
    a = p.parse_args()
    print(f"{'C':>3} {'rows':>6} | softmax T  rows   ratio | sce_grad T  rows   ratio")
    for C in map(int, a.cs.split(",")):
        for R in map(int, a.rows.split(",")):
            rng = np.random.default_rng(0)
            Z = rng.standard_normal((R, C)).astype(np.float32)
            y = rng.integers(0, C, R)
            o = np.empty_like(Z)
            n = max(3, 100000 // (R * C) + 1)
            sm = [min(median_us(k, (Z, o), n) for _ in range(2))
                  for k in (S.softmax_T_serial, S.softmax_short_serial)]
            ce = [min(median_us(k, (Z, y, o), n) for _ in range(2))
                  for k in (CE.sce_grad_labels_T, CE.sce_grad_labels_rows_short)]
            print(f"{C:3d} {R:6d} | {sm[0]:8.2f} {sm[1]:8.2f} {sm[1] / sm[0]:5.2f} |"
                  f" {ce[0]:8.2f} {ce[1]:8.2f} {ce[1] / ce[0]:5.2f}", flush=True)


if __name__ == "__main__":
    main()
