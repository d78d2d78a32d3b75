"""The identity-output quadratic cost in its three forms (kernels/identity_mse.py)."""
from __future__ import annotations

import numpy as np
import pytest

from fastnn.kernels.identity_mse import IDENTITY_MSE_GRAD
from numerics import DTYPES, assert_close


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (256, 10)])
def test_three_forms_agree_with_float64(dtype, shape):
    rng = np.random.default_rng(sum(shape))
    Z = (rng.standard_normal(shape) * 3).astype(dtype)
    Y = rng.standard_normal(shape).astype(dtype)
    N = shape[0]
    R = Z.astype(np.float64) - Y.astype(np.float64)
    E_ref, G_ref = (R * R).sum() / (2 * N), R / N
    for impl, f in IDENTITY_MSE_GRAD.items():
        dZ = np.full_like(Z, np.nan)
        E = f(Z, Y, dZ)
        # loop/vectorized return a scalar of the dtype; jit a Python float (Numba boxes
        # scalars so) holding the value rounded to the dtype
        assert np.dtype(dtype).type(E) == E, impl
        if impl != "jit":
            assert isinstance(E, np.generic) and E.dtype == dtype, impl
        assert_close(dZ, G_ref, dtype)
        assert_close(np.array(E), np.array(E_ref), dtype, scale=abs(E_ref) + 1)
    # the worked number: Z = [[1, 2]], Y = [[0, 0]] -> E = 5/2, dZ = [[1, 2]]
    dZ = np.empty((1, 2), dtype)
    assert IDENTITY_MSE_GRAD["jit"](np.array([[1, 2]], dtype), np.zeros((1, 2), dtype), dZ) == 2.5
    np.testing.assert_array_equal(dZ, [[1, 2]])
