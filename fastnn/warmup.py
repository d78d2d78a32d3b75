"""Compile every kernel and training path ahead of use: ``fastnn compile``.

Numba compiles each kernel on its first call and caches the machine code on disk; a
fresh install, an upgrade or a new environment starts with an empty cache. An install
script or a container build can pay that once, up front::

    fastnn compile                  # every path, float32 and float64, 2 processes
    fastnn compile --dtype float32 --jobs 4

Each job calls one public operation on inputs shaped to take each of its paths (short
rows and long ones, serial and parallel, the register tiles and BLAS), or trains
``fastnn.MLP`` for one epoch with one kind of network (hidden and output
activations, loss), optimiser and batch size. The jobs run in separate processes, so
that they compile in parallel; the cache they write is the one every later process
reads (``fastnn info`` shows where it is and whether it is warm).

A training epoch is compiled for what it will run (:class:`fastnn.train.compiled.Plan`:
the network kind, the optimiser, which products run on which path). The jobs cover
every kernel those epochs call and the plans of the batch sizes 1, 10, 64 and 300 on a
784-100-10 network and on the 64-32-10 digits network; a fit whose plan is not among
them compiles only its own epoch loop (about a second: its kernels are cached).
"""
from __future__ import annotations

import os
import sys
import time
from typing import Callable, List, NamedTuple, Sequence

import numpy as np

DTYPES = ("float32", "float64")

#: The kinds of network: (hidden, output, loss).
NETWORK_KINDS = (("sigmoid", "softmax", "cross_entropy"), ("identity", "softmax", "cross_entropy"),
                 ("sigmoid", "sigmoid", "cross_entropy"), ("identity", "sigmoid", "cross_entropy"),
                 ("sigmoid", "sigmoid", "mse"), ("identity", "sigmoid", "mse"),
                 ("sigmoid", "identity", "mse"), ("identity", "identity", "mse"))
BATCH_SIZES = (1, 10, 64, 300)
NETWORKS = ((784, 100, 10), (64, 32, 10))


class Job(NamedTuple):
    """One unit of ``fastnn compile``: ``run(dtype)`` in a worker process."""
    name: str
    dtype: str
    run: Callable


def _rng():
    return np.random.default_rng(0)


def _op_calls(op, dt):
    """Call ``op`` on inputs that take each of its jit paths."""
    import fastnn
    g = _rng()

    def r(*shape):
        return g.standard_normal(shape).astype(dt)

    def labels(n, c):
        return g.integers(0, c, n)

    if op == "sigmoid":
        for n in (100, 1 << 16):
            fastnn.sigmoid(r(n))
    elif op == "sigmoid_backward":
        fastnn.sigmoid_backward(r(50), np.abs(r(50)) % 1)
    elif op in ("softmax", "log_softmax"):
        f = getattr(fastnn, op)
        for R, C in ((64, 10), (8, 10), (30, 40), (8, 1000), (4096, 10), (1024, 40), (64, 1000),
                     (256, 4), (16384, 4)):     # (the last two: transposed, serial and parallel)
            f(r(R, C))
            Z = r(R, C)
            f(Z, out=Z)                                     # in place
    elif op == "softmax_cross_entropy":
        for R, C in ((64, 10), (8, 1000)):
            fastnn.softmax_cross_entropy(r(R, C), labels(R, C))
            fastnn.softmax_cross_entropy(r(R, C), np.eye(C, dtype=dt)[labels(R, C)])
    elif op == "softmax_cross_entropy_grad":
        for R, C in ((64, 10), (8, 10), (30, 40), (8, 1000), (4096, 10), (64, 1000), (256, 10),
                     (1024, 40)):
            fastnn.softmax_cross_entropy_grad(r(R, C), labels(R, C))
            fastnn.softmax_cross_entropy_grad(r(R, C), np.eye(C, dtype=dt)[labels(R, C)])
    elif op == "sigmoid_bce_grad":
        fastnn.sigmoid_bce_grad(r(64, 1), (r(64, 1) > 0).astype(dt))
    elif op == "sigmoid_mse_grad":
        fastnn.sigmoid_mse_grad(r(64, 10), r(64, 10))
    elif op in ("linear", "linear_sigmoid"):
        f = getattr(fastnn, op)
        for N, K, D in ((1, 10, 20), (10, 100, 784), (64, 128, 784), (300, 100, 784)):
            f(r(N, D), r(K, D), r(K))
    elif op in ("linear_backward", "hidden_delta"):
        for N, K, D in ((1, 10, 20), (8, 100, 784), (12, 128, 784), (64, 128, 784),
                        (300, 100, 784)):
            if op == "linear_backward":
                fastnn.linear_backward(r(N, K), r(N, D), r(K, D))
                fastnn.linear_backward(r(N, K), r(N, D), r(K, D), compute_dX=False)
            else:
                fastnn.hidden_delta(r(N, K), r(K, D), np.abs(r(N, D)) % 1)
    elif op == "sgd_update":
        for n in (1000, 1 << 18):
            w, g_ = r(n), r(n)
            fastnn.sgd_update(w, g_, 0.1)
            fastnn.sgd_update(w, g_, 0.1, weight_decay=1e-3, l1=1e-4)
            fastnn.sgd_update(w, g_, 0.1, momentum=0.9, velocity=np.zeros(n, dt), nesterov=True)
    elif op in ("perceptron_epoch", "adaline_epoch"):
        from .kernels import IMPLS, perceptron
        IMPLS[op]["jit"](*perceptron.make_inputs(op, dt))
    else:   # pragma: no cover - every op is listed
        raise ValueError(f"op: no warm-up calls for {op!r}")


