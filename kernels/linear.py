"""The linear layer and its fused sigmoid forward, with their backward kernels.

SPEC "Notation"/"Forward":   Z = X Wᵀ + b      X (N, D), W (K, D) as torch.nn.Linear, b (K,)
                             H = σ(X Wᵀ + b)   (hidden layer)
SPEC "Gradients":            dW = dZᵀ X (K, D),  db = dZᵀ 1_N (K,),  dX = dZ W (N, D)
                             δ¹ = (δ² W₂) ⊙ H ⊙ (1 − H)   (hidden delta)

Raw kernels: destination passing, no validation; every array C-contiguous and of
one dtype; outputs must not overlap inputs. Backward kernels OVERWRITE their
outputs (they never accumulate).

    linear(X, W, b, out)                    out (N, K) = X Wᵀ + b
    linear_sigmoid(X, W, b, out)            out (N, K) = σ(X Wᵀ + b)
    linear_backward(dZ, X, W, dW, db, dX)   dW (K, D), db (K,), dX (N, D) or None
    hidden_delta(dZ, W, H, out)             out (N, D) = (dZ W) ⊙ H ⊙ (1 − H)
                                            dZ (N, K), W (K, D), H (N, D)

The jit entry points below choose among the tuned kernels of ``fast/linear.py`` by
batch size (its docstring says how each is built).
"""
from __future__ import annotations

import numpy as np

from ._registry import register
from .fast.linear import (affine_blocks_parallel, affine_into, backward_kernel,
                          backward_parallel, delta_kernel, hidden_delta_blocks_parallel,
                          hidden_delta_jit, linear_jit, linear_sigmoid_jit, NT_INTO)
from .machine.blas import THREAD_CONTROL, on_numba_threads
from .machine.gemm import NT_MAX_ROWS, NT_PARALLEL_MIN_FMAS, SMALL_GEMM_FMAS
from .sigmoid import sigmoid_py


# --- reference: the formulas, one element at a time -----------------------------
def _dot_row(X, i, W, k):
    acc = 0.0
    for d in range(X.shape[1]):
        acc += float(X[i, d]) * float(W[k, d])
    return acc


@register("linear", "loop", "Z = X Wᵀ + b")
def linear_loop(X, W, b, out):
    for i in range(X.shape[0]):
        for k in range(W.shape[0]):
            out[i, k] = _dot_row(X, i, W, k) + float(b[k])
    return out


@register("linear_sigmoid", "loop", "H = σ(X Wᵀ + b), fused")
def linear_sigmoid_loop(X, W, b, out):
    for i in range(X.shape[0]):
        for k in range(W.shape[0]):
            out[i, k] = sigmoid_py(_dot_row(X, i, W, k) + float(b[k]))
    return out


@register("linear_backward", "loop", "dW = dZᵀX, db = dZᵀ1, dX = dZ W")
def linear_backward_loop(dZ, X, W, dW, db, dX):
    N, K = dZ.shape
    D = X.shape[1]
    for k in range(K):
        for d in range(D):
            acc = 0.0
            for i in range(N):
                acc += float(dZ[i, k]) * float(X[i, d])
            dW[k, d] = acc
        db[k] = sum(float(dZ[i, k]) for i in range(N))
    if dX is not None:
        for i in range(N):
            for d in range(D):
                dX[i, d] = sum(float(dZ[i, k]) * float(W[k, d]) for k in range(K))
    return dW, db, dX


@register("hidden_delta", "loop", "δ¹ = (δ² W) ⊙ H ⊙ (1 − H)")
def hidden_delta_loop(dZ, W, H, out):
    N, K = dZ.shape
    for i in range(N):
        for d in range(W.shape[1]):
            g = sum(float(dZ[i, k]) * float(W[k, d]) for k in range(K))
            h = float(H[i, d])
            out[i, d] = g * h * (1.0 - h)
    return out


# --- NumPy: BLAS for the products, broadcasting for the rest ---------------------
@register("linear", "vectorized")
def linear_vectorized(X, W, b, out):
    np.matmul(X, W.T, out=out)
    out += b                                    # broadcasting (SPEC worked number 1)
    return out


@register("linear_sigmoid", "vectorized")
def linear_sigmoid_vectorized(X, W, b, out):
    Z = X @ W.T + b
    e = np.exp(-np.abs(Z))                      # stable sigmoid, as in sigmoid.py
    s = 1 / (1 + e)
    np.copyto(out, np.where(Z >= 0, s, e * s))
    return out


@register("linear_backward", "vectorized")
def linear_backward_vectorized(dZ, X, W, dW, db, dX):
    np.matmul(dZ.T, X, out=dW)
    np.sum(dZ, axis=0, out=db)
    if dX is not None:
        np.matmul(dZ, W, out=dX)
    return dW, db, dX


