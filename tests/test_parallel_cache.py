"""The parallel kernels are cached (kernels/_config.py): a fresh process that loads
them from Numba's cache runs them and gets the serial kernels' bits.

Numba's cache for ``parallel=True`` code is the fragile part (a cached serial
function that calls a parallel one segfaulted on reload here, so none does); this
runs every parallel kernel in two fresh processes, the second certainly from the
cache, and checks the results and that the cache was hit.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

CODE = textwrap.dedent("""
    import numpy as np
    from fastnn.kernels import cross_entropy as ce, sgd, softmax
    from fastnn.kernels._gemm import gemm_nt, gemm_nt_parallel
    rng = np.random.default_rng(0)
    par = [softmax.softmax_parallel, softmax.log_softmax_parallel, ce._sce_grad_labels_parallel,
           ce._sce_grad_targets_parallel, sgd.sgd_update_parallel, gemm_nt_parallel]
    for dt in (np.float32, np.float64):
        Z = (rng.standard_normal((5000, 10)) * 4).astype(dt)
        for s, p in ((softmax.softmax_serial, softmax.softmax_parallel),
                     (softmax.log_softmax_serial, softmax.log_softmax_parallel)):
            assert np.array_equal(s(Z, np.empty_like(Z)), p(Z, np.empty_like(Z)))
        y = rng.integers(0, 10, 5000)
        Y = rng.dirichlet(np.ones(10), 5000).astype(dt)
        for t, s, p in ((y, ce.sce_grad_labels_jit, ce._sce_grad_labels_parallel),
                        (Y, ce.sce_grad_targets_jit, ce._sce_grad_targets_parallel)):
            d1, d2 = np.empty_like(Z), np.empty_like(Z)
            assert s(Z, t, d1) == p(Z, t, d2) and np.array_equal(d1, d2)
        w, g, v = (rng.standard_normal(3000).astype(dt) for _ in range(3))
        w1, v1, w2, v2 = w.copy(), v.copy(), w.copy(), v.copy()
        sgd.sgd_update_jit(w1, g, 0.1, 0.9, v1, 0.01, 0.001, False)
        sgd.sgd_update_parallel(w2, g, 0.1, 0.9, v2, 0.01, 0.001, False)
        assert np.array_equal(w1, w2) and np.array_equal(v1, v2)
        X, W = rng.random((37, 300)).astype(dt), rng.random((29, 300)).astype(dt)
        assert np.array_equal(gemm_nt(X, W, np.empty((37, 29), dt)),
                              gemm_nt_parallel(X, W, np.empty((37, 29), dt)))
    print("OK", min(sum(f.stats.cache_hits.values()) for f in par))
""")


def _run():
    res = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True,
                         timeout=600, env=dict(os.environ))
    assert res.returncode == 0, (res.returncode, res.stderr[-2000:])
    last = res.stdout.strip().splitlines()[-1].split()
    assert last[0] == "OK", res.stdout
    return int(last[1])


def test_parallel_kernels_from_the_cache_in_fresh_processes():
    _run()                      # compiles whatever is not cached yet (and caches it)
    hits = _run()               # now every parallel kernel comes from the cache
    if os.environ.get("FASTNN_NO_CACHE", "") not in ("", "0"):
        assert hits == 0        # caching switched off: compiled in memory, still correct
    else:
        assert hits >= 2        # float32 and float64 of each one loaded, none compiled
