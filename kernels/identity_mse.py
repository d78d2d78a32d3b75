"""Identity output with the quadratic cost, and its gradient w.r.t. the outputs.

SPEC "Losses":     E = (1/2N) Σ_i ‖Z[i] − Y[i]‖²   (Z the network's outputs, no activation)
SPEC "Gradients":  ∂E/∂Z = (Z − Y)/N

Raw kernels: destination passing, no validation; Z, Y, dZ (N, K) C-contiguous of one
dtype, N >= 1; dZ overwritten; the loss is accumulated in float64 and returned as a
scalar of Z's dtype.

    identity_mse_grad(Z, Y, dZ) -> loss

Not a registered operation of the public API (``fastnn.MLP(output="identity",
loss="mse")`` is its one user, and the training epochs call it): the three forms are
in :data:`IDENTITY_MSE_GRAD`, which ``fastnn.train`` picks from by ``impl``.
"""
from __future__ import annotations

import numpy as np

from ._config import jit
from .machine.scalar import as_dtype_scalar


# --- reference: the formula, one element at a time --------------------------------
def identity_mse_grad_loop(Z, Y, dZ):
    """``E = Σ(Z − Y)²/(2N)``, ``dZ = (Z − Y)/N`` (dZ overwritten), one element at a time."""
    N, K = Z.shape
    total = 0.0
    for i in range(N):
        for k in range(K):
            r = float(Z[i, k]) - float(Y[i, k])
            total += r * r
            dZ[i, k] = r / N
    return as_dtype_scalar(total / (2 * N), Z.dtype)


# --- NumPy broadcasting -------------------------------------------------------------
def identity_mse_grad_vectorized(Z, Y, dZ):
    """As :func:`identity_mse_grad_loop`, with NumPy."""
    N = Z.shape[0]
    np.subtract(Z, Y, out=dZ)
    total = float(np.sum(np.square(dZ, dtype=np.float64)))
    dZ *= Z.dtype.type(1.0) / Z.dtype.type(N)
    return as_dtype_scalar(total / (2 * N), Z.dtype)


# --- Numba: one pass, the loss in float64 --------------------------------------------
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


#: impl -> kernel (the "cuda" one lives in kernels/cuda).
IDENTITY_MSE_GRAD = {"loop": identity_mse_grad_loop,
                     "vectorized": identity_mse_grad_vectorized,
                     "jit": identity_mse_grad_jit}
