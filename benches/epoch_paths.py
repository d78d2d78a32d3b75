"""The compiled epoch's products on BLAS or on the tiles, side by side in one process.

    python benches/epoch_paths.py [--batches 1,10,16,32,64,128,255] [--rounds 4] [--threads N]

784-100-10 sigmoid/softmax MLP, 60,000 random float32 samples, plain SGD. For each batch
size, epochs alternate between the policies (``fastnn._train_jit.policy``): every
product on the direct BLAS gemm; the forward products on the tiles and the backward ones
on BLAS; every one on the tiles (``gemm_nt``, ``gemm_tn_acc``,
parallel from ``EPOCH_PARALLEL_MIN_FMAS``); the same with the first layer's update and
the next mini-batch's forward product in one region (``FUSE_FIRST_LAYER``); and the
default, which picks per product (BLAS up to ``TILE_MIN_FMAS`` multiply-adds, tiles
above) with that fusion on, the whole epoch in one parallel region where every step
qualifies (``PERSISTENT_EPOCH``; ``tiles_ahead`` is the same with one region per
step), and the BLAS products of batches above SMALL_MAX rows in
blocks on Numba's threads (``BLAS_ON_NUMBA_THREADS``); and, where that applies, the
default with those products on OpenBLAS's own threads instead (``default_openblas``).
Prints the median and best seconds per epoch of each.
"""
import argparse
import time

from _threads import set_threads

p = argparse.ArgumentParser()
p.add_argument("--batches", default="1,10,16,32,64,128,255")
p.add_argument("--rounds", type=int, default=4)
p.add_argument("--threads", type=int, default=None)
args = p.parse_args()
set_threads(args.threads)

import numpy as np  # noqa: E402

import fastnn  # noqa: E402
from fastnn import _train_jit as tj  # noqa: E402

rng = np.random.default_rng(0)
N = 60_000
X = rng.random((N, 784), dtype=np.float32)
y = rng.integers(0, 10, N)
no_targets = np.zeros((0, 10), np.float32)
par_min = tj.EPOCH_PARALLEL_MIN_FMAS
threads = tj.policy()[4]
policies = {"blas": np.array([0, 0, 0, par_min, 0, 0, 0], np.int64),
            "fwd_tiles": np.array([tj.NT_MAX_ROWS - 1, 0, tj.NEVER, par_min, 0, 0, 0], np.int64),
            "tiles": np.array([tj.NT_MAX_ROWS - 1, 0, 0, par_min, 0, 0, 0], np.int64),
            "tiles_ahead": np.array([tj.NT_MAX_ROWS - 1, 0, 0, par_min, threads, 0, 0],
                                    np.int64),
            "default": tj.policy()}
if tj.policy()[5]:      # the same, large batches' BLAS on OpenBLAS's threads as before
    policies["default_openblas"] = tj.policy() * np.array([1, 1, 1, 1, 1, 0, 1], np.int64)
for B in (int(b) for b in args.batches.split(",")):
    m = fastnn.MLP([784, 100, 10], dtype=np.float32, seed=0, impl="jit")
    act_buf, delta_buf, act_off, yb_buf, Yb_buf, stats = m._jit_buffers(B)

    def run(perm, policy, X=X, y=y):
        t0 = time.perf_counter()
        tj.run_epoch(m._params, m._grads, m._velocity, m._n_weights, m._layers, act_off,
                       m._hcode, m._lcode, 1, X, y, no_targets, perm, B, 0.05, 0.0, 0.0, 0.0,
                       policy, act_buf, delta_buf, yb_buf, Yb_buf, stats)
        return time.perf_counter() - t0

    for pol in policies.values():                    # warm-up (compiles or loads the cache)
        run(rng.permutation(1000).astype(np.int64), pol, X[:1000], y[:1000])
    times = {k: [] for k in policies}
    order = list(policies)
    for r in range(args.rounds):
        for k in (order if r % 2 == 0 else order[::-1]):
            times[k].append(run(rng.permutation(N).astype(np.int64), policies[k]))
    print(f"batch {B:3d}: " + "  ".join(
        f"{k} {np.median(v):.3f} s (best {min(v):.3f})" for k, v in times.items()), flush=True)
