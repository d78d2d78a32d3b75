"""One whole training epoch of an :class:`fastnn.MLP` in compiled code.

``train_epoch`` runs every mini-batch of an epoch without returning to Python:
it gathers the rows of the mini-batch (in the order of a permutation drawn in
Python, once per epoch, by the model's NumPy Generator), runs the forward pass,
the loss gradient, backpropagation and the SGD update, and accumulates the
epoch's loss and accuracy. Every buffer is allocated by the caller once per
``fit``; a step allocates nothing.

Parameters live in one flat buffer: all weights first (layer by layer, each
(K, D) in C order), then all biases. ``layers[l] = (K, D, w_off, b_off)``. The
activations of a mini-batch live in one flat buffer too: ``A_0`` (the gathered
input rows) at ``act_off[0]``, ``A_l`` (the output of layer l, the logits for
the last layer) at ``act_off[l]``; the gradient w.r.t. ``A_l``'s pre-activation
is at the same offset of ``delta_buf``.

The forward product of a batch of fewer than ``NT_MAX_ROWS`` rows is the
register-tiled ``fastnn.kernels._gemm.gemm_nt`` (faster than BLAS there; its parallel
variant from ``EPOCH_PARALLEL_MIN_FMAS`` multiply-adds, with the same bits); larger
batches and the backward products go straight to BLAS ``sgemm``/``dgemm``
(``fastnn.kernels._blas.gemm``, no ``np.dot`` layout checks or copies), one gemm
(beta = 0) per block of rows in the forward pass. Bias and activation are applied
to each block in cache. The
backward pass has two code paths, chosen per mini-batch by its size ``nb``:

* ``nb <= small_max`` (``SMALL_MAX`` = 1: single rows only; BLAS is faster from two
  rows up): hand-written axpy loops (they vectorise; the project compiles
  without ``reassoc``, so dot-product loops would not). With plain SGD
  (no momentum, weight decay or L1) the weight update is fused into the backward
  pass: ``W[k] -= (lr·dZ[i,k]) · A[i]`` row by row, with ``dA = dZ W`` computed
  from the old W first; no gradient buffer is written.
* otherwise: ``dA = dZ W`` (gemm, from the old W) ⊙ H(1 − H); then, with plain
  SGD, the update is fused into the weight-gradient GEMM: ``W ← W − lr·dZᵀA`` is
  one gemm with alpha = −lr, beta = 1 accumulating into W (``b −= lr·Σ dZ`` in a
  small loop); no gradient buffer is written and there is no separate pass over
  the parameters. Otherwise ``dW = dZᵀA`` (gemm, beta = 0), ``db = Σ dZ`` and
  ``sgd_update_jit`` over the flat weights and biases (momentum, weight decay, L1).

Both compute the same mathematics (SPEC "Gradients"/"Updates"); results agree to
rounding. Integer codes select activation and loss (see ``fastnn.model``):

    hidden_code: 0 sigmoid, 1 identity
    loss_code:   0 softmax + cross-entropy (labels)   dZ = (P − Y)/N
                 1 sigmoid + binary cross-entropy     dZ = (σ(Z) − Y)/N
                 2 sigmoid + quadratic cost           dZ = (σ(Z) − Y) σ(Z)(1 − σ(Z))/N
                 3 identity + quadratic cost          dZ = (Z − Y)/N, E = Σ(Z − Y)²/(2N)
    acc_code:    0 none, 1 argmax of the row vs label, 2 (z > 0) vs (y > 0.5)
"""
from __future__ import annotations

import numba
import numpy as np

from .kernels._blas import gemm
from .kernels._config import jit, wide_vectors
from .kernels._gemm import NT_MAX_ROWS, gemm_nt, gemm_nt_parallel
from .kernels.cross_entropy import sce_grad_labels_rows
from .kernels.linear import _bias_act_rows, _block_rows
from .kernels.sgd import sgd_update_jit
from .kernels.sigmoid_losses import sigmoid_bce_grad_jit, sigmoid_mse_grad_jit

#: Forward products of at least this many multiply-adds (nb·K·D) in a batch of fewer
#: than NT_MAX_ROWS rows run on all of Numba's threads (gemm_nt_parallel, the same bits
#: as gemm_nt). 784-100-10 at 2 threads, three alternating pairs of runs of
#: ``fastnn bench --ops train_step --contenders mlp``: batch 64 (5.0M multiply-adds)
#: 232/243/304 µs per step against 260/283/330 serial. Alone, the parallel tiles win
#: even at batch 10 (20 vs 26 µs), but in the epoch, between OpenBLAS calls, a batch-10
#: step with them took 78-98 µs instead of 42-57: small batches stay serial.
EPOCH_PARALLEL_MIN_FMAS = 1 << 22

