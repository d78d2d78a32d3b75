"""Checkpoints at the edges (issue 20, points 2, 4 and 7): ``fit(checkpoint=)`` checks
its path before training, a killed save leaves at most one temporary file, which the
next save removes, ``MLP.load`` raises one exception type (CheckpointError) for every
malformed file, and every constructor argument's error names the argument."""
from __future__ import annotations

import copy
import gc
import io
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastnn
from fastnn import CheckpointError
from fastnn.model import MLP

SIZES = [4, 3, 2]
N_PARAMS = 3 * (4 + 1) + 2 * (3 + 1)


def _data(n=20, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 4)), rng.integers(0, 2, n)


def _trained(dtype=np.float64):
    m = MLP(SIZES, dtype=dtype, seed=1, impl="vectorized")
    X, y = _data()
    m.fit(X, y, epochs=2, batch_size=6, lr=0.3, momentum=0.5)
    return m


# --- point 2: the checkpoint path is checked before training ---------------------------------
def _bad_checkpoint_paths(tmp_path):
    (tmp_path / "a_file").write_text("x")
    ro = tmp_path / "read_only"
    ro.mkdir()
    ro.chmod(0o500)
    cases = [
        (tmp_path / "missing" / "ck.npz", "does not exist"),
        (tmp_path, "is a folder"),
        (tmp_path / "a_file" / "ck.npz", "is not a folder"),
        ("", "empty"),
    ]
    if not os.access(ro, os.W_OK):          # root writes anywhere: no read-only case then
        cases.append((ro / "ck.npz", "not writable"))
    return cases


@pytest.mark.parametrize("impl", ("vectorized", "jit"))
def test_fit_checks_the_checkpoint_before_training(tmp_path, impl):
    X, y = _data()
    for path, why in _bad_checkpoint_paths(tmp_path):
        m = MLP(SIZES, seed=1, impl=impl)
        before = (m._params.copy(), m._rng.bit_generator.state)
        with pytest.raises(ValueError, match=f"^checkpoint: .*{why}") as info:
            m.fit(X, y, epochs=2, batch_size=5, lr=0.1, checkpoint=path)
        assert not isinstance(info.value, OSError)
        assert ".fastnn" not in str(info.value)            # never names a temporary file
        assert m.epoch == 0 and not m.history
        np.testing.assert_array_equal(m._params, before[0])
        assert m._rng.bit_generator.state == before[1]
    with pytest.raises(TypeError, match="^checkpoint: expected a file path"):
        MLP(SIZES).fit(X, y, epochs=1, batch_size=5, lr=0.1, checkpoint=3)


def test_save_checks_its_path_first(tmp_path):
    m = MLP(SIZES)
    for path, why in _bad_checkpoint_paths(tmp_path):
        with pytest.raises(ValueError, match=f"^path: .*{why}"):
            m.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "read_only"]


def test_save_replaces_a_leftover_temporary_and_removes_it(tmp_path):
    m = _trained()
    path = tmp_path / "ck.npz"
    tmp = tmp_path / ".ck.npz.fastnn-tmp"
    tmp.write_bytes(b"left by a killed save" * 1000)
    m.save(path)
    assert sorted(os.listdir(tmp_path)) == ["ck.npz"]
    np.testing.assert_array_equal(MLP.load(path)._params, m._params)
    # a symlink under the temporary name is removed, never followed
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    tmp.symlink_to(victim)
    m.save(path)
    assert victim.read_text() == "keep me"
    assert sorted(os.listdir(tmp_path)) == ["ck.npz", "victim"]


