"""fastnn.MLP: training across implementations, checkpoints, errors, no allocation."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastnn._train_jit as tj
from fastnn.gradcheck import gradcheck
from fastnn.model import MLP, History, NonFiniteLossError

IMPLS = ("loop", "vectorized", "jit")
CONFIGS = [  # (sizes, kwargs, target kind)
    ([5, 4, 3], dict(), "labels"),
    ([5, 4, 1], dict(output="sigmoid"), "binary"),
    ([5, 4, 3, 3], dict(output="sigmoid", loss="mse"), "labels"),
    ([5, 3, 2], dict(hidden="identity", output="identity", loss="mse"), "real"),
    ([5, 3], dict(), "labels"),
]


def _data(kind, n=23, d=5, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = {"labels": rng.integers(0, k, n), "binary": rng.integers(0, 2, n),
         "real": rng.standard_normal((n, 2))}[kind]
    return X, y


def _train(sizes, kw, kind, impl, dtype=np.float64, **fit):
    X, y = _data(kind, k=sizes[-1])
    m = MLP(sizes, dtype=dtype, seed=3, impl=impl, **kw)
    h = m.fit(X, y, **fit)
    return m, h


@pytest.mark.parametrize("sizes,kw,kind", CONFIGS)
@pytest.mark.parametrize("fit", [
    dict(epochs=3, batch_size=1, lr=0.1),
    dict(epochs=3, batch_size=4, lr=0.1, momentum=0.9),
    dict(epochs=2, batch_size=None, lr=0.5, weight_decay=0.01, l1=0.001),
    dict(epochs=2, batch_size=10, lr=0.2),
])
def test_same_trajectory_in_every_implementation(sizes, kw, kind, fit):
    runs = [_train(sizes, kw, kind, impl, **fit) for impl in IMPLS]
    ref, href = runs[1]
    for m, h in runs:
        np.testing.assert_allclose(m._params, ref._params, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(m._velocity, ref._velocity, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(h.loss, href.loss, rtol=1e-9)
        np.testing.assert_array_equal(h.accuracy, href.accuracy)
        assert m._rng.bit_generator.state == ref._rng.bit_generator.state


#: (SMALL_MAX, TILE_MIN_FMAS, EPOCH_PARALLEL_MIN_FMAS): BLAS only; serial tiles; parallel tiles
PATHS = {"blas": (0, 0, 1 << 62), "tiles": (1000, 0, 1 << 62), "parallel_tiles": (1000, 0, 0)}


@pytest.mark.parametrize("path", sorted(PATHS))
@pytest.mark.parametrize("momentum", (0.0, 0.5))
def test_jit_tile_and_blas_paths_agree(monkeypatch, path, momentum):
    ref, _ = _train([5, 4, 3, 3], {}, "labels", "vectorized", epochs=2, batch_size=3, lr=0.3,
                    momentum=momentum)
    for name, value in zip(("SMALL_MAX", "TILE_MIN_FMAS", "EPOCH_PARALLEL_MIN_FMAS"), PATHS[path]):
        monkeypatch.setattr(tj, name, value)
    m, _ = _train([5, 4, 3, 3], {}, "labels", "jit", epochs=2, batch_size=3, lr=0.3,
                  momentum=momentum)
    np.testing.assert_allclose(m._params, ref._params, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("batch_size", (1, 7, 40))
@pytest.mark.parametrize("dt", (np.float32, np.float64))
def test_jit_parallel_tiles_give_the_serial_bits(monkeypatch, batch_size, dt):
    """Every product on the tiles, serial, then parallel: the same trained parameters,
    bit for bit (each element has one fixed order of multiply-adds)."""
    rng = np.random.default_rng(4)
    X = rng.standard_normal((83, 37)).astype(dt)      # 37: not a whole number of vectors
    y = rng.integers(0, 5, 83)
    runs = []
    for par_min in (1 << 62, 0):
        with monkeypatch.context() as mp:
            mp.setattr(tj, "TILE_MIN_FMAS", 0)
            mp.setattr(tj, "EPOCH_PARALLEL_MIN_FMAS", par_min)
            m = MLP([37, 9, 6, 5], dtype=dt, seed=2, impl="jit")   # 9 and 6 rows: edge tiles
            m.fit(X, y, epochs=2, batch_size=batch_size, lr=0.3)
            runs.append(m)
    np.testing.assert_array_equal(runs[0]._params, runs[1]._params)
    v = MLP([37, 9, 6, 5], dtype=dt, seed=2, impl="vectorized")
    v.fit(X, y, epochs=2, batch_size=batch_size, lr=0.3)
    tol = dict(rtol=1e-9, atol=1e-12) if dt == np.float64 else dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(runs[0]._params, v._params, **tol)


@pytest.mark.parametrize("batch_size", (1, 4, 7, 40))
@pytest.mark.parametrize("dt", (np.float32, np.float64))
@pytest.mark.parametrize("sizes", ([37, 9, 6, 5], [37, 14], [40, 13, 2]))
def test_jit_first_layer_ahead_gives_the_same_bits(monkeypatch, batch_size, dt, sizes):
    """The first layer's update fused with the next mini-batch's forward product
    (FUSE_FIRST_LAYER, one parallel region) against the two products apart: the same
    parameters and loss, bit for bit, at 1 and 2 Numba threads (1, 2 or 3 shares of W's
    rows; 83 rows: the last mini-batch is shorter, and batch 40 leaves 3 rows)."""
    rng = np.random.default_rng(6)
    X = rng.standard_normal((83, sizes[0])).astype(dt)
    y = rng.integers(0, sizes[-1], 83)
    runs = []
    for fuse, threads in ((False, 2), (True, 1), (True, 2), (True, 3)):
        with monkeypatch.context() as mp:
            mp.setattr(tj, "TILE_MIN_FMAS", 0)
            mp.setattr(tj, "EPOCH_PARALLEL_MIN_FMAS", 0)
            mp.setattr(tj, "FUSE_FIRST_LAYER", fuse)
            mp.setattr(tj, "num_threads", lambda t=threads: t)   # shares of W
            assert tj.policy()[4] == (threads if fuse else 0)
            m = MLP(sizes, dtype=dt, seed=2, impl="jit")
            h = m.fit(X, y, epochs=2, batch_size=batch_size, lr=0.3)
            runs.append((m._params.copy(), h.loss + h.accuracy))
    for params, losses in runs[1:]:
        np.testing.assert_array_equal(params, runs[0][0])
        assert losses == runs[0][1]
    v = MLP(sizes, dtype=dt, seed=2, impl="vectorized")
    v.fit(X, y, epochs=2, batch_size=batch_size, lr=0.3)
    tol = dict(rtol=1e-9, atol=1e-12) if dt == np.float64 else dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(runs[0][0], v._params, **tol)


def _spy_persistent(mp):
    """Record stats[3] of every compiled epoch: 1 where it ran in the persistent region."""
    ran = []
    real = tj.run_epoch

    def spy(*a, **k):
        out = real(*a, **k)
        ran.append(a[-1][3])
        return out
    mp.setattr(tj, "run_epoch", spy)
    return ran


@pytest.mark.parametrize("batch_size", (4, 7, 40))
@pytest.mark.parametrize("dt", (np.float32, np.float64))
@pytest.mark.parametrize("sizes", ([37, 30, 6, 5], [37, 14], [40, 13, 2]))
def test_jit_persistent_epoch_gives_the_same_bits(monkeypatch, batch_size, dt, sizes):
    """The whole epoch in one parallel region whose two threads hand each step to each
    other (PERSISTENT_EPOCH) against the ordinary loop (one region per step, first layer
    ahead): the same parameters, loss and accuracy, bit for bit. The first layer's
    products are on the parallel tiles and the others on the serial ones (the
    threshold sits between them); 83 rows: the last mini-batch is shorter (batch 40
    leaves 3 rows, whose first product is then below the threshold). With one Numba
    thread for two shares the workers cannot join: the leader gives up after
    JOIN_TIMEOUT_CYCLES and trains on the ordinary loop, with the same bits."""
    import numba
    rng = np.random.default_rng(8)
    X = rng.standard_normal((83, sizes[0])).astype(dt)
    y = rng.integers(0, sizes[-1], 83)
    two = numba.config.NUMBA_NUM_THREADS >= 2
    before = numba.get_num_threads()
    runs = []
    for persistent, threads in ((False, 2), (True, 2), (True, 1)):
        with monkeypatch.context() as mp:
            mp.setattr(tj, "TILE_MIN_FMAS", 0)
            mp.setattr(tj, "EPOCH_PARALLEL_MIN_FMAS", batch_size * sizes[0] * sizes[1])
            mp.setattr(tj, "PERSISTENT_EPOCH", persistent)
            mp.setattr(tj, "num_threads", lambda: 2)          # two shares of W
            ran = _spy_persistent(mp)
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            try:
                m = MLP(sizes, dtype=dt, seed=2, impl="jit")
                h = m.fit(X, y, epochs=2, batch_size=batch_size, lr=0.3)
            finally:
                numba.set_num_threads(before)
        expect = 1.0 if persistent and threads == 2 and two else 0.0
        assert ran == [expect, expect], (persistent, threads, ran)
        runs.append((m._params.copy(), h.loss + h.accuracy))
    for params, losses in runs[1:]:
        np.testing.assert_array_equal(params, runs[0][0])
        assert losses == runs[0][1]
    v = MLP(sizes, dtype=dt, seed=2, impl="vectorized")
    v.fit(X, y, epochs=2, batch_size=batch_size, lr=0.3)
    tol = dict(rtol=1e-9, atol=1e-12) if dt == np.float64 else dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(runs[0][0], v._params, **tol)


@pytest.mark.parametrize("sizes,kw,kind,lr", [
    ([37, 14, 1], dict(output="sigmoid"), "binary", 0.3),
    ([37, 13, 3], dict(output="sigmoid", loss="mse"), "labels", 0.3),
    ([37, 13, 2], dict(hidden="identity", output="identity", loss="mse"), "real", 0.01),
    ([37, 13, 2], dict(hidden="identity", output="identity", loss="mse"), "real", 0.3),
])
def test_jit_persistent_epoch_other_losses_give_the_same_bits(monkeypatch, sizes, kw, kind, lr):
    """The other output/loss codes and float targets (the leader copies the next batch's
    targets after the loss) through the persistent epoch: the bits of the ordinary loop.
    At lr = 0.3 the identity network diverges: both stop at the same step, the model
    restored to the same parameters (the leader tells the worker to leave)."""
    import numba
    from fastnn.model import NonFiniteLossError
    X, y = _data(kind, n=83, d=37, k=sizes[-1], seed=9)
    runs = []
    for persistent in (False, True):
        with monkeypatch.context() as mp:
            mp.setattr(tj, "TILE_MIN_FMAS", 0)
            mp.setattr(tj, "EPOCH_PARALLEL_MIN_FMAS", 7 * sizes[0] * sizes[1])
            mp.setattr(tj, "PERSISTENT_EPOCH", persistent)
            mp.setattr(tj, "num_threads", lambda: 2)
            ran = _spy_persistent(mp)
            m = MLP(sizes, dtype=np.float32, seed=2, impl="jit", **kw)
            try:
                h = m.fit(X.astype(np.float32), y, epochs=2, batch_size=7, lr=lr)
                out = np.array(h.loss + h.accuracy, float)
            except NonFiniteLossError as e:
                out = np.array([-1.0, e.epoch, e.step])
        two = numba.config.NUMBA_NUM_THREADS >= 2 and numba.get_num_threads() >= 2
        assert ran and set(ran) == {1.0 if persistent and two else 0.0}
        runs.append((m._params.copy(), out))
    assert (runs[0][1][0] == -1) == (lr == 0.3 and kind == "real")     # -1: diverged
    np.testing.assert_array_equal(runs[1][0], runs[0][0])
    np.testing.assert_array_equal(runs[1][1], runs[0][1])       # NaN accuracies included


def test_persistent_epoch_join_gives_up_without_deadlock():
    """The shares run one after the other on one thread, the worker's first: the worker
    joins, waits JOIN_TIMEOUT_CYCLES for the leader's confirmation and leaves; the leader
    then waits as long, marks the region abandoned (the caller trains on the ordinary
    loop), and a worker arriving later does not join."""
    ctl = np.zeros(3 * tj._LINE, np.int64)
    assert not tj._work_join(ctl)
    assert ctl[tj._JOIN] == 0
    assert not tj._lead_join(ctl, 2)
    assert ctl[tj._JOIN] == -1
    assert not tj._work_join(ctl)
    assert ctl[tj._JOIN] == -1


_PERSISTENT_THREE = """
import numpy as np
import fastnn._train_jit as tj
from fastnn.model import MLP
tj.TILE_MIN_FMAS = 0
tj.EPOCH_PARALLEL_MIN_FMAS = 7 * 37 * 30
rng = np.random.default_rng(8)
X = rng.standard_normal((83, 37)).astype(np.float32)
y = rng.integers(0, 5, 83)
out = []
real = tj.run_epoch
ran = []
tj.run_epoch = lambda *a, **k: (real(*a, **k), ran.append(float(a[-1][3])))[0]
for persistent in (False, True):
    tj.PERSISTENT_EPOCH = persistent
    m = MLP([37, 30, 6, 5], dtype=np.float32, seed=2, impl="jit")
    h = m.fit(X, y, epochs=2, batch_size=7, lr=0.3)
    out.append(m._params.tobytes().hex() + repr(h.loss))