# The epoch is cached and calls a parallel kernel. A cached function that reaches
# parfor code must not run before Numba's threading layer is up: loaded from the cache
# (which does not launch it, unlike compiling), the epoch segfaulted in a fresh process
# (tests/test_model.py runs one). numba.get_num_threads() launches the layer (once; ~20 ms).
numba.get_num_threads()

HIDDEN_SIGMOID = 0
HIDDEN_IDENTITY = 1

LOSS_SOFTMAX_CE = 0
LOSS_SIGMOID_BCE = 1
LOSS_SIGMOID_MSE = 2
LOSS_IDENTITY_MSE = 3

#: Mini-batches of at most this many rows use the hand-written loops. With the direct
#: gemm (and the fused SGD GEMM) BLAS wins from two rows up: on the 784-100-10 float32
#: epoch, small_max 4 -> 0 took batch 2 from ~0.92 to ~0.70 s and batch 4 from ~0.76
#: to ~0.44 s; for one row the loops (with the gemv forward) are still ~10% faster
#: (~1.05-1.1 s vs ~1.2 s). 2-core Sapphire Rapids, OpenBLAS small-matrix kernels.
SMALL_MAX = 1


@jit
def identity_mse_grad_jit(Z, Y, dZ):
    """Identity output + quadratic cost: ``E = Σ(Z − Y)²/(2N)``, ``dZ = (Z − Y)/N``."""
    N, K = Z.shape
    inv_n = Z.dtype.type(1.0) / Z.dtype.type(N)
    total = 0.0
    for i in range(N):
        for k in range(K):
            r = Z[i, k] - Y[i, k]
            total += np.float64(r) * np.float64(r)
            dZ[i, k] = r * inv_n
    return Z.dtype.type(total / (2 * N))


@jit
def _loss_grad(loss_code, Z, yb, Yb, dZ):
    if loss_code == 0:
        return sce_grad_labels_rows(Z, yb, dZ)
    elif loss_code == 1:
        return sigmoid_bce_grad_jit(Z, Yb, dZ)
    elif loss_code == 2:
        return sigmoid_mse_grad_jit(Z, Yb, dZ)
    return identity_mse_grad_jit(Z, Yb, dZ)


@jit
def _correct(acc_code, Z, yb, Yb):
    """Number of rows of the mini-batch classified correctly."""
    n = 0
    if acc_code == 1:
        for i in range(Z.shape[0]):
            best = 0
            for k in range(1, Z.shape[1]):
                if Z[i, k] > Z[i, best]:
                    best = k
            if best == yb[i]:
                n += 1
    elif acc_code == 2:
        zero = Z.dtype.type(0.0)
        half = Z.dtype.type(0.5)
        for i in range(Z.shape[0]):
            if (Z[i, 0] > zero) == (Yb[i, 0] > half):
                n += 1
    return n


@jit
def _delta_small(dZ, W, H, dA, sigmoid):
    """dA = (dZ W) ⊙ H ⊙ (1 − H) for a sigmoid layer H, dZ W for identity."""
    nb, K = dZ.shape
    D = W.shape[1]
    one = W.dtype.type(1.0)
    for i in range(nb):
        for d in range(D):
            dA[i, d] = 0
        for k in range(K):
            c = dZ[i, k]
            for d in range(D):
                dA[i, d] += c * W[k, d]
        if sigmoid:
            for d in range(D):
                h = H[i, d]
                dA[i, d] *= h * (one - h)


@jit
def _grad_small(dZ, A, dW, db):
    """dW = dZᵀ A, db = dZᵀ 1 (overwritten)."""
    nb, K = dZ.shape
    D = A.shape[1]
    for k in range(K):
        s = dZ[0, k]
        for d in range(D):
            dW[k, d] = s * A[0, d]
        for i in range(1, nb):
            c = dZ[i, k]
            s += c
            for d in range(D):
                dW[k, d] += c * A[i, d]
        db[k] = s


@jit
def _bias_sgd(dZ, b, lr):
    """b −= lr · Σ_i dZ[i] (column sums in row order)."""
    nb, K = dZ.shape
    for k in range(K):
        s = dZ[0, k]
        for i in range(1, nb):
            s += dZ[i, k]
        b[k] -= lr * s


