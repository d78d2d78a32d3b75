"""The fit loop of :class:`~fastnn.MLP` (one process): the epochs, each rolled back when
it is interrupted (Ctrl-C) or its loss becomes non-finite, the checkpoints, the
history; and the compiled epoch run in parts between which Python sees a Ctrl-C."""
from __future__ import annotations

import math
import signal
import threading
import time

import numpy as np

from . import compiled as tj
from .checks import fit_args
from .cuda import cuda_buffers, epoch_cuda
from .layout import epoch_buffers, step_buffers
from .python_epoch import Stop, epoch_python, evaluate


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite.

    Attributes ``epoch`` and ``step`` (both 1-based; step counts mini-batches within
    the epoch) say where. The model is left as it was after the last completed
    epoch (parameters, momentum buffers, RNG state and epoch counter).
    """

    def __init__(self, message, epoch, step):
        super().__init__(message)
        self.epoch = epoch
        self.step = step


class History(list):
    """A list of per-epoch records (dicts), with columns as attributes.

    Each record: ``epoch`` (the model's epoch count after it), ``loss`` and
    ``accuracy`` (means over the epoch's mini-batches, each taken before that
    step's update, as Keras reports them), ``val_loss`` and ``val_accuracy``
    (after the epoch; None without validation data), ``seconds`` (training time of
    the epoch, validation excluded) and ``samples_per_s``. Accuracy is NaN for
    regression (identity output). ``history.loss`` is the list of losses, etc.
    ``interrupted`` is True when Ctrl-C ended the ``fit`` early.
    """

    interrupted = False

    def __getattr__(self, name):
        if not name.startswith("_") and self and name in self[0]:
            return [r[name] for r in self]
        raise AttributeError(name)


#: The compiled epoch runs in parts of about this many seconds (the first of about
#: EPOCH_PART_ROWS rows), between which Python sees a Ctrl-C: the first stops training
#: at once (the epoch is rolled back), a second raises KeyboardInterrupt at once.
EPOCH_PART_S = 0.05
EPOCH_PART_ROWS = 4096


class _SigintGuard:
    """During ``fit``: the first Ctrl-C sets a flag (training stops at the next safe
    point), a second one raises KeyboardInterrupt. Only in the main thread."""

    def __init__(self):
        self.requested = False
        self._old = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            try:
                self._old = signal.signal(signal.SIGINT, self._handler)
            except ValueError:  # pragma: no cover - e.g. embedded interpreters
                self._old = None
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def save_state(net, rng):
    """What an epoch changes: (parameters, momentum buffers, generator state), copied."""
    return (net.params.copy(), net.velocity.copy(), rng.bit_generator.state)


def restore_state(net, rng, snapshot):
    """Back to a :func:`save_state` snapshot."""
    params, velocity, state = snapshot
    net.params[:] = params
    net.velocity[:] = velocity
    rng.bit_generator.state = state


def non_finite(epoch, fail, N, B, hp):
    """The error of a fit whose loss became non-finite at step ``fail`` (0-based) of the
    epoch after ``epoch``, the model already restored (one process or many)."""
    return NonFiniteLossError(
        f"training loss became non-finite at epoch {epoch + 1}, step "
        f"{fail + 1} (mini-batch {fail + 1} of {-(-N // B)}; lr={hp['lr']}); "
        f"the model was restored to its state after epoch {epoch}. "
        f"Try a smaller learning rate.", epoch + 1, fail + 1)


def compiled_epoch(net, X, y, Y, acc_code, perm, B, hp, bufs, guard=None):
    """The compiled epoch over ``perm`` (whole, or in parts of whole mini-batches when
    ``guard`` is given, so that Ctrl-C is seen between parts): (Σ loss·nb, correct,
    failing step or −1). The parts give the bits of one call (tested)."""
    stats = bufs.stats
    pol = tj.policy()
    N = perm.shape[0]
    key = (B, N, acc_code, hp["momentum"] == 0 and hp["weight_decay"] == 0 and hp["l1"] == 0,
           pol.tobytes())
    plan = net.plans.get(key)
    if plan is None:
        plan = net.plans[key] = tj.plan_of(
            net.layers, N, B, net.hidden_code, net.loss_code, acc_code, hp["momentum"],
            hp["weight_decay"], hp["l1"], pol, True)
    if guard is None:
        tj.run_net_epoch(net, bufs, X, y, Y, acc_code, perm, B, hp, pol, epoch_rows=N, plan=plan)
        return float(stats[0]), int(stats[1]), int(stats[2])
    loss_sum, correct = 0.0, 0
    steps = max(1, EPOCH_PART_ROWS // B)      # mini-batches in the next part
    s = 0
    while s < N:
        if guard.requested:
            raise Stop
        e = min(N, s + steps * B)
        t0 = time.perf_counter()
        tj.run_net_epoch(net, bufs, X, y, Y, acc_code, perm[s:e], B, hp, pol, epoch_rows=N,
                         plan=plan)
        dt = time.perf_counter() - t0
        loss_sum += float(stats[0])
        correct += int(stats[1])
        if stats[2] >= 0:
            return loss_sum, correct, s // B + int(stats[2])
        s = e
        # parts of about EPOCH_PART_S: a Ctrl-C waits at most that long
        steps = max(1, min(8 * steps, int(steps * EPOCH_PART_S / max(dt, 1e-6))))
    return loss_sum, correct, -1


def train(model, X, y, *, epochs, batch_size, lr, momentum, weight_decay, l1, shuffle,
          validation_data, progress, checkpoint):
    """``model.fit`` in one process (see :meth:`fastnn.MLP.fit`)."""
    net, rng = model.net, model.rng
    (X, y, Y, acc_code, epochs, batch_size, hp, val,
     checkpoint) = fit_args(net, X, y, epochs, batch_size, lr, momentum, weight_decay, l1,
                            shuffle, validation_data, progress, checkpoint)
    N = X.shape[0]
    B = N if batch_size is None else min(batch_size, N)
    impl = model.resolve_impl()

    model.hyperparameters = dict(hp, batch_size=batch_size, shuffle=bool(shuffle), impl=impl)
    jit_path = impl == "jit"
    bufs = (epoch_buffers(net, B) if jit_path else cuda_buffers(net, B, X, y, Y)
            if impl == "cuda" else step_buffers(net, B))
    history = History()
    with _SigintGuard() as guard:
        for _ in range(epochs):
            snapshot = save_state(net, rng)
            perm = rng.permutation(N) if shuffle else np.arange(N)
            perm = perm.astype(np.int64, copy=False)
            t0 = time.perf_counter()
            try:
                if jit_path:
                    loss_sum, correct, fail = compiled_epoch(net, X, y, Y, acc_code, perm, B,
                                                             hp, bufs, guard)
                elif impl == "cuda":
                    loss_sum, correct, fail = epoch_cuda(net, X, y, Y, acc_code, perm, B,
                                                         hp, bufs, guard)
                else:   # divergence is reported by NonFiniteLossError, as in jit code
                    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                        loss_sum, correct, fail = epoch_python(
                            net, X, y, Y, acc_code, perm, B, hp, impl, bufs, guard)
            except (Stop, KeyboardInterrupt) as exc:
                restore_state(net, rng, snapshot)
                history.interrupted = True
                if checkpoint is not None:
                    model.save(checkpoint)
                if isinstance(exc, KeyboardInterrupt):
                    raise
                break
            seconds = time.perf_counter() - t0
            if fail >= 0:
                restore_state(net, rng, snapshot)
                raise non_finite(model.epoch, fail, N, B, hp)
            model.epoch += 1
            rec = dict(epoch=model.epoch, loss=loss_sum / N,
                       accuracy=correct / N if acc_code else float("nan"),
                       val_loss=None, val_accuracy=None, seconds=seconds,
                       samples_per_s=N / seconds if seconds > 0 else float("inf"))
            if val is not None:
                rec["val_loss"], rec["val_accuracy"] = evaluate(net, *val, impl)
            history.append(rec)
            model.history.append(rec)
            if checkpoint is not None:
                model.save(checkpoint)
            if progress is True:
                print(format_record(rec), flush=True)
            elif callable(progress):
                progress(rec)
            if guard.requested:
                history.interrupted = True
                break
    return history


def format_record(rec):
    """One line for an epoch record (used by ``progress=True`` and ``fastnn train``)."""
    s = f"epoch {rec['epoch']:4d}  loss {rec['loss']:.4f}"
    if not math.isnan(rec["accuracy"]):
        s += f"  acc {rec['accuracy']:.4f}"
    if rec.get("val_loss") is not None:
        s += f"  val_loss {rec['val_loss']:.4f}"
        if rec.get("val_accuracy") is not None and not math.isnan(rec["val_accuracy"]):
            s += f"  val_acc {rec['val_accuracy']:.4f}"
    s += f"  {rec['seconds']:.3f} s  {rec['samples_per_s']:,.0f} samples/s"
    return s
