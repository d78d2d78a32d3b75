"""Bring your own kernel (fastnn.plugins, fastnn.conformance): the conformance sweep that
fastnn's own implementations pass, the student's softmax from docs/byo-kernel.md (the
unshifted one fails on the overflow case, the fixed one passes), bad registrations named,
an implementation from a separately installed package found through its entry point,
and a user's module:function in ``fastnn check`` and ``fastnn bench``."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

import fastnn
from fastnn import conformance, plugins
from fastnn.kernels import CORE_IMPLS, IMPLS

OPS = sorted(conformance.SWEEPS)

STUDENT = textwrap.dedent('''
    import numpy as np

    def softmax_naive(Z, out):
        """The formula as written: exp(z_j) / sum_k exp(z_k)."""
        E = np.exp(Z)
        out[...] = E / E.sum(axis=1, keepdims=True)

    def softmax_shifted(Z, out):
        """Max subtraction: exp(z_j - m) / sum_k exp(z_k - m), m the row maximum."""
        E = np.exp(Z - Z.max(axis=1, keepdims=True))
        out[...] = E / E.sum(axis=1, keepdims=True)

    def softmax_fixed(Z, out):
        """Max subtraction; z - m overflows to -inf at logits of +-the dtype's maximum,
        which is right (exp(-inf) = 0): say so to NumPy."""
        with np.errstate(over="ignore", invalid="ignore"):
            E = np.exp(Z - Z.max(axis=1, keepdims=True))
        out[...] = E / E.sum(axis=1, keepdims=True)
''')


@pytest.fixture
def student(tmp_path, monkeypatch):
    """The student's module in the current directory; whatever it registers is removed."""
    (tmp_path / "student.py").write_text(STUDENT)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    before = {op: dict(t) for op, t in IMPLS.items()}
    user = {op: dict(t) for op, t in plugins.USER.items()}
    yield tmp_path
    for op in IMPLS:
        IMPLS[op].clear()
        IMPLS[op].update(before[op])
    plugins.USER.clear()
    plugins.USER.update(user)
    sys.modules.pop("student", None)


def _status(report):
    """{case name: ok} over both dtypes."""
    out = {}
    for o in report.outcomes:
        out[o.case.name] = out.get(o.case.name, True) and o.ok
    return out


@pytest.mark.parametrize("impl", CORE_IMPLS)
@pytest.mark.parametrize("op", OPS)
def test_fastnn_own_implementations_pass_the_sweep(op, impl):
    report = fastnn.check(op, impl)
    assert report.ok, str(report)
    assert len(report.outcomes) >= 12 and {np.dtype(o.case.dtype) for o in report.outcomes} == \
        {np.dtype(np.float32), np.dtype(np.float64)}
    names = " ".join(o.case.name for o in report.outcomes)
    assert "odd sizes" in names and ("empty" in names or op in ("softmax_cross_entropy",
                                      "softmax_cross_entropy_grad", "sigmoid_bce_grad", "sigmoid_mse_grad"))
    assert not any(o.notes for o in report.outcomes), "fastnn's kernels never warn"


def test_student_softmax_fails_on_overflow_and_the_fix_passes(student):
    naive = fastnn.check("softmax", "student:softmax_naive")
    st = _status(naive)
    assert not naive.ok and st["logits ±1e4"] is False and st["odd sizes Z(7, 33)"] is True
    first = naive.failures[0]
    assert first.case.name == "logits ±1e4"
    assert any("overflow encountered in exp" in p for p in first.problems)
    assert np.isnan(first.got["out"][0, 0])              # inf/inf where exp(1e4) overflowed
    text = str(naive)
    assert "first failure:" in text and "10000." in text and "got      out" in text

    shifted = fastnn.check("softmax", "student:softmax_shifted")
    st = _status(shifted)
    assert st["logits ±1e4"] is True and st["logits ± the dtype's maximum"] is False
    assert any("overflow encountered in subtract" in p for p in shifted.failures[0].problems)

    fixed = fastnn.check("softmax", "student:softmax_fixed")
    assert fixed.ok, str(fixed)
    assert "student:softmax_fixed" in fastnn.kernels.available("softmax")
    Z = np.array([[1e4, 0.0, -1e4]], np.float32)
    np.testing.assert_allclose(fastnn.softmax(Z, impl="student:softmax_fixed"), [[1, 0, 0]])


