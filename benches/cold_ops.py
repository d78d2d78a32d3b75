"""Every public jit operation's first call with an empty Numba cache, each in its own
fresh process, for one or more installs side by side (alternating per operation).

    python benches/cold_ops.py --rounds 2 base=/path/to/old/python now=.venv/bin/python
    python benches/cold_ops.py now=.venv/bin/python softmax linear_sigmoid

Prints, per run, the import time, the first call (what compiles) and the second call, on
X (64, 784), W (30, 784), Z (64, 10), float32 (the issue 19 budget: 2 s per first call).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import tempfile

OPS = ["sigmoid", "sigmoid_backward", "softmax", "log_softmax", "softmax_cross_entropy",
       "softmax_cross_entropy_grad", "sigmoid_bce_grad", "sigmoid_mse_grad", "linear",
       "linear_sigmoid", "linear_backward", "hidden_delta", "sgd_update"]

CHILD = r'''
import sys, time
t0 = time.perf_counter()
import numpy as np, fastnn
ti = time.perf_counter() - t0
rng = np.random.default_rng(0); f = np.float32
X = rng.standard_normal((64, 784)).astype(f); W = rng.standard_normal((30, 784)).astype(f)
b = np.zeros(30, f); Z = rng.standard_normal((64, 10)).astype(f); y = rng.integers(0, 10, 64)
Y = (rng.random((64, 10)) > 0.5).astype(f); H = rng.random((64, 784)).astype(f)
dZ = rng.standard_normal((64, 30)).astype(f); w = rng.standard_normal(1000).astype(f)
calls = dict(
    sigmoid=lambda: fastnn.sigmoid(Z), sigmoid_backward=lambda: fastnn.sigmoid_backward(Z, Z),
    softmax=lambda: fastnn.softmax(Z), log_softmax=lambda: fastnn.log_softmax(Z),
    softmax_cross_entropy=lambda: fastnn.softmax_cross_entropy(Z, y),
    softmax_cross_entropy_grad=lambda: fastnn.softmax_cross_entropy_grad(Z, y),
    sigmoid_bce_grad=lambda: fastnn.sigmoid_bce_grad(Z, Y),
    sigmoid_mse_grad=lambda: fastnn.sigmoid_mse_grad(Z, Y),
    linear=lambda: fastnn.linear(X, W, b), linear_sigmoid=lambda: fastnn.linear_sigmoid(X, W, b),
    linear_backward=lambda: fastnn.linear_backward(dZ, X, W),
    hidden_delta=lambda: fastnn.hidden_delta(dZ, W, H),
    sgd_update=lambda: fastnn.sgd_update(w, w.copy(), lr=0.1, momentum=0.9,
                                         velocity=np.zeros_like(w)))
op = sys.argv[1]
with fastnn.use_impl("jit"):
    t = time.perf_counter(); calls[op](); tc = time.perf_counter() - t
    t = time.perf_counter(); calls[op](); tw = time.perf_counter() - t
print(f"{op:28s} import {ti:5.2f} s  first {tc:6.2f} s  second {tw * 1e3:7.2f} ms", flush=True)
'''


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("pythons", nargs="+", metavar="NAME=PYTHON (then operation names)")
    p.add_argument("--rounds", type=int, default=1)
    a = p.parse_args()
    pythons = [x.split("=", 1) for x in a.pythons if "=" in x]
    ops = [x for x in a.pythons if "=" not in x] or OPS
    for _ in range(a.rounds):
        for op in ops:
            for name, python in pythons:
                env = dict(os.environ, NUMBA_CACHE_DIR=tempfile.mkdtemp(prefix="cold-"),
                           FASTNN_COMPILE_NOTICE="0")
                print(f"{name:6s}", end=" ", flush=True)
                subprocess.run([python, "-c", CHILD, op], env=env, cwd=tempfile.gettempdir(),
                               stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
