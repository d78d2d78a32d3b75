"""The transposed short-row path of softmax and softmax_cross_entropy_grad (16 rows
at a time through AVX-512 gathers, kernels/machine/gather.py).

The gather intrinsics move exactly the elements they document; the
transposed path gives the same bits as the row-by-row path for every row length
it takes (C <= TRANSPOSE_MAX_C), every row count around the 16-row groups, and
special values (NaN, ±inf, ±0, rows of −inf); both agree with float64.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn.kernels import tuning
import reference as ref
from fastnn.kernels.fast import cross_entropy as ce
from fastnn.kernels.fast import softmax
from fastnn.kernels._config import jit
from fastnn.kernels.machine.gather import gather_cols16, gather_rows16
from numerics import DTYPES, assert_close

CS = list(range(1, softmax.TRANSPOSE_MAX_C + 2))
ROWS = [1, 15, 16, 17, 31, 48, 409, 410, 1000, 2053]


@jit
def _gather(T, ldt, Z, C, i0):
    gather_rows16(T, ldt, Z, C, i0)


@jit
def _gather_back(Z, C, T, ldt, i0, tab):
    gather_cols16(Z, C, T, ldt, i0, tab)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("C", [1, 2, 7, 10, 16])
def test_intrinsics_move_exactly_the_documented_elements(dtype, C):
    R, ldt, i0 = 40, 48, 16
    Z = np.arange(R * C, dtype=dtype) + 0.5
    T = np.full(C * ldt, -1, dtype)
    _gather(T, ldt, Z, C, i0)
    expect = np.full((C, ldt), -1, dtype)
    expect[:, i0:i0 + 16] = Z.reshape(R, C)[i0:i0 + 16].T
    assert np.array_equal(T.reshape(C, ldt), expect)      # nothing else touched
    expect_back = np.full((R, C), -7, dtype)
    expect_back[i0:i0 + 16] = Z.reshape(R, C)[i0:i0 + 16]
    k = np.arange(16 * C)
    tab = ((k % C) * ldt + k // C).astype(np.int32)
    back = np.full(R * C, -7, dtype)
    _gather_back(back, C, T, ldt, i0, tab)
    assert np.array_equal(back.reshape(R, C), expect_back)


def _special(Z, rng):
    R, C = Z.shape
    Z[rng.integers(0, R, max(1, R // 7)), rng.integers(0, C, max(1, R // 7))] = 0.0
    Z[rng.integers(0, R, max(1, R // 7)), rng.integers(0, C, max(1, R // 7))] = -0.0
    if R > 12:
        Z[2, :] = -np.inf                 # no distribution: NaN row
        Z[5, 0] = np.nan
        Z[7, C // 2] = np.inf             # NaN row
        Z[9, 0] = -np.inf                 # probability 0
        Z[11, :] = 3.0e38 if Z.dtype == np.float32 else 1e308
    return Z


@jit
def _softmax_rows_only(Z, out):
    R, C = Z.shape
    rows = max(1, tuning.ROW_BLOCK_ELEMS // C)
    for r0 in range(0, R, rows):
        if C < softmax.LONG_ROW:
            softmax._softmax_block_short(Z, out, r0, min(r0 + rows, R), C)
        else:
            softmax._softmax_block_long(Z, out, r0, min(r0 + rows, R), C)
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("C", CS)
def test_softmax_transposed_equals_row_path(dtype, C):
    rng = np.random.default_rng(C)
    for R in ROWS:
        Z = _special((rng.standard_normal((R, C)) * 20).astype(dtype), rng)
        rows = _softmax_rows_only(Z, np.empty_like(Z))
        for kern in (softmax.softmax_serial, softmax.softmax_parallel):
            got = kern(Z, np.empty_like(Z))
            assert np.array_equal(got, rows, equal_nan=True), (R, kern)
        inplace = Z.copy()
        softmax.softmax_serial(inplace, inplace)
        assert np.array_equal(inplace, rows, equal_nan=True)
        finite = np.isfinite(Z).all(axis=1)
        assert_close(rows[finite], ref.softmax(Z[finite]), dtype)
        if R > 12:
            assert np.isnan(rows[[2, 5, 7]]).all()
            if C > 1:
                assert rows[9, 0] == 0 and np.all(np.isfinite(rows[9]))
            assert_close(rows[11], ref.softmax(Z[11:12])[0], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("C", CS)
def test_sce_grad_transposed_equals_row_path(dtype, C):
    rng = np.random.default_rng(100 + C)
    for N in ROWS:
        Z = (rng.standard_normal((N, C)) * 20).astype(dtype)
        Z[rng.integers(0, N, max(1, N // 5)), 0] = 0.0
        if N > 12:
            Z[9, :] = -40.0
            Z[10, :] = 3.0e38 if dtype == np.float32 else 1e308
        y = rng.integers(0, C, N)
        d_rows = np.empty_like(Z)
        l_rows = ce.sce_grad_labels_rows(Z, y, d_rows)     # the training epoch's kernel
        # the transposed kernels, the short-row one with vectorised logarithms, and the
        # entry point (which picks one of them by N and C)
        for kern in (ce.sce_grad_labels_jit, ce.sce_grad_labels_parallel,
                     ce.sce_grad_labels_short) + ((_api_sce_grad,) if C > 1 else ()):
            d = np.empty_like(Z)
            assert kern(Z, y, d) == l_rows
            assert np.array_equal(d, d_rows), (N, kern)
        L_ref, G_ref = ref.softmax_cross_entropy_grad(Z, y)
        assert_close(l_rows, L_ref, dtype, scale=np.abs(Z.astype(np.float64)).max() + 10)
        assert_close(d_rows, G_ref, dtype, scale=1 / N)


def _api_sce_grad(Z, y, d):
    loss, d[...] = fastnn.softmax_cross_entropy_grad(Z, y)
    return loss


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("C", [1, 2, 3, 4, 5, 7, 10, 16, 17, 63, 64, 65, 200])
def test_log_softmax_in_place_gives_the_out_of_place_bits(dtype, C):
    """Short and long rows, serial and parallel, in place and not: one result, close to
    the float64 reference."""
    rng = np.random.default_rng(400 + C)
    for N in (1, 5, 300, 4000):
        Z = (rng.standard_normal((N, C)) * 20).astype(dtype)
        out = softmax.log_softmax_serial(Z, np.empty_like(Z))
        for kern in (softmax.log_softmax_serial, softmax.log_softmax_parallel):
            inplace = Z.copy()
            kern(inplace, inplace)
            np.testing.assert_array_equal(inplace, out)
            np.testing.assert_array_equal(kern(Z, np.empty_like(Z)), out)
        np.testing.assert_array_equal(fastnn.log_softmax(Z), out)
        assert_close(out, ref.log_softmax(Z), dtype, scale=np.abs(Z).max() + 10)


def test_api_takes_the_transposed_path_for_short_rows():
    rng = np.random.default_rng(7)
    Z = (rng.standard_normal((70000, 10)) * 3).astype(np.float32)
    y = rng.integers(0, 10, 70000)
    P = fastnn.softmax(Z)
    assert np.array_equal(P, _softmax_rows_only(Z, np.empty_like(Z)))
    loss, dZ = fastnn.softmax_cross_entropy_grad(Z, y)
    d_rows = np.empty_like(Z)
    assert loss == ce.sce_grad_labels_rows(Z, y, d_rows) and np.array_equal(dZ, d_rows)
    assert_close(P, ref.softmax(Z), np.float32)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("C", [1, 3, 10, 17, 63, 64, 65, 200])
def test_row_length_kernels_equal_the_generic_one(dtype, C):
    """The kernels specialised to short or long rows (less to compile) give the bits
    of the generic row-by-row one, and softmax's per-row-length kernels agree with it."""
    rng = np.random.default_rng(300 + C)
    for N in (1, 7, 300, 1000):
        Z = (rng.standard_normal((N, C)) * 20).astype(dtype)
        y = rng.integers(0, C, N)
        d_gen, d_spec = np.empty_like(Z), np.empty_like(Z)
        l_gen = ce.sce_grad_labels_rows(Z, y, d_gen)
        l_spec = ce.sce_grad_labels_rows_for(C)(Z, y, d_spec)
        assert l_spec == l_gen
        np.testing.assert_array_equal(d_spec, d_gen)
        if C < tuning.LONG_ROW:
            d_short = np.empty_like(Z)
            assert ce.sce_grad_labels_short(Z, y, d_short) == l_gen
            np.testing.assert_array_equal(d_short, d_gen)
        # the loss alone (its own kernel per row length) against the reference
        L_ref = ref.softmax_cross_entropy(Z, y)
        assert_close(ce.sce_labels_jit(Z, y), L_ref, dtype, scale=np.abs(Z).max() + 10)
        # the generic kernel against the float64 reference
        L_ref, G_ref = ref.softmax_cross_entropy_grad(Z, y)
        assert_close(d_gen, G_ref, dtype, scale=1 / N)
        P = softmax.softmax_serial(Z, np.empty_like(Z))
        np.testing.assert_array_equal(softmax.softmax_parallel(Z, np.empty_like(Z)), P)
        assert_close(P, ref.softmax(Z), dtype)
