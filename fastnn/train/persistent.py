"""The persistent training epoch: a whole plain-SGD epoch in one parallel region
(``PERSISTENT_EPOCH`` in :mod:`fastnn.train.compiled`, whose ``run_epoch`` picks it).

One region per epoch (``PERSISTENT_EPOCH``). Starting and ending a parallel region
costs ~1.4 µs here, and a batch-10 step is ~30 µs. When every step has the first layer
ahead and every other product is on the serial tiles (``_persistent_ok``), the whole
epoch runs in one region of P shares (``_persistent_epoch``; P = Numba's threads, at
most one per group of FUSED_GROUP rows of the first layer's W). Share 0, the leader,
runs each step's serial work as the loop above does, call for call; the workers gather
the next mini-batch's rows meanwhile (the rows were gathered serially before), and then
every share runs its part of the first layer's update and the next product
(``kernels/machine/gemm.py`` ``acc_then_dot_share``, the rows ``gemm_tn_acc_nt_parallel``
gives it). The shares hand over through counters in ``ctl``, each on its own cache
lines, written with release stores and read with acquire loads (``kernels/machine/atomic.py``;
a round trip between the two cores takes ~0.1 µs): the leader publishes 2k+1 when step
k's deltas are ready and every worker has gathered, 2k+2 when its share is done; a
worker publishes 2k+1 when it has gathered and 2k+2 when its share is done, and
gathers only once every share of the step before has let go of the slot. The labels
of the next mini-batch are the leader's to copy, after the loss. A non-finite loss
makes the leader publish −1 and every worker leave. Every element is computed by the
same tile as before: the same bits. 784-100-10, two threads, AMD EPYC Zen 3, python
benches/epoch_paths.py (medians of 4 alternating epochs, shuffled), seconds per epoch
with one region per epoch against one per step (``tiles_ahead``): batch 4 / 10 / 32 /
128: 0.178 / 0.160 / 0.143 / 0.146 against 0.225 / 0.196 / 0.168 / 0.172.

Spinning threads deadlock if the shares do not run at the same time (one thread
running them in turn, as Numba's TBB layer may). So they first join: each worker
increments ``ctl[_JOIN]`` and waits for the leader to confirm; the leader confirms
once all have joined. Whichever waits longer than JOIN_TIMEOUT_CYCLES (~30 ms) gives
up (a worker leaves; the leader marks the region abandoned, and a worker arriving
later does not join), nothing has been updated, and ``run_epoch`` runs the ordinary
loop (``train_epoch``): the same bits, ~30-60 ms later. ``run_epoch`` picks the
persistent epoch, so that it is compiled only for the networks that take it.
The flat buffers are those of :mod:`fastnn.train.compiled`'s epoch.
"""
from __future__ import annotations

import types as pytypes

import numpy as np
from numba import int64, prange

from ..kernels.machine.atomic import (compare_exchange, cycle_counter, load_acquire, spin_pause,
                               store_release)
from ..kernels._config import jit, pjit
from ..kernels.machine.gemm import acc_then_dot_share
from ..kernels.fast.cross_entropy import sce_grad_labels_rows_long, sce_grad_labels_rows_short
from ..kernels.tuning import LONG_ROW
from ..kernels.fast.linear import bias_act
from ..kernels.sigmoid_losses import sigmoid_bce_grad_jit, sigmoid_mse_grad_jit
from .products import (ACCURACY_LABELS, ACCURACY_SIGN, ACT_IDENTITY, ACT_SIGMOID,
                       HIDDEN_SIGMOID, LOSS_SIGMOID_BCE, LOSS_SIGMOID_MSE, LOSS_SOFTMAX_CE,
                       bias_sgd, _correct_labels, _correct_sign, _delta_tiles,
                       _forward_tiles, _forward_tiles_par, gather, _gather_labels,
                       _gather_rows, _layer, _rows, _update_tiles, identity_mse_grad_jit)


# The persistent epoch's control words (``ctl``, int64), each on its own 128 bytes (a
# cache line and the one the adjacent-line prefetcher pairs with it).
_LINE = 16
_JOIN = 0           # workers joined; _CONFIRMED: all joined, go; −1: abandoned (time-out)
_CONFIRMED = 1 << 40
_GO = _LINE         # leader: 2k+1 step k's deltas ready; 2k+2 its share of step k done; −1 stop
#: The leader waits this long for the workers to enter the region (and a worker for the
#: leader) before it gives up and trains on the ordinary loop: cycles of the time-stamp
#: counter (~30 ms at 3 GHz), and a count of spins in case the target has no counter.
JOIN_TIMEOUT_CYCLES = 100_000_000
JOIN_TIMEOUT_SPINS = 50_000_000