def test_bad_registrations_are_caught_and_named(student):
    def wrong_signature(Z):
        return Z
    with pytest.raises(TypeError, match=r"cannot take the 2 arguments of softmax\(Z, out\)"):
        fastnn.register("softmax", "bad", wrong_signature)

    def returns_new(Z, out):
        return fastnn.softmax(Z, impl="vectorized")

    def writes_outside(Z, out):
        fastnn.kernels.IMPLS["softmax"]["vectorized"](Z, out)
        if out.size:
            flat = np.ndarray((out.size + 1,), out.dtype, buffer=out.base, offset=out.__array_interface__["data"][0]
                              - out.base.__array_interface__["data"][0])
            flat[-1] = 0.0                        # one element past the end
        return out

    def changes_input(Z, out):
        fastnn.kernels.IMPLS["softmax"]["vectorized"](Z, out)
        Z[...] = 0
        return out

    def raises(Z, out):
        raise RuntimeError("not written yet")

    want = {returns_new: "returned a new array and left out unwritten",
            writes_outside: "wrote outside out", changes_input: "changed its input Z",
            raises: "raised RuntimeError: not written yet"}
    for fn, msg in want.items():
        report = fastnn.check("softmax", fn)
        assert not report.ok
        named = [o for o in report.failures if any(msg in p for p in o.problems)]
        # in place, Z is out: zeroing "the input" shows as a wrong result there
        assert all(o in named or (fn is changes_input and o.case.name.startswith("in place"))
                   for o in report.failures), (fn.__name__, str(report))
        assert len(report.failures) >= len(report.outcomes) - 4, fn.__name__   # not just one case
        assert msg in str(report)


def test_register_api(student):
    def mine(Z, out):
        return fastnn.kernels.IMPLS["softmax"]["jit"](Z, out)
    fastnn.register("softmax", "mine")(mine)
    assert "mine" in fastnn.impls() and fastnn.kernels.available("softmax")[-1] == "mine"
    assert "mine" not in fastnn.kernels.available("sigmoid")
    Z = np.random.default_rng(0).standard_normal((5, 7)).astype(np.float32)
    np.testing.assert_array_equal(fastnn.softmax(Z, impl="mine"), fastnn.softmax(Z, impl="jit"))
    with pytest.raises(ValueError, match="already registered .* replace=True"):
        fastnn.register("softmax", "mine", mine)
    fastnn.register("softmax", "mine", mine, replace=True)
    with pytest.raises(ValueError, match="'jit' is fastnn's own implementation"):
        fastnn.register("softmax", "jit", mine)
    with pytest.raises(ValueError, match="op: expected one of .*softmax.*, got 'softmx'"):
        fastnn.register("softmx", "mine2", mine)
    with pytest.raises(ValueError, match="name: expected letters"):
        fastnn.register("softmax", "has space", mine)
    with pytest.raises(TypeError, match="fn: expected a function"):
        fastnn.register("softmax", "mine3", 42)
    with pytest.raises(ValueError, match="was not registered from outside"):
        fastnn.unregister("softmax", "jit")
    fastnn.unregister("softmax", "mine")
    assert "mine" not in IMPLS["softmax"]
    with pytest.raises(ValueError, match="operation 'softmax' has no 'student:nope'|has no 'nope'"):
        fastnn.softmax(Z, impl="student:nope")


