"""Data-parallel training over MPI (``MLP.fit(comm=...)``; docs/mpi.md): the argument
agreement between the ranks, the epochs, and each step's Allreduce of the gradient,
with the kernels one at a time or with the compiled step (:func:`compiled.step_for`)."""
from __future__ import annotations

import json
import math
import reprlib
import time

import numpy as np

from .. import _mpi
from . import compiled as tj
from .checks import fit_args
from .fit import History, format_record, non_finite, restore_state, save_state
from .layout import epoch_buffers, step_buffers
from .python_epoch import evaluate, forward_backward, n_correct, sgd


def train_comm(model, comm, X, y, *, epochs, batch_size, lr, momentum, weight_decay, l1,
               shuffle, validation_data, progress, checkpoint, overlap):
    """``model.fit`` with a communicator of more than one rank (see :meth:`fastnn.MLP.fit`).
    Sets ``model.comm_stats`` (the time in the collectives) and ``model.comm_path``
    (which step the epochs run: "compiled" or "kernels")."""
    net, rng = model.net, model.rng
    rank, size = int(comm.Get_rank()), int(comm.Get_size())
    # every rank checks its own arguments; when one rank's fail, every rank raises
    # (the failing one its own error), so that none waits in a collective for it
    err, info = None, None
    try:
        args = fit_args(net, X, y, epochs, batch_size, lr, momentum, weight_decay, l1,
                              shuffle, validation_data, progress, checkpoint)
        if overlap and not callable(getattr(comm, "Iallreduce", None)):
            raise TypeError(f"overlap: needs a communicator with Iallreduce, "
                            f"{type(comm).__name__} has none")
    except (TypeError, ValueError) as exc:
        err = exc
    impl = model.resolve_impl()
    if err is None:
        X, y, Y, acc_code, epochs, batch_size, hp, val, checkpoint = args
        info = dict(rows=X.shape[0], validation_data=val is not None, config=model.config(),
                    epoch=model.epoch,
                    rng=_mpi.checksum(np.frombuffer(
                        json.dumps(rng.bit_generator.state).encode(), np.uint8)),
                    parameters=_mpi.checksum(net.params, net.velocity),
                    epochs=epochs, batch_size=batch_size, hyperparameters=hp,
                    shuffle=bool(shuffle), impl=impl, overlap=overlap)
    everyone = comm.allgather((None if err is None else f"{type(err).__name__}: {err}", info))
    if err is not None:
        raise err
    for r, (msg, _) in enumerate(everyone):
        if msg is not None:
            raise ValueError(f"comm: rank {r} of {size} rejected its arguments to fit "
                             f"({msg}); fit stops on every rank")
    for key, mine in info.items():
        if key == "rows":
            continue
        for r, (_, other) in enumerate(everyone):
            if other[key] != mine:
                what = {"rng": "the generator state", "parameters": "the parameters "
                        "(or momentum buffers)"}.get(key, key)
                raise ValueError(
                    f"comm: {what} differs between ranks (rank {rank}: {reprlib.repr(mine)}, "
                    f"rank {r}: {reprlib.repr(other[key])}); every rank must call fit with "
                    f"the same model and arguments, only its own rows")
    rows = [o["rows"] for _, o in everyone]
    N = sum(rows)
    offset = sum(rows[:rank])
    B = N if batch_size is None else min(batch_size, N)
    model.hyperparameters = dict(hp, batch_size=batch_size, shuffle=bool(shuffle), impl=impl)
    reducer = _mpi.Reducer(comm)
    model.comm_stats = reducer      # time in the collectives (benches/mpi_epoch.py)
    compiled = impl == "jit"
    model.comm_path = "compiled" if compiled else "kernels"   # (tests/test_mpi.py)
    R = min(B, X.shape[0])
    bufs = epoch_buffers(net, R) if compiled else step_buffers(net, R)
    history = History()
    for _ in range(epochs):
        snapshot = save_state(net, rng)
        perm = rng.permutation(N) if shuffle else np.arange(N)
        perm = perm.astype(np.int64, copy=False)
        t0 = time.perf_counter()
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            if compiled:
                loss_sum, correct, fail = epoch_comm_jit(
                    net, reducer, X, y, Y, acc_code, perm, B, offset, hp, bufs, overlap)
            else:
                loss_sum, correct, fail = epoch_comm(
                    net, reducer, X, y, Y, acc_code, perm, B, offset, hp, impl, bufs, overlap)
        totals = np.array([loss_sum, correct], np.float64)
        reducer.allreduce(totals)
        seconds = time.perf_counter() - t0
        if fail >= 0:       # the same step on every rank: it is seen after the Allreduce
            restore_state(net, rng, snapshot)
            raise non_finite(model.epoch, fail, N, B, hp)
        model.epoch += 1
        sums = comm.allgather(_mpi.checksum(net.params, net.velocity))
        if len(set(sums)) > 1:
            raise RuntimeError(
                f"comm: the parameters differ between ranks after epoch {model.epoch} "
                f"(CRC-32 by rank: {', '.join(f'{c:08x}' for c in sums)}); the ranks must "
                f"run the same fastnn and MPI library on the same kind of CPU")
        rec = dict(epoch=model.epoch, loss=float(totals[0]) / N,
                   accuracy=float(totals[1]) / N if acc_code else float("nan"),
                   val_loss=None, val_accuracy=None, seconds=seconds,
                   samples_per_s=N / seconds if seconds > 0 else float("inf"))
        if val is not None:
            nv = val[0].shape[0]
            vl, va = evaluate(net, *val, impl)
            part = np.array([vl * nv, (va if acc_code else 0.0) * nv, nv], np.float64)
            reducer.allreduce(part)
            rec["val_loss"] = float(part[0] / part[2])
            rec["val_accuracy"] = float(part[1] / part[2]) if acc_code else float("nan")
        history.append(rec)
        model.history.append(rec)
        if checkpoint is not None and rank == 0:
            model.save(checkpoint)
        if progress is True:
            if rank == 0:
                print(format_record(rec), flush=True)
        elif callable(progress):
            progress(rec)
    return history


