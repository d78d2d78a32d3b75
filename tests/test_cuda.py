"""The cuda implementation (issue 24) on a machine without a GPU.

Numba's CUDA simulator must be enabled before Numba is imported, and this process has
imported it, so every cuda kernel is checked in ONE subprocess running
``tests/cuda_sim_check.py`` under ``NUMBA_ENABLE_CUDASIM=1``; its JSON report is
asserted on here, per operation. The simulator runs the shared-memory reductions; the
GPU's code paths (warp shuffles) are compiled to PTX by a second subprocess,
``tests/cuda_ptx_check.py`` (NVVM from numba-cuda[cu13], no GPU needed), started at the
same time. The other tests check what this process sees: cuda is registered exactly
where it can run, and elsewhere it says why.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn.kernels import IMPLS, UNAVAILABLE
from fastnn.kernels import cuda as kcuda

HERE = Path(__file__).resolve().parent
#: The public operations (fastnn.functional); the classic perceptron/ADALINE epochs have
#: no cuda version.
OPS = sorted(fastnn.functional.__all__)
#: Checks per operation at least (shapes x dtypes x variants; see cuda_sim_check.py).
MIN_CHECKS = 8


def _run(code, **env):
    e = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    e.update(env)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e,
                       timeout=300, cwd=HERE)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    return r.stdout


def _start(script, **env):
    e = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    e.update(env)
    return subprocess.Popen([sys.executable, str(HERE / script)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=e, cwd=HERE)


def _report(proc):
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-2000:] + err[-4000:]
    assert err.strip() == "", f"warnings or output on stderr: {err[-3000:]}"
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def _procs():
    """Both checks at once (the simulator is one busy Python process, NVVM another)."""
    procs = {"sim": _start("cuda_sim_check.py", NUMBA_ENABLE_CUDASIM="1"),
             "ptx": _start("cuda_ptx_check.py")}
    yield procs
    for p in procs.values():
        if p.poll() is None:
            p.kill()
            p.communicate()


@pytest.fixture(scope="module")
def sim_report(_procs):
    return _report(_procs["sim"])


@pytest.fixture(scope="module")
def ptx_report(_procs):
    return _report(_procs["ptx"])


def test_simulator_registers_cuda(sim_report):
    assert sim_report["impls"][:3] == ["loop", "vectorized", "jit"]
    assert "cuda" in sim_report["impls"]
    assert sorted(sim_report["ops"]) == sorted(OPS + ["MLP.fit"])


@pytest.mark.parametrize("op", OPS)
def test_cuda_kernel_matches_reference_on_simulator(sim_report, op):
    rep = sim_report["ops"][op]
    assert rep["failures"] == [], "\n".join(rep["failures"])
    assert rep["checks"] >= MIN_CHECKS, rep


def test_mlp_fit_with_cuda_matches_vectorized_on_simulator(sim_report):
    """MLP(impl="cuda").fit: the epoch with data, parameters, activations and gradients on
    the device (softmax, sigmoid and identity outputs; momentum, L2, L1)."""
    rep = sim_report["ops"]["MLP.fit"]
    assert rep["failures"] == [] and rep["checks"] == 3, rep


def test_every_kernel_compiles_to_ptx_for_a_gpu(ptx_report):
    """The GPU code paths: every kernel variant (both dtypes) types and compiles with NVVM
    for compute capability 9.0; the row and loss kernels reduce with warp shuffles
    (shfl.sync), the tiled products synchronise on their shared tiles (bar.sync)."""
    kernels = ptx_report["kernels"]
    assert len(kernels) >= 40, sorted(kernels)
    bad = {k: r.get("error") for k, r in kernels.items() if not r["ok"]}
    assert not bad, bad
    for name, r in kernels.items():
        assert r["entry"], name
        if r["expect"]:
            assert r[r["expect"]], (name, r)
    for op in ("softmax float32", "cross_entropy float64 labels=True grad=True", "sum_f64"):
        assert kernels[op]["shfl"], op


def test_registered_exactly_where_usable():
    """This process (no simulator): cuda is registered iff the probe found numba-cuda and
    an NVIDIA device; otherwise UNAVAILABLE says why and impl="cuda" repeats it."""
    assert "NUMBA_ENABLE_CUDASIM" not in os.environ or not kcuda.simulator_requested()
    usable, why = kcuda.probe()
    assert ("cuda" in fastnn.impls()) == usable
    if usable:
        assert all("cuda" in IMPLS[op] for op in OPS)
        return
    assert set(OPS) <= set(IMPLS)
    assert UNAVAILABLE["cuda"] == why and why
    assert not any("cuda" in IMPLS[op] for op in OPS)
    with pytest.raises(ValueError, match=r"cuda is unavailable here: .*"):
        fastnn.softmax(np.zeros((2, 3)), impl="cuda")
    from fastnn.info import info
    assert "cuda unavailable: " + why in info()["implementations"]


def test_switched_off_says_so():
    out = _run("import fastnn, numpy as np\n"
               "try:\n    fastnn.sigmoid(np.zeros(3), impl='cuda')\n"
               "except ValueError as e:\n    print(e)\n", FASTNN_CUDA="0")
    assert "cuda is unavailable here: switched off by FASTNN_CUDA=0" in out, out


def test_import_fastnn_does_not_import_numba_cuda():
    """numba.cuda costs ~0.2 s to import: `import fastnn` decides without it, also with the
    simulator requested (then cuda is registered and its kernels load on the first call)."""
    import importlib.util
    code = "import sys, fastnn; print('numba.cuda' in sys.modules, 'cuda' in fastnn.impls())"
    assert _run(code, FASTNN_CUDA="1").split()[0] == "False"
    has = importlib.util.find_spec("numba_cuda") is not None
    assert _run(code, NUMBA_ENABLE_CUDASIM="1", FASTNN_CUDA="1").split() == ["False", str(has)]
