"""The register-tiled ``Z = X Wᵀ`` kernels (kernels/_gemm.py) and the paths of the jit
linear kernels that use them.

Every tile shape and edge is reached (B mod 4 and N mod 6 over all residues, K = 0, 1
and longer than one 16-lane vector); serial and parallel kernels give identical bits;
both agree with a float64 product within a dot-product error bound.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
import reference as ref
from fastnn.kernels._gemm import NT_MAX_ROWS, NT_PARALLEL_MIN_FMAS, gemm_nt, gemm_nt_parallel
from numerics import DTYPES, assert_close

EPS = {np.dtype(np.float32): 2.0 ** -24, np.dtype(np.float64): 2.0 ** -53}


def _check_product(Z, X, W):
    exact = X.astype(np.float64) @ W.astype(np.float64).T
    scale = np.abs(X).astype(np.float64) @ np.abs(W).astype(np.float64).T
    # 16 interleaved partial sums of K/16 terms, then 16 added: (K/16 + 4) roundings
    bound = (X.shape[1] / 16 + 5) * EPS[Z.dtype] * scale + 1e-300
    err = np.abs(Z.astype(np.float64) - exact)
    assert (err <= bound).all(), f"max error / bound {np.max(err / bound):.2f}"


SHAPES = [(B, N, K) for B in range(1, 10) for N in (1, 5, 6, 7, 11, 12, 13) for K in (0, 1, 17)]
SHAPES += [(10, 100, 784), (33, 128, 784), (NT_MAX_ROWS - 1, 10, 100), (3, 2, 2000)]


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_nt_tiles_and_edges(dtype, rng):
    for B, N, K in SHAPES:
        X = rng.standard_normal((B, K)).astype(dtype)
        W = rng.standard_normal((N, K)).astype(dtype)
        Z = np.full((B, N), np.nan, dtype)
        Zp = np.full((B, N), np.nan, dtype)
        gemm_nt(X, W, Z)
        gemm_nt_parallel(X, W, Zp)
        assert Z.dtype == dtype
        assert np.array_equal(Z, Zp), (B, N, K)       # every element written, same bits
        _check_product(Z, X, W)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B", [1, 7, 64, NT_MAX_ROWS - 1, NT_MAX_ROWS, 600])
def test_linear_jit_paths(B, dtype, rng):
    # 784-128: B = 1 serial tiles, 7+ parallel tiles, NT_MAX_ROWS and above BLAS blocks
    X = rng.standard_normal((B, 784)).astype(dtype)
    W = (rng.standard_normal((128, 784)) * 0.05).astype(dtype)
    b = rng.standard_normal(128).astype(dtype)
    assert (B * 128 * 784 >= NT_PARALLEL_MIN_FMAS) == (B >= 7)
    assert_close(fastnn.linear(X, W, b, impl="jit"), ref.linear(X, W, b), dtype, scale=10.0,
                 what=f"linear B={B}")
    assert_close(fastnn.linear_sigmoid(X, W, b, impl="jit"), ref.linear_sigmoid(X, W, b), dtype,
                 scale=10.0, what=f"linear_sigmoid B={B}")


@pytest.mark.parametrize("B", [50, 600])
def test_linear_jit_same_bits_serial_and_parallel(B, rng):
    from fastnn.kernels import linear
    X = rng.standard_normal((B, 300)).astype(np.float32)
    W = rng.standard_normal((120, 300)).astype(np.float32)
    b = rng.standard_normal(120).astype(np.float32)
    serial = linear.linear_sigmoid_jit(X, W, b, np.empty((B, 120), np.float32))
    dispatched = fastnn.linear_sigmoid(X, W, b, impl="jit")   # parallel tiles / BLAS
    assert np.array_equal(serial, dispatched)