def epoch_comm(net, reducer, X, y, Y, acc_code, perm, B, offset, hp, impl, bufs,
                overlap):
    """One epoch of data-parallel SGD over the global order ``perm``: at each global
    mini-batch this rank's rows (global rows offset .. offset + n − 1) give their part
    of the mean gradient (the loss gradient scaled by rows / the mini-batch's rows),
    one in-place Allreduce sums the parts, and the update runs on the sum. A rank
    with no rows in the mini-batch contributes zeros; a non-finite loss on any rank
    makes the summed gradient's first element NaN, so every rank stops at the same
    step. -> (this rank's Σ loss·rows, correct, failing step or −1)."""
    acts, deltas = bufs
    n, N = X.shape[0], perm.shape[0]
    R = acts[0].shape[0]
    yb_buf = np.empty(R, np.intp)
    Yb_buf = np.empty((R, net.sizes[-1]), net.dtype)
    local = perm - offset
    own = (local >= 0) & (local < n)
    grads = net.grads
    L = net.n_layers
    split = overlap and L > 1
    pending = []
    ready = None
    if split:
        K, D, w_last, _ = (int(t) for t in net.layers[L - 1])
        last = grads[w_last:w_last + K * D]
        rest = (grads[:w_last], grads[net.n_weights:])

        def ready(l):
            if l == L - 1:
                pending.append(reducer.start(last))
    loss_sum, correct = 0.0, 0
    for step, s in enumerate(range(0, N, B)):
        e = min(N, s + B)
        idx = local[s:e][own[s:e]]
        nb = idx.shape[0]
        loss = 0.0
        if nb:
            np.take(X, idx, axis=0, out=acts[0][:nb])
            if y.shape[0]:
                np.take(y, idx, out=yb_buf[:nb])
            if Y.shape[0]:
                np.take(Y, idx, axis=0, out=Yb_buf[:nb])
            loss = forward_backward(net, acts, deltas, nb, yb_buf[:nb], Yb_buf[:nb], impl,
                                          scale=nb / (e - s), ready=ready)
        if nb == 0 or not math.isfinite(loss):
            grads[:] = 0
            if nb:
                grads[0] = np.nan
        if split:
            if not pending:
                pending.append(reducer.start(last))
            for part in rest:
                reducer.allreduce(part)
            reducer.wait(pending.pop())
        else:
            reducer.allreduce(grads)
        if not math.isfinite(grads[0]):
            return loss_sum, correct, step
        if nb:
            loss_sum += float(loss) * nb
            correct += n_correct(acc_code, acts[-1][:nb], yb_buf[:nb], Yb_buf[:nb])
        sgd(net, impl, hp)
    return loss_sum, correct, -1


