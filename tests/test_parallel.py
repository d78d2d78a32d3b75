"""The parallel jit variants (taken above a size threshold) agree bit for bit with
the serial ones and give the same result for any number of threads."""
from __future__ import annotations

import numba
import numpy as np
import pytest

import fastnn
import reference as ref
from fastnn.kernels import cross_entropy as ce
from fastnn.kernels import sgd, softmax
from numerics import DTYPES, assert_close


@pytest.fixture(params=[1, 2])
def threads(request):
    n = min(request.param, numba.config.NUMBA_NUM_THREADS)
    old = numba.get_num_threads()
    numba.set_num_threads(n)
    yield n
    numba.set_num_threads(old)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5000, 10), (70, 1003)])
def test_row_kernels(dtype, shape, threads):
    rng = np.random.default_rng(3)
    Z = (rng.standard_normal(shape) * 4).astype(dtype)
    assert Z.size >= softmax.PARALLEL_MIN_ELEMS     # the API takes the parallel path
    for ser, par in ((softmax.softmax_serial, softmax.softmax_parallel),
                     (softmax.log_softmax_serial, softmax.log_softmax_parallel)):
        a, b = ser(Z, np.empty_like(Z)), par(Z, np.empty_like(Z))
        assert np.array_equal(a, b)
    assert np.array_equal(fastnn.softmax(Z), softmax.softmax_serial(Z, np.empty_like(Z)))
    assert_close(fastnn.softmax(Z), ref.softmax(Z), dtype)
    y = rng.integers(0, shape[1], shape[0])
    Y = rng.dirichlet(np.ones(shape[1]), shape[0]).astype(dtype)
    for t, ser, par in ((y, ce.sce_grad_labels_jit, ce._sce_grad_labels_parallel),
                        (Y, ce.sce_grad_targets_jit, ce._sce_grad_targets_parallel)):
        d1, d2 = np.empty_like(Z), np.empty_like(Z)
        l1, l2 = ser(Z, t, d1), par(Z, t, d2)
        assert l1 == l2 and np.array_equal(d1, d2)
        loss, dZ = fastnn.softmax_cross_entropy_grad(Z, t)
        L_ref, G_ref = ref.softmax_cross_entropy_grad(Z, t)
        assert_close(loss, L_ref, dtype, scale=np.abs(Z).max() + 10)
        assert_close(dZ, G_ref, dtype, scale=1 / shape[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kw", [dict(), dict(momentum=0.9, weight_decay=1e-2, l1=1e-3),
                                dict(momentum=0.5, nesterov=True), dict(l1=1e-2)])
def test_sgd_update(dtype, kw, threads):
    n = sgd.PARALLEL_MIN_ELEMS + 12345
    rng = np.random.default_rng(4)
    w0, g = rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype)
    v0 = rng.standard_normal(n).astype(dtype)
    args = (0.05, kw.get("momentum", 0.0), kw.get("weight_decay", 0.0), kw.get("l1", 0.0),
            kw.get("nesterov", False))
    w1, v1, w2, v2 = w0.copy(), v0.copy(), w0.copy(), v0.copy()
    sgd.sgd_update_jit(w1, g, args[0], args[1], v1, args[2], args[3], args[4])
    sgd.sgd_update_parallel(w2, g, args[0], args[1], v2, args[2], args[3], args[4])
    assert np.array_equal(w1, w2) and np.array_equal(v1, v2)
    w3, v3 = w0.copy(), v0.copy()
    fastnn.sgd_update(w3, g, 0.05, velocity=v3 if kw.get("momentum") else None, **kw)
    assert np.array_equal(w3, w1)
    w_ref, _ = ref.sgd_update(w0, g, 0.05, kw.get("momentum", 0.0), v0, kw.get("weight_decay", 0.0),
                              kw.get("l1", 0.0), kw.get("nesterov", False))
    assert_close(w1, w_ref, dtype, scale=np.abs(w0) + 0.2)
