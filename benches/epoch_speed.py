"""Seconds per training epoch of a 784-100-10 sigmoid/softmax MLP on 60,000 MNIST-shaped
samples (random data: the speed does not depend on the values), plain SGD.

    python benches/epoch_speed.py [--threads N]

One warm-up epoch (compiles or loads the Numba cache), then the median of 3 timed
epochs, for batch sizes 1 and 10 (the issue's targets: <= 1.5 s and <= 0.17 s).
"""
import argparse
import time

from _threads import set_threads

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=None)
args = p.parse_args()
set_threads(args.threads)

import numpy as np  # noqa: E402

import fastnn  # noqa: E402

rng = np.random.default_rng(0)
X = rng.random((60_000, 784), dtype=np.float32)
y = rng.integers(0, 10, 60_000)
for batch in (1, 10):
    model = fastnn.MLP([784, 100, 10], dtype=np.float32, seed=0, impl="jit")
    model.fit(X, y, epochs=1, batch_size=batch, lr=0.05)             # warm-up
    times = []
    for _ in range(3):
        t = time.perf_counter()
        model.fit(X, y, epochs=1, batch_size=batch, lr=0.05)
        times.append(time.perf_counter() - t)
    print(f"batch {batch:3d}: {np.median(times):.3f} s per epoch "
          f"(median of 3: {', '.join(f'{x:.3f}' for x in times)})", flush=True)