@register("hidden_delta", "vectorized")
def hidden_delta_vectorized(dZ, W, H, out):
    np.matmul(dZ, W, out=out)
    out *= H * (1 - H)
    return out



# --- Numba: the tuned kernels of fast/linear.py -----------------------------------
# Short batches with a product of at least NT_PARALLEL_MIN_FMAS multiply-adds:
# gemm_nt_parallel, then bias (+ sigmoid). Batches of NT_MAX_ROWS rows and more:
# affine_blocks_parallel, BLAS on Numba's threads with OpenBLAS's own threading off, so
# that bias and sigmoid run in parallel too. Before, BLAS ran on its own threads and the
# bias/sigmoid pass after it was serial (running it on Numba's threads right after
# OpenBLAS's made the two pools alternate on every call: X (4096, 784), W (128, 784)
# took 8.0-9.8 ms instead of 4.8-5.8 ms on the Xeon). That pass cost 8-10% of the
# product at 2 threads on the Zen 3 here: linear_sigmoid against a bare X @ W.T
# (NumPy's OpenBLAS, 2 threads, alternating in one process, median of 9 rounds):
# 256 / 1024 / 4096 rows 1.088 / 1.117 / 1.034 before, 1.004 / 1.024 / 0.961 this way.
# Otherwise (no thread control, see machine/blas.py) the serial jit kernel. (The size tests
# are written out in each function: they run on every call.)
NT_SERIAL, NT_PARALLEL = NT_INTO


@register("linear", "jit")
def linear_dispatch(X, W, b, out):
    N, D = X.shape
    if N < NT_MAX_ROWS:                 # the short batches first: their calls are short
        fmas = N * W.shape[0] * D
        if fmas < NT_PARALLEL_MIN_FMAS:                      # (N = 0 included)
            if fmas > SMALL_GEMM_FMAS:
                NT_SERIAL[0](X, W, b, out)
            else:
                affine_into(X, W, b, out, 0)
        else:
            NT_PARALLEL[0](X, W, b, out)
        return out
    if THREAD_CONTROL and W.shape[0] > 0:
        return on_numba_threads(affine_blocks_parallel, X, W, b, out, 0)
    return linear_jit(X, W, b, out)


@register("linear_sigmoid", "jit")
def linear_sigmoid_dispatch(X, W, b, out):
    N, D = X.shape
    if N < NT_MAX_ROWS:                 # the short batches first: their calls are short
        fmas = N * W.shape[0] * D
        if fmas < NT_PARALLEL_MIN_FMAS:                      # (N = 0 included)
            if fmas > SMALL_GEMM_FMAS:
                NT_SERIAL[1](X, W, b, out)
            else:
                affine_into(X, W, b, out, 1)
        else:
            NT_PARALLEL[1](X, W, b, out)
        return out
    if THREAD_CONTROL and W.shape[0] > 0:
        return on_numba_threads(affine_blocks_parallel, X, W, b, out, 1)
    return linear_sigmoid_jit(X, W, b, out)


# Batches of NT_MAX_ROWS rows and more: BLAS on Numba's threads, as linear_sigmoid. With
# OpenBLAS's own threads here, a training step driven from Python through the jit kernels
# (784-100-10, batch 256: linear_sigmoid, linear and hidden_delta on Numba's threads, the
# two weight gradients on OpenBLAS's) alternated the two thread pools on 2 cores, and in
# some processes every step took ~8 ms instead of ~0.9 ms (fastnn bench, train_step B=256,
# jit: pass medians 0.87, 7.95, 8.00 ms; none in nine passes since). Alone, alternating
# with that path and a bare dZ.T @ X (+ dZ @ W), 2 threads: 256 rows 0.99x bare (the old
# path 1.24x), with dX 0.98x (1.16x); 4096 rows 1.03x (1.10x), with dX 0.95x (0.96x).
@register("linear_backward", "jit")
def linear_backward_dispatch(dZ, X, W, dW, db, dX):
    N, K = dZ.shape
    if N >= NT_MAX_ROWS and THREAD_CONTROL and K > 0 and X.shape[1] > 0:
        return on_numba_threads(backward_parallel, dZ, X, W, dW, db, dX)
    return backward_kernel(N, K, X.shape[1])(dZ, X, W, dW, db, dX)


# Batches of NT_MAX_ROWS rows and more: BLAS on Numba's threads, as linear_sigmoid.
@register("hidden_delta", "jit")
def hidden_delta_dispatch(dZ, W, H, out):
    N, K = dZ.shape
    if N >= NT_MAX_ROWS and THREAD_CONTROL and K > 0 and W.shape[1] > 0:
        return on_numba_threads(hidden_delta_blocks_parallel, dZ, W, H, out, True)
    kernel = delta_kernel(N, K, W.shape[1])
    if kernel is hidden_delta_jit:
        return hidden_delta_jit(dZ, W, H, out)
    return kernel(dZ, W, H, out, True)


