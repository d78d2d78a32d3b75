"""The compiled epoch's products on BLAS or on the tiles, side by side in one process.

    python benches/epoch_paths.py [--batches 1,10,16,32,64,128,255] [--rounds 4] [--threads N]

784-100-10 sigmoid/softmax MLP, 60,000 random float32 samples, plain SGD. For each batch
size, epochs alternate between the policies (``fastnn.train.compiled.EpochPolicy``): every
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
from fastnn.train import compiled as tj  # noqa: E402
from fastnn.train.compiled import EpochPolicy  # noqa: E402
from fastnn.train.layout import epoch_buffers  # noqa: E402
from fastnn.train.products import ACCURACY_LABELS  # noqa: E402

rng = np.random.default_rng(0)
N = 60_000
X = rng.random((N, 784), dtype=np.float32)
y = rng.integers(0, 10, N)
no_targets = np.zeros((0, 10), np.float32)
default = tj.current_policy()
tiles = EpochPolicy(small_max=tj.NT_MAX_ROWS - 1, tile_min_fmas=0, back_tile_min_fmas=0,
                    parallel_min_fmas=tj.EPOCH_PARALLEL_MIN_FMAS, shares=0,
                    blas_on_numba_threads=0, persistent=0)
policies = {"blas": tiles._replace(small_max=0).vector(),
            "fwd_tiles": tiles._replace(back_tile_min_fmas=tj.NEVER).vector(),
            "tiles": tiles.vector(),
            "tiles_ahead": tiles._replace(shares=default.shares).vector(),
            "default": default.vector()}
if default.blas_on_numba_threads:  # the same, large batches' BLAS on OpenBLAS's threads as before
    policies["default_openblas"] = default._replace(blas_on_numba_threads=0).vector()
hp = {"lr": 0.05, "momentum": 0.0, "weight_decay": 0.0, "l1": 0.0}
for B in (int(b) for b in args.batches.split(",")):
    m = fastnn.MLP([784, 100, 10], dtype=np.float32, seed=0, impl="jit")
    bufs = epoch_buffers(m.net, B)

    def run(perm, policy, X=X, y=y):
        t0 = time.perf_counter()
        tj.run_net_epoch(m.net, bufs, X, y, no_targets, ACCURACY_LABELS, perm, B, hp, policy)
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
