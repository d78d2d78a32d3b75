"""Softmax cross-entropy, mean over the batch, and its gradient w.r.t. the logits.

SPEC "Losses":     L = (1/N) Σ_i (logsumexp(Z[i,:]) − Z[i, y_i])
                   computed through logsumexp (never log(p)), each row's term as
                   (m_i − z_{i,y_i}) + log Σ_j exp(z_ij − m_i) in float64.
SPEC "Gradients":  ∂L/∂Z = (P − Y)/N,  P = softmax(Z),  Y the one-hot of y.

Targets may also be rows Y (N, C) of non-negative weights (one-hot or
probabilities): L = (1/N) Σ_i Σ_j Y[i,j] (logsumexp(Z[i,:]) − Z[i,j]) and
∂L/∂Z[i,j] = (P[i,j] · Σ_k Y[i,k] − Y[i,j]) / N, which is (P − Y)/N when rows of Y
sum to 1. Terms with Y[i,j] = 0 contribute exactly 0 (even where Z[i,j] = −inf).

Raw kernels: destination passing, no validation; N >= 1, C >= 1, labels already
checked to lie in [0, C) (Numba does not check bounds), target rows non-negative
with row sums at most half the dtype's maximum. The loss is accumulated in float64
and returned as a scalar of Z's dtype (rounded to nearest, ``as_dtype_scalar``).

Range (finite Z; every term is >= 0, so an overflow gives +inf, never NaN):

* float32: a row's term is at most 2·3.4e38 + log C (times a weight below 1.7e38 for
  target rows), so the float64 total cannot overflow: L is the mean rounded to
  float32, finite exactly when it is below 3.40282357e38 (2^128 − 2^103, half an ulp
  above float32's maximum), +inf otherwise (one sample with z_y = −3e38 and another
  logit 3e38: L = 6e38 -> +inf).
* float64: L is +inf when a row's m_i − z_{i,y_i} (for targets: any m_i − z_ij with a
  nonzero weight) or the float64 total overflows,
  also where the mean would be representable: finite for sure when
  N·(2·max|Z| + log C) < 1.797e308 (labels), e.g. max|Z| below 8.9e307 for one sample.
* dZ is always finite: softmax(Z) − Y with every entry of P in [0, 1].

    softmax_cross_entropy(Z, y) -> loss              Z (N, C); y (N,) int64 or (N, C)
    softmax_cross_entropy_grad(Z, y, dZ) -> loss     dZ (N, C), overwritten
"""
from __future__ import annotations

import math

import numpy as np

from ._registry import register
from .fast.cross_entropy import (sce_grad_labels_parallel, sce_grad_labels_rows_long,
                                 sce_grad_labels_short, sce_grad_labels_T, sce_grad_targets_jit,
                                 sce_grad_targets_parallel, sce_labels_jit, sce_targets_jit)
from .machine.scalar import as_dtype_scalar
from .softmax import row_max
from .tuning import LONG_ROW, ROWS_PARALLEL_MIN_ELEMS, SCE_TRANSPOSE_ROWS_PER_C, TRANSPOSE_MAX_C


# --- reference: the formula, one row at a time -------------------------------------
def _max_logsum_row(row):
    # logsumexp = m + log Σ exp(z − m); kept apart so that a loss term is computed as
    # (m − z) + log Σ: m + log Σ would round log Σ away when |m| is huge (float32 3e38)
    m = float(row_max(row))
    return m, math.log(sum(math.exp(float(z) - m) for z in row))


@register("softmax_cross_entropy", "loop", "L = mean_i(logsumexp(Z_i) − Z[i, y_i])")
def softmax_cross_entropy_loop(Z, y):
    N, C = Z.shape
    total = 0.0
    for i in range(N):
        m, log_s = _max_logsum_row(Z[i])
        if y.ndim == 1:
            total += (m - float(Z[i, y[i]])) + log_s
        else:
            for j in range(C):
                if y[i, j] != 0:
                    total += float(y[i, j]) * ((m - float(Z[i, j])) + log_s)
    return as_dtype_scalar(total / N, Z.dtype)