@jit
def _update_small(dZ, A, W, b, lr):
    """Plain SGD fused with the gradient: W -= lr dZᵀ A, b -= lr dZᵀ 1."""
    nb, K = dZ.shape
    D = A.shape[1]
    _bias_sgd(dZ, b, lr)
    for k in range(K):
        for i in range(nb):
            c = lr * dZ[i, k]
            for d in range(D):
                W[k, d] -= c * A[i, d]


@jit
def _forward(A, W, b, out, sigmoid):
    """out = σ(A Wᵀ + b) (sigmoid) or A Wᵀ + b. Batches of fewer than NT_MAX_ROWS rows:
    the register-tiled gemm_nt (kernels/_gemm.py) for the whole batch. Larger ones: one
    direct sgemm/dgemm (beta = 0) per block of rows. Bias and activation are applied to
    each block while it is in cache (linear.py's row pass)."""
    wide_vectors()   # the sigmoid loop may use 512-bit vectors
    nb, D = A.shape
    K = W.shape[0]
    act = 1 if sigmoid else 0
    if nb < NT_MAX_ROWS:
        if nb * K * D >= EPOCH_PARALLEL_MIN_FMAS:
            gemm_nt_parallel(A, W, out)     # the same bits as gemm_nt
        else:
            gemm_nt(A, W, out)
        _bias_act_rows(out, b, act, 0, nb)
        return
    R = _block_rows(nb, K)
    for i0 in range(0, nb, R):
        i1 = min(i0 + R, nb)
        gemm(True, False, K, i1 - i0, D, 1.0, W, D, A[i0:i1], D, 0.0, out[i0:i1], K)  # blkᵀ = W A_blkᵀ
        _bias_act_rows(out, b, act, i0, i1)


@jit
def _delta(dZ, W, H, dA, sigmoid):
    """dA = (dZ W) ⊙ H ⊙ (1 − H) (sigmoid) or dZ W, per block of rows (direct gemm)."""
    nb, K = dZ.shape
    D = W.shape[1]
    one = W.dtype.type(1.0)
    R = _block_rows(nb, D)
    for i0 in range(0, nb, R):
        i1 = min(i0 + R, nb)
        blk = dA[i0:i1]
        gemm(False, False, D, i1 - i0, K, 1.0, W, D, dZ[i0:i1], K, 0.0, blk, D)  # blkᵀ = Wᵀ dZᵀ
        if sigmoid:
            for i in range(i1 - i0):
                for d in range(D):
                    h = H[i0 + i, d]
                    blk[i, d] *= h * (one - h)


@jit
def _update_gemm(dZ, A, W, b, lr):
    """Plain SGD fused into the weight-gradient GEMM: W ← W − lr dZᵀ A as one
    gemm with alpha = −lr, beta = 1 (Wᵀ += −lr Aᵀ dZ column-major); b −= lr dZᵀ 1.
    No gradient buffer is written."""
    nb, K = dZ.shape
    D = A.shape[1]
    _bias_sgd(dZ, b, lr)
    gemm(False, True, D, K, nb, -lr, A, D, dZ, K, 1.0, W, D)


@jit
def _grad_gemm(dZ, A, dW, db):
    """dW = dZᵀ A (one gemm, beta = 0), db = dZᵀ 1 (overwritten)."""
    nb, K = dZ.shape
    D = A.shape[1]
    gemm(False, True, D, K, nb, 1.0, A, D, dZ, K, 0.0, dW, D)
    for k in range(K):
        s = dZ[0, k]
        for i in range(1, nb):
            s += dZ[i, k]
        db[k] = s


@jit
def train_epoch(params, grads, velocity, n_weights, layers, act_off, hidden_code, loss_code,
                acc_code, X, y, Y, perm, batch_size, lr, momentum, weight_decay, l1,
                small_max, act_buf, delta_buf, yb_buf, Yb_buf, stats):
    """Run one epoch; see the module docstring.

    params, grads, velocity : (P,) flat buffers (velocity updated when momentum > 0)
    X : (N, D0) inputs;  y : (N,) int64 labels or (0,);  Y : (N, K) float targets or (0, K)
    perm : (N,) int64 order of the rows;  batch_size >= 1
    act_buf, delta_buf : flat, batch_size · Σ widths;  yb_buf (batch_size,), Yb_buf (batch_size, K)
    stats : (3,) float64, written: [Σ loss·nb, number correct, failing step (−1: none)]
    A non-finite loss stops the epoch before that step's update: stats[2] = step (0-based).
    """
    _train_epoch(params, grads, velocity, n_weights, layers, act_off, hidden_code, loss_code,
                 acc_code, X, y, Y, perm, batch_size, lr, momentum, weight_decay, l1,
                 small_max, True, act_buf, delta_buf, yb_buf, Yb_buf, stats)