_SAVER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from fastnn.model import MLP
    path, mode = sys.argv[1], sys.argv[2]
    m = MLP([300, 200, 10], dtype=np.float64, seed=0)
    m.save(path)
    print("saved", flush=True)
    if mode == "stall":             # stall inside the save, after writing the temporary file
        real = np.savez
        def slow(f, **arrays):
            real(f, **arrays)
            f.flush()
            print("in save", flush=True)
            time.sleep(60)
        np.savez = slow
        m.save(path)
    else:                           # save in a loop; killed at a random moment
        i = 0
        while True:
            i += 1
            m.weights[0][0, 0] = i
            m.save(path)
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_killed_saves_leave_at_most_one_temporary_and_a_loadable_checkpoint(tmp_path):
    """kill -9 during saves: the issue saw 11 temporaries of ~5 MB after 12 kills."""
    path = tmp_path / "ck.npz"
    rng = np.random.default_rng(0)
    stalled = 0
    for mode in ("stall", "stall", "stall", "loop", "loop", "loop"):
        p = subprocess.Popen([sys.executable, "-c", _SAVER, str(path), mode],
                             stdout=subprocess.PIPE, text=True)
        try:
            assert p.stdout.readline().strip() == "saved"
            if mode == "stall":
                assert p.stdout.readline().strip() == "in save"
                assert (tmp_path / ".ck.npz.fastnn-tmp").exists()     # killed mid-save, for sure
                stalled += 1
            else:
                import time
                time.sleep(rng.uniform(0.05, 0.4))
            p.send_signal(signal.SIGKILL)
            p.wait(30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdout.close()
        names = sorted(os.listdir(tmp_path))
        assert set(names) <= {"ck.npz", ".ck.npz.fastnn-tmp"}, names
        loaded = MLP.load(path)                    # always the last complete save
        assert loaded.sizes == (300, 200, 10) and np.isfinite(loaded._params).all()
    assert stalled == 3
    loaded.save(path)                              # the next save removes the leftover
    assert sorted(os.listdir(tmp_path)) == ["ck.npz"]
    np.testing.assert_array_equal(MLP.load(path)._params, loaded._params)


# --- point 4: MLP.load on malformed files ------------------------------------------------------
def _meta(m):
    return dict(format="fastnn.MLP/1", config=m._config(), epoch=m.epoch,
                rng_state=m._rng.bit_generator.state, hyperparameters=m.hyperparameters,
                history=list(m.history))


def _write(path, meta=None, params=None, velocity=None, *, m=None, members=None, raw_meta=None):
    """A checkpoint as save() writes it, with any part replaced."""
    m = m if m is not None else _trained()
    arrays = dict(params=m._params if params is None else params,
                  velocity=m._velocity if velocity is None else velocity,
                  meta=np.array(json.dumps(_meta(m) if meta is None else meta))
                  if raw_meta is None else raw_meta)
    if members is not None:
        arrays = members(arrays)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def _set(d, keys, value):
    d = copy.deepcopy(d)
    t = d
    for k in keys[:-1]:
        t = t[k]
    if value is _DEL:
        del t[keys[-1]]
    else:
        t[keys[-1]] = value
    return d


_DEL = object()
GOOD = _trained()
GOOD_META = _meta(GOOD)
P = GOOD._params

_META_CASES = [  # (keys into the metadata, new value, words of the message)
    (("format",), "fastnn.MLP/2", "format 'fastnn.MLP/2'"),
    (("format",), _DEL, "format None"),
    (("format",), 5, "format 5"),
    (("config",), _DEL, "'config' must be a JSON object"),
    (("config",), [1], "'config' must be a JSON object"),
    (("config", "sizes"), _DEL, "missing ['sizes']"),
    (("config", "colour"), "red", "unknown"),
    (("config", "sizes"), "4,3,2", "sizes must be a list"),
    (("config", "sizes"), [4, 0, 2], "sizes must be a list"),
    (("config", "sizes"), [4.0, 3, 2], "sizes must be a list"),
    (("config", "sizes"), [True, 3, 2], "sizes must be a list"),
    (("config", "sizes"), [4], "sizes must be a list"),
    (("config", "sizes"), [4, 3, 3], "params: expected shape (27,), the parameter count of sizes [4, 3, 3], got (23,)"),
    (("config", "sizes"), [10 ** 6, 10 ** 6, 2], "expected shape"),
    (("config", "dtype"), "float16", "dtype must be"),
    (("config", "dtype"), 4, "dtype must be"),
    (("config", "dtype"), "float32", "expected float32 values"),
    (("config", "hidden"), "relu", "config: hidden"),
    (("config", "hidden"), None, "config: hidden"),
    (("config", "output"), "identity", "config: loss"),
    (("config", "impl"), "cuda", "config: impl"),
    (("config", "seed"), -1, "config: seed"),
    (("config", "seed"), "0", "config: seed"),
    (("epoch",), -1, "'epoch' must be an integer >= 0"),
    (("epoch",), 1.5, "'epoch' must be an integer >= 0"),
    (("epoch",), "2", "'epoch' must be an integer >= 0"),
    (("epoch",), True, "'epoch' must be an integer >= 0"),
    (("epoch",), _DEL, "'epoch' must be an integer >= 0"),
    (("rng_state",), _DEL, "'rng_state' must be a JSON object"),
    (("rng_state",), {}, "rng_state: not a state"),
    (("rng_state", "bit_generator"), "MT19937", "rng_state: not a state"),
    (("rng_state", "state"), _DEL, "rng_state: not a state"),
    (("rng_state", "state", "state"), "x", "rng_state: not a state"),
    (("rng_state", "state", "state"), -1, "rng_state: not a state"),
    (("rng_state", "uinteger"), -1, "rng_state: not a state"),
    (("rng_state", "has_uint32"), "yes", "rng_state: not a state"),
    (("rng_state", "state"), [1, 2], "rng_state: not a state"),
    (("hyperparameters",), [1], "'hyperparameters' must be a JSON object"),
    (("history",), {"a": 1}, "'history' must be a list"),
    (("history", 0), 7, "history[0]: expected an epoch record"),
    (("history", 1, "loss"), "low", "history[1]: 'loss' must be a number"),
    (("history", 0, "epoch"), 1.0, "history[0]: 'epoch' must be an integer"),
    (("history", 0, "seconds"), _DEL, "history[0]: missing ['seconds']"),
]

_ARRAY_CASES = [  # (params, velocity, words)
    (P.astype(np.float16), None, "params: expected float64 values (the model's dtype), got float16"),
    (P.astype(np.float32), None, "params: expected float64 values"),
    (np.round(P * 100).astype(np.int64), None, "params: expected float64 values (the model's dtype), got int64"),
    (P.astype(np.complex128), None, "got complex128"),
    (P > 0, None, "got bool"),
    (P.astype(np.longdouble), None, "params: expected float64"),
    (None, GOOD._velocity.astype(np.float32), "velocity: expected float64"),
    (P[:-1], None, f"params: expected shape ({N_PARAMS},)"),
    (np.append(P, 0.0), None, "params: expected shape"),
    (P.reshape(1, -1), None, "params: expected shape"),
    (np.float64(1.0), None, "params: expected shape"),
    (np.where(np.arange(P.size) == 3, np.nan, P), None, "params: contains NaN or infinite"),
    (np.where(np.arange(P.size) == 0, -np.inf, P), None, "params: contains NaN or infinite"),
    (None, np.full_like(P, np.inf), "velocity: contains NaN or infinite"),
    (np.array([None] * P.size, dtype=object), None, "params.npy: dtype object cannot be in a checkpoint"),
    (np.zeros(P.size, dtype=[("a", "f8")]), None, "params: expected float64"),
]


def _member_cases():
    def drop(name):
        return lambda a: {k: v for k, v in a.items() if k != name}
    return [
        (dict(members=drop("params")), "no params.npy in the archive"),
        (dict(members=drop("velocity")), "no velocity.npy"),
        (dict(members=drop("meta")), "no meta.npy"),
        (dict(members=lambda a: {"x": np.zeros(3)}), "no meta.npy, params.npy, velocity.npy"),
        (dict(raw_meta=np.array(json.dumps(GOOD_META).encode())), "meta.npy: expected a JSON text"),
        (dict(raw_meta=np.array([json.dumps(GOOD_META)])), "meta.npy: expected a JSON text"),
        (dict(raw_meta=np.array("not json {")), "meta: not valid JSON"),
        (dict(raw_meta=np.array("{")), "meta: not valid JSON"),
        (dict(raw_meta=np.array("[" * 100_000 + "]" * 100_000)), "meta: not valid JSON"),
        (dict(raw_meta=np.array("[1, 2]")), "meta: expected a JSON object, got list"),
        (dict(raw_meta=np.array('"fastnn.MLP/1"')), "meta: expected a JSON object, got str"),
        (dict(raw_meta=np.array(1.0)), "meta.npy: expected a JSON text"),
    ]


def _bad_files(tmp_path):
    """Every hand-made malformed file: (path, words of the message)."""
    out = []
    for i, (keys, value, words) in enumerate(_META_CASES):
        out.append((_write(tmp_path / f"meta{i}.npz", _set(GOOD_META, keys, value), m=GOOD), words))
    for i, (params, velocity, words) in enumerate(_ARRAY_CASES):
        out.append((_write(tmp_path / f"arr{i}.npz", params=params, velocity=velocity, m=GOOD), words))
    for i, (kw, words) in enumerate(_member_cases()):
        out.append((_write(tmp_path / f"mem{i}.npz", m=GOOD, **kw), words))
    good = _write(tmp_path / "good.npz", m=GOOD).read_bytes()
    raw = {"empty": b"", "text": b"hello, not a checkpoint\n", "npy": _npy_bytes(P),
           "pickle": b"\x80\x04\x95" + b"\0" * 50, "zip-magic": b"PK\x03\x04" + b"\0" * 40,
           "half": good[: len(good) // 2], "tail": good[len(good) // 2:]}
    for name, data in raw.items():
        p = tmp_path / f"{name}.npz"
        p.write_bytes(data)
        out.append((p, "not a zip" if name != "tail" else ""))
    p = tmp_path / "notnpy.npz"
    with zipfile.ZipFile(p, "w") as z:
        for n in ("meta.npy", "params.npy", "velocity.npy"):
            z.writestr(n, b"these are not .npy bytes")
    out.append((p, "corrupt or truncated checkpoint"))
    p = tmp_path / "deflated-bad.npz"
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z, zipfile.ZipFile(tmp_path / "good.npz") as g:
        for n in g.namelist():
            z.writestr(n, g.read(n)[:-5])                      # members cut short
    out.append((p, "truncated"))
    return out


def _npy_bytes(a):
    b = io.BytesIO()
    np.save(b, a)
    return b.getvalue()


def test_every_malformed_file_raises_checkpoint_error_naming_path_and_problem(tmp_path):
    cases = _bad_files(tmp_path)
    assert len(cases) >= 80
    for path, words in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("error")                   # e.g. no ComplexWarning
            with pytest.raises(CheckpointError) as info:
                MLP.load(path)
        msg = str(info.value)
        assert isinstance(info.value, ValueError)
        assert msg.startswith(f"{path}: ") and info.value.path == str(path), msg
        assert words in msg, (words, msg)
        assert "\n" not in msg


def test_a_good_file_still_loads_also_from_a_compressed_or_byte_swapped_copy(tmp_path):
    m = _trained()
    path = m.save(tmp_path / "good.npz")
    again = MLP.load(path)
    np.testing.assert_array_equal(again._params, m._params)
    np.testing.assert_array_equal(again._velocity, m._velocity)
    assert again.history == m.history and again.epoch == 2
    assert again._rng.bit_generator.state == m._rng.bit_generator.state
    p2 = tmp_path / "compressed.npz"
    np.savez_compressed(p2, params=m._params, velocity=m._velocity, meta=np.array(json.dumps(_meta(m))))
    np.testing.assert_array_equal(MLP.load(p2)._params, m._params)
    p3 = _write(tmp_path / "swapped.npz", params=m._params.astype(">f8"), m=m)
    swapped = MLP.load(p3)
    assert swapped._params.dtype == np.float64
    np.testing.assert_array_equal(swapped._params, m._params)


def test_load_of_a_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        MLP.load(tmp_path / "nope.npz")
    with pytest.raises(TypeError, match="^path: expected a file path"):
        MLP.load(None)


def _open_fds():
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_load_never_leaks_a_file_handle(tmp_path):
    """The issue: zipfile.BadZipFile with the file left open until garbage collection."""
    cases = _bad_files(tmp_path)
    gc.collect()
    before = _open_fds()
    kept = []
    for path, _ in cases:
        try:
            MLP.load(path)
        except CheckpointError as exc:
            kept.append(exc)                         # the traceback keeps the frames alive
    assert _open_fds() == before
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del kept
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


def _assert_loads_or_checkpoint_error(path):
    try:
        m = MLP.load(path)
    except CheckpointError as exc:
        assert str(exc).startswith(f"{path}: ")
        return None
    # a file that loads is a working model
    assert m._params.dtype == m.dtype and np.isfinite(m._params).all()
    assert np.isfinite(m._velocity).all() and m.epoch >= 0
    X = np.random.default_rng(0).standard_normal((3, m.sizes[0]))
    assert np.isfinite(m.predict_proba(X)).all()
    return m


def test_truncations_at_every_offset(tmp_path):
    good = _write(tmp_path / "good.npz", m=GOOD).read_bytes()
    p = tmp_path / "cut.npz"
    for k in range(len(good)):
        p.write_bytes(good[:k])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert _assert_loads_or_checkpoint_error(p) is None, k


@given(st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
                min_size=1, max_size=8))
@settings(max_examples=300)
def test_random_byte_changes_give_checkpoint_error_or_a_working_model(tmp_path_factory, changes):
    d = tmp_path_factory.mktemp("flip")
    good = bytearray(_write(d / "good.npz", m=GOOD).read_bytes())
    for where, byte in changes:
        good[int(where * len(good))] = byte
    p = d / "flipped.npz"
    p.write_bytes(bytes(good))
    _assert_loads_or_checkpoint_error(p)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=True)
    | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
    max_leaves=8)


