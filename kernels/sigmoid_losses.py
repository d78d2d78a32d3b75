"""Losses of a sigmoid output layer, with their gradients w.r.t. the logits.

SPEC "Losses"/"Gradients", with ŷ = σ(Z), Z and Y of shape (N, K) (K = 1 for one
output), sums over outputs and means over the batch:

  sigmoid_bce_grad:  J = −(1/N) Σ [y log ŷ + (1−y) log(1−ŷ)],    ∂J/∂Z = (ŷ − y)/N
                     computed from the logits: −[y log ŷ + (1−y) log(1−ŷ)]
                     = max(z, 0) − z·y + log1p(e^(−|z|))
                     = (z·(1−y) if z >= 0 else −z·y) + log1p(e^(−|z|)),
                     a sum of two non-negative terms for y in [0, 1]: no cancellation
                     (max(z, 0) − z·y lost the result to rounding for z = 1e38,
                     y = 0.9999 in float32), and at most |z| + log 2.
  sigmoid_mse_grad:  E = (1/2N) Σ ‖ŷ − y‖²,                      δ = (ŷ − y) ⊙ ŷ ⊙ (1 − ŷ)/N

Raw kernels: destination passing, no validation; N >= 1; dZ is overwritten. Each
term (the BCE term in Z's dtype; the MSE residual r = ŷ − y in Z's dtype, squared in
float64) is added to a float64 total, element by element in the loop and jit kernels
(pairwise in NumPy's sum); the mean is rounded to Z's dtype (``as_dtype_scalar``).

Range (finite Z and Y; every term is >= 0, so an overflow gives +inf, never NaN):

* float32: the float64 total cannot overflow (each term is below 1.2e77), so the loss
  is the mean rounded to float32: finite exactly when it is below 3.40282357e38
  (2^128 − 2^103, half an ulp above float32's maximum), +inf otherwise. dZ is always finite:
  |∂J/∂Z| <= 1/N, |δ| <= |ŷ − y|/(4N).
* float64: the loss is +inf when the float64 total overflows, also where the mean
  itself would be representable: BCE needs Σ (|z| + log 2) below 1.797e308 to be
  sure of a finite J (each term is at most |z| + log 2), MSE needs Σ r² below
  1.797e308 (so every |r| below 1.34e154). dZ is always finite.

    sigmoid_bce_grad(Z, Y, dZ) -> loss      Z, Y, dZ: (N, K)
    sigmoid_mse_grad(Z, Y, dZ) -> loss      Z, Y, dZ: (N, K)
"""
from __future__ import annotations

import math

import numpy as np

from ._config import jit, wide_vectors
from ._registry import register
from .machine.scalar import exp as _exp
from .machine.scalar import log1p as _log1p
from .machine.scalar import sigmoid as _sig
from .machine.scalar import as_dtype_scalar
from .sigmoid import sigmoid_py


def _bce_term(z, y):
    # −[y log σ(z) + (1−y) log(1−σ(z))] = max(z,0) − z·y + log1p(e^−|z|), with
    # max(z,0) − z·y written as z·(1−y) or −z·y: both >= 0 for y in [0, 1]
    return (z * (1.0 - y) if z >= 0 else -z * y) + math.log1p(math.exp(-abs(z)))


# --- reference ----------------------------------------------------------------------
@register("sigmoid_bce_grad", "loop", "(J, dZ = (σ(Z) − Y)/N), binary cross-entropy")
def sigmoid_bce_grad_loop(Z, Y, dZ):
    N, K = Z.shape
    total = 0.0
    for i in range(N):
        for k in range(K):
            z, y = float(Z[i, k]), float(Y[i, k])
            total += _bce_term(z, y)
            dZ[i, k] = (sigmoid_py(z) - y) / N
    return as_dtype_scalar(total / N, Z.dtype)


@register("sigmoid_mse_grad", "loop", "(E, δ = (σ(Z) − Y)σ(Z)(1 − σ(Z))/N), quadratic cost")
def sigmoid_mse_grad_loop(Z, Y, dZ):
    N, K = Z.shape
    total = 0.0
    for i in range(N):
        for k in range(K):
            yhat = sigmoid_py(float(Z[i, k]))
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
    with np.errstate(over="ignore", invalid="ignore"):
        # over: a float64 total beyond the range is +inf (documented); invalid: only
        # from non-finite input (inf·0), whose NaN is the documented result
        terms = np.where(Z >= 0, Z * (1 - Y), -Z * Y) + np.log1p(e)
        total = float(terms.sum(dtype=np.float64))
    np.subtract(yhat, Y, out=dZ)
    dZ /= N
    return as_dtype_scalar(total / N, Z.dtype)


@register("sigmoid_mse_grad", "vectorized")
def sigmoid_mse_grad_vectorized(Z, Y, dZ):
    N = Z.shape[0]
    _, yhat = _sigmoid_parts(Z)
    r = yhat - Y
    np.multiply(r, yhat * (1 - yhat), out=dZ)
    dZ /= N
    with np.errstate(over="ignore"):          # a float64 total beyond the range: +inf
        total = float(np.sum(np.square(r, dtype=np.float64)))
    return as_dtype_scalar(total / (2 * N), Z.dtype)


# --- Numba: one pass ------------------------------------------------------------------
@register("sigmoid_bce_grad", "jit")
@jit
def sigmoid_bce_grad_jit(Z, Y, dZ):
    wide_vectors()
    N, K = Z.shape
    zero = Z.dtype.type(0.0)
    one = Z.dtype.type(1.0)
    inv_n = one / Z.dtype.type(N)
    total = 0.0
    for i in range(N):
        for k in range(K):
            z = Z[i, k]
            y = Y[i, k]
            t = (z * (one - y) if z >= zero else -z * y) + _log1p(_exp(-abs(z)))
            total += np.float64(t)       # float64: a float32 row sum overflowed at 3.4e38
            dZ[i, k] = (_sig(z) - y) * inv_n
    return Z.dtype.type(total / N)


@register("sigmoid_mse_grad", "jit")
@jit
def sigmoid_mse_grad_jit(Z, Y, dZ):
    wide_vectors()
    N, K = Z.shape
    one = Z.dtype.type(1.0)
    inv_n = one / Z.dtype.type(N)
    total = 0.0
    for i in range(N):
        for k in range(K):
            yhat = _sig(Z[i, k])
            r = yhat - Y[i, k]
            r64 = np.float64(r)          # squared in float64: r·r overflowed float32 at 1.8e19
            total += r64 * r64
            dZ[i, k] = r * yhat * (one - yhat) * inv_n
    return Z.dtype.type(total / (2 * N))
