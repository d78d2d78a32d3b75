"""sigmoid and sigmoid_backward: the logistic function and its derivative.

SPEC "Notation"/"Forward":  H = σ(Z),  σ(z) = 1/(1+e^(−z)), computed piecewise
(e^z/(1+e^z) for z < 0) so that no exponent is positive: no overflow, no warning,
no NaN for any finite input, float32 or float64.
SPEC "Gradients": σ'(z) = σ(z)(1 − σ(z)) = H ⊙ (1 − H), from the forward output.

Raw kernels: destination passing, no validation. Arrays are 1-D and contiguous
(the API flattens any shape); ``out`` may be the input (in place).

    sigmoid(Z, out)                  Z, out: (M,)          out = σ(Z)
    sigmoid_backward(dH, H, out)     dH, H, out: (M,)      out = dH ⊙ H ⊙ (1 − H)
                                                           (overwrites out)
"""
from __future__ import annotations

import math

import numpy as np

from ._config import jit, wide_vectors
from ._registry import register
from .machine.scalar import sigmoid as _sig

_DOC = "H = σ(Z), piecewise stable"
_DOC_B = "dZ = dH ⊙ H ⊙ (1 − H)"


# --- reference: the formula, one element at a time ---------------------------
def sigmoid_py(z):
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)  # z < 0 (or NaN): e <= 1, no overflow
    return e / (1.0 + e)


@register("sigmoid", "loop", _DOC)
def sigmoid_loop(Z, out):
    for i in range(Z.shape[0]):
        out[i] = sigmoid_py(float(Z[i]))  # NaN: fails z >= 0, exp(NaN) = NaN
    return out


@register("sigmoid_backward", "loop", _DOC_B)
def sigmoid_backward_loop(dH, H, out):
    for i in range(H.shape[0]):
        h = float(H[i])
        out[i] = float(dH[i]) * h * (1.0 - h)
    return out


# --- NumPy: the same two branches, as masks ------------------------------------
@register("sigmoid", "vectorized")
def sigmoid_vectorized(Z, out):
    e = np.exp(-np.abs(Z))          # e^(−|z|) <= 1: never overflows
    s = 1 / (1 + e)                 # σ(|z|)
    np.copyto(out, np.where(Z >= 0, s, e * s))   # σ(z) = e·σ(|z|) for z < 0
    return out


@register("sigmoid_backward", "vectorized")
def sigmoid_backward_vectorized(dH, H, out):
    np.multiply(dH, H * (1 - H), out=out)
    return out


# --- Numba: one pass, branch-free, vectorised exp -------------------------------
@register("sigmoid", "jit")
@jit
def sigmoid_jit(Z, out):
    wide_vectors()   # the sigmoid loop below may use 512-bit vectors
    # In place, the loop reads and writes one array: given two arrays at one address,
    # LLVM's runtime alias check fails and its scalar fallback loop runs (7x slower).
    if Z.ctypes.data == out.ctypes.data:
        for i in range(out.shape[0]):
            out[i] = _sig(out[i])
    else:
        for i in range(Z.shape[0]):
            out[i] = _sig(Z[i])
    return out


@register("sigmoid_backward", "jit")
@jit
def sigmoid_backward_jit(dH, H, out):
    one = H.dtype.type(1.0)
    if dH.ctypes.data == out.ctypes.data:     # in place on dH (see sigmoid_jit)
        for i in range(H.shape[0]):
            h = H[i]
            out[i] = out[i] * h * (one - h)
    else:
        for i in range(H.shape[0]):
            h = H[i]
            out[i] = dH[i] * h * (one - h)
    return out
