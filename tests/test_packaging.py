"""Packaging, the registry's parity, Numba's on-disk cache and a bounds-checked run."""
from __future__ import annotations

import importlib.util
import inspect
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import fastnn

REPO = Path(__file__).resolve().parents[1]


def test_kernels_is_installed_as_fastnn_kernels(tmp_path):
    import fastnn.kernels as k
    assert Path(k.__file__).resolve().parent == (REPO / "kernels").resolve()
    assert k.IMPLS is fastnn.kernels.IMPLS
    # from outside the checkout: the installed distribution's only top-level package is
    # fastnn, and `import kernels` does not find this project's folder
    r = subprocess.run([sys.executable, "-c", (
        "import importlib.util, importlib.metadata as md, fastnn.kernels as k\n"
        "s = importlib.util.find_spec('kernels')\n"
        "print(k.__name__, md.distribution('fastnn-kernels').read_text('top_level.txt').split(),"
        " 'none' if s is None else s.origin)")],
        capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("fastnn.kernels ['fastnn'] "), r.stdout
    origin = r.stdout.split()[-1]
    assert origin == "none" or not origin.startswith(str(REPO / "kernels")), origin


def _pyproject():
    try:
        import tomllib
    except ImportError:                     # Python 3.10
        import tomli as tomllib
    with open(REPO / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _no_isolation(flag):
    """``[flag]`` when this environment's setuptools already satisfies pyproject's build
    requirement (build here, offline), else ``[]``: an isolated build, in which pip or
    build fetches it (a fresh venv's bundled setuptools 65 cannot build this project)."""
    from packaging.requirements import Requirement
    try:
        import setuptools
    except ImportError:
        return []
    (req,) = [Requirement(r) for r in _pyproject()["build-system"]["requires"]]
    assert req.name == "setuptools", req
    return [flag] if req.specifier.contains(setuptools.__version__) else []


@pytest.mark.slow
def test_wheel_maps_kernels_under_fastnn(tmp_path):
    """`pip install .` installs what the wheel holds: fastnn/ and fastnn/kernels/ only,
    with the py.typed markers, the embedded digits, the licence and the classifiers."""
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                        *_no_isolation("--no-build-isolation"), "-w", str(tmp_path), str(REPO)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    (wheel,) = tmp_path.glob("fastnn_kernels-*.whl")
    import zipfile
    zf = zipfile.ZipFile(wheel)
    names = zf.namelist()
    tops = {n.split("/")[0] for n in names}
    info = next(t for t in tops if t.endswith(".dist-info"))
    assert tops == {"fastnn", info}, tops
    for mod in ("softmax", "linear", "cross_entropy", "sgd", "_config", "_registry"):
        assert f"fastnn/kernels/{mod}.py" in names
    for data in ("fastnn/py.typed", "fastnn/kernels/py.typed", "fastnn/data/digits.npz",
                 "fastnn/data/README.md", "fastnn/estimators.py", f"{info}/licenses/LICENSE"):
        assert data in names, data
    meta = zf.read(f"{info}/METADATA").decode()
    assert "License-Expression: MIT" in meta.splitlines()
    assert "Classifier: Programming Language :: Python :: 3.11" in meta
    assert "Requires-Dist: numba>=0.62" in meta
    import numpy as np
    with zf.open("fastnn/data/digits.npz") as f, np.load(f) as d:
        assert d["data"].shape == (1797, 64) and d["target"].shape == (1797,)


def _collect(cwd, args):
    """pytest --collect-only from ``cwd``: the node ids (run from tests/ so that no
    checkout-like root with a fastnn/ folder lands on sys.path)."""
    r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                        "-p", "no:cacheprovider", *args], capture_output=True, text=True,
                       cwd=cwd, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    return {line for line in r.stdout.splitlines() if "::" in line}


@pytest.mark.slow
def test_sdist_holds_everything_its_tests_import(tmp_path):
    """The sdist is complete: every tests/*.py and every local module they import
    (conftest.py, numerics.py, reference.py, ...), benches, examples, docs, LICENSE and
    the embedded data; its test suite collects the same tests as the checkout's."""
    import ast
    import tarfile

    r = subprocess.run([sys.executable, "-m", "build", "--sdist", *_no_isolation("--no-isolation"),
                        "--outdir", str(tmp_path / "dist"), str(REPO)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    (sdist,) = (tmp_path / "dist").glob("fastnn_kernels-*.tar.gz")
    with tarfile.open(sdist) as tf:
        top = tf.getnames()[0].split("/")[0]
        names = {n[len(top) + 1:] for n in tf.getnames() if n.startswith(top + "/")}
        tf.extractall(tmp_path / "x", filter="data")
    root = tmp_path / "x" / top
    local = {}
    for folder in ("tests", "benches"):
        for path in sorted((REPO / folder).glob("*.py")):
            assert f"{folder}/{path.name}" in names, f"{folder}/{path.name} is not in the sdist"
            for node in ast.walk(ast.parse(path.read_text())):
                mods = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                        [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
                for m in mods:
                    if (REPO / folder / f"{m.split('.')[0]}.py").exists():
                        local.setdefault(f"{folder}/{m.split('.')[0]}.py", []).append(path.name)
    assert {"tests/numerics.py", "tests/reference.py"} <= set(local), local
    for need, users in local.items():
        assert need in names, f"{need} (imported by {users}) is not in the sdist"
    for need in ("tests/conftest.py", "benches/conftest.py", "LICENSE", "README.md",
                 "MANIFEST.in", "pyproject.toml", "fastnn/py.typed", "kernels/py.typed",
                 "fastnn/data/digits.npz", "fastnn/data/README.md", "fastnn/data/make_digits.py",
                 "docs/bench/README.md", ".ci/min-versions.txt", ".ci/run"):
        assert need in names, need
    for path in (REPO / "examples").glob("*.py"):
        assert f"examples/{path.name}" in names, path.name
    assert not [n for n in names if "__pycache__" in n or n.endswith((".nbi", ".nbc", ".pyc"))]
    args = [".", "../benches"]
    assert _collect(root / "tests", args) == _collect(REPO / "tests", args)


def test_declared_floors_are_the_minimum_versions_ci_tests():
    """pyproject's `numpy>=A, scipy>=B, numba>=C` are exactly the versions .ci/run's
    minimum-versions run installs (.ci/min-versions.txt), and .ci/run runs README's test
    command as README gives it."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    floors = {}
    for spec in _pyproject()["project"]["dependencies"]:
        req = Requirement(spec)
        (s,) = req.specifier
        assert s.operator == ">=", spec
        floors[req.name] = Version(s.version)
    assert set(floors) == {"numpy", "scipy", "numba"}, floors
    pins = {}
    for line in (REPO / ".ci" / "min-versions.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip()] = Version(version.strip())
    assert pins == floors, (pins, floors)
    ci = (REPO / ".ci" / "run").read_text()
    assert "pip install -q -c .ci/min-versions.txt" in ci
    readme = (REPO / "README.md").read_text()
    block = readme.split("**Run the tests**", 1)[1].split("```bash\n", 1)[1].split("\n```", 1)[0]
    assert block.strip() in ci.splitlines(), block


def test_every_operation_has_every_implementation_with_one_signature():
    """Every operation has the core implementations; every registered one (core or not)
    has the same parameters."""
    for op, table in fastnn.kernels.IMPLS.items():
        assert set(fastnn.kernels.CORE_IMPLS) <= set(table), op
        assert set(table) <= set(fastnn.impls()), op
        assert fastnn.kernels.available(op)[:3] == list(fastnn.kernels.CORE_IMPLS)
        sigs = set()
        for impl, fn in table.items():
            py = getattr(fn, "py_func", fn)
            sigs.add(tuple(inspect.signature(py).parameters))
        assert len(sigs) == 1, f"{op}: implementations disagree on parameters: {sigs}"
        assert op in fastnn.kernels.OPS, f"{op}: no formula registered"
        assert callable(getattr(fastnn, op))


def run_py(code, env_extra, timeout=600):
    env = dict(os.environ, **env_extra)
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                       text=True, env=env, timeout=timeout, cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


CACHE_PROBE = """
    import numpy as np, fastnn
    from fastnn.kernels.fast import softmax, linear, cross_entropy
    Z = np.ones((3, 4), np.float32)
    fastnn.softmax(Z)
    fastnn.linear_sigmoid(Z, np.ones((2, 4), np.float32), None)
    fastnn.softmax_cross_entropy_grad(Z, np.array([0, 1, 2]))
    tiles = linear.NT_INTO[0][1] if 3 * 2 * 4 > linear.SMALL_GEMM_FMAS else linear.affine_into
    for d in (softmax.softmax_short_serial, tiles, cross_entropy.sce_grad_labels_short):
        print(d.__name__, sum(d.stats.cache_hits.values()), sum(d.stats.cache_misses.values()))
"""


@pytest.mark.slow
def test_second_process_reuses_numba_cache(tmp_path):
    env = {"NUMBA_CACHE_DIR": str(tmp_path), "FASTNN_NO_CACHE": "0"}
    first = [line.split() for line in run_py(CACHE_PROBE, env).split("\n") if line]
    second = [line.split() for line in run_py(CACHE_PROBE, env).split("\n") if line]
    for name, hits, misses in first:
        assert int(misses) >= 1 and int(hits) == 0, (name, hits, misses)   # compiled, saved
    for name, hits, misses in second:
        assert int(hits) >= 1 and int(misses) == 0, (name, hits, misses)   # loaded, not compiled
    assert any(tmp_path.rglob("*.nbc")), "no cache files were written"


@pytest.mark.slow
def test_jit_kernels_under_numba_boundscheck(tmp_path):
    """The JIT tests once more with NUMBA_BOUNDSCHECK=1 (in a fresh cache dir, so that
    nothing compiled without bounds checks is reused): an out-of-bounds access in any
    kernel would raise IndexError there."""
    env = {"NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path),
           "FASTNN_HYPOTHESIS_EXAMPLES": "8"}
    # first prove the mode is active: a raw kernel fed an unchecked label raises
    out = run_py("""
        import numpy as np
        from fastnn.kernels.fast.cross_entropy import sce_labels_jit
        try:
            sce_labels_jit(np.zeros((2, 3), np.float32), np.array([0, 3]))
        except IndexError:
            print("boundscheck active")
    """, env)
    assert "boundscheck active" in out
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         "tests/test_reference.py", "tests/test_extremes.py", "tests/test_spec_vectors.py",
         "tests/test_gradcheck.py", "tests/test_validation.py"],
        capture_output=True, text=True, cwd=REPO, env=dict(os.environ, **env), timeout=900)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert " passed" in r.stdout and " failed" not in r.stdout


def test_openblas_loaded_before_fastnn_gets_the_short_spin(tmp_path):
    """numpy imported (and its OpenBLAS used) before fastnn: fastnn makes that library
    re-read OPENBLAS_THREAD_TIMEOUT and restarts its idle pool; results unchanged."""
    out = run_py("""
        import ctypes, os
        import numpy as np
        a = np.arange(40000, dtype=np.float32).reshape(200, 200) / 4e4
        before = a @ a
        os.environ.pop("OPENBLAS_THREAD_TIMEOUT", None)
        import fastnn
        from fastnn import _blas_threads
        after = a @ a
        print(os.environ["OPENBLAS_THREAD_TIMEOUT"], bool((before == after).all()))
        for path in _blas_threads._loaded_openblas():
            if "numpy" in path:
                print("numpy-openblas", ctypes.CDLL(path).openblas_thread_timeout())
    """, {"OPENBLAS_THREAD_TIMEOUT": ""})
    assert out.splitlines()[0] == "4 True", out
    assert "numpy-openblas 4" in out, out


SPIN_PROBE = """
    import os, time
    for v in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY"):
        os.environ.pop(v, None)
    os.environ.update({user})
    import numpy as np, numba, fastnn
    from fastnn import _blas_threads
    from fastnn.kernels import IMPLS
    Z = np.random.default_rng(0).standard_normal((65536, 10)).astype(np.float32)
    out = np.empty_like(Z)
    k = IMPLS["softmax"]["jit"]           # parallel on 2 threads at this size
    k(Z, out)
    burnt = []
    for _ in range(7):
        k(Z, out)
        c = time.process_time()
        time.sleep(0.05)                  # the main thread sleeps; the worker idles
        burnt.append(time.process_time() - c)
    print(numba.threading_layer(), numba.get_num_threads(), os.environ.get("GOMP_SPINCOUNT"))
    print(sorted(burnt)[3])
    print(_blas_threads.OMP_REPORT)
"""


def test_numba_openmp_threads_stop_spinning_soon():
    """Numba's libgomp is loaded with GOMP_SPINCOUNT=3000, which is then taken out of the
    environment again; after a parallel kernel its idle worker burns a fraction of the CPU
    time it burns under libgomp's default (300,000 iterations, set here as a user would:
    fastnn keeps it), while the main thread sleeps. (That spinning thread is what made
    a 2-thread OpenBLAS product right after a parallel kernel take twice as long.)"""
    env = {"NUMBA_NUM_THREADS": "2"}
    ours = run_py(SPIN_PROBE.format(user="{}"), env).splitlines()
    default = run_py(SPIN_PROBE.format(user='{"GOMP_SPINCOUNT": "300000"}'), env).splitlines()
    assert ours[0] == "omp 2 None", ours                     # the variable does not stay set
    assert ours[2] == str(["GOMP_SPINCOUNT=3000 for Numba's libgomp"]), ours
    assert default[0] == "omp 2 300000", default
    assert default[2] == str(["kept: GOMP_SPINCOUNT or OMP_WAIT_POLICY set by the user"]), default
    assert float(ours[1]) < float(default[1]) / 4, (ours, default)


def test_libgomp_loaded_before_fastnn_is_left_alone():
    out = run_py("""
        import ctypes, os
        os.environ.pop("GOMP_SPINCOUNT", None)
        ctypes.CDLL("libgomp.so.1")
        import fastnn
        from fastnn import _blas_threads
        print(_blas_threads.OMP_REPORT, os.environ.get("GOMP_SPINCOUNT"))
    """, {})
    assert out.strip() == str(["kept: libgomp was loaded before fastnn"]) + " None", out


def test_registry_takes_another_implementation_for_some_operations(monkeypatch):
    """An implementation beyond the core three, for one operation only: the API takes it
    by name, impls() lists it, other operations say they lack it, and an unknown name
    lists the known ones."""
    import numpy as np
    from fastnn.kernels import _registry as R
    monkeypatch.setattr(R, "IMPLS", {op: dict(t) for op, t in R.IMPLS.items()})
    monkeypatch.setattr(fastnn.kernels, "IMPLS", R.IMPLS)
    import fastnn._impl as I
    monkeypatch.setattr(I, "IMPLS", R.IMPLS)
    calls = []

    @R.register("softmax", "mine")
    def softmax_mine(Z, out):
        calls.append(Z.shape)
        return fastnn.kernels.IMPLS["softmax"]["vectorized"](Z, out)
    assert "mine" in fastnn.impls() and fastnn.impls()[:3] == ("loop", "vectorized", "jit")
    Z = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(fastnn.softmax(Z, impl="mine"), fastnn.softmax(Z, impl="vectorized"))
    assert calls == [(2, 3)]
    assert R.available("softmax")[-1] == "mine" and "mine" not in R.available("sigmoid")
    with pytest.raises(ValueError, match="'sigmoid' has no 'mine' implementation"):
        fastnn.sigmoid(Z, impl="mine")
    with pytest.raises(ValueError, match="impl: expected one of 'loop'"):
        fastnn.softmax(Z, impl="nonsense")
    with pytest.raises(ValueError, match="impl: expected a name"):
        R.register("softmax", "no spaces")