@jit
def _wait_at_least(ctl, i, target):
    """Spin until ctl[i] >= target or ctl[i] < 0 (stop); return that value."""
    while True:
        v = load_acquire(ctl, i)
        if v >= target or v < 0:
            return v
        spin_pause()


@jit
def _timed_out(t0, spins):
    return spins > JOIN_TIMEOUT_SPINS or cycle_counter() - t0 > JOIN_TIMEOUT_CYCLES


@jit
def _lead_join(ctl, P):
    """The leader: True once the P − 1 workers have joined (it then confirms, and they
    start); False if they have not within the time-out: it marks the region abandoned
    (ctl[_JOIN] = −1) and the workers that had joined leave."""
    t0 = cycle_counter()
    spins = 0
    while True:
        v = load_acquire(ctl, _JOIN)
        if v == P - 1 and compare_exchange(ctl, _JOIN, v, _CONFIRMED):
            return True
        spins += 1
        if _timed_out(t0, spins) and compare_exchange(ctl, _JOIN, v, -1):
            return False
        spin_pause()


@jit
def _work_join(ctl):
    """A worker: True once it has joined and the leader has confirmed. If the leader does
    not confirm within the time-out (say its share waits to run on this very thread,
    after this one) the worker leaves again, and the leader, once it runs, gives up."""
    while True:
        v = load_acquire(ctl, _JOIN)
        if v < 0:
            return False
        if compare_exchange(ctl, _JOIN, v, v + 1):
            break
    t0 = cycle_counter()
    spins = 0
    while True:
        v = load_acquire(ctl, _JOIN)
        if v == _CONFIRMED:
            return True
        if v < 0:
            return False
        spins += 1
        if _timed_out(t0, spins) and compare_exchange(ctl, _JOIN, v, v - 1):
            return False
        spin_pause()


