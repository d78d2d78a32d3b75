"""The parallel jit variants (taken above a size threshold) agree bit for bit with
the serial ones and give the same result for any number of threads."""
from __future__ import annotations

import numba
import numpy as np
import pytest

import fastnn
from fastnn.kernels import tuning
import reference as ref
from fastnn.kernels.fast import cross_entropy as ce
from fastnn.kernels import sgd
from fastnn.kernels.fast import softmax
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
    assert Z.size >= tuning.ROWS_PARALLEL_MIN_ELEMS     # the API takes the parallel path
    for ser, par in ((softmax.softmax_serial, softmax.softmax_parallel),
                     (softmax.log_softmax_serial, softmax.log_softmax_parallel)):
        a, b = ser(Z, np.empty_like(Z)), par(Z, np.empty_like(Z))
        assert np.array_equal(a, b)
    assert np.array_equal(fastnn.softmax(Z), softmax.softmax_serial(Z, np.empty_like(Z)))
    assert_close(fastnn.softmax(Z), ref.softmax(Z), dtype)
    y = rng.integers(0, shape[1], shape[0])
    Y = rng.dirichlet(np.ones(shape[1]), shape[0]).astype(dtype)
    for t, ser, par in ((y, ce.sce_grad_labels_jit, ce.sce_grad_labels_parallel),
                        (Y, ce.sce_grad_targets_jit, ce.sce_grad_targets_parallel)):
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
    n = tuning.SGD_PARALLEL_MIN_ELEMS + 12345
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


# --- the parallel builds are cached, each under its own entry ------------------------
# Numba's cache index does not record compile options, so a serial and a parallel
# dispatcher made from one Python function once shared an entry: the parallel one
# loaded the serial build and ran on one thread. ``_config.pjit*`` compile a renamed
# copy. A fresh process must load every parallel kernel from the cache as a parallel
# build (Numba re-registers its parfors on load: ``_reload_parfors``) without compiling.
_PARALLEL_KERNELS = """
import numpy as np
from fastnn.kernels import sgd
from fastnn.kernels.fast import cross_entropy as ce, softmax
from fastnn.kernels.machine.gemm import gemm_nt_parallel
Z = np.ones((64, 10), np.float32)
y = np.zeros(64, np.int64)
p = np.ones(64, np.float32)
X = np.ones((8, 16), np.float32)
W = np.ones((12, 16), np.float32)
calls = [
    (softmax.softmax_T_parallel, (Z, np.empty_like(Z))),
    (softmax.log_softmax_short_parallel, (Z, np.empty_like(Z))),
    (ce.sce_grad_labels_T_parallel, (Z, y, np.empty_like(Z))),
    (ce.sce_grad_targets_parallel, (Z, Z / 10, np.empty_like(Z))),
    (sgd.sgd_update_parallel, (p, p.copy(), 0.1, 0.9, p.copy(), 0.0, 0.0, False)),
    (gemm_nt_parallel, (X, W, np.empty((8, 12), np.float32))),
]
for fn, args in calls:
    fn(*args)
    cres = list(fn.overloads.values())[0]
    hits = sum(fn.stats.cache_hits.values())
    parfors = any(getattr(f, "__name__", "") == "_reload_parfors" for f in cres.reload_init)
    print(fn.py_func.__qualname__, hits, parfors)
"""


def test_parallel_kernels_load_their_own_cache_entries():
    import subprocess
    import sys

    from fastnn.kernels import _config
    from fastnn.kernels.machine.gemm import gemm_nt, gemm_nt_parallel
    if not _config.CACHE:
        pytest.skip("FASTNN_NO_CACHE is set: nothing is cached")
    pairs = [softmax.SOFTMAX_KERNELS[0], softmax.SOFTMAX_KERNELS[2],
             (softmax.log_softmax_short_serial, softmax.log_softmax_short_parallel),
             (softmax.log_softmax_long_serial, softmax.log_softmax_long_parallel),
             (sgd.sgd_update_jit, sgd.sgd_update_parallel)]
    for ser, par in pairs:
        assert par.targetoptions.get("parallel")
        assert par.py_func.__qualname__ == ser.py_func.__qualname__ + "__parallel"
    assert gemm_nt_parallel.py_func.__qualname__ != gemm_nt.py_func.__qualname__
    outs = []
    for _ in range(2):      # the first run may compile and write the cache; the second loads
        res = subprocess.run([sys.executable, "-c", _PARALLEL_KERNELS], capture_output=True,
                             text=True, timeout=900)
        assert res.returncode == 0, res.stderr[-3000:]
        outs.append([line.split() for line in res.stdout.strip().splitlines()])
    assert len(outs[1]) == 6
    for name, hits, parfors in outs[1]:
        assert name.endswith("__parallel")
        assert hits == "1", (name, "not loaded from the cache")
        assert parfors == "True", (name, "the cache held a serial build")