print(ran, out[0] == out[1])
"""


def test_jit_persistent_epoch_with_two_workers():
    """Three threads (oversubscribed on a smaller machine; NUMBA_NUM_THREADS=3 in a fresh
    process): a leader and two workers, each gathering every other row of the next
    mini-batch, three shares of W (30 rows: 3 groups). The same bits as the ordinary
    loop."""
    env = dict(os.environ, NUMBA_NUM_THREADS="3")
    res = subprocess.run([sys.executable, "-c", _PERSISTENT_THREE], env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().splitlines()[-1] == "[0.0, 0.0, 1.0, 1.0] True"


@pytest.mark.parametrize("dt", (np.float32, np.float64))
def test_jit_large_batches_blas_blocks_on_numba_threads(monkeypatch, dt):
    """Batches above SMALL_MAX rows (moved down to 20 here): the BLAS products in blocks
    on Numba's threads, OpenBLAS single-threaded during the epoch (BLAS_ON_NUMBA_THREADS,
    run_epoch), against OpenBLAS's own threads: the same training to rounding, the same
    bits at 1 and 2 Numba threads, OpenBLAS's thread count restored after each fit; with
    momentum (gradient written, then sgd_update) and plain SGD (fused update)."""
    import numba
    from fastnn.kernels.machine import blas as _blas
    assert _blas.THREAD_CONTROL, _blas.GEMM_LIBRARY
    get, _ = _blas._threads
    rng = np.random.default_rng(7)
    X = rng.standard_normal((700, 37)).astype(dt)
    y = rng.integers(0, 5, 700)
    before = numba.get_num_threads()
    for momentum in (0.0, 0.5):
        runs = []
        for on, threads in ((False, 2), (True, 1), (True, 2)):
            blas_threads = get()
            with monkeypatch.context() as mp:
                mp.setattr(tj, "SMALL_MAX", 20)
                mp.setattr(tj, "BLAS_ON_NUMBA_THREADS", on)
                numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
                try:
                    assert tj.policy()[5] == (1 if on else 0)
                    m = MLP([37, 9, 6, 5], dtype=dt, seed=2, impl="jit")   # 9, 6: edge tiles
                    h = m.fit(X, y, epochs=2, batch_size=64, lr=0.3, momentum=momentum)
                finally:
                    numba.set_num_threads(before)
            assert get() == blas_threads
            runs.append((m._params.copy(), h.loss))
        np.testing.assert_array_equal(runs[1][0], runs[2][0])
        assert runs[1][1] == runs[2][1]
        tol = dict(rtol=1e-9, atol=1e-12) if dt == np.float64 else dict(rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(runs[2][0], runs[0][0], **tol)
        v = MLP([37, 9, 6, 5], dtype=dt, seed=2, impl="vectorized")
        v.fit(X, y, epochs=2, batch_size=64, lr=0.3, momentum=momentum)
        np.testing.assert_allclose(runs[2][0], v._params, **tol)


def test_float32_trajectories_agree():
    a, ha = _train([5, 6, 3], {}, "labels", "jit", dtype=np.float32, epochs=3, batch_size=2, lr=0.2)
    b, hb = _train([5, 6, 3], {}, "labels", "vectorized", dtype=np.float32, epochs=3, batch_size=2,
                   lr=0.2)
    assert a._params.dtype == np.float32
    np.testing.assert_allclose(a._params, b._params, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ha.loss, hb.loss, rtol=1e-4)


def test_digits_64_32_10_reaches_95_percent_with_jit():
    from fastnn.datasets import load_digits
    X_train, y_train, X_test, y_test = load_digits(dtype=np.float32)
    m = MLP([64, 32, 10], hidden="sigmoid", seed=0, impl="jit")
    h = m.fit(X_train, y_train, epochs=30, batch_size=16, lr=0.5,
              validation_data=(X_test, y_test))
    assert m.score(X_test, y_test) >= 0.95
    assert h.val_accuracy[-1] == pytest.approx(m.score(X_test, y_test))
    assert h.loss[-1] < h.loss[0] and m.epoch == 30
    assert all(r["samples_per_s"] > 0 for r in h)


@pytest.mark.parametrize("sizes,kw,kind", CONFIGS)
def test_gradcheck(sizes, kw, kind):
    X, y = _data(kind, n=7, k=sizes[-1])
    m = MLP(sizes, dtype=np.float32, seed=1, **kw)
    before = m._params.copy()
    for impl in IMPLS:
        errs = gradcheck(m, X, y, impl=impl)
        assert set(errs) == set(m.parameters())
        assert max(errs.values()) < 1e-4, (impl, errs)
    np.testing.assert_array_equal(m._params, before)


def test_gradcheck_catches_a_wrong_gradient(monkeypatch):
    X, y = _data("labels", n=7)
    m = MLP([5, 4, 3], dtype=np.float64, seed=1)
    real = MLP.gradients

    def wrong(self, *a, **k):
        g = real(self, *a, **k)
        g["W1"] *= 1.01
        return g
    monkeypatch.setattr(MLP, "gradients", wrong)
    errs = gradcheck(m, X, y)
    assert errs["W1"] > 1e-3 and errs["W2"] < 1e-6


def test_gradients_agree_across_impls_and_do_not_change_the_model():
    X, y = _data("labels")
    m = MLP([5, 4, 3], dtype=np.float64, seed=2)
    before = m._params.copy()
    g = {impl: m.gradients(X, y, impl=impl) for impl in IMPLS}
    for impl in IMPLS:
        for k in g["loop"]:
            np.testing.assert_allclose(g[impl][k], g["loop"][k], rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(m._params, before)


@pytest.mark.parametrize("impl", ("vectorized", "jit"))
def test_resume_from_checkpoint_is_bit_for_bit(tmp_path, impl):
    X, y = _data("labels", n=40)
    fit = dict(batch_size=7, lr=0.3, momentum=0.9, weight_decay=1e-3)
    full = MLP([5, 6, 3], seed=4, impl=impl)
    full.fit(X, y, epochs=4, **fit)
    part = MLP([5, 6, 3], seed=4, impl=impl)
    part.fit(X, y, epochs=2, checkpoint=tmp_path / "ck.npz", **fit)
    resumed = MLP.load(tmp_path / "ck.npz")
    assert resumed.epoch == 2 and len(resumed.history) == 2
    assert resumed.hyperparameters["momentum"] == 0.9
    resumed.fit(X, y, epochs=2, **fit)
    np.testing.assert_array_equal(resumed._params, full._params)
    np.testing.assert_array_equal(resumed._velocity, full._velocity)
    assert resumed.epoch == 4
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history]
    assert sorted(os.listdir(tmp_path)) == ["ck.npz"]                 # no temporary left


def test_save_is_atomic(tmp_path, monkeypatch):
    m = MLP([3, 2])
    path = tmp_path / "model.npz"
    m.save(path)
    good = path.read_bytes()

    def crash(f, **arrays):
        f.write(b"partial")
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", crash)
    m.weights[0][:] = 7
    with pytest.raises(OSError, match="disk full"):
        m.save(path)
    assert path.read_bytes() == good
    assert os.listdir(tmp_path) == ["model.npz"]


def test_load_roundtrip_and_rejects_other_files(tmp_path):
    m = MLP([4, 3, 2], hidden="identity", output="sigmoid", loss="mse", dtype=np.float64, seed=9)
    m.save(tmp_path / "m.npz")
    m2 = MLP.load(tmp_path / "m.npz")
    assert (m2.sizes, m2.hidden, m2.output, m2.loss, m2.dtype) == (
        m.sizes, m.hidden, m.output, m.loss, m.dtype)
    for k, v in m.parameters().items():
        np.testing.assert_array_equal(m2.parameters()[k], v)
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    with pytest.raises(ValueError, match="not a fastnn.MLP checkpoint"):
        MLP.load(tmp_path / "other.npz")


@pytest.mark.parametrize("impl", IMPLS)
def test_nonfinite_loss_stops_and_keeps_last_good_parameters(impl):
    X, y = _data("real", n=12)
    X = X * 100
    m = MLP([5, 2], output="identity", loss="mse", dtype=np.float32, seed=0, impl=impl)
    m.fit(X, y, epochs=1, batch_size=4, lr=1e-6)
    good = (m._params.copy(), m._rng.bit_generator.state)
    with pytest.raises(NonFiniteLossError, match=r"epoch \d+, step \d+") as info:
        m.fit(X, y, epochs=50, batch_size=4, lr=10.0)
    assert isinstance(info.value, FloatingPointError)
    assert info.value.epoch >= 2 and info.value.step >= 1
    assert m.epoch == info.value.epoch - 1
    assert np.all(np.isfinite(m._params))
    if info.value.epoch == 2:
        np.testing.assert_array_equal(m._params, good[0])
        assert m._rng.bit_generator.state == good[1]


@pytest.mark.parametrize("impl", ("vectorized", "jit"))
def test_ctrl_c_stops_cleanly_and_saves(tmp_path, impl):
    X, y = _data("labels", n=30)
    m = MLP([5, 4, 3], seed=0, impl=impl)
    path = tmp_path / "ck.npz"
    before = signal.getsignal(signal.SIGINT)      # (SIG_IGN when started in the background)

    def interrupt(rec):
        if rec["epoch"] == 2:
            os.kill(os.getpid(), signal.SIGINT)
    h = m.fit(X, y, epochs=10, batch_size=5, lr=0.1, progress=interrupt, checkpoint=path)
    assert h.interrupted and len(h) == 2 and m.epoch == 2
    saved = MLP.load(path)
    assert saved.epoch == 2
    np.testing.assert_array_equal(saved._params, m._params)
    assert signal.getsignal(signal.SIGINT) is before              # restored as it was


def _bad_calls(X, y):
    return [
        (dict(X=X[:, :4]), ValueError, "X: expected shape"),
        (dict(X=np.where(X > 1, np.nan, X)), ValueError, "X: contains NaN"),
        (dict(y=y[:-1]), ValueError, "y: expected"),
        (dict(y=y + 3), ValueError, r"labels must lie in \[0, 3\)"),
        (dict(y=y.astype(float)), TypeError, "integer class labels"),
        (dict(epochs=0), ValueError, "epochs"),
        (dict(epochs=1.5), TypeError, "epochs"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(lr=-1.0), ValueError, "lr"),
        (dict(lr=float("nan")), ValueError, "lr"),
        (dict(momentum=1.0), ValueError, "momentum"),
        (dict(l1=-0.1), ValueError, "l1"),
        (dict(validation_data=(X[:, :2], y)), ValueError, "validation_data"),
        (dict(shuffle="yes"), TypeError, "shuffle"),
    ]


@pytest.mark.parametrize("case", range(14))
def test_fit_rejects_bad_arguments_and_changes_nothing(case):
    X, y = _data("labels")
    m = MLP([5, 4, 3], seed=0)
    before = (m._params.copy(), m._rng.bit_generator.state, m.epoch)
    changes, exc, match = _bad_calls(X, y)[case]
    args = dict(X=X, y=y, epochs=2, batch_size=4, lr=0.1)
    args.update(changes)
    with pytest.raises(exc, match=match):
        m.fit(args.pop("X"), args.pop("y"), **args)
    np.testing.assert_array_equal(m._params, before[0])
    assert m._rng.bit_generator.state == before[1] and m.epoch == 0 and not m.history


def test_constructor_errors():
    with pytest.raises(ValueError, match="sizes"):
        MLP([5])
    with pytest.raises(ValueError, match="sizes"):
        MLP([5, 0, 3])
    with pytest.raises(ValueError, match="hidden"):
        MLP([5, 3], hidden="relu6")
    with pytest.raises(ValueError, match="does not go with"):
        MLP([5, 3], output="softmax", loss="mse")
    with pytest.raises(ValueError, match="softmax output needs"):
        MLP([5, 1])
    with pytest.raises(TypeError, match="dtype"):
        MLP([5, 3], dtype=np.int32)
    with pytest.raises(ValueError, match="impl"):
        MLP([5, 3], impl="cuda9")
    m = MLP([2, 2])
    with pytest.raises(ValueError, match="W1: expected shape"):
        m.set_parameters(weights=[np.zeros((3, 2))])
    with pytest.raises(ValueError, match="unknown parameter"):
        m.set_parameters({"W9": 0})


def test_initialisation_is_documented_and_seeded():
    a, b, c = MLP([30, 20, 10], seed=5), MLP([30, 20, 10], seed=5), MLP([30, 20, 10], seed=6)
    np.testing.assert_array_equal(a._params, b._params)
    assert not np.array_equal(a._params, c._params)
    bound = np.sqrt(6 / (30 + 20))
    assert np.abs(a.weights[0]).max() <= bound and np.abs(a.weights[0]).max() > 0.9 * bound
    assert not a.biases[0].any()
    rng = np.random.default_rng(5)
    np.testing.assert_array_equal(a.weights[0], rng.uniform(-bound, bound, (20, 30)).astype(np.float32))


def test_predict_proba_score_history_partial_fit():
    X, y = _data("labels")
    m = MLP([5, 4, 3], seed=0)
    P = m.predict_proba(X)
    assert P.shape == (23, 3) and P.dtype == np.float32
    np.testing.assert_allclose(P.sum(axis=1), 1, rtol=1e-6)
    np.testing.assert_array_equal(m.predict(X), P.argmax(axis=1))
    assert m.score(X, y) == np.mean(m.predict(X) == y)
    rec = m.partial_fit(X, y, lr=0.1, batch_size=5)
    assert rec["epoch"] == 1 and m.epoch == 1
    h = m.fit(X, y, epochs=2, batch_size=5, lr=0.1)
    assert isinstance(h, History) and h.epoch == [2, 3] and len(m.history) == 3
    assert not h.interrupted and h.val_loss == [None, None]
    b = MLP([5, 1], output="sigmoid", seed=0)
    assert b.predict_proba(X).shape == (23, 1) and set(b.predict(X)) <= {0, 1}
    r = MLP([5, 2], output="identity", loss="mse")
    assert r.predict(X).shape == (23, 2)


def test_jit_epoch_allocates_nothing_per_step():
    code = textwrap.dedent("""
        import numpy as np
        from numba.core.runtime import rtsys
        from fastnn.model import MLP
        rng = np.random.default_rng(0)
        X = rng.standard_normal((2000, 20)).astype(np.float32)
        y = rng.integers(0, 4, 2000)
        out = []
        # batch 300 (above SMALL_MAX): BLAS blocks on Numba's threads, in the 2000-row
        # epoch only (the 100-row one is one batch of 100), so it must allocate nothing
        for bs, mom in ((1, 0.0), (3, 0.5), (64, 0.0), (300, 0.0), (300, 0.5)):
            m = MLP([20, 16, 8, 4], impl="jit")
            m.fit(X[:50], y[:50], epochs=1, batch_size=bs, lr=0.1, momentum=mom)   # compile
            bufs = m._jit_buffers(bs)
            hp = dict(lr=0.1, momentum=mom, weight_decay=0.0, l1=0.0)
            labels, Y, acc = m._check_y(y, 2000)
            for n in (100, 2000):
                perm = np.arange(n)
                s0 = rtsys.get_allocation_stats()
                m._epoch_jit(X[:n], labels[:n], Y[:0], acc, perm, bs, hp, bufs)
                s1 = rtsys.get_allocation_stats()
                out.append(s1.alloc - s0.alloc)
        # a batch large enough for the parallel forward tiles (64·100·784 multiply-adds)
        X2 = rng.random((640, 784), dtype=np.float32)
        y2 = rng.integers(0, 10, 640)
        m = MLP([784, 100, 10], impl="jit")
        m.fit(X2[:128], y2[:128], epochs=1, batch_size=64, lr=0.1)   # compile
        bufs = m._jit_buffers(64)
        hp = dict(lr=0.1, momentum=0.0, weight_decay=0.0, l1=0.0)
        labels, Y, acc = m._check_y(y2, 640)
        for n in (128, 640):
            s0 = rtsys.get_allocation_stats()
            m._epoch_jit(X2[:n], labels[:n], Y[:0], acc, np.arange(n), 64, hp, bufs)
            s1 = rtsys.get_allocation_stats()
            out.append(s1.alloc - s0.alloc)
        print(out)
    """)
    env = dict(os.environ, NUMBA_NRT_STATS="1")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    counts = eval(res.stdout.strip().splitlines()[-1])
    # 100 steps or 2000 steps: the same (constant, per call) number of allocations
    assert all(counts[i] == counts[i + 1] for i in range(0, len(counts), 2)), counts
    assert max(counts) <= 20, counts


_EPOCH_FROM_CACHE = """
import numpy as np
from fastnn.model import MLP
rng = np.random.default_rng(5)
X = rng.random((192, 784), dtype=np.float32)
y = rng.integers(0, 10, 192)
m = MLP([784, 100, 10], impl="jit", seed=4)
m.fit(X, y, epochs=1, batch_size=64, lr=0.1)     # 64·100·784 ≥ EPOCH_PARALLEL_MIN_FMAS
print(m._params.tobytes().hex())
"""


def test_cached_epoch_with_parallel_forward_in_a_fresh_process():
    # The compiled epoch calls the parallel forward tiles at batch 64. Loaded from
    # Numba's cache into a fresh process (which does not start Numba's threading
    # layer, unlike compiling) it segfaulted until _train_jit started the layer on
    # import. Two runs: the first may compile and write the cache, the second loads it.
    # Both must give the parameters this process gets.
    assert 64 * 100 * 784 >= tj.EPOCH_PARALLEL_MIN_FMAS
    runs = []
    for _ in range(2):
        res = subprocess.run([sys.executable, "-c", _EPOCH_FROM_CACHE], capture_output=True,
                             text=True, timeout=600)
        assert res.returncode == 0, (res.returncode, res.stderr[-3000:])
        runs.append(res.stdout.strip().splitlines()[-1])
    ns = {}
    exec(_EPOCH_FROM_CACHE.replace("print(", "here = ("), ns)
    assert runs[0] == runs[1] == ns["here"]


@pytest.mark.parametrize("dt", (np.float32, np.float64))
def test_buffers_are_64_byte_aligned(dt):
    """The compiled step's tiles load and store rows as 64-byte vectors (model.ALIGN)."""
    from fastnn.model import ALIGN, _aligned
    m = MLP([784, 100, 10], dtype=dt, seed=0)
    for a in (m._params, m._grads, m._velocity, *m._jit_buffers(10)[:2]):
        assert a.ctypes.data % ALIGN == 0 and a.dtype == dt and a.flags.c_contiguous
    assert m.weights[0].base is not None and np.shares_memory(m.weights[0], m._params)
    assert _aligned(0, dt).shape == (0,)          # (an empty array has no data to align)
    for n in (1, 17, 1000):
        a = _aligned(n, dt, 3)
        assert a.shape == (n,) and a.ctypes.data % ALIGN == 0 and (a == 3).all()


def test_policy_depends_on_the_shapes_not_the_thread_count(monkeypatch):
    """Which path a product takes is a function of the shapes only: the policy's
    thresholds are the same for any number of threads (only the number of shares of a
    region follows it, and every element is computed by the same tile whatever the split)."""
    p = tj.policy()
    assert p.dtype == np.int64 and p.shape == (7,)
    assert p[0] == tj.SMALL_MAX and p[1] == tj.TILE_MIN_FMAS and p[3] == tj.EPOCH_PARALLEL_MIN_FMAS
    assert p[2] == tj.TILE_MIN_FMAS
    assert p[4] == (tj.numba.get_num_threads() if tj.FUSE_FIRST_LAYER else 0)
    assert p[5] == (1 if tj.BLAS_ON_NUMBA_THREADS and tj.THREAD_CONTROL else 0)
    assert p[6] == (1 if tj.PERSISTENT_EPOCH else 0)
    for threads in (1, 2, 3):
        monkeypatch.setattr(tj, "num_threads", lambda t=threads: t)
        q = tj.policy()
        assert list(q[:4]) == list(p[:4]) and list(q[5:]) == list(p[5:])
        assert q[4] == (threads if tj.FUSE_FIRST_LAYER else 0)
