"""The first run on a new machine: where the cache goes on any install, the notice a
compiling call prints, ``fastnn compile`` / ``fastnn info``, what a first fit compiles,
and the benchmark's break-even arithmetic."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

_EVENTS = """
import json, sys
from numba.core import event
names = []
class L(event.Listener):
    def on_start(self, ev):
        f = ev.data['dispatcher'].py_func
        names.append(f.__module__ + '.' + f.__qualname__)
    def on_end(self, ev):
        pass
event.register('numba:compile', L())
"""


def _run(code, env, cwd=None, timeout=900, **kw):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=cwd or REPO,
                          capture_output=True, text=True, timeout=timeout, **kw)


def _fresh_env(tmp_path, **extra):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "nbcache"), **extra)
    env.pop("FASTNN_NO_CACHE", None)
    env.pop("FASTNN_COMPILE_NOTICE", None)
    return env


def test_first_call_says_once_that_it_compiles_and_a_warm_one_says_nothing(tmp_path):
    code = """
        import numpy as np, fastnn
        Z = np.random.default_rng(0).standard_normal((64, 10)).astype(np.float32)
        P = fastnn.softmax(Z)
        P = fastnn.softmax(Z)
        print(float(P.sum()))
    """
    env = _fresh_env(tmp_path)
    runs = [_run(code, env) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
        assert abs(float(r.stdout.split()[-1]) - 64.0) < 1e-4
    lines = [ln for ln in runs[0].stderr.splitlines() if ln.startswith("fastnn: compiling")]
    assert len(lines) == 1, runs[0].stderr
    assert "softmax (float32)" in lines[0] and "once" in lines[0] and str(tmp_path) in lines[0]
    assert "about" in lines[0]
    assert "fastnn: compiling" not in runs[1].stderr, runs[1].stderr     # warm: silent
    # turned off
    r = _run(code, dict(_fresh_env(tmp_path / "b"), FASTNN_COMPILE_NOTICE="0"))
    assert r.returncode == 0 and "fastnn: compiling" not in r.stderr, r.stderr


@pytest.mark.slow
def test_every_compiled_epoch_loads_from_the_cache_in_the_next_process(tmp_path):
    """The compiled epoch and the persistent one (one parallel region: 784-200-10, batch
    10, 2 threads) are compiled once; a second process loads them (the persistent epoch
    was compiled again in every process: its closures held dispatchers, which Numba's
    cache key pickles differently each time). Same losses in both processes."""
    code = """
        import numpy as np, fastnn
        X = np.random.default_rng(3).random((400, 784)).astype(np.float32)
        y = np.arange(400) % 10
        for h in (30, 200):
            hist = fastnn.MLP([784, h, 10], seed=0).fit(X, y, epochs=1, batch_size=10, lr=0.5)
            print(repr(hist[-1]["loss"]))
    """
    env = _fresh_env(tmp_path, NUMBA_NUM_THREADS="2")
    runs = [_run(code, env) for _ in range(2)]
    for r in runs:
        assert r.returncode == 0, r.stderr
    first = runs[0].stderr
    assert "compiling the training epoch (float32)" in first, first
    assert "compiling the training epoch (one parallel region)" in first, first
    assert "fastnn: compiling" not in runs[1].stderr, runs[1].stderr
    assert runs[0].stdout == runs[1].stdout


def test_first_fit_compiles_only_what_its_epoch_runs(tmp_path):
    """A sigmoid/softmax network trained with plain SGD on a small batch compiles one
    epoch plan: no momentum update, no other loss, no parallel-region kernel it does
    not run (the whole epoch used to be compiled with every path of every network)."""
    code = _EVENTS + """
