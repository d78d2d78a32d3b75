"""The same bits for any thread count (README's promise), over a grid of shapes.

Each thread count runs in its own process (NUMBA_NUM_THREADS, OPENBLAS_NUM_THREADS and
OMP_NUM_THREADS set before anything loads), which prints a digest of every result; the
digests must be equal for 1, 2 and 3 threads. The grid crosses each path's thresholds
(short batches on the serial and parallel register tiles, BLAS from NT_MAX_ROWS rows,
short and long softmax rows, serial and parallel sizes) rather than only the shapes of
the other tests, and covers MLP.fit with the compiled epoch at several batch sizes
(the fused first layer and the one-region epoch split their work by the thread count).
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

_GRID = textwrap.dedent("""
    import hashlib, numpy as np, fastnn
    out = []
    def dig(*arrays):
        h = hashlib.sha1()
        for a in arrays:
            if a is not None:
                h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]
    for dt in (np.float32, np.float64):
        g = np.random.default_rng(0)
        r = lambda *s: g.standard_normal(s).astype(dt)
        for N, K, D in ((1, 10, 20), (7, 30, 50), (12, 128, 784), (64, 100, 784),
                        (100, 300, 500), (255, 64, 200), (256, 64, 200), (700, 30, 37)):
            X, W, b, dZ = r(N, D), r(K, D) * 0.1, r(K), r(N, K)
            H = 1 / (1 + np.exp(-r(N, D)))
            out.append(("linear", dt.__name__, N, K, D, dig(fastnn.linear(X, W, b))))
            out.append(("linear_sigmoid", dt.__name__, N, K, D,
                        dig(fastnn.linear_sigmoid(X, W, b))))
            out.append(("linear_backward", dt.__name__, N, K, D,
                        dig(*fastnn.linear_backward(dZ, X, W))))
            out.append(("hidden_delta", dt.__name__, N, K, D, dig(fastnn.hidden_delta(dZ, W, H))))
        for R, C in ((3, 10), (4096, 10), (333, 40), (64, 1000), (7, 3000)):
            Z = r(R, C) * 5
            y = g.integers(0, C, R)
            out.append(("softmax", dt.__name__, R, C, dig(fastnn.softmax(Z))))
            out.append(("log_softmax", dt.__name__, R, C, dig(fastnn.log_softmax(Z))))
            loss, grad = fastnn.softmax_cross_entropy_grad(Z, y)
            out.append(("sce_grad", dt.__name__, R, C, dig(np.array(loss), grad)))
        for n in (1000, 1 << 18, 300_001):
            w, gr, v = r(n), r(n), np.zeros(n, dt)
            fastnn.sgd_update(w, gr, 0.1, momentum=0.9, velocity=v, weight_decay=1e-3, l1=1e-4)
            out.append(("sgd_update", dt.__name__, n, dig(w, v)))
    X = np.random.default_rng(1).random((3000, 784), dtype=np.float32)
    y = np.random.default_rng(2).integers(0, 10, 3000)
    for sizes, bs, mom in (([784, 100, 10], 10, 0.0), ([784, 100, 10], 16, 0.0),
                           ([784, 100, 10], 64, 0.0), ([784, 100, 10], 64, 0.9),
                           ([784, 30, 10], 10, 0.0), ([784, 100, 10], 300, 0.0)):
        m = fastnn.MLP(sizes, seed=0, dtype="float32")
        h = m.fit(X[:1000], y[:1000], epochs=1, batch_size=bs, lr=0.1, momentum=mom)
        out.append(("fit", sizes[1], bs, mom, dig(m._params, np.array(h.loss))))
    for row in out:
        print(*row)
""")


def _digests(threads):
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads),
               OMP_NUM_THREADS=str(threads), FASTNN_COMPILE_NOTICE="0")
    r = subprocess.run([sys.executable, "-c", _GRID], env=env, capture_output=True, text=True,
                       timeout=1800, cwd=REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout.splitlines()


@pytest.mark.slow
def test_every_path_gives_the_same_bits_for_1_2_and_3_threads():
    one = _digests(1)
    assert len(one) == 2 * (8 * 4 + 5 * 3 + 3) + 6
    for t in (2, 3):
        other = _digests(t)
        diff = [(a, b) for a, b in zip(one, other) if a != b]
        assert not diff, f"{t} threads differ from 1: {diff[:6]}"