def _train(kind, sizes, dt):
    """One epoch of each optimiser and batch size for one kind of network."""
    from fastnn import MLP
    hidden, output, loss = kind
    g = _rng()
    for B in BATCH_SIZES:
        N = 2 * B + 3                       # full batches and a short last one
        X = g.random((N, sizes[0])).astype(dt)
        if output == "softmax":
            y = g.integers(0, sizes[-1], N)
        elif output == "sigmoid":
            y = g.integers(0, 2, (N, sizes[-1])).astype(dt)
        else:
            y = g.standard_normal((N, sizes[-1])).astype(dt)
        for momentum in (0.0, 0.9):
            m = MLP(list(sizes), hidden=hidden, output=output, loss=loss, dtype=dt, seed=0)
            m.fit(X, y, epochs=1, batch_size=B, lr=1e-3, momentum=momentum)


def jobs(dtypes: Sequence[str] = DTYPES, only: Sequence[str] | None = None) -> List[Job]:
    """The warm-up jobs for these dtypes (``only``: names to keep, e.g. ``["softmax"]``)."""
    from .kernels import IMPLS
    out = [Job("tiles", dt, _TilesJob()) for dt in dtypes]    # first: the others call them
    for dt in dtypes:
        for op in IMPLS:
            if "jit" in IMPLS[op]:
                out.append(Job(op, dt, _OpJob(op)))
        for kind in NETWORK_KINDS:
            for sizes in NETWORKS:
                out.append(Job(f"MLP {'-'.join(map(str, sizes))} {'/'.join(kind)}", dt,
                               _TrainJob(kind, sizes)))
    if only:
        keep = set(only)
        out = [j for j in out if j.name in keep or j.name.split()[0] in keep]
    return out


class _TilesJob:
    """The matrix-product tiles (kernels/machine/tiles.py) that the linear layers and
    the training epochs call."""

    def __call__(self, dt):
        from .kernels.machine import tiles
        tiles.ensure_dtype(dt)


class _OpJob:
    def __init__(self, op):
        self.op = op

    def __call__(self, dt):
        _op_calls(self.op, dt)


class _TrainJob:
    def __init__(self, kind, sizes):
        self.kind, self.sizes = kind, sizes

    def __call__(self, dt):
        _train(self.kind, self.sizes, dt)


def _run_job(job):
    # no helper processes of its own (tiles.prefetch): the tiles are a job of the pool
    os.environ["FASTNN_COMPILE_HELPER"] = "0"
    from . import _compiling
    _compiling.set_notice(False)
    t0 = time.perf_counter()
    job.run(job.dtype)
    return time.perf_counter() - t0


def _bar(done, total, width=30):
    k = int(width * done / total) if total else width
    return "[" + "#" * k + "-" * (width - k) + f"] {done}/{total}"


def compile_all(dtypes: Sequence[str] = DTYPES, n_jobs: int | None = None,
                only: Sequence[str] | None = None, stream=None) -> dict:
    """Run the warm-up jobs in ``n_jobs`` worker processes (default: the CPU count, at
    most 4), with a progress bar on ``stream`` (stderr; None for no output). Returns
    ``{job name and dtype: seconds}``."""
    import concurrent.futures as cf
    import multiprocessing as mp

    todo = jobs(dtypes, only)
    if not todo:
        raise ValueError(f"only: no warm-up job is named {list(only or [])}")
    if n_jobs is None:
        n_jobs = min(4, os.cpu_count() or 1)
    stream = sys.stderr if stream is None else stream
    times = {}
    t0 = time.perf_counter()
    ctx = mp.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=max(1, n_jobs), mp_context=ctx) as pool:
        futures = {pool.submit(_run_job, j): j for j in todo}
        for f in cf.as_completed(futures):
            j = futures[f]
            times[f"{j.name} {j.dtype}"] = f.result()
            if stream is not False:
                tty = hasattr(stream, "isatty") and stream.isatty()
                stream.write(("\r" if tty else "") +
                             f"fastnn compile {_bar(len(times), len(todo))} "
                             f"{j.name} ({j.dtype}) {times[f'{j.name} {j.dtype}']:.1f} s"
                             + ("\033[K" if tty else "\n"))
                stream.flush()
    if stream is not False:
        stream.write(("\n" if hasattr(stream, "isatty") and stream.isatty() else "") +
                     f"fastnn compile: {len(todo)} jobs in {time.perf_counter() - t0:.1f} s\n")
    return times
