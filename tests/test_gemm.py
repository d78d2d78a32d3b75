"""The register-tiled ``Z = X Wᵀ`` and ``Out += alpha·Cᵀ A`` kernels (kernels/machine/gemm.py) and
the paths of the jit linear kernels that use them.

Every tile shape and edge is reached (B mod 4 and N mod 6 over all residues, K = 0, 1
and longer than one 16-lane vector); serial and parallel kernels give identical bits;
both agree with a float64 product within a dot-product error bound.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from fastnn.kernels import tuning
import reference as ref
from fastnn.kernels.machine.gemm import (NT_MAX_ROWS, NT_PARALLEL_MIN_FMAS, gemm_nt, gemm_nt_parallel,
                                  gemm_tn_acc, gemm_tn_acc_nt_parallel, gemm_tn_acc_parallel)
from numerics import DTYPES, assert_close

EPS = {np.dtype(np.float32): 2.0 ** -24, np.dtype(np.float64): 2.0 ** -53}


def _check_product(Z, X, W):
    exact = X.astype(np.float64) @ W.astype(np.float64).T
    scale = np.abs(X).astype(np.float64) @ np.abs(W).astype(np.float64).T
    # 16 interleaved partial sums of K/16 terms, then 16 added: (K/16 + 4) roundings
    bound = (X.shape[1] / 16 + 5) * EPS[Z.dtype] * scale + 1e-300
    err = np.abs(Z.astype(np.float64) - exact)
    assert (err <= bound).all(), f"max error / bound {np.max(err / bound):.2f}"


SHAPES = [(B, N, K) for B in range(1, 10) for N in (1, 4, 5, 6, 7, 10, 11, 12, 13)
          for K in (0, 1, 17)]
SHAPES += [(10, 100, 784), (33, 128, 784), (NT_MAX_ROWS - 1, 10, 100), (3, 2, 2000)]


def test_spread_block_is_a_permutation_mixing_light_blocks():
    from fastnn.kernels.machine.gemm import n_column_blocks, spread_block
    for N in range(1, 400):
        n = n_column_blocks(N)
        order = [spread_block(p, N) for p in range(n)]
        assert sorted(order) == list(range(n)), N
    assert [n_column_blocks(N) for N in (6, 10, 11, 99, 100, 101)] == [1, 2, 3, 19, 17, 18]
    order = [spread_block(p, 99) for p in range(19)]      # 16 blocks of 6 columns, 3 of 1
    assert [i for i, c in enumerate(order) if c >= 16] == [3, 9, 15]
    order = [spread_block(p, 101) for p in range(18)]     # 16 of 6, one of 4, one of 1
    assert [c >= 16 for c in order[:9]].count(True) == 1
    assert [c >= 16 for c in order[9:]].count(True) == 1


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
    # 784-128: B = 1 BLAS (small-matrix range, SMALL_GEMM_FMAS; serial tiles without
    # AVX-512), 7+ parallel tiles, NT_MAX_ROWS and above BLAS blocks
    X = rng.standard_normal((B, 784)).astype(dtype)
    W = (rng.standard_normal((128, 784)) * 0.05).astype(dtype)
    b = rng.standard_normal(128).astype(dtype)
    assert (B * 128 * 784 >= NT_PARALLEL_MIN_FMAS) == (B >= 7)
    assert_close(fastnn.linear(X, W, b, impl="jit"), ref.linear(X, W, b), dtype, scale=10.0,
                 what=f"linear B={B}")
    assert_close(fastnn.linear_sigmoid(X, W, b, impl="jit"), ref.linear_sigmoid(X, W, b), dtype,
                 scale=10.0, what=f"linear_sigmoid B={B}")


def test_linear_jit_same_bits_serial_and_parallel(rng):
    from fastnn.kernels.fast import linear
    B = 50      # under NT_MAX_ROWS: parallel tiles against serial tiles
    X = rng.standard_normal((B, 300)).astype(np.float32)
    W = rng.standard_normal((120, 300)).astype(np.float32)
    b = rng.standard_normal(120).astype(np.float32)
    serial = linear.linear_sigmoid_jit(X, W, b, np.empty((B, 120), np.float32))
    dispatched = fastnn.linear_sigmoid(X, W, b, impl="jit")
    assert np.array_equal(serial, dispatched)


@pytest.mark.parametrize("dtype", DTYPES)
def test_short_batch_kernels_give_the_bits_of_the_generic_one(dtype, rng):
    """The per-activation tile kernels the entry points call (NT_INTO, serial and
    parallel) against affine_into, which holds every path and both activations."""
    from fastnn.kernels.fast import linear
    for B, K, D in ((1, 10, 784), (7, 100, 33), (50, 128, 300), (NT_MAX_ROWS - 1, 6, 5)):
        X = rng.standard_normal((B, D)).astype(dtype)
        W = rng.standard_normal((K, D)).astype(dtype)
        b = rng.standard_normal(K).astype(dtype)
        for act in (0, 1):
            ref_out = np.empty((B, K), dtype)
            linear.affine_into(X, W, b, ref_out, act)
            if B * K * D <= linear.SMALL_GEMM_FMAS:
                continue           # affine_into takes BLAS there, the tiles do not
            for parallel in (0, 1):
                out = np.full((B, K), np.nan, dtype)
                linear.NT_INTO[parallel][act](X, W, b, out)
                np.testing.assert_array_equal(out, ref_out)
            api = fastnn.linear_sigmoid if act else fastnn.linear
            np.testing.assert_array_equal(api(X, W, b, impl="jit"), ref_out)


def _blas_threads():
    from fastnn.kernels.machine import blas as _blas
    # NumPy's wheels bundle OpenBLAS: the jit kernels call it and can switch its threads
    assert _blas.THREAD_CONTROL == _blas.GEMM_LIBRARY.startswith("NumPy's")
    assert _blas.THREAD_CONTROL, _blas.GEMM_LIBRARY
    return _blas._threads


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(NT_MAX_ROWS, 128, 784), (257, 7, 33), (1500, 10, 100),
                                   (300, 5, 0)])
def test_linear_large_batches_same_bits_for_any_thread_count(dtype, shape, rng):
    """N >= NT_MAX_ROWS: single-threaded BLAS per block of rows on Numba's threads
    (linear, linear_sigmoid, hidden_delta, and linear_backward: dW by blocks of columns,
    dX by blocks of rows). The bits do not depend on Numba's thread count nor on
    OpenBLAS's, whose setting is restored after each call."""
    import numba
    from fastnn.kernels.fast import linear
    get, set_ = _blas_threads()
    N, K, D = shape
    X = rng.standard_normal((N, D)).astype(dtype)
    W = (rng.standard_normal((K, D)) * 0.1).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    dZ = rng.standard_normal((N, K)).astype(dtype)
    H0 = rng.random((N, D)).astype(dtype)
    assert linear.n_par_blocks(N) % 2 == 0 and -(-N // linear.n_par_blocks(N)) <= tuning.PAR_BLOCK_ROWS
    old_numba, old_blas = numba.get_num_threads(), get()
    runs = []
    try:
        for nt in sorted({1, min(2, numba.config.NUMBA_NUM_THREADS)}):
            numba.set_num_threads(nt)
            for bt in (1, 2):
                set_(bt)
                runs.append((fastnn.linear_sigmoid(X, W, b, impl="jit"),
                             fastnn.linear(X, W, b, impl="jit"),
                             fastnn.hidden_delta(dZ, W, H0, impl="jit"),
                             *fastnn.linear_backward(dZ, X, W, impl="jit"),
                             *fastnn.linear_backward(dZ, X, W, compute_dX=False, impl="jit")[:2]))
                assert get() == bt
    finally:
        numba.set_num_threads(old_numba)
        set_(old_blas)
    for run in runs[1:]:
        assert all(np.array_equal(a, a0) for a, a0 in zip(run, runs[0]))
    H, Z, dH, dW, db, dX, dW2, db2 = runs[0]
    assert all(a.dtype == dtype for a in runs[0])
    assert np.array_equal(dW2, dW) and np.array_equal(db2, db)
    rW, rb, rX = ref.linear_backward(dZ, X, W)
    n = np.sqrt(N)
    assert_close(dW, rW, dtype, scale=10.0 * n, what=f"dW {shape}")
    assert_close(db, rb, dtype, scale=10.0 * n, what=f"db {shape}")
    assert_close(dX, rX, dtype, scale=10.0, what=f"dX {shape}")
    assert_close(dH, ref.hidden_delta(dZ, W, H0), dtype, scale=10.0, what=f"delta {shape}")
    assert_close(Z, ref.linear(X, W, b), dtype, scale=10.0, what=f"linear {shape}")
    assert_close(H, ref.linear_sigmoid(X, W, b), dtype, scale=10.0, what=f"sigmoid {shape}")


def test_on_numba_threads_restores_openblas_threads_on_error_and_under_concurrency(rng):
    import threading
    from fastnn.kernels.machine import blas as _blas
    get, set_ = _blas_threads()
    old = get()
    set_(2)
    try:
        seen = []

        def boom():
            seen.append(get())
            raise RuntimeError("inside")

        with pytest.raises(RuntimeError, match="inside"):
            _blas.on_numba_threads(boom)
        assert seen == [1] and get() == 2          # off inside, restored after the error
        X = rng.standard_normal((300, 64)).astype(np.float32)
        W = rng.standard_normal((10, 64)).astype(np.float32)
        b = rng.standard_normal(10).astype(np.float32)
        want = fastnn.linear_sigmoid(X, W, b)
        got, errors = [], []

        def worker():
            try:
                for _ in range(20):
                    got.append(fastnn.linear_sigmoid(X, W, b))
            except BaseException as e:       # pragma: no cover - reported below
                errors.append(e)

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and len(got) == 80
        assert all(np.array_equal(h, want) for h in got)
        assert get() == 2                          # concurrent callers restored the user's count
    finally:
        set_(old)


ACC_SHAPES = [(n_in, n_out, D) for n_in in range(1, 10) for n_out in (1, 3, 4, 5, 8, 11)
              for D in (0, 1, 17)]
ACC_SHAPES += [(10, 100, 784), (33, 128, 784), (255, 10, 100), (2, 3, 2000)]


def _check_acc(new, old, C, A, alpha):
    """|new − (old + alpha·CᵀA)| within n_in fused (or 2·n_in unfused) roundings."""
    C64, A64 = C.astype(np.float64), A.astype(np.float64)
    exact = old.astype(np.float64) + alpha * (C64.T @ A64)
    scale = np.abs(old).astype(np.float64) + abs(alpha) * (np.abs(C64).T @ np.abs(A64))
    bound = (2 * C.shape[0] + 2) * EPS[new.dtype] * scale + 1e-300
    err = np.abs(new.astype(np.float64) - exact)
    assert (err <= bound).all(), f"max error / bound {np.max(err / bound):.2f}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_tn_acc_tiles_and_edges(dtype, rng):
    """Every tile (4x4, 2x4, 1x4, 1x1) and edge: n_in mod 4 and n_out mod 4 over all
    residues, D = 0, 1 and past one vector; serial and parallel give the same bits."""
    for n_in, n_out, D in ACC_SHAPES:
        C = rng.standard_normal((n_in, n_out)).astype(dtype)
        A = rng.standard_normal((n_in, D)).astype(dtype)
        old = rng.standard_normal((n_out, D)).astype(dtype)
        alpha = -0.37
        out, outp = old.copy(), old.copy()
        gemm_tn_acc(C, A, out, alpha)
        gemm_tn_acc_parallel(C, A, outp, alpha)
        assert out.dtype == dtype
        assert np.array_equal(out, outp), (n_in, n_out, D)
        _check_acc(out, old, C, A, alpha)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_tn_acc_transposed_coefficients(dtype, rng):
    """dA = dZ W as the epoch computes it: C = dZᵀ (a transposed, F-ordered view)."""
    dZ = rng.standard_normal((7, 10)).astype(dtype)
    W = rng.standard_normal((10, 33)).astype(dtype)
    dA = np.zeros((7, 33), dtype)
    gemm_tn_acc(dZ.T, W, dA, 1.0)
    _check_acc(dA, np.zeros_like(dA), dZ.T, W, 1.0)
    dAp = np.zeros_like(dA)
    gemm_tn_acc_parallel(dZ.T, W, dAp, 1.0)
    assert np.array_equal(dA, dAp)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_update_and_forward_gives_the_bits_of_the_two_kernels(dtype, rng):
    """gemm_tn_acc_nt_parallel (W += alpha CᵀA, then Zn = Xn Wᵀ, one region) against
    gemm_tn_acc then gemm_nt: the same W and Zn, bit for bit, for 1 to 5 shares of W's rows
    (groups of 12; N from 1 to 130 covers every edge of both tiles and shares that
    hold only edges) and Numba threads 1 and 2; Zn is written everywhere."""
    import numba
    shapes = [(n_in, N, D, B) for n_in, N, D, B in
              [(10, 100, 784, 10), (3, 7, 33, 5), (10, 12, 20, 1), (10, 13, 20, 2),
               (4, 1, 9, 3), (11, 130, 100, 7), (1, 25, 5, 1), (5, 24, 0, 4), (9, 37, 17, 9)]]
    before = numba.get_num_threads()
    try:
        for n_in, N, D, B in shapes:
            C = rng.standard_normal((n_in, N)).astype(dtype)
            A = rng.standard_normal((n_in, D)).astype(dtype)
            W = rng.standard_normal((N, D)).astype(dtype)
            Xn = rng.standard_normal((B, D)).astype(dtype)
            W1, Z1 = W.copy(), np.empty((B, N), dtype)
            gemm_tn_acc(C, A, W1, -0.3)
            gemm_nt(Xn, W1, Z1)
            _check_product(Z1, Xn, W1)
            for threads in (1, 2):
                numba.set_num_threads(threads)
                for parts in range(1, 6):
                    W2, Z2 = W.copy(), np.full((B, N), np.nan, dtype)
                    gemm_tn_acc_nt_parallel(C, A, W2, -0.3, Xn, Z2, parts)
                    assert np.array_equal(W2, W1), (n_in, N, D, B, threads, parts)
                    assert np.array_equal(Z2, Z1), (n_in, N, D, B, threads, parts)
    finally:
        numba.set_num_threads(before)


def test_gemm_tn_acc_writes_only_out(rng):
    C = rng.standard_normal((5, 6)).astype(np.float32)
    A = rng.standard_normal((5, 20)).astype(np.float32)
    C0, A0 = C.copy(), A.copy()
    big = np.full((8, 20), 7.0, np.float32)             # Out = big[1:7]: rows 0 and 7 untouched
    gemm_tn_acc(C, A, big[1:7], 1.0)
    assert np.array_equal(C, C0) and np.array_equal(A, A0)
    assert (big[0] == 7).all() and (big[7] == 7).all()
    _check_acc(big[1:7], np.full((6, 20), 7.0, np.float32), C, A, 1.0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B", [1, 7, 12, 64, NT_MAX_ROWS - 1, NT_MAX_ROWS, 600])
def test_backward_jit_paths(B, dtype, rng):
    """784-128: B = 1, 7 BLAS (small-matrix range; without AVX-512 serial tiles at 1,
    parallel ones at 7), 12 serial tiles (parallel without AVX-512), 64 and 255 parallel
    tiles, NT_MAX_ROWS and above BLAS; each against the float64 reference. The path is a
    function of the shapes only (the same on one thread)."""
    from fastnn.kernels._config import HAS_AVX512
    from fastnn.kernels.machine.gemm import TN_PARALLEL_MIN_FMAS, SMALL_GEMM_FMAS
    fmas = B * 128 * 784
    first_tiled = 12 if HAS_AVX512 else 1
    assert (B < NT_MAX_ROWS and fmas > SMALL_GEMM_FMAS) == (first_tiled <= B < NT_MAX_ROWS)
    assert (fmas >= TN_PARALLEL_MIN_FMAS) == (B >= (64 if HAS_AVX512 else 7))
    X = rng.standard_normal((B, 784)).astype(dtype)
    H = rng.random((B, 784)).astype(dtype)
    W = (rng.standard_normal((128, 784)) * 0.05).astype(dtype)
    dZ = rng.standard_normal((B, 128)).astype(dtype)
    dW, db, dX = fastnn.linear_backward(dZ, X, W, impl="jit")
    rW, rb, rX = ref.linear_backward(dZ, X, W)
    n = np.sqrt(B)
    assert_close(dW, rW, dtype, scale=10.0 * n, what=f"dW B={B}")
    assert_close(db, rb, dtype, scale=10.0 * n, what=f"db B={B}")
    assert_close(dX, rX, dtype, scale=10.0, what=f"dX B={B}")
    assert_close(fastnn.hidden_delta(dZ, W, H, impl="jit"), ref.hidden_delta(dZ, W, H), dtype,
                 scale=10.0, what=f"hidden_delta B={B}")


def test_num_threads_follows_numba_set_num_threads():
    """kernels._config.num_threads (the dispatchers' cheap thread count) is always what
    numba.get_num_threads() says, including after set_num_threads, and in another
    Python thread, whose count Numba keeps apart."""
    import threading

    import numba
    from fastnn.kernels._config import num_threads
    before = numba.get_num_threads()
    seen = []
    try:
        for n in range(1, numba.config.NUMBA_NUM_THREADS + 1):
            numba.set_num_threads(n)
            seen.append((num_threads(), numba.get_num_threads(), n))
        numba.set_num_threads(1)
        t = threading.Thread(target=lambda: seen.append((num_threads(), numba.get_num_threads(),
                                                         numba.config.NUMBA_NUM_THREADS)))
        t.start()
        t.join()
    finally:
        numba.set_num_threads(before)
    assert len(seen) == numba.config.NUMBA_NUM_THREADS + 1
    assert all(a == b == n for a, b, n in seen), seen
    assert num_threads() == before


@pytest.mark.parametrize("op", ["linear", "linear_sigmoid"])
def test_raw_jit_linear_returns_out_on_every_path(op, rng):
    """The raw dispatchers return the ``out`` they were given (the short-batch paths call
    compiled functions that return nothing, and return out themselves), with the values of
    the float64 reference, on the serial, parallel-tile and large-batch paths."""
    from fastnn.kernels import IMPLS
    k = IMPLS[op]["jit"]
    assert 8 * 16 < NT_PARALLEL_MIN_FMAS <= 4 * 128 * 1024       # serial, then parallel tiles
    for N, K, D in [(1, 8, 16), (4, 128, 1024), (NT_MAX_ROWS + 3, 16, 40)]:
        X = rng.standard_normal((N, D)).astype(np.float32)
        W = (rng.standard_normal((K, D)) * 0.1).astype(np.float32)
        b = rng.standard_normal(K).astype(np.float32)
        out = np.full((N, K), np.nan, np.float32)
        assert k(X, W, b, out) is out
        want = (ref.linear_sigmoid if op == "linear_sigmoid" else ref.linear)(X, W, b)
        assert_close(out, want, np.float32, scale=D, what=f"{op} {N, K, D}")


# --- the tiles compiled once and called through their address (kernels/machine/tiles.py)
def test_tiles_reject_a_layout_they_cannot_take():
    """The tiles read X, W and Z as C-contiguous: a kernel typed with another layout
    does not compile (it would read the wrong elements), and says which array."""
    from numba import errors
    X = np.ones((3, 4), np.float32)
    W = np.ones((5, 4), np.float32)
    Z = np.zeros((5, 3), np.float32).T          # Fortran order
    with pytest.raises(errors.TypingError, match="Z: the tiles need a C-contiguous array"):
        gemm_nt(X, W, Z)
    assert not Z.any()


def test_tile_helper_process_fills_the_cache(tmp_path):
    """prefetch compiles a tile in a helper process; the first product waits for it and
    loads the helper's result from the cache (one cache hit, nothing compiled here), and
    computes the right numbers with it."""
    import os
    import subprocess
    import sys
    code = r"""
import numpy as np
from fastnn.kernels.machine import gemm, tiles
tiles._cpus = lambda: 2                  # whatever this machine has
assert not tiles.is_cached(0)
assert tiles.prefetch("float32", ("nt",)) == 1
assert tiles.prefetch("float32", ("nt",)) == 0          # one helper per tile
rng = np.random.default_rng(0)
X = rng.standard_normal((7, 37)).astype(np.float32)
W = rng.standard_normal((11, 37)).astype(np.float32)
Z = np.empty((7, 11), np.float32)
gemm.gemm_nt(X, W, Z)
ref = X.astype(np.float64) @ W.astype(np.float64).T
print(tiles._cfuncs[0].cache_hits, tiles.is_cached(0), float(np.abs(Z - ref).max()))
"""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"), FASTNN_COMPILE_NOTICE="0")
    env.pop("FASTNN_COMPILE_HELPER", None)
    env.pop("FASTNN_NO_CACHE", None)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    hits, cached, err = r.stdout.split()
    assert (hits, cached) == ("1", "True")
    assert float(err) < 1e-4
