"""The training epoch on the GPU (``impl="cuda"``): data, parameters, activations and
gradients on the device for the whole epoch (see :mod:`fastnn.kernels.cuda`)."""
from __future__ import annotations

import math

import numpy as np

from ..kernels import IMPLS
from .products import HIDDEN_SIGMOID, LOSS_SOFTMAX_CE
from .python_epoch import Stop, loss_kernel


def cuda_buffers(net, B, X, y, Y):
    """Device arrays for a fit: the data (copied once), parameters, gradients, velocity
    (copied in at each epoch's start, out at its end), activations and deltas."""
    from numba import cuda
    dt = net.dtype
    d = {"X": cuda.to_device(X), "y": cuda.to_device(y if y.shape[0] else np.zeros(1, np.intp)),
         "Y": cuda.to_device(Y if Y.shape[0] else np.zeros((1, net.sizes[-1]), dt)),
         "params": cuda.device_array(net.params.shape, dt),
         "grads": cuda.device_array(net.grads.shape, dt),
         "velocity": cuda.device_array(net.velocity.shape, dt),
         "acts": [cuda.device_array((B, w), dt) for w in net.sizes],
         "deltas": [cuda.device_array((B, w), dt) for w in net.sizes],
         "yb": cuda.device_array(B, np.intp), "Yb": cuda.device_array((B, net.sizes[-1]), dt),
         "counter": cuda.device_array(1, np.int64)}
    P, G = d["params"], d["grads"]
    d["W"] = [P[o:o + K * D].reshape(K, D) for K, D, o, _ in net.layers]
    d["b"] = [P[o:o + K] for K, _, _, o in net.layers]
    d["gW"] = [G[o:o + K * D].reshape(K, D) for K, D, o, _ in net.layers]
    d["gb"] = [G[o:o + K] for K, _, _, o in net.layers]
    return d


def epoch_cuda(net, X, y, Y, acc_code, perm, B, hp, d, guard):
    """The Python-driven epoch with every array on the device: mini-batches gathered
    there by index, the kernels of IMPLS[op]["cuda"] on device arrays; per step the
    one transfer is the loss (8 bytes, which also synchronises: the non-finite check).
    The host parameters change only when the epoch completes."""
    from numba import cuda

    from ..kernels.cuda import kernels
    k = kernels()
    d["params"].copy_to_device(net.params)
    d["velocity"].copy_to_device(net.velocity)
    d["counter"].copy_to_device(np.zeros(1, np.int64))
    dperm = cuda.to_device(np.ascontiguousarray(perm, dtype=np.intp))
    acts, deltas, W, b = d["acts"], d["deltas"], d["W"], d["b"]
    L = net.n_layers
    fwd_h, fwd_o = IMPLS[net.hidden_op]["cuda"], IMPLS["linear"]["cuda"]
    loss_fn = loss_kernel(net.loss_code, "cuda")
    lb, hd = IMPLS["linear_backward"]["cuda"], IMPLS["hidden_delta"]["cuda"]
    upd = IMPLS["sgd_update"]["cuda"]
    sig = net.hidden_code == HIDDEN_SIGMOID
    labels = net.loss_code == LOSS_SOFTMAX_CE
    nw = net.n_weights
    N = X.shape[0]
    loss_sum = 0.0
    for step, s in enumerate(range(0, N, B)):
        if guard.requested:
            raise Stop
        nb = min(B, N - s)
        idx = dperm[s:s + nb]
        k.gather_rows(d["X"], idx, acts[0][:nb])
        yb, Yb = d["yb"][:nb], d["Yb"][:nb]
        if y.shape[0]:
            k.gather(d["y"], idx, yb)
        if Y.shape[0]:
            k.gather_rows(d["Y"], idx, Yb)
        for l in range(L):
            (fwd_o if l == L - 1 else fwd_h)(acts[l][:nb], W[l], b[l], acts[l + 1][:nb])
        Z = acts[L][:nb]
        loss = loss_fn(Z, yb if labels else Yb, deltas[L][:nb])
        if not math.isfinite(loss):
            return loss_sum, 0, step
        loss_sum += float(loss) * nb
        k.count_correct(Z, yb, Yb, acc_code, d["counter"])
        for l in range(L - 1, -1, -1):
            dZl, A = deltas[l + 1][:nb], acts[l][:nb]
            if l == 0 or sig:
                lb(dZl, A, W[l], d["gW"][l], d["gb"][l], None)
                if l:
                    hd(dZl, W[l], A, deltas[l][:nb])
            else:
                lb(dZl, A, W[l], d["gW"][l], d["gb"][l], deltas[l][:nb])
        P, G, V = d["params"], d["grads"], d["velocity"]
        upd(P[:nw], G[:nw], hp["lr"], hp["momentum"], V[:nw], hp["weight_decay"], hp["l1"],
            False)
        upd(P[nw:], G[nw:], hp["lr"], hp["momentum"], V[nw:], 0.0, 0.0, False)
    d["params"].copy_to_host(net.params)
    d["velocity"].copy_to_host(net.velocity)
    return loss_sum, int(d["counter"].copy_to_host()[0]), -1