def _paths(d, prefix=()):
    yield prefix
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            yield from _paths(v, prefix + (i,))


_META_PATHS = [p for p in _paths(GOOD_META) if p]


@given(st.lists(st.tuples(st.sampled_from(_META_PATHS), _json | st.just(_DEL)), min_size=1, max_size=3),
       st.sampled_from([None, "f2", "f4", "i8", "c16", ">f8", "nan", "short"]))
@settings(max_examples=300)
def test_random_metadata_and_parameters_give_checkpoint_error_or_a_working_model(
        tmp_path_factory, edits, params_kind):
    meta = GOOD_META
    for keys, value in edits:
        try:
            meta = _set(meta, keys, value)
        except (KeyError, IndexError, TypeError):      # an earlier edit removed the parent
            pass
    params = {None: None, "nan": np.where(np.arange(P.size) == 1, np.nan, P),
              "short": P[:5]}.get(params_kind)
    if params is None and params_kind is not None:
        params = P.astype(params_kind)
    p = tmp_path_factory.mktemp("meta") / "edited.npz"
    _write(p, meta, params=params, m=GOOD)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = _assert_loads_or_checkpoint_error(p)
    if m is not None:
        assert params_kind in (None, ">f8") and m.sizes == tuple(meta["config"]["sizes"])


