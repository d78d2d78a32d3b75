"""The Python-driven training epoch (``impl="loop"`` and ``"vectorized"``; any
implementation): one registered kernel per operation and step, through
``fastnn.kernels.IMPLS``, and the passes built of those kernels that the rest of
:class:`~fastnn.MLP` uses (forward, loss and backward, the SGD update, evaluation)."""
from __future__ import annotations

import math

import numpy as np

from ..kernels import IMPLS
from ..kernels.machine.scalar import as_dtype_scalar
from .products import ACCURACY_LABELS, ACCURACY_SIGN, HIDDEN_SIGMOID, LOSS_SIGMOID_BCE, LOSS_SIGMOID_MSE, LOSS_SOFTMAX_CE
from ..kernels.identity_mse import IDENTITY_MSE_GRAD


#: loss code -> registered op computing (loss, dZ) from the logits.
LOSS_OP = {LOSS_SOFTMAX_CE: "softmax_cross_entropy_grad",
           LOSS_SIGMOID_BCE: "sigmoid_bce_grad",
           LOSS_SIGMOID_MSE: "sigmoid_mse_grad"}


def loss_kernel(code, impl):
    """The kernel computing (loss, dZ) from the logits for loss code ``code``."""
    if code not in LOSS_OP and impl == "cuda":
        from ..kernels.cuda import kernels
        return kernels().identity_mse_grad
    return IMPLS[LOSS_OP[code]][impl] if code in LOSS_OP else IDENTITY_MSE_GRAD[impl]


class Stop(Exception):
    """Ctrl-C between steps of a Python-driven epoch."""


def forward_into(net, acts, nb, impl):
    """The forward pass of the rows ``acts[0][:nb]``; returns the logits."""
    fwd_h = IMPLS[net.hidden_op][impl]
    fwd_o = IMPLS["linear"][impl]
    L = net.n_layers
    for l in range(L):
        f = fwd_o if l == L - 1 else fwd_h
        f(acts[l][:nb], net.weights[l], net.biases[l], acts[l + 1][:nb])
    return acts[L][:nb]


def forward_backward(net, acts, deltas, nb, yb, Yb, impl, scale=None, ready=None):
    """Forward, loss gradient and backward on the rows ``acts[0][:nb]``; fills the
    gradient buffer; returns the loss (a NaN/inf loss returns before backward).
    ``scale``: the gradient of the loss is multiplied by it (a part of a larger
    mini-batch: nb / its rows). ``ready(l)`` is called once layer l's gradient is
    in the buffer."""
    Z = forward_into(net, acts, nb, impl)
    L = net.n_layers
    dZ = deltas[L][:nb]
    loss = loss_kernel(net.loss_code, impl)(Z, yb if net.loss_code == LOSS_SOFTMAX_CE else Yb, dZ)
    if not math.isfinite(loss):
        return loss
    if scale is not None and scale != 1:
        dZ *= net.dtype.type(scale)
    lb = IMPLS["linear_backward"][impl]
    hd = IMPLS["hidden_delta"][impl]
    sig = net.hidden_code == HIDDEN_SIGMOID
    for l in range(L - 1, -1, -1):
        dZl, A = deltas[l + 1][:nb], acts[l][:nb]
        if l == 0:
            lb(dZl, A, net.weights[l], net.gW[l], net.gb[l], None)
        elif sig:
            lb(dZl, A, net.weights[l], net.gW[l], net.gb[l], None)
            if ready is not None:
                ready(l)
            hd(dZl, net.weights[l], A, deltas[l][:nb])      # δ = (dZ W) ⊙ H ⊙ (1 − H)
            continue
        else:
            lb(dZl, A, net.weights[l], net.gW[l], net.gb[l], deltas[l][:nb])
        if ready is not None:
            ready(l)
    return loss


def sgd(net, impl, hp):
    """One SGD update of the flat parameters with the flat gradient."""
    upd = IMPLS["sgd_update"][impl]
    nw = net.n_weights
    # weight decay and L1 act on the weights only, never on the biases
    upd(net.params[:nw], net.grads[:nw], hp["lr"], hp["momentum"], net.velocity[:nw],
        hp["weight_decay"], hp["l1"], False)
    upd(net.params[nw:], net.grads[nw:], hp["lr"], hp["momentum"], net.velocity[nw:],
        0.0, 0.0, False)


def n_correct(acc_code, Z, yb, Yb):
    """Correct predictions of the logits Z (acc_code: 0 none, 1 argmax, 2 sign)."""
    if acc_code == ACCURACY_LABELS:
        return int(np.count_nonzero(np.argmax(Z, axis=1) == yb))
    if acc_code == ACCURACY_SIGN:
        return int(np.count_nonzero((Z[:, 0] > 0) == (Yb[:, 0] > 0.5)))
    return 0


def epoch_python(net, X, y, Y, acc_code, perm, B, hp, impl, bufs, guard):
    """One epoch over ``perm``, a step at a time: (Σ loss·nb, correct, failing step or −1)."""
    acts, deltas = bufs
    yb_buf = np.empty(B, np.intp)
    Yb_buf = np.empty((B, net.sizes[-1]), net.dtype)
    N = X.shape[0]
    loss_sum, correct = 0.0, 0
    for step, s in enumerate(range(0, N, B)):
        if guard.requested:
            raise Stop
        idx = perm[s:s + B]
        nb = idx.shape[0]
        np.take(X, idx, axis=0, out=acts[0][:nb])
        if y.shape[0]:
            np.take(y, idx, out=yb_buf[:nb])
        if Y.shape[0]:
            np.take(Y, idx, axis=0, out=Yb_buf[:nb])
        loss = forward_backward(net, acts, deltas, nb, yb_buf[:nb], Yb_buf[:nb], impl)
        if not math.isfinite(loss):
            return loss_sum, correct, step
        loss_sum += float(loss) * nb
        correct += n_correct(acc_code, acts[-1][:nb], yb_buf[:nb], Yb_buf[:nb])
        sgd(net, impl, hp)
    return loss_sum, correct, -1


def evaluate(net, X, labels, Y, acc_code, impl):
    """(mean loss, accuracy or NaN) of checked ``(X, labels, Y)`` at the current parameters."""
    N = X.shape[0]
    acts = [X] + [np.empty((N, w), net.dtype) for w in net.sizes[1:]]
    Z = forward_into(net, acts, N, impl)
    dZ = np.empty_like(Z)
    loss = loss_kernel(net.loss_code, impl)(
        Z, labels if net.loss_code == LOSS_SOFTMAX_CE else Y, dZ)
    acc = n_correct(acc_code, Z, labels, Y) / N if acc_code else float("nan")
    return float(loss), acc
