"""Losses of a sigmoid output layer, with their gradients w.r.t. the logits.

SPEC "Losses"/"Gradients", with ŷ = σ(Z), Z and Y of shape (N, K) (K = 1 for one
output), sums over outputs and means over the batch:

  sigmoid_bce_grad:  J = −(1/N) Σ [y log ŷ + (1−y) log(1−ŷ)],    ∂J/∂Z = (ŷ − y)/N
                     computed from the logits: y log ŷ + (1−y) log(1−ŷ)
                     = −(max(z, 0) − z·y + log1p(e^(−|z|))), finite for finite z.
  sigmoid_mse_grad:  E = (1/2N) Σ ‖ŷ − y‖²,                      δ = (ŷ − y) ⊙ ŷ ⊙ (1 − ŷ)/N

Raw kernels: destination passing, no validation; N >= 1; dZ is overwritten; the
loss is accumulated in float64 and returned as a scalar of Z's dtype.

    sigmoid_bce_grad(Z, Y, dZ) -> loss      Z, Y, dZ: (N, K)
    sigmoid_mse_grad(Z, Y, dZ) -> loss      Z, Y, dZ: (N, K)
"""
from __future__ import annotations

import math

import numpy as np

from ._config import jit, wide_vectors
from ._registry import register
from ._scalar import exp as _exp
from ._scalar import log1p as _log1p
from ._scalar import sigmoid as _sig
from .cross_entropy import as_dtype_scalar
from .sigmoid import _sigmoid_py


def _bce_term(z, y):
    # −[y log σ(z) + (1−y) log(1−σ(z))] = max(z,0) − z·y + log1p(e^−|z|)
    return max(z, 0.0) - z * y + math.log1p(math.exp(-abs(z)))


# --- reference ----------------------------------------------------------------------
@register("sigmoid_bce_grad", "loop", "(J, dZ = (σ(Z) − Y)/N), binary cross-entropy")
def sigmoid_bce_grad_loop(Z, Y, dZ):
    N, K = Z.shape
    total = 0.0
    for i in range(N):
        for k in range(K):
            z, y = float(Z[i, k]), float(Y[i, k])
            total += _bce_term(z, y)
            dZ[i, k] = (_sigmoid_py(z) - y) / N
    return as_dtype_scalar(total / N, Z.dtype)


@register("sigmoid_mse_grad", "loop", "(E, δ = (σ(Z) − Y)σ(Z)(1 − σ(Z))/N), quadratic cost")
def sigmoid_mse_grad_loop(Z, Y, dZ):
    N, K = Z.shape
    total = 0.0
    for i in range(N):
        for k in range(K):
            yhat = _sigmoid_py(float(Z[i, k]))
            r = yhat - float(Y[i, k])
            total += r * r
            dZ[i, k] = r * yhat * (1.0 - yhat) / N
    return as_dtype_scalar(total / (2 * N), Z.dtype)


# --- NumPy --------------------------------------------------------------------------
def _sigmoid_parts(Z):
    e = np.exp(-np.abs(Z))
    s = 1 / (1 + e)
    return e, np.where(Z >= 0, s, e * s)


@register("sigmoid_bce_grad", "vectorized")
def sigmoid_bce_grad_vectorized(Z, Y, dZ):
    N = Z.shape[0]
    e, yhat = _sigmoid_parts(Z)
    terms = np.maximum(Z, 0) - Z * Y + np.log1p(e)
    np.subtract(yhat, Y, out=dZ)
    dZ /= N
    return as_dtype_scalar(float(terms.sum(dtype=np.float64)) / N, Z.dtype)


@register("sigmoid_mse_grad", "vectorized")
def sigmoid_mse_grad_vectorized(Z, Y, dZ):
    N = Z.shape[0]
    _, yhat = _sigmoid_parts(Z)
    r = yhat - Y
    np.multiply(r, yhat * (1 - yhat), out=dZ)
    dZ /= N
    return as_dtype_scalar(float(np.sum(r.astype(np.float64) ** 2)) / (2 * N), Z.dtype)


# --- Numba: one pass ------------------------------------------------------------------
@register("sigmoid_bce_grad", "jit")
@jit
def sigmoid_bce_grad_jit(Z, Y, dZ):
    wide_vectors()
    N, K = Z.shape
    zero = Z.dtype.type(0.0)
    inv_n = Z.dtype.type(1.0) / Z.dtype.type(N)
    total = 0.0
    for i in range(N):
        row = zero
        for k in range(K):
            z = Z[i, k]
            y = Y[i, k]
            row += max(z, zero) - z * y + _log1p(_exp(-abs(z)))
            dZ[i, k] = (_sig(z) - y) * inv_n
        total += np.float64(row)
    return Z.dtype.type(total / N)


@register("sigmoid_mse_grad", "jit")
@jit
def sigmoid_mse_grad_jit(Z, Y, dZ):
    wide_vectors()
    N, K = Z.shape
    zero = Z.dtype.type(0.0)
    one = Z.dtype.type(1.0)
    inv_n = one / Z.dtype.type(N)
    total = 0.0
    for i in range(N):
        row = zero
        for k in range(K):
            yhat = _sig(Z[i, k])
            r = yhat - Y[i, k]
            row += r * r
            dZ[i, k] = r * yhat * (one - yhat) * inv_n
        total += np.float64(row)
    return Z.dtype.type(total / (2 * N))