# --- point 7: every constructor argument's error names it -----------------------------------
_ARGS = {"sizes": [4, 3, 2], "hidden": "sigmoid", "output": "softmax", "loss": "cross_entropy",
         "dtype": np.float32, "seed": 0, "impl": None}
_JUNK = [None, "", "banana", "float32", "64,32,10", -1, 0, 1, 2.5, math.nan, math.inf, True,
         b"f4", [], [4], [4, 0, 2], [4, 3.0, 2], [4, "3", 2], ["a"], {}, {"x": 1}, object(),
         np.float32(1), np.int64(3), np.dtype("f2"), np.int32, complex(1, 1), 10 ** 30,
         [10 ** 9, 10 ** 9, 10 ** 9], (4, 2), range(2, 5), "jit", "identity", "mse", "sigmoid",
         np.array([4, 2]), np.float64, "f8", ">f4", "object", "U3", "float16", "i4,f4", ",",
         "a", "(", "f4,"]


def test_dtype_banana_names_dtype():
    """The issue: NumPy's "data type 'banana' not understood", which names no argument."""
    with pytest.raises(TypeError, match=r"^dtype: expected float32 or float64.*got 'banana'"):
        MLP([4, 2], dtype="banana")


@pytest.mark.parametrize("arg", list(_ARGS))
def test_every_constructor_error_names_its_argument(arg):
    for value in _JUNK:
        kw = dict(_ARGS, **{arg: value})
        sizes = kw.pop("sizes")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                m = MLP(sizes, **kw)
            except (TypeError, ValueError) as exc:
                head = str(exc).split(":")[0]
                assert head in _ARGS, (arg, value, str(exc))
                assert arg in str(exc), (arg, value, str(exc))
                continue
        # accepted: the model holds what was asked for
        if arg == "dtype":
            assert m.dtype == np.dtype(value) and m._params.dtype == m.dtype
        elif arg == "sizes":
            assert list(m.sizes) == [int(s) for s in value]
        else:
            assert getattr(m, arg) == value


@given(arg=st.sampled_from(list(_ARGS)),
       value=_json | st.sampled_from(_JUNK) | st.lists(st.integers(-3, 6), max_size=4))
def test_constructor_accepts_or_names_the_argument(arg, value):
    kw = dict(_ARGS, **{arg: value})
    sizes = kw.pop("sizes")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            MLP(sizes, **kw)
        except (TypeError, ValueError) as exc:
            assert str(exc).split(":")[0] in _ARGS and arg in str(exc), (arg, value, str(exc))


def test_checkpoint_error_is_exported():
    assert fastnn.CheckpointError is CheckpointError and "CheckpointError" in fastnn.__all__
    assert issubclass(CheckpointError, ValueError)
