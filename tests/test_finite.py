"""kernels/machine/finite.py: the all-finite check ``MLP.fit``/``predict`` run on their inputs."""
from __future__ import annotations

import numpy as np
import pytest

from fastnn import MLP
from fastnn.kernels.tuning import FINITE_BLOCK_ELEMS as BLOCK, FINITE_PARALLEL_MIN_ELEMS as PARALLEL_MIN
from fastnn.kernels.machine.finite import all_finite, all_finite_parallel, all_finite_serial
from numerics import DTYPES

SPECIAL = (np.nan, np.inf, -np.inf)


@pytest.mark.parametrize("dtype", DTYPES)
def test_finite_edge_values_pass(dtype):
    fi = np.finfo(dtype)
    x = np.array([0.0, -0.0, fi.max, -fi.max, fi.tiny, fi.tiny / 4, -fi.tiny / 4, 1.0] * 64, dtype)
    big = dtype(fi.max)
    assert all_finite(x) and all_finite_serial(x, big) and all_finite_parallel(x, big)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [256, BLOCK - 1, BLOCK + 1, 3 * BLOCK + 5])
def test_one_bad_value_anywhere_is_found(dtype, n, rng):
    x = rng.standard_normal(n).astype(dtype)
    big = dtype(np.finfo(dtype).max)
    assert all_finite_serial(x, big) and all_finite_parallel(x, big)
    for pos in (0, 1, 15, 16, n // 2, BLOCK - 1 if BLOCK < n else n - 2, n - 1):
        for bad in SPECIAL:
            y = x.copy()
            y[pos] = bad
            assert not all_finite_serial(y, big), (pos, bad)
            assert not all_finite_parallel(y, big), (pos, bad)
            assert not all_finite(y), (pos, bad)


def test_dispatch_matches_numpy_for_every_layout(rng):
    a = rng.standard_normal((300, 40))
    a[123, 7] = np.nan
    cases = [a, a.astype(np.float32), a.T, a[:, ::2], a.astype(np.float16), a[:3, :3],
             np.zeros((PARALLEL_MIN // 100 + 1, 100), np.float32)]
    for c in cases:
        assert all_finite(c) == bool(np.isfinite(c).all()), (c.dtype, c.shape, c.flags.c_contiguous)


def test_fit_and_predict_reject_non_finite_input_in_a_large_array(rng):
    X = rng.standard_normal((PARALLEL_MIN // 16 + 3, 16)).astype(np.float32)   # parallel path
    y = rng.integers(0, 3, X.shape[0])
    m = MLP([16, 3], dtype=np.float32, seed=0)
    before = m._params.copy()
    X[-1, -1] = np.inf
    with pytest.raises(ValueError, match="X: contains NaN or infinite values"):
        m.fit(X, y, epochs=1, batch_size=64, lr=0.1)
    with pytest.raises(ValueError, match="NaN or infinite"):
        m.predict(X)
    np.testing.assert_array_equal(m._params, before)
