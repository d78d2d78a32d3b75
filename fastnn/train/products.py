"""The compiled pieces every training loop of :mod:`fastnn.train` is made of: the
network codes, the gathers of a mini-batch, the loss gradients of the compiled epochs,
the accuracy counts, and the products of a layer, one small compiled function per path
(tiles, parallel tiles, BLAS, BLAS blocks on Numba's threads).

Used by the epoch and the data-parallel step (:mod:`fastnn.train.compiled`) and the
persistent epoch (:mod:`fastnn.train.persistent`); the layout of the flat buffers is
described in :mod:`fastnn.train.compiled`.
"""
from __future__ import annotations

import numba
import numpy as np

from ..kernels.identity_mse import identity_mse_grad_jit  # noqa: F401  (the epochs' loss)
from ..kernels.machine.blas import gemm
from ..kernels._config import jit, wide_vectors
from ..kernels.machine.gemm import gemm_nt, gemm_nt_parallel, gemm_tn_acc, gemm_tn_acc_parallel
from ..kernels.fast.linear import (bias_act_rows, block_rows, delta_rows, col_sums, delta_tiles,
                              delta_tiles_parallel, tn_col_blocks_parallel)

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

#: Accuracy codes (``acc_code``): none (regression), the row's argmax against its label,
#: (z > 0) against (y > 0.5) for one sigmoid output.
ACCURACY_NONE = 0
ACCURACY_LABELS = 1
ACCURACY_SIGN = 2

#: The ``act`` argument of the bias-and-activation kernels (kernels/linear.py).
ACT_IDENTITY = 0
ACT_SIGMOID = 1


@jit
def _correct_labels(Z, yb):
    """Rows whose argmax is their label."""
    n = 0
    for i in range(Z.shape[0]):
        best = 0
        for k in range(1, Z.shape[1]):
            if Z[i, k] > Z[i, best]:
                best = k
        if best == yb[i]:
            n += 1
    return n


@jit
def _correct_sign(Z, Yb):
    """Rows with (z > 0) == (y > 0.5) (one sigmoid output)."""
    n = 0
    zero = Z.dtype.type(0.0)
    half = Z.dtype.type(0.5)
    for i in range(Z.shape[0]):
        if (Z[i, 0] > zero) == (Yb[i, 0] > half):
            n += 1
    return n


@jit(inline="always")
def _layer(params, layers, l):
    """Views of layer l's weights W (K, D) and bias b (K,) in the flat parameters (or
    their gradients in the flat gradient buffer)."""
    K, D = layers[l, 0], layers[l, 1]
    return (params[layers[l, 2]:layers[l, 2] + K * D].reshape((K, D)),
            params[layers[l, 3]:layers[l, 3] + K])


@jit(inline="always")
def _rows(buf, off, nb, width):
    """The (nb, width) block of a flat buffer that starts at off."""
    return buf[off:off + nb * width].reshape((nb, width))


@jit
def _gather_rows(X, perm, s, A0, j0, dj):
    """Rows j0, j0 + dj, ... of the mini-batch: A0[j] = X[perm[s + j]]."""
    nb, D0 = A0.shape
    for j in range(j0, nb, dj):
        r = perm[s + j]
        for d in range(D0):
            A0[j, d] = X[r, d]


@jit
def _gather_labels(y, Y, perm, s, nb, yb_buf, Yb_buf):
    """yb_buf[:nb] (labels, when y has rows) or Yb_buf[:nb] (targets) of the rows
    perm[s:s + nb]."""
    K = Yb_buf.shape[1]
    for j in range(nb):
        r = perm[s + j]
        if y.shape[0] > 0:
            yb_buf[j] = y[r]
        if Y.shape[0] > 0:
            for k in range(K):
                Yb_buf[j, k] = Y[r, k]


@jit
def gather(X, y, Y, perm, s, A0, yb_buf, Yb_buf):
    """The mini-batch of rows perm[s:s + nb] (nb = A0.shape[0]) into contiguous buffers:
    A0 (nb, D0), and yb_buf[:nb] (labels, when y has rows) or Yb_buf[:nb] (targets)."""
    _gather_rows(X, perm, s, A0, 0, 1)
    _gather_labels(y, Y, perm, s, A0.shape[0], yb_buf, Yb_buf)


@jit
def bias_sgd(dZ, b, lr):
    """b −= lr · Σ_i dZ[i] (column sums in row order)."""
    nb, K = dZ.shape
    for k in range(K):
        s = dZ[0, k]
        for i in range(1, nb):
            s += dZ[i, k]
        b[k] -= lr * s


