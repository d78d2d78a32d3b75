"""Scalar helpers for the jit kernels, compiled per float type (inlined).

Each helper is a Numba ``overload``: at typing time it picks constants of the
argument's own type, so a float32 kernel stays in float32 (a bare ``1.0`` next
to a float32 value would promote the expression to float64).

``exp`` here is the exponential every jit kernel uses. Numba's own ``np.exp`` is
a scalar libm call on PyPI's llvmlite (no SVML), which blocks vectorisation;
``fastnn.kernels._exp`` provides a polynomial exp that LLVM vectorises.
"""
from __future__ import annotations

import numpy as np
from numba import types
from numba.extending import overload

from ._exp import EXP_NAME, fast_exp as exp  # noqa: F401  (exp in x's precision, jit only)


def _float_type(t):
    if isinstance(t, types.Float):
        return np.float32 if t.bitwidth == 32 else np.float64
    return None


def sigmoid(z):
    """Piecewise-stable logistic (jit code only)."""
    raise NotImplementedError("jit-only helper")


@overload(sigmoid)
def _ol_sigmoid(z):
    T = _float_type(z)
    if T is None:
        return None
    one = T(1.0)

    def impl(z):
        # SPEC "Forward": 1/(1+e^-z) for z >= 0, e^z/(1+e^z) for z < 0. Both
        # from e = e^-|z| <= 1, so nothing overflows; branch-free so that LLVM
        # vectorises it; NaN propagates through abs and exp.
        e = exp(-abs(z))
        s = one / (one + e)
        return s if z >= 0 else e * s

    return impl


def log1p(x):
    """log1p in x's precision (jit code only)."""
    raise NotImplementedError("jit-only helper")


@overload(log1p)
def _ol_log1p(x):
    if _float_type(x) is None:
        return None

    def impl(x):
        return np.log1p(x)

    return impl