import numpy as np
from fastnn import MLP
from fastnn import _train_jit as tj
g = np.random.default_rng(0)
X = g.random((120, 30), dtype=np.float32); y = g.integers(0, 5, 120)
m = MLP([30, 12, 5], seed=0, dtype="float32")
m.fit(X, y, epochs=1, batch_size=10, lr=0.1)
print(json.dumps(names))
print(json.dumps([list(p) for p in tj._EPOCHS]))
"""
    r = _run(code, _fresh_env(tmp_path))
    assert r.returncode == 0, r.stderr
    names = json.loads(r.stdout.splitlines()[-2])
    plans = json.loads(r.stdout.splitlines()[-1])
    assert len(plans) == 1 and plans[0][3] is True            # one plan, plain SGD fused
    assert any(n.endswith("_make_epoch.<locals>.epoch") for n in names)
    never = ("sgd_update", "sigmoid_bce_grad_jit", "sigmoid_mse_grad_jit", "identity_mse_grad_jit",
             "gemm_tn_acc_nt_parallel", "_make_persistent", "tn_col_blocks_parallel",
             "affine_blocks_parallel", "hidden_delta_blocks_parallel")
    assert not [n for n in names if any(k in n for k in never)], names


def test_plan_covers_every_path_an_epoch_takes():
    """make_plan against a brute-force walk of the steps (every layer, every batch)."""
    from fastnn import _train_jit as tj
    pol = tj.policy()
    for sizes in ([784, 100, 10], [64, 32, 10], [37, 9, 6, 5], [20, 300, 2]):
        layers = np.array([[sizes[i + 1], sizes[i], 0, 0] for i in range(len(sizes) - 1)], np.int64)
        for N, B in ((1, 1), (83, 7), (600, 10), (1000, 64), (700, 300), (40, 40)):
            p = tj.make_plan(layers, N, B, 0, 0, 1, True, True, pol)
            fwd = bwd = 0
            for s in range(0, N, B):
                nb = min(B, N - s)
                for K, D, _, _ in layers:
                    fwd |= 1 << tj.forward_path.py_func(nb, K, D, pol[0], pol[1], pol[3], pol[5])
                    bwd |= 1 << tj.backward_path.py_func(nb, K, D, pol[0], pol[2], pol[3], pol[5])
            assert (p.forward, p.backward) == (fwd, bwd), (sizes, N, B)


def _wheel_install(tmp_path):
    """A non-editable install of this checkout into tmp_path/site (read-only)."""
    wheels = tmp_path / "wheels"
    from test_packaging import _no_isolation   # a fresh venv's setuptools cannot build offline
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                        *_no_isolation("--no-build-isolation"), "-q", "-w", str(wheels), str(REPO)], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    site = tmp_path / "site"
    (wheel,) = wheels.glob("fastnn_kernels-*.whl")
    import zipfile
    zipfile.ZipFile(wheel).extractall(site)
    for root, dirs, files in os.walk(site):
        for n in dirs + files:
            p = os.path.join(root, n)
            os.chmod(p, os.stat(p).st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    os.chmod(site, 0o555)
    return site


_READ_ONLY_USE = """
import warnings, numpy as np
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    import fastnn
    Z = np.random.default_rng(0).standard_normal((20, 7)).astype(np.float32)
    P = fastnn.softmax(Z)
    m = fastnn.MLP([7, 5, 3], seed=0)
    h = m.fit(Z, np.arange(20) % 3, epochs=1, batch_size=4, lr=0.1)
from fastnn.kernels._cache import CACHE_INFO
print(fastnn.__file__.startswith(SITE), abs(float(P.sum()) - 20) < 1e-4, h.loss[0] > 0)
print(CACHE_INFO["kind"], len([x for x in w if "cache" in str(x.message)]))
"""


def _unprivileged():
    """preexec_fn for a child that cannot write what its mode bits forbid: as root it
    drops the capabilities that override file permissions (CAP_DAC_OVERRIDE,
    CAP_DAC_READ_SEARCH, CAP_FOWNER) from its bounding set before exec, so the child
    holds none of them; as another user nothing is needed."""
    if not hasattr(os, "getuid") or os.getuid() != 0:
        return None
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)

    def drop():
        for cap in (1, 2, 3):
            if libc.prctl(24, cap, 0, 0, 0) != 0:         # PR_CAPBSET_DROP
                raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")
    return drop


@pytest.mark.slow
def test_read_only_install_starts_for_a_user_with_no_home(tmp_path):
    """A non-editable install in a folder nobody may write, imported by an unprivileged
    user with no home and no NUMBA_CACHE_DIR: no exception at import, one warning, the
    cache in a temporary folder; and with no writable temporary folder either, the
    kernels compile in memory after one warning."""
    site = _wheel_install(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    home = tmp_path / "home"           # a home that cannot be written (nor ~/.cache made)
    home.mkdir()
    os.chmod(home, 0o555)
    base = {k: v for k, v in os.environ.items()
            if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "HOME", "FASTNN_NO_CACHE",
                         "PYTHONPATH")}
    base.update(HOME=str(home), PYTHONPATH=str(site), FASTNN_COMPILE_NOTICE="0")
    code = f"SITE = {str(site)!r}\n" + _READ_ONLY_USE
    pre = _unprivileged()
    r = _run(code, dict(base, TMPDIR=str(tmp)), cwd=work, preexec_fn=pre)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:3] == ["True", "True", "True"], r.stdout
    assert r.stdout.split()[3:] == ["temporary", "1"], r.stdout
    assert any(p.name.startswith("fastnn-numba-cache-") for p in tmp.iterdir())
    # nothing writable at all: compiled in memory, still one warning, still works
    ro_tmp = tmp_path / "ro_tmp"
    ro_tmp.mkdir()
    os.chmod(ro_tmp, 0o555)
    # (tempfile falls back to /tmp and the working folder when TMPDIR is read-only: pin it)
    pin = f"import tempfile\ntempfile.tempdir = {str(ro_tmp)!r}\n"
    r = _run(pin + code, base, cwd=ro_tmp, preexec_fn=pre)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "True", "True", "none", "1"], r.stdout
    for root, dirs, _ in os.walk(tmp_path):        # let pytest clean up
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
    os.chmod(site, 0o755)


def test_fastnn_compile_warms_the_cache_and_info_says_so(tmp_path):
    """`fastnn compile --only ...` in parallel processes fills an empty cache: then the
    same calls compile nothing, and `fastnn info` reports the cache warm."""
    env = _fresh_env(tmp_path)
    ops = ("tiles,sigmoid,sigmoid_backward,softmax,log_softmax,softmax_cross_entropy,"
           "softmax_cross_entropy_grad,sigmoid_bce_grad,sigmoid_mse_grad,linear,linear_sigmoid,"
           "linear_backward,hidden_delta,sgd_update")
    info = [sys.executable, "-m", "fastnn", "info"]
    r = subprocess.run(info, env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "cold for 13 of 13" in r.stdout, r.stdout
    r = subprocess.run([sys.executable, "-m", "fastnn", "compile", "--dtype", "float32",
                        "--jobs", "2", "--only", ops], env=env, capture_output=True, text=True,
                       timeout=900, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert "14/14" in r.stderr and "jobs in" in r.stderr, r.stderr
    assert str(tmp_path / "nbcache") in r.stdout
    r = subprocess.run(info, env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert "warm (13 of 13" in r.stdout, r.stdout
    code = _EVENTS + """