# --- the products of a layer, one small compiled function per path -------------------
@jit
def _forward_tiles(A, W, b, out, act):
    """out = act(A Wᵀ + b) on the serial register tiles (act 1: sigmoid, 0: identity)."""
    wide_vectors()   # the sigmoid loop may use 512-bit vectors
    gemm_nt(A, W, out)
    bias_act_rows(out, b, act, 0, A.shape[0])


@jit
def _forward_tiles_par(A, W, b, out, act):
    """As _forward_tiles on the parallel tiles (the same bits)."""
    wide_vectors()
    gemm_nt_parallel(A, W, out)
    bias_act_rows(out, b, act, 0, A.shape[0])


@jit
def _forward_blas(A, W, b, out, act):
    """One direct sgemm/dgemm (beta = 0) per block of rows, bias and activation applied
    to each block while it is in cache (linear.py's row pass)."""
    wide_vectors()
    nb, D = A.shape
    K = W.shape[0]
    R = block_rows(nb, K)
    for i0 in range(0, nb, R):
        i1 = min(i0 + R, nb)
        gemm(True, False, K, i1 - i0, D, 1.0, W, D, A[i0:i1], D, 0.0, out[i0:i1], K)  # blkᵀ = W A_blkᵀ
        bias_act_rows(out, b, act, i0, i1)


@jit
def _delta_blas(dZ, W, H, dA, sigmoid):
    """dA = (dZ W) ⊙ H ⊙ (1 − H) (sigmoid) or dZ W, per block of rows (direct gemm)."""
    nb = dZ.shape[0]
    R = block_rows(nb, W.shape[1])
    for i0 in range(0, nb, R):
        delta_rows(dZ, W, H, dA, i0, min(i0 + R, nb), sigmoid)


@jit
def _update_blas(dZ, A, W, b, lr):
    """Plain SGD fused into the weight-gradient GEMM: W ← W − lr dZᵀ A as one gemm with
    alpha = −lr, beta = 1 (Wᵀ += −lr Aᵀ dZ column-major); b −= lr dZᵀ 1. No gradient
    buffer is written."""
    nb, K = dZ.shape
    D = A.shape[1]
    bias_sgd(dZ, b, lr)
    gemm(False, True, D, K, nb, -lr, A, D, dZ, K, 1.0, W, D)


@jit
def _update_blas_par(dZ, A, W, b, lr):
    """_update_blas by blocks of columns over Numba's threads."""
    bias_sgd(dZ, b, lr)
    tn_col_blocks_parallel(dZ, A, W, -lr, 1.0)


@jit
def _grad_blas(dZ, A, dW, db):
    """dW = dZᵀ A (one gemm, beta = 0), db = dZᵀ 1 (overwritten)."""
    nb, K = dZ.shape
    D = A.shape[1]
    gemm(False, True, D, K, nb, 1.0, A, D, dZ, K, 0.0, dW, D)
    col_sums(dZ, db)


@jit
def _grad_blas_par(dZ, A, dW, db):
    """_grad_blas by blocks of columns over Numba's threads."""
    tn_col_blocks_parallel(dZ, A, dW, 1.0, 0.0)
    col_sums(dZ, db)


@jit
def _delta_tiles(dZ, W, H, dA, sigmoid):
    """dA = (dZ W) ⊙ H(1 − H) on the serial tiles."""
    delta_tiles(dZ, W, H, dA, sigmoid)


@jit
def _delta_tiles_par(dZ, W, H, dA, sigmoid):
    """dA = (dZ W) ⊙ H(1 − H) on the parallel tiles (the same bits)."""
    delta_tiles_parallel(dZ, W, H, dA, sigmoid)


@jit
def _update_tiles(dZ, A, W, b, lr):
    """Plain SGD on the serial tiles: b −= lr Σ dZ, W += (−lr) dZᵀ A. (dZ goes in as a
    view of layout 'A', as delta_tiles passes dZᵀ: gemm_tn_acc compiles once.)"""
    bias_sgd(dZ, b, lr)
    gemm_tn_acc(dZ[:, ::1], A, W, -lr)


@jit
def _update_tiles_par(dZ, A, W, b, lr):
    """_update_tiles on the parallel tiles (the same bits)."""
    bias_sgd(dZ, b, lr)
    gemm_tn_acc_parallel(dZ[:, ::1], A, W, -lr)


@jit
def _grad_tiles(dZ, A, dW, db):
    """dW = dZᵀ A on the serial tiles, db = dZᵀ 1."""
    dW[:] = 0
    gemm_tn_acc(dZ[:, ::1], A, dW, dW.dtype.type(1.0))
    col_sums(dZ, db)


@jit
def _grad_tiles_par(dZ, A, dW, db):
    """_grad_tiles on the parallel tiles (the same bits)."""
    dW[:] = 0
    gemm_tn_acc_parallel(dZ[:, ::1], A, dW, dW.dtype.type(1.0))
    col_sums(dZ, db)