def _cli(*args, cwd, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "fastnn.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_check_command_line(student):
    r = _cli("check", "softmax", "student:softmax_naive", cwd=student)
    assert r.returncode == 1, r.stderr
    assert "FAIL logits ±1e4" in r.stdout and "first failure:" in r.stdout
    r = _cli("check", "softmax", "student:softmax_fixed", cwd=student)
    assert r.returncode == 0 and "26 of 26 cases passed" in r.stdout, r.stdout + r.stderr
    for args, msg in [(("check", "softmx", "jit"), "OP: expected one of"),
                      (("check", "softmax", "student:nope"), "module 'student' has no 'nope'"),
                      (("check", "softmax", "nomodule:f"), "cannot import module 'nomodule'"),
                      (("check", "sigmoid", "cuda2"), "operation 'sigmoid' has no 'cuda2'")]:
        r = _cli(*args, cwd=student)
        assert r.returncode == 2 and r.stdout == "", (args, r.stdout)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("fastnn check: error:") and msg in lines[0], r.stderr


def test_bench_times_a_users_contender_beside_fastnn(student):
    out = student / "bench.json"
    r = _cli("bench", "--quick", "--ops", "softmax", "--sizes", "Z(32,10)", "--passes", "1",
             "--contenders", "jit,student:softmax_fixed", "--no-coldstart", "--json", str(out),
             cwd=student, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rec = json.loads(out.read_text())
    rows = {x["contender"]: x for x in rec["results"] if x["case"].startswith("softmax|")}
    assert set(rows) == {"jit", "student:softmax_fixed"}, rows.keys()
    assert rows["student:softmax_fixed"]["median_s"] > 0 and rows["jit"]["median_s"] > 0
    assert "student:softmax_fixed" in r.stdout
    r = _cli("bench", "--quick", "--contenders", "student:softmax_fixed", cwd=student)
    assert r.returncode == 2 and "say which operation it implements with --ops" in r.stderr


def _wheel(folder, name, files, entry_points):
    """A minimal wheel of ``files`` ({path: text}) with ``entry_points.txt``: a package
    installed as pip installs any other (no build step)."""
    dist = f"{name}-0.1.dist-info"
    files = dict(files)
    files[f"{dist}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n"
    files[f"{dist}/WHEEL"] = "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files[f"{dist}/entry_points.txt"] = entry_points
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist}/RECORD,,")
    files[f"{dist}/RECORD"] = "\n".join(record) + "\n"
    path = folder / f"{name}-0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        for p, text in files.items():
            z.writestr(p, text)
    return path


def test_entry_point_of_a_separately_installed_package(tmp_path):
    """A package of the user's, installed with pip into its own folder, registers through
    the ``fastnn.implementations`` entry point: one as a module of decorators, one as a
    dict; a broken one is reported, not fatal."""
    kernels = textwrap.dedent('''
        import numpy as np
        import fastnn

        @fastnn.register("softmax", "theirs")
        def softmax(Z, out):
            with np.errstate(over="ignore", invalid="ignore"):
                E = np.exp(Z - Z.max(axis=1, keepdims=True))
            out[...] = E / E.sum(axis=1, keepdims=True)

        def _sigmoid(Z, out):
            with np.errstate(over="ignore"):
                out[...] = 1 / (1 + np.exp(-Z))

        TABLE = {"sigmoid": _sigmoid}
    ''')
    whl = _wheel(tmp_path, "theirkernels", {"theirkernels/__init__.py": kernels},
                 "[fastnn.implementations]\ntheirs = theirkernels\ntable = theirkernels:TABLE\n"
                 "broken = theirkernels_missing\n")
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                        "--target", str(target), str(whl)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    env = dict(os.environ, PYTHONPATH=str(target) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = textwrap.dedent('''
        import json, numpy as np, fastnn
        from fastnn.kernels import UNAVAILABLE
        names = fastnn.impls()
        Z = np.array([[1e4, 0.0, -1.0]], np.float32)
        P = fastnn.softmax(Z, impl="theirs")
        try:
            fastnn.softmax(Z, impl="broken")
            err = ""
        except ValueError as exc:
            err = str(exc)
        print(json.dumps({"names": names, "P": P.tolist(), "sig": fastnn.sigmoid(np.zeros(2), impl="table").tolist(),
                          "err": err, "ok": fastnn.check("softmax", "theirs").ok}))
    ''')
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert "theirs" in got["names"] and "table" in got["names"] and got["names"][:3] == ["loop", "vectorized", "jit"]
    assert got["P"] == [[1.0, 0.0, 0.0]] and got["sig"] == [0.5, 0.5] and got["ok"] is True
    assert "broken is unavailable here" in got["err"] and "theirkernels_missing" in got["err"], got["err"]
    r = _cli("check", "softmax", "theirs", cwd=tmp_path, env=env)
    assert r.returncode == 0 and "26 of 26 cases passed" in r.stdout, r.stdout + r.stderr
    r = _cli("info", cwd=tmp_path, env=env)
    assert r.returncode == 0 and "theirs" in r.stdout and "theirkernels_missing" in r.stdout, r.stdout
