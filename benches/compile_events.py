"""Where a first call's compile time goes: runs a statement with a listener on Numba's
``numba:compile`` event and prints the inclusive seconds per compiled function (a cache
hit fires no event). Point NUMBA_CACHE_DIR at an empty folder for a cold start:

    NUMBA_CACHE_DIR=$(mktemp -d) python benches/compile_events.py "fastnn.softmax(Z)"
    NUMBA_CACHE_DIR=$(mktemp -d) python benches/compile_events.py \\
        "fastnn.MLP([784, 30, 10], seed=0).fit(X6, y6, epochs=1, batch_size=10, lr=0.5)"

Names available to the statement: np, fastnn, Z (64, 10), X (32, 784), W (30, 784),
X6 (600, 784) and y6 (600,) labels; float32.
"""
import sys
import time

from numba.core import event

stack, total, count = [], {}, {}


class Listener(event.Listener):
    def on_start(self, ev):
        stack.append(time.perf_counter())

    def on_end(self, ev):
        t = time.perf_counter() - stack.pop()
        d = ev.data.get("dispatcher")
        f = getattr(d, "py_func", None)
        k = f"{getattr(f, '__module__', '')}.{getattr(f, '__qualname__', d)}"
        total[k] = total.get(k, 0.0) + t
        count[k] = count.get(k, 0) + 1


event.register("numba:compile", Listener())
import numpy as np  # noqa: E402

import fastnn  # noqa: E402,F401  (for the statement)

rng = np.random.default_rng(0)
Z = rng.standard_normal((64, 10)).astype(np.float32)
X = rng.random((32, 784)).astype(np.float32)
W = rng.random((30, 784)).astype(np.float32)
X6 = rng.random((600, 784)).astype(np.float32)
y6 = np.arange(600) % 10
t0 = time.perf_counter()
exec(sys.argv[1])
print(f"call {time.perf_counter() - t0:.2f} s")
for k, v in sorted(total.items(), key=lambda kv: -kv[1])[:int(sys.argv[2]) if len(sys.argv) > 2 else 25]:
    print(f"{v:7.2f} s  x{count[k]}  {k}")