def _persistent_ok(layers, N, batch_size, small_max, tile_min, back_tile_min, par_min):
    """Whether every step of a plain-SGD epoch has the first layer ahead on the tiles
    and every other product on the serial tiles: then the one region of each step can
    be the persistent epoch's."""
    if batch_size > small_max or N <= batch_size:
        return False
    nb_last = N - ((N - 1) // batch_size) * batch_size
    for l in range(layers.shape[0]):
        KD = layers[l, 0] * layers[l, 1]
        if nb_last * KD <= tile_min or nb_last * KD <= back_tile_min:
            return False
        if (l == 0) != (batch_size * KD >= par_min):
            return False
    return True


_PERSISTENT = {}


def persistent_epoch_for(hidden, loss, acc, long_rows=False):
    """The persistent epoch (``_persistent_epoch``) for one network kind (``long_rows``:
    the output layer has at least LONG_ROW units)."""
    key = (int(hidden), int(loss), int(acc), bool(long_rows))
    f = _PERSISTENT.get(key)
    if f is None:
        f = _PERSISTENT[key] = _make_persistent(*key)
    return f


def _make_persistent(hidden, loss, acc, long_rows=False):
    """The persistent epoch with the network kind as compile-time constants (as
    ``_make_epoch``). Every product but the first layer's is on the serial tiles there
    (``_persistent_ok``)."""
    SIG = hidden == HIDDEN_SIGMOID
    CE = loss == LOSS_SOFTMAX_CE
    BCE = loss == LOSS_SIGMOID_BCE
    SMSE = loss == LOSS_SIGMOID_MSE
    # the labels gradient for this row length only (the same bits as sce_grad_labels_rows);
    # a bool, not the dispatcher, in the closure: Numba's cache keys closures by their
    # pickled cells, and a dispatcher's differ from process to process
    LONG = bool(long_rows)
    ACC_LABELS = acc == ACCURACY_LABELS
    ACC_SIGN = acc == ACCURACY_SIGN
    KIND = (int(hidden), int(loss), int(acc), LONG)

    @jit
    def lead(params, layers, act_off, X, y, Y, perm, batch_size, lr_, act_buf, delta_buf,
             yb_buf, Yb_buf, stats, P, ctl):
        """Share 0 of the persistent epoch: every step's serial work (the layers after the
        first, loss, deltas, their updates, the first layer's bias), then its share of
        the first layer's update and the next mini-batch's first product, in the order of
        ``_make_epoch``'s loop."""
        if not _lead_join(ctl, P):
            return
        L = layers.shape[0]
        N, D0 = perm.shape[0], X.shape[1]
        K = Yb_buf.shape[1]
        K0 = layers[0, 0]
        W0, b0 = _layer(params, layers, 0)
        act0 = ACT_SIGMOID if SIG and L > 1 else ACT_IDENTITY
        loss_sum = 0.0
        n_correct = 0
        step = 0
        in_delta = False
        for s in range(0, N, batch_size):
            nb = min(batch_size, N - s)
            nn = min(batch_size, N - s - nb)
            A0 = _rows(delta_buf if in_delta else act_buf, act_off[0], nb, D0)
            An = _rows(act_buf if in_delta else delta_buf, act_off[0], nn, D0)
            yb = yb_buf[:nb]
            Yb = Yb_buf[:nb]
            if step > 0:
                bias_act(_rows(act_buf, act_off[1], nb, K0), b0, act0)
            for l in range(1, L):
                Kl = layers[l, 0]
                Dl = layers[l, 1]
                W, b = _layer(params, layers, l)
                A = _rows(act_buf, act_off[l], nb, Dl)
                out = _rows(act_buf, act_off[l + 1], nb, Kl)
                _forward_tiles(A, W, b, out, ACT_SIGMOID if SIG and l < L - 1 else ACT_IDENTITY)
            Z = _rows(act_buf, act_off[L], nb, K)
            dZ = _rows(delta_buf, act_off[L], nb, K)
            if CE:
                if LONG:
                    loss = sce_grad_labels_rows_long(Z, yb, dZ)
                else:
                    loss = sce_grad_labels_rows_short(Z, yb, dZ)
            elif BCE:
                loss = sigmoid_bce_grad_jit(Z, Yb, dZ)
            elif SMSE:
                loss = sigmoid_mse_grad_jit(Z, Yb, dZ)
            else:
                loss = identity_mse_grad_jit(Z, Yb, dZ)
            if not np.isfinite(loss):
                stats[2] = step
                break
            loss_sum += np.float64(loss) * nb
            if ACC_LABELS:
                n_correct += _correct_labels(Z, yb)
            elif ACC_SIGN:
                n_correct += _correct_sign(Z, Yb)
            for l in range(L - 1, 0, -1):
                Kl = layers[l, 0]
                Dl = layers[l, 1]
                W, b = _layer(params, layers, l)
                A = _rows(act_buf, act_off[l], nb, Dl)
                dZl = _rows(delta_buf, act_off[l + 1], nb, Kl)
                dA = _rows(delta_buf, act_off[l], nb, Dl)
                _delta_tiles(dZl, W, A, dA, SIG)                # with the old W
                _update_tiles(dZl, A, W, b, lr_)
            dZ0 = _rows(delta_buf, act_off[1], nb, K0)
            bias_sgd(dZ0, b0, lr_)
            _gather_labels(y, Y, perm, s + nb, nn, yb_buf, Yb_buf)
            for q in range(1, P):
                _wait_at_least(ctl, _GO + _LINE * q, 2 * step + 1)      # next rows gathered
            store_release(ctl, _GO, 2 * step + 1)
            out = _rows(act_buf, act_off[1], nn, K0)
            acc_then_dot_share(dZ0, A0, W0, -lr_, An, out, 0, P)
            store_release(ctl, _GO, 2 * step + 2)
            for q in range(1, P):
                _wait_at_least(ctl, _GO + _LINE * q, 2 * step + 2)      # shares done
            in_delta = not in_delta
            step += 1
        store_release(ctl, _GO, -1)
        stats[0] = loss_sum
        stats[1] = n_correct

    # region and persistent_epoch call the compiled functions made here through globals
    # (LEAD, REGION, in a copy of the module's globals), not closure cells: Numba's cache
    # keys a closure by its pickled cells, and a dispatcher pickles differently in every
    # process, so both were compiled again in every process (~11 s for 784-100-10, warm
    # cache). Their one closure cell is KIND, which keeps the kinds' cache entries apart.
    def region(params, layers, act_off, X, y, Y, perm, batch_size, lr_, act_buf, delta_buf,
               yb_buf, Yb_buf, stats, P, ctl):
        kind = KIND  # noqa: F841  (the cache key's closure cell)
        for p in prange(P):
            if p == 0:
                LEAD(params, layers, act_off, X, y, Y, perm, batch_size, lr_, act_buf,  # noqa: F821  (a global: _with_globals)
                     delta_buf, yb_buf, Yb_buf, stats, P, ctl)
            else:
                # int64(p): the loop index is int64 where Numba types the loop and uint64
                # in the body it outlines; either would compile _work once more
                _work(params, layers, act_off, X, perm, batch_size, lr_, act_buf, delta_buf,
                      P, int64(p), ctl)

    region = pjit(_with_globals(region, LEAD=lead))

    def persistent_epoch(params, layers, act_off, X, y, Y, perm, batch_size, lr, act_buf,
                         delta_buf, yb_buf, Yb_buf, stats, P):
        """The whole plain-SGD epoch in one parallel region of P shares (see the module
        docstring), with ``train_epoch``'s arguments and results (stats[3] = 1); the first
        mini-batch is gathered and its first product run before. False if the workers did
        not join in time: nothing was updated, and the caller (``run_epoch``) runs
        ``train_epoch``."""
        lr_ = params.dtype.type(lr)
        stats[2] = -1.0
        stats[3] = 1.0
        D0 = X.shape[1]
        L = layers.shape[0]
        nb = min(batch_size, perm.shape[0])
        K0 = layers[0, 0]
        A0 = _rows(act_buf, act_off[0], nb, D0)
        gather(X, y, Y, perm, 0, A0, yb_buf, Yb_buf)
        W0, b0 = _layer(params, layers, 0)
        _forward_tiles_par(A0, W0, b0, _rows(act_buf, act_off[1], nb, K0),
                           ACT_SIGMOID if SIG and L > 1 else ACT_IDENTITY)
        kind = KIND  # noqa: F841  (the cache key's closure cell)
        ctl = np.zeros((P + 1) * _LINE, np.int64)
        REGION(params, layers, act_off, X, y, Y, perm, batch_size, lr_, act_buf, delta_buf,  # noqa: F821
               yb_buf, Yb_buf, stats, P, ctl)
        return ctl[_JOIN] >= 0

    return jit(_with_globals(persistent_epoch, REGION=region))


def _with_globals(fn, **names):
    """``fn`` (its code, name and closure) with ``names`` added to a copy of its globals."""
    g = pytypes.FunctionType(fn.__code__, dict(fn.__globals__, **names), fn.__name__,
                             fn.__defaults__, fn.__closure__)
    g.__qualname__, g.__module__, g.__doc__ = fn.__qualname__, fn.__module__, fn.__doc__
    return g


@jit
def _work(params, layers, act_off, X, perm, batch_size, lr_, act_buf, delta_buf, P, p, ctl):
    """Share p >= 1 of the persistent epoch: at each step it gathers its rows of the next
    mini-batch (rows p − 1, p − 1 + (P − 1), ...) while the leader runs the serial work,
    then its share of the first layer's update and the next product."""
    if not _work_join(ctl):
        return
    N, D0 = perm.shape[0], X.shape[1]
    K0 = layers[0, 0]
    W0 = _layer(params, layers, 0)[0]
    mine = _GO + _LINE * p
    step = 0
    in_delta = False
    for s in range(0, N, batch_size):
        nb = min(batch_size, N - s)
        nn = min(batch_size, N - s - nb)
        A0 = _rows(delta_buf if in_delta else act_buf, act_off[0], nb, D0)
        An = _rows(act_buf if in_delta else delta_buf, act_off[0], nn, D0)
        # An's slot held the previous step's rows: wait until every share of that step
        # (the leader's and the other workers') is done with them
        if step > 0:
            if _wait_at_least(ctl, _GO, 2 * step) < 0:
                return
            for q in range(1, P):
                if q != p:
                    _wait_at_least(ctl, _GO + _LINE * q, 2 * step)
        _gather_rows(X, perm, s + nb, An, p - 1, P - 1)
        store_release(ctl, mine, 2 * step + 1)
        if _wait_at_least(ctl, _GO, 2 * step + 1) < 0:
            return
        dZ0 = _rows(delta_buf, act_off[1], nb, K0)
        out = _rows(act_buf, act_off[1], nn, K0)
        acc_then_dot_share(dZ0, A0, W0, -lr_, An, out, p, P)
        store_release(ctl, mine, 2 * step + 2)
        in_delta = not in_delta
        step += 1


def _persistent_epoch(params, layers, act_off, hidden_code, loss_code, acc_code, X, y, Y,
                      perm, batch_size, lr, small_max, tile_min, par_min, act_buf,
                      delta_buf, yb_buf, Yb_buf, stats, P):
    """The persistent epoch of this network kind (``persistent_epoch_for``)."""
    long_rows = layers.shape[0] > 0 and int(layers[-1, 0]) >= LONG_ROW
    return persistent_epoch_for(hidden_code, loss_code, acc_code, long_rows)(
        params, layers, act_off, X, y, Y, perm, batch_size, lr, act_buf, delta_buf, yb_buf,
        Yb_buf, stats, P)