def epoch_comm_jit(net, reducer, X, y, Y, acc_code, perm, B, offset, hp, bufs, overlap):
    """``epoch_comm`` for ``impl="jit"`` in compiled code (``tj.step_for``): per step
    one compiled call (the update of the step before, then this rank's scaled
    gradient into the flat buffer) and one in-place Allreduce; one more compiled call
    applies the last update. With ``overlap`` the call is split after the last
    layer's gradient, whose Iallreduce starts in between. Results as
    ``epoch_comm``."""
    act_buf, delta_buf, act_off, yb_buf, Yb_buf, stats = bufs
    pol = tj.policy()
    R = yb_buf.shape[0]
    key = ("comm", R, acc_code, pol.tobytes())
    plan = net.plans.get(key)
    if plan is None:
        plan = net.plans[key] = tj.make_step_plan(net.layers, R, net.hidden_code,
                                                    net.loss_code, acc_code, pol)
    run = tj.step_for(plan)
    # BLAS blocks on Numba's threads: OpenBLAS unthreaded
    if pol[tj.P_BLAS_ON_NUMBA] and R > pol[tj.P_SMALL_MAX]:
        return tj.on_numba_threads(comm_steps, net, run, reducer, X, y, Y, perm, B, offset,
                                   hp, bufs, pol, overlap)
    return comm_steps(net, run, reducer, X, y, Y, perm, B, offset, hp, bufs, pol, overlap)


def comm_steps(net, run, reducer, X, y, Y, perm, B, offset, hp, bufs, pol, overlap):
    act_buf, delta_buf, act_off, yb_buf, Yb_buf, stats = bufs
    params, grads, velocity, nw, layers = (net.params, net.grads, net.velocity,
                                           net.n_weights, net.layers)
    lr, mom, wd, l1 = hp["lr"], hp["momentum"], hp["weight_decay"], hp["l1"]
    N, L = perm.shape[0], net.n_layers
    split = overlap and L > 1
    if split:
        K, D, w_last, _ = (int(t) for t in layers[L - 1])
        last = grads[w_last:w_last + K * D]
        rest = (grads[:w_last], grads[nw:])
    stats[:] = 0
    for step, s in enumerate(range(0, N, B)):
        e = min(N, s + B)
        if split:
            run(params, grads, velocity, nw, layers, act_off, X, y, Y, perm, s, e, offset,
                lr, mom, wd, l1, step > 0, L - 1, L, pol, act_buf, delta_buf, yb_buf,
                Yb_buf, stats)
            req = reducer.start(last)
            run(params, grads, velocity, nw, layers, act_off, X, y, Y, perm, s, e, offset,
                lr, mom, wd, l1, False, 0, L - 1, pol, act_buf, delta_buf, yb_buf,
                Yb_buf, stats)
            for part in rest:
                reducer.allreduce(part)
            reducer.wait(req)
        else:
            run(params, grads, velocity, nw, layers, act_off, X, y, Y, perm, s, e, offset,
                lr, mom, wd, l1, step > 0, 0, L, pol, act_buf, delta_buf, yb_buf,
                Yb_buf, stats)
            reducer.allreduce(grads)
        if not math.isfinite(grads[0]):
            return float(stats[0]), int(stats[1]), step
    tj.sgd_apply(params, grads, velocity, nw, lr, mom, wd, l1)
    return float(stats[0]), int(stats[1]), -1
