"""Raw jit kernels on small inputs, where the Python entry point's own cost shows:
softmax and the labels gradient on Z (32, 10), linear_backward on one row, and a one-row
training step through MLP.compiled_epoch. Median of 7 timings of many calls, one process;
run it alternately on two installs to compare (each figure is its own run's).

    python benches/small_calls.py
"""
import time

import numpy as np

import fastnn
from fastnn.kernels import IMPLS


def median_call(fn, args, n):
    for _ in range(200):
        fn(*args)
    runs = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(n):
            fn(*args)
        runs.append((time.perf_counter() - t0) / n)
    return sorted(runs)[3]


rng = np.random.default_rng(0)
f = np.float32
Z = rng.standard_normal((32, 10)).astype(f)
y = rng.integers(0, 10, 32)
dZ = rng.standard_normal((1, 128)).astype(f)
X = rng.standard_normal((1, 784)).astype(f)
W = rng.standard_normal((128, 784)).astype(f)
out = (np.empty((128, 784), f), np.empty(128, f), np.empty((1, 784), f))
m = fastnn.MLP([784, 100, 10], seed=0, impl="jit")
step = m.compiled_epoch(X, np.array([3]), batch_size=1, lr=0.05)
for name, fn, args, n in (
        ("softmax Z(32,10)", IMPLS["softmax"]["jit"], (Z, np.empty_like(Z)), 20000),
        ("softmax_cross_entropy_grad Z(32,10)", IMPLS["softmax_cross_entropy_grad"]["jit"],
         (Z, y, np.empty_like(Z)), 20000),
        ("linear_backward dZ(1,128) X(1,784)", IMPLS["linear_backward"]["jit"], (dZ, X, W) + out,
         3000),
        ("MLP.compiled_epoch, one row, 784-100-10", step, (), 3000)):
    print(f"{name:40s} {median_call(fn, args, n) * 1e6:8.2f} µs")