@register("softmax_cross_entropy_grad", "loop", "(L, dZ = (softmax(Z) − Y)/N)")
def softmax_cross_entropy_grad_loop(Z, y, dZ):
    N, C = Z.shape
    total = 0.0
    for i in range(N):
        m, log_s = _max_logsum_row(Z[i])
        w = 1.0 if y.ndim == 1 else sum(float(v) for v in y[i])   # Σ_k Y[i,k]
        for j in range(C):
            p = math.exp((float(Z[i, j]) - m) - log_s)
            if y.ndim == 1:
                t = 1.0 if j == y[i] else 0.0
            else:
                t = float(y[i, j])
            dZ[i, j] = (p * w - t) / N
            if t != 0:
                total += t * ((m - float(Z[i, j])) + log_s)
    return as_dtype_scalar(total / N, Z.dtype)


# --- NumPy broadcasting --------------------------------------------------------------
def _shifted_lse(Z):
    m = Z.max(axis=1, keepdims=True)
    with np.errstate(over="ignore", invalid="ignore"):
        shifted = Z - m                                  # every entry <= 0
        E = np.exp(shifted)
    s = E.sum(axis=1, keepdims=True)
    return m, E, s, np.log(s)                            # log Σ exp(Z − m)


def _vec_loss(Z, m, log_s, y, N):
    # per-row loss (m − z) + log Σ, in float64: in float32, m − z can exceed the
    # range (3e38 − (−3e38)) although the mean loss need not
    # (errstate: in float64, m − z beyond the range and a total beyond it are +inf, the
    # documented result; invalid: y · (−inf) where y = 0 and z = −inf, discarded by where)
    m64, log_s64 = m.astype(np.float64), log_s.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        if y.ndim == 1:
            per_row = (m64[:, 0] - Z[np.arange(N), y]) + log_s64[:, 0]
        else:
            terms = np.where(y != 0, y * ((m64 - Z) + log_s64), 0)
            per_row = terms.sum(axis=1)
        return per_row.sum() / N


@register("softmax_cross_entropy", "vectorized")
def softmax_cross_entropy_vectorized(Z, y):
    N = Z.shape[0]
    m, _, _, log_s = _shifted_lse(Z)
    return as_dtype_scalar(float(_vec_loss(Z, m, log_s, y, N)), Z.dtype)


@register("softmax_cross_entropy_grad", "vectorized")
def softmax_cross_entropy_grad_vectorized(Z, y, dZ):
    N = Z.shape[0]
    m, E, s, log_s = _shifted_lse(Z)
    loss = _vec_loss(Z, m, log_s, y, N)
    np.divide(E, s, out=dZ)                              # P
    if y.ndim == 1:
        dZ[np.arange(N), y] -= 1                         # P − Y
    else:
        dZ *= y.sum(axis=1, keepdims=True)
        dZ -= y
    dZ /= N
    return as_dtype_scalar(float(loss), Z.dtype)



# --- Numba: the tuned kernels of fast/cross_entropy.py ----------------------------
@register("softmax_cross_entropy", "jit")
def softmax_cross_entropy_jit(Z, y):
    return sce_labels_jit(Z, y) if y.ndim == 1 else sce_targets_jit(Z, y)


@register("softmax_cross_entropy_grad", "jit")
def softmax_cross_entropy_grad_jit(Z, y, dZ):
    """Serial below ROWS_PARALLEL_MIN_ELEMS elements, parallel over rows above. Labels,
    serial: rows of at most TRANSPOSE_MAX_C logits transposed 16 rows at a time in
    batches of at least SCE_TRANSPOSE_ROWS_PER_C·C rows, other short rows row by row with
    the logarithms vectorised, long rows one at a time (each kernel compiles on its first
    use; all give the same bits)."""
    if Z.size >= ROWS_PARALLEL_MIN_ELEMS:
        if y.ndim == 1:
            return sce_grad_labels_parallel(Z, y, dZ)
        return sce_grad_targets_parallel(Z, y, dZ)
    if y.ndim == 1:
        N, C = Z.shape
        if C <= TRANSPOSE_MAX_C and N >= SCE_TRANSPOSE_ROWS_PER_C * C:
            return sce_grad_labels_T(Z, y, dZ)
        if C < LONG_ROW:
            return sce_grad_labels_short(Z, y, dZ)
        return sce_grad_labels_rows_long(Z, y, dZ)
    return sce_grad_targets_jit(Z, y, dZ)
