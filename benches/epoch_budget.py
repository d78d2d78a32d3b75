"""Where the time of a batch-10 training step goes (784-100-10, float32, plain SGD).

    python benches/epoch_budget.py [--rounds 7] [--threads N]

The issue asks for a 60,000-sample epoch at batch 10 in at most 0.17 s: 6,000 steps,
28.3 µs each. This script times, each in a compiled loop of 6,000 calls (µs per step,
median of ``--rounds``, the rounds alternating), the parts of a step of the compiled
epoch (``fastnn/train/compiled.py``, ``fastnn/train/persistent.py``):

* gather: copying the 10 rows of the next mini-batch, in a random order, out of the
  60,000-row dataset (188 MB, far beyond the caches), and the same copy of 10 rows that
  are already in cache (200 distinct rows drawn at random) for comparison;
* region: the first layer's weight update and the next mini-batch's forward product
  (``gemm_tn_acc_nt_parallel``), with the input slots alternating as in the epoch, so
  that the other core fetches the freshly gathered rows; the same two products on one
  thread (``gemm_tn_acc`` then ``gemm_nt``); and an empty parallel region;
* small: the rest of a step, on one thread: bias + sigmoid of the hidden layer, the
  output layer's product, softmax cross-entropy and its gradient, the hidden delta,
  the output layer's update and both bias updates;
* the whole epoch (``fastnn.MLP.fit``, batch 10). It runs in one persistent parallel
  region (``fastnn.train.compiled.PERSISTENT_EPOCH``): no region starts per step, and the gather
  runs on the second core beside the small serial work, so it takes less than the sum
  of the parts above.

It prints each figure and the floor they imply next to the GEMM ceiling of this
machine: the two products are 2 · 10 · 100 · 784 multiply-adds = 3.14 MFLOP per step.
"""
import argparse
import time

from _threads import set_threads

p = argparse.ArgumentParser()
p.add_argument("--rounds", type=int, default=7)
p.add_argument("--threads", type=int, default=None)
args = p.parse_args()
set_threads(args.threads)

import numpy as np  # noqa: E402
from numba import prange  # noqa: E402

import fastnn  # noqa: E402
from fastnn import _train_jit as tj  # noqa: E402
from fastnn.kernels._config import jit, pjit  # noqa: E402
from fastnn.kernels.machine.gemm import gemm_nt, gemm_tn_acc, gemm_tn_acc_nt_parallel  # noqa: E402
from fastnn.kernels.fast.cross_entropy import sce_grad_labels_rows  # noqa: E402
from fastnn.kernels.fast.linear import bias_act, delta_tiles  # noqa: E402

STEPS = 6000
N, D, H, K, B = 60_000, 784, 100, 10, 10
rng = np.random.default_rng(0)


def aligned(shape, scale=0.05):
    n = int(np.prod(shape))
    buf = np.empty(n + 16, np.float32)
    off = (-buf.ctypes.data % 64) // 4
    a = buf[off:off + n].reshape(shape)
    a[:] = rng.standard_normal(shape) * scale
    return a


X = rng.random((N, D), dtype=np.float32)
y = rng.integers(0, K, N)
perm = rng.permutation(N).astype(np.int64)
in_cache = rng.integers(0, 200, N).astype(np.int64)
no_targets = np.zeros((0, K), np.float32)
yb = np.empty(B, np.intp)
Yb = np.empty((B, K), np.float32)
slots = (aligned((B, D)), aligned((B, D)))
W1, b1 = aligned((H, D)), np.zeros(H, np.float32)
W2, b2 = aligned((K, H)), np.zeros(K, np.float32)
Hb, Z, dZ, dH = aligned((B, H)), aligned((B, K)), aligned((B, K), 0.01), aligned((B, H), 0.01)
lr = np.float32(1e-7)          # tiny: the weights stay where they are over the loops


@jit
def gather_loop(X, y, Y, perm, A0, yb, Yb):
    for t in range(STEPS):
        tj.gather(X, y, Y, perm, (t * B) % (N - B), A0, yb, Yb)


@jit
def region_loop(dH, S0, S1, W1, Hb, X, y, Y, perm, yb, Yb, parts):
    """As the epoch: gather the next batch into one slot, then one region updates W1
    with the current slot and multiplies the next one."""
    for t in range(STEPS):
        s = (t * B) % (N - 2 * B)
        cur, nxt = (S0, S1) if t % 2 == 0 else (S1, S0)
        tj.gather(X, y, Y, perm, s + B, nxt, yb, Yb)
        gemm_tn_acc_nt_parallel(dH, cur, W1, -lr, nxt, Hb, parts)