from fastnn import warmup
for op in sys.argv[1].split(","):
    warmup._op_calls(op, "float32")
print(json.dumps(names))
"""
    r = subprocess.run([sys.executable, "-c", code, ops.split(",", 1)[1]], env=env,
                       capture_output=True,
                       text=True, timeout=600, cwd=REPO)
    assert r.returncode == 0, r.stderr
    compiled = [n for n in json.loads(r.stdout.splitlines()[-1]) if n.startswith("fastnn")]
    assert compiled == [], compiled


def test_fastnn_compile_rejects_bad_arguments_in_one_line():
    for argv, what in ((["--jobs", "0"], "--jobs"), (["--only", "nonsense"], "--only"),
                       (["--dtype", "float16"], "--dtype")):
        r = subprocess.run([sys.executable, "-m", "fastnn", "compile", *argv],
                           capture_output=True, text=True, timeout=300, cwd=REPO)
        assert r.returncode == 2, (argv, r.stderr)
        assert what in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_break_even_calls():
    from fastnn.bench import break_even_calls, compile_seconds
    assert break_even_calls(2.0, 30e-6, 10e-6) == pytest.approx(100_000)
    assert break_even_calls(2.0, 10e-6, 10e-6) is None          # never pays
    assert break_even_calls(2.0, 5e-6, 10e-6) is None
    assert break_even_calls(None, 5e-6, 1e-6) is None
    row = {"cold": {"first_call_s": 3.5}, "warm": {"first_call_s": 0.25}}
    assert compile_seconds(row) == pytest.approx(3.25)
    assert compile_seconds({"cold": {"error": "x"}}) is None


def test_the_checkout_imports_after_a_non_editable_install(tmp_path):
    """Python run from the checkout imports the checkout's fastnn/ (the current folder
    comes first on sys.path), even when a non-editable install is on the path: it finds
    the checkout's kernels/ beside it (it used to fail: cannot import name 'kernels')."""
    site = _wheel_install(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # -S: no .pth files, so not this environment's editable install of the checkout (its
    # finder would map fastnn.kernels itself); NumPy and Numba from its site-packages.
    import numpy
    deps = str(Path(numpy.__file__).resolve().parent.parent)
    env.update(PYTHONPATH=os.pathsep.join([str(site), deps]), FASTNN_COMPILE_NOTICE="0")
    code = ("import numpy as np, fastnn\n"
            "print(fastnn.__file__, fastnn.kernels.__file__, fastnn.softmax(np.zeros((1, 2), np.float32)).tolist())")
    r = subprocess.run([sys.executable, "-S", "-c", code], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=600)
    for root, dirs, _ in os.walk(tmp_path):        # let pytest clean up
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
    assert r.returncode == 0, r.stderr[-2000:]
    f, k, P = r.stdout.split(" ", 2)
    assert f == str(REPO / "fastnn" / "__init__.py") and k == str(REPO / "kernels" / "__init__.py"), r.stdout
    assert P.strip() == "[[0.5, 0.5]]"
