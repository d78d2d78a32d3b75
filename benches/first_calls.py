"""Time to the first result of every jit kernel in ONE fresh process (warm Numba cache).

    python benches/first_calls.py            # float32; run it twice: the first run may compile

Prints ``import fastnn`` time and the summed first-call time of all registered jit
kernels (the issue's cold-start requirement: under 1 s in total with the cache warm),
then the same for inputs large enough to take the parallel kernels (cached as well, each
under its own entry: see ``kernels/_config.py``; 0.13 s for the first six here, against
15 s when they were compiled in every process; the last two take the parallel
``gemm_tn_acc`` tiles).
"""
import time

t0 = time.perf_counter()
import numpy as np  # noqa: E402

import fastnn  # noqa: E402

t_import = time.perf_counter() - t0

rng = np.random.default_rng(0)
f = np.float32
X = rng.standard_normal((8, 5)).astype(f)
W = rng.standard_normal((3, 5)).astype(f)
b = np.zeros(3, f)
Z = rng.standard_normal((8, 3)).astype(f)
y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
Y = (rng.random((8, 3)) > 0.5).astype(f)
H = fastnn.sigmoid(Z, impl="vectorized")
w = rng.standard_normal(100).astype(f)
calls = [
    ("sigmoid", lambda: fastnn.sigmoid(Z)),
    ("sigmoid_backward", lambda: fastnn.sigmoid_backward(Z, H)),
    ("softmax", lambda: fastnn.softmax(Z)),
    ("log_softmax", lambda: fastnn.log_softmax(Z)),
    ("softmax_cross_entropy", lambda: fastnn.softmax_cross_entropy(Z, y)),
    ("softmax_cross_entropy_grad", lambda: fastnn.softmax_cross_entropy_grad(Z, y)),
    ("sigmoid_bce_grad", lambda: fastnn.sigmoid_bce_grad(Z, Y)),
    ("sigmoid_mse_grad", lambda: fastnn.sigmoid_mse_grad(Z, Y)),
    ("linear", lambda: fastnn.linear(X, W, b)),
    ("linear_sigmoid", lambda: fastnn.linear_sigmoid(X, W, b)),
    ("linear_backward", lambda: fastnn.linear_backward(Z, X, W)),
    ("hidden_delta", lambda: fastnn.hidden_delta(Z, W, fastnn.sigmoid(X))),
    ("sgd_update", lambda: fastnn.sgd_update(w, w.copy(), lr=0.1, momentum=0.9,
                                             velocity=np.zeros_like(w))),
]


def first_calls(named_calls) -> float:
    """Run each call once under impl="jit", print its time; return the sum (s)."""
    total = 0.0
    with fastnn.use_impl("jit"):
        for name, call in named_calls:
            t = time.perf_counter()
            call()
            dt = time.perf_counter() - t
            total += dt
            print(f"{name:28s} {dt * 1e3:8.1f} ms")
    return total


total = first_calls(calls)
print(f"{'import fastnn':28s} {t_import * 1e3:8.1f} ms")
print(f"{'first calls, all 13 kernels':28s} {total * 1e3:8.1f} ms")

Zl = rng.standard_normal((70_000, 10)).astype(f)
yl = rng.integers(0, 10, 70_000)
Yl = rng.dirichlet(np.ones(10), 70_000).astype(f)
Xl = rng.random((64, 784), dtype=f)
Wl = rng.standard_normal((128, 784)).astype(f)
bl = np.zeros(128, f)
Xb = rng.random((300, 784), dtype=f)
wl = rng.standard_normal(1 << 19).astype(f)
large = [
    ("softmax Z(70000,10)", lambda: fastnn.softmax(Zl)),
    ("log_softmax Z(70000,10)", lambda: fastnn.log_softmax(Zl)),
    ("sce_grad labels", lambda: fastnn.softmax_cross_entropy_grad(Zl, yl)),
    ("sce_grad targets", lambda: fastnn.softmax_cross_entropy_grad(Zl, Yl)),
    ("linear_sigmoid X(64,784)", lambda: fastnn.linear_sigmoid(Xl, Wl, bl)),
    ("linear_sigmoid X(300,784)", lambda: fastnn.linear_sigmoid(Xb, Wl, bl)),
    ("sgd_update 2^19 momentum", lambda: fastnn.sgd_update(wl, wl.copy(), lr=0.1, momentum=0.9,
                                                           velocity=np.zeros_like(wl))),
    ("linear_backward dZ(64,128)", lambda: fastnn.linear_backward(Xl @ Wl.T, Xl, Wl)),
    ("hidden_delta dZ(64,128)", lambda: fastnn.hidden_delta(Xl @ Wl.T, Wl, Xl)),
    ("hidden_delta dZ(300,128)", lambda: fastnn.hidden_delta(Xb @ Wl.T, Wl, Xb)),
    ("linear_backward dZ(300,128)", lambda: fastnn.linear_backward(Xb @ Wl.T, Xb, Wl)),
]
total_l = first_calls(large)
print(f"{'first calls, parallel paths':28s} {total_l * 1e3:8.1f} ms")