@jit
def _train_epoch(params, grads, velocity, n_weights, layers, act_off, hidden_code, loss_code,
                 acc_code, X, y, Y, perm, batch_size, lr, momentum, weight_decay, l1,
                 small_max, fuse, act_buf, delta_buf, yb_buf, Yb_buf, stats):
    """``train_epoch`` with one more switch: ``fuse`` (False: plain SGD on batches
    above ``small_max`` writes the gradient and runs ``sgd_update_jit``, as the other
    optimisers do; for tests of the fused path)."""
    T = params.dtype.type
    lr_ = T(lr)
    L = layers.shape[0]
    N = X.shape[0]
    D0 = X.shape[1]
    K = Yb_buf.shape[1]
    plain = momentum == 0 and weight_decay == 0 and l1 == 0
    have_y = y.shape[0] > 0
    have_Y = Y.shape[0] > 0
    loss_sum = 0.0
    n_correct = 0
    stats[2] = -1.0
    step = 0
    for s in range(0, N, batch_size):
        nb = min(batch_size, N - s)
        small = nb <= small_max
        fused = plain and (small or fuse)
        # gather the mini-batch (rows perm[s:s + nb]) into contiguous buffers
        A0 = act_buf[act_off[0]:act_off[0] + nb * D0].reshape((nb, D0))
        for j in range(nb):
            r = perm[s + j]
            for d in range(D0):
                A0[j, d] = X[r, d]
            if have_y:
                yb_buf[j] = y[r]
            if have_Y:
                for k in range(K):
                    Yb_buf[j, k] = Y[r, k]
        yb = yb_buf[:nb]
        Yb = Yb_buf[:nb]
        # forward
        for l in range(L):
            Kl = layers[l, 0]
            Dl = layers[l, 1]
            W = params[layers[l, 2]:layers[l, 2] + Kl * Dl].reshape((Kl, Dl))
            b = params[layers[l, 3]:layers[l, 3] + Kl]
            A = act_buf[act_off[l]:act_off[l] + nb * Dl].reshape((nb, Dl))
            out = act_buf[act_off[l + 1]:act_off[l + 1] + nb * Kl].reshape((nb, Kl))
            _forward(A, W, b, out, hidden_code == 0 and l < L - 1)
        Z = act_buf[act_off[L]:act_off[L] + nb * K].reshape((nb, K))
        dZ = delta_buf[act_off[L]:act_off[L] + nb * K].reshape((nb, K))
        loss = _loss_grad(loss_code, Z, yb, Yb, dZ)
        if not np.isfinite(loss):
            stats[2] = step
            break
        loss_sum += np.float64(loss) * nb
        n_correct += _correct(acc_code, Z, yb, Yb)
        # backward (and, for plain SGD, the fused update)
        for l in range(L - 1, -1, -1):
            Kl = layers[l, 0]
            Dl = layers[l, 1]
            W = params[layers[l, 2]:layers[l, 2] + Kl * Dl].reshape((Kl, Dl))
            b = params[layers[l, 3]:layers[l, 3] + Kl]
            A = act_buf[act_off[l]:act_off[l] + nb * Dl].reshape((nb, Dl))
            dZl = delta_buf[act_off[l + 1]:act_off[l + 1] + nb * Kl].reshape((nb, Kl))
            dW = grads[layers[l, 2]:layers[l, 2] + Kl * Dl].reshape((Kl, Dl))
            db = grads[layers[l, 3]:layers[l, 3] + Kl]
            dA = delta_buf[act_off[l]:act_off[l] + nb * Dl].reshape((nb, Dl))   # unused for l = 0
            if small:
                if l > 0:
                    _delta_small(dZl, W, A, dA, hidden_code == 0)   # with the old W
                if plain:
                    _update_small(dZl, A, W, b, lr_)
                else:
                    _grad_small(dZl, A, dW, db)
            else:
                if l > 0:
                    _delta(dZl, W, A, dA, hidden_code == 0)         # with the old W
                if fused:
                    _update_gemm(dZl, A, W, b, lr_)
                else:
                    _grad_gemm(dZl, A, dW, db)
        if not fused:
            P = params.shape[0]
            sgd_update_jit(params[:n_weights], grads[:n_weights], lr, momentum,
                           velocity[:n_weights], weight_decay, l1, False)
            sgd_update_jit(params[n_weights:], grads[n_weights:], lr, momentum,
                           velocity[n_weights:P], 0.0, 0.0, False)
        step += 1
    stats[0] = loss_sum
    stats[1] = n_correct