@jit
def serial_products_loop(dH, S0, W1, S1, Hb):
    for t in range(STEPS):
        gemm_tn_acc(dH, S0, W1, -lr)
        gemm_nt(S1, W1, Hb)


@pjit
def _empty(a, P):
    for q in prange(P):
        a[16 * q] += 1.0


@jit
def empty_region_loop(a, P):
    for t in range(STEPS):
        _empty(a, P)


@jit
def small_loop(Hb, b1, W2, b2, Z, dZ, dH, yb):
    for t in range(STEPS):
        bias_act(Hb, b1, 1)
        gemm_nt(Hb, W2, Z)
        bias_act(Z, b2, 0)
        sce_grad_labels_rows(Z, yb, dZ)
        delta_tiles(dZ, W2, Hb, dH, True)
        tj.bias_sgd(dZ, b2, lr)
        gemm_tn_acc(dZ, Hb, W2, -lr)
        tj.bias_sgd(dH, b1, lr)
        Hb[:] = np.float32(0.25)        # keep the sigmoid's input fixed


threads = tj.numba.get_num_threads()
yb[:] = y[:B]
pad = np.zeros(64)
cases = {
    "gather, random rows (DRAM)": lambda: gather_loop(X, y, no_targets, perm, slots[0], yb, Yb),
    "gather, rows in cache": lambda: gather_loop(X, y, no_targets, in_cache, slots[0], yb, Yb),
    f"region: update + next forward, {threads} threads, gather included":
        lambda: region_loop(dH, slots[0], slots[1], W1, Hb, X, y, no_targets, perm, yb, Yb,
                            threads),
    "the same two products, one thread, no gather":
        lambda: serial_products_loop(dH, slots[0], W1, slots[1], Hb),
    "empty parallel region": lambda: empty_region_loop(pad, threads),
    "small: the rest of a step, one thread": lambda: small_loop(Hb, b1, W2, b2, Z, dZ, dH, yb),
}
times = {k: [] for k in cases}
for f in cases.values():
    f()                                           # compile / load the cache
for r in range(args.rounds):
    for k in (list(cases) if r % 2 == 0 else list(cases)[::-1]):
        t0 = time.perf_counter()
        cases[k]()
        times[k].append((time.perf_counter() - t0) / STEPS * 1e6)

model = fastnn.MLP([D, H, K], dtype=np.float32, seed=0, impl="jit")
model.fit(X[:2000], y[:2000], epochs=1, batch_size=B, lr=0.05)
epochs = []
for _ in range(3):
    epochs.append(model.fit(X, y, epochs=1, batch_size=B, lr=0.05).seconds[0])

a = np.ones((1024, 1024), np.float32)
a @ a
gemm_s = []
for _ in range(7):
    t0 = time.perf_counter()
    a @ a
    gemm_s.append(time.perf_counter() - t0)
gemm_gflops = 2 * 1024 ** 3 / min(gemm_s) / 1e9

print(f"batch-10 step of 784-100-10, float32, {threads} threads; µs per step, median of "
      f"{args.rounds} (all rounds)")
for k, v in times.items():
    print(f"  {k:62s} {np.median(v):7.2f}   ({', '.join(f'{x:.1f}' for x in v)})")
step = np.median(epochs) / STEPS * 1e6
print(f"  {'whole epoch (MLP.fit), per step':62s} {step:7.2f}   "
      f"(epochs {', '.join(f'{e:.3f}' for e in epochs)} s)")
print(f"GEMM 1024³ ceiling now: {gemm_gflops:.1f} GFLOP/s; the step's two products "
      f"(3.14 MFLOP) at that rate: {3.136e6 / gemm_gflops / 1e3:.1f} µs")
g = np.median(times["gather, random rows (DRAM)"])
sm = np.median(times["small: the rest of a step, one thread"])
floor = 3.136e6 / gemm_gflops / 1e3 + g + sm
print(f"floor with the products at the GEMM ceiling + gather + small: {floor:.1f} µs per step, "
      f"{floor * STEPS / 1e6:.3f} s per epoch (target 28.3 µs, 0.17 s)")
