"""fastnn.kernels.machine.blas.gemm (direct sgemm/dgemm from jit code) and the fused SGD
update of the jit training epoch built on it."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import fastnn._train_jit as tj
from fastnn.kernels.machine.blas import gemm
from fastnn.model import MLP

REPO = Path(__file__).resolve().parents[1]
DTYPES = (np.float32, np.float64)


def _tol(dt):
    return dict(rtol=1e-5, atol=1e-5) if dt == np.float32 else dict(rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dt", DTYPES)
def test_gemm_row_major_recipes(dt):
    """The three products of the module docstring, on C-order arrays."""
    rng = np.random.default_rng(0)
    N, D, K = 7, 5, 3
    X = rng.standard_normal((N, D)).astype(dt)
    W = rng.standard_normal((K, D)).astype(dt)
    dZ = rng.standard_normal((N, K)).astype(dt)
    Z = np.full((N, K), np.nan, dt)                    # beta = 0: C is not read
    gemm(True, False, K, N, D, 1.0, W, D, X, D, 0.0, Z, K)
    np.testing.assert_allclose(Z, X @ W.T, **_tol(dt))
    dX = np.full((N, D), np.nan, dt)
    gemm(False, False, D, N, K, 1.0, W, D, dZ, K, 0.0, dX, D)
    np.testing.assert_allclose(dX, dZ @ W, **_tol(dt))
    W1 = W.copy()
    gemm(False, True, D, K, N, -0.25, X, D, dZ, K, 1.0, W1, D)   # W -= 0.25 dZᵀ X
    np.testing.assert_allclose(W1, W - dt(0.25) * (dZ.T @ X), **_tol(dt))
    # views of a flat buffer (as the training epoch passes them), and k = 0
    flat = np.zeros(K * D + 3, dt)
    Wv = flat[3:].reshape(K, D)
    gemm(False, True, D, K, 0, 1.0, X, D, dZ, K, 1.0, Wv, D)
    assert not flat.any()


def test_gemm_rejects_out_of_bounds_operands():
    A = np.ones((2, 3), np.float32)                   # 6 elements
    C = np.zeros((2, 2), np.float32)                  # 4 elements
    gemm(False, False, 2, 2, 3, 1.0, A, 2, A, 3, 0.0, C, 2)    # everything just fits
    np.testing.assert_array_equal(C, 3)
    bad = [
        (False, False, 2, 2, 4, 1.0, A, 2, A, 4, 0.0, C, 2),   # op(A) 2 x 4 needs 8
        (False, False, 3, 2, 2, 1.0, A, 3, A, 2, 0.0, C, 3),   # C 3 x 2 needs 6 > 4
        (False, False, 2, 2, 2, 1.0, A, 1, A, 2, 0.0, C, 2),   # lda < m
        (True, False, 2, 2, 2, 1.0, A, 1, A, 2, 0.0, C, 2),    # Aᵀ: lda < k
    ]
    for args in bad:
        with pytest.raises(ValueError):
            gemm(*args)
    np.testing.assert_array_equal(C, 3)                # nothing was written


def _fit(dt, monkeypatch=None, fuse=True, batch_size=10, **kw):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((53, 12)).astype(dt)
    y = rng.integers(0, 4, 53)
    if not fuse:
        def unfused(*a, **k):
            a = list(a)
            a.insert(19, False)            # after the policy: fuse=False
            tj._train_epoch(*a, **k)
        monkeypatch.setattr(tj, "train_epoch", unfused)
    m = MLP([12, 9, 7, 4], dtype=dt, seed=5, impl="jit")
    h = m.fit(X, y, epochs=3, batch_size=batch_size, lr=0.3, **kw)
    return m, h


@pytest.mark.parametrize("dt", DTYPES)
def test_fused_sgd_gemm_matches_unfused(monkeypatch, dt):
    """Plain SGD: W += −lr·dZᵀA in one gemm (beta = 1) == dW = dZᵀA, then W −= lr·dW."""
    a, ha = _fit(dt)
    with monkeypatch.context() as mp:
        b, hb = _fit(dt, mp, fuse=False)
    assert not np.array_equal(a._grads, b._grads)     # the fused path writes no gradient
    np.testing.assert_allclose(a._params, b._params, **_tol(dt))
    np.testing.assert_allclose(ha.loss, hb.loss, **_tol(dt))
    # and both agree with the NumPy implementation
    rng = np.random.default_rng(1)
    X = rng.standard_normal((53, 12)).astype(dt)
    y = rng.integers(0, 4, 53)
    v = MLP([12, 9, 7, 4], dtype=dt, seed=5, impl="vectorized")
    v.fit(X, y, epochs=3, batch_size=10, lr=0.3)
    tol = _tol(dt) if dt == np.float64 else dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a._params, v._params, **tol)


@pytest.mark.parametrize("dt", DTYPES)
def test_fuse_flag_leaves_other_optimisers_alone(monkeypatch, dt):
    a, _ = _fit(dt, momentum=0.5, weight_decay=1e-3)
    with monkeypatch.context() as mp:
        b, _ = _fit(dt, mp, fuse=False, momentum=0.5, weight_decay=1e-3)
    np.testing.assert_array_equal(a._params, b._params)


@pytest.mark.slow
def test_gemm_callers_are_cached(tmp_path):
    """The BLAS symbol is bound by name: a second process loads gemm from the cache."""
    code = textwrap.dedent("""
        import numpy as np
        from fastnn.kernels.machine.blas import gemm
        a = np.ones((2, 2), np.float32)
        c = np.zeros((2, 2), np.float32)
        gemm(False, False, 2, 2, 2, 1.0, a, 2, a, 2, 0.0, c, 2)
        assert (c == 2).all()
        print(sum(gemm.stats.cache_hits.values()), sum(gemm.stats.cache_misses.values()))
    """)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path), FASTNN_NO_CACHE="0")
    out = []
    for _ in range(2):
        r = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True,
                           text=True, env=env, cwd=REPO, timeout=300)
        assert r.returncode == 0, r.stderr
        out.append(r.stdout.split())
    assert out[0] == ["0", "1"] and out[1] == ["1", "0"], out


def test_gemm_uses_numpys_openblas_when_bundled():
    # NumPy's wheels bundle OpenBLAS (ILP64); where this NumPy has one, fastnn's direct
    # gemm must call it (the library a bare X @ W.T uses), not SciPy's.
    import glob

    from fastnn.kernels.machine import blas as _blas
    bundled = glob.glob(str(Path(np.__file__).parent.parent / "numpy.libs" / "libscipy_openblas64_*"))
    if os.environ.get("FASTNN_BLAS", "").lower() == "scipy" or not bundled:
        assert _blas.GEMM_LIBRARY.startswith("SciPy's")
    else:
        assert _blas.GEMM_LIBRARY.startswith("NumPy's"), _blas.GEMM_LIBRARY


_SCIPY_PATH = """
import numpy as np
from fastnn.kernels.machine import blas as _blas
from fastnn.kernels.fast.linear import linear_backward_jit, linear_sigmoid_jit, hidden_delta_jit
assert _blas.GEMM_LIBRARY.startswith("SciPy's"), _blas.GEMM_LIBRARY
rng = np.random.default_rng(2)
for dt in (np.float32, np.float64):
    N, K, D = 300, 7, 19                   # 300 rows: linear_sigmoid takes the BLAS path
    X = rng.standard_normal((N, D)).astype(dt)
    W = rng.standard_normal((K, D)).astype(dt)
    b = rng.standard_normal(K).astype(dt)
    dZ = rng.standard_normal((N, K)).astype(dt)
    H = rng.random((N, D)).astype(dt)
    out = np.empty((N, K), dt)
    dW, db, dX = np.empty((K, D), dt), np.empty(K, dt), np.empty((N, D), dt)
    hd = np.empty((N, D), dt)
    linear_sigmoid_jit(X, W, b, out)
    linear_backward_jit(dZ, X, W, dW, db, dX)
    hidden_delta_jit(dZ, W, H, hd)
    x, w, z = X.astype(np.float64), W.astype(np.float64), dZ.astype(np.float64)
    tol = 1e-5 if dt == np.float32 else 1e-12
    np.testing.assert_allclose(out, 1 / (1 + np.exp(-(x @ w.T + b))), rtol=tol, atol=tol)
    np.testing.assert_allclose(dW, z.T @ x, rtol=tol, atol=tol * 30)
    np.testing.assert_allclose(dX, z @ w, rtol=tol, atol=tol * 30)
    np.testing.assert_allclose(hd, (z @ w) * H * (1 - H), rtol=tol, atol=tol * 30)
print("ok")
"""


@pytest.mark.parametrize("cache", ["0", "1"])
def test_scipy_blas_through_the_shim(cache):
    # FASTNN_BLAS=scipy (as on a platform without NumPy's bundled OpenBLAS): compiled code
    # still calls the 64-bit-integer symbol, now a shim to SciPy's 32-bit sgemm/dgemm.
    # With FASTNN_NO_CACHE=0 the process loads what this one compiled against NumPy's
    # BLAS: the cached code must not depend on which library stands behind the symbol.
    env = dict(os.environ, FASTNN_BLAS="scipy", FASTNN_NO_CACHE="1" if cache == "0" else "0")
    r = subprocess.run([sys.executable, "-c", _SCIPY_PATH], capture_output=True, text=True,
                       env=env, cwd=REPO, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().endswith("ok")
