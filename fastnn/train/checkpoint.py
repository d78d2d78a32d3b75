"""Saving and loading :class:`~fastnn.MLP` checkpoints (``MLP.save``/``MLP.load``): the
``.npz`` archive written atomically, and its reader, which never unpickles and checks
the whole file before a model is made."""
from __future__ import annotations

import json
import math
import os
import reprlib
import threading
import zipfile

import numpy as np

from .._paths import check_output_path
from .fit import History

_FORMAT = "fastnn.MLP/1"


class CheckpointError(ValueError):
    """A file given to :meth:`MLP.load` is not a readable fastnn.MLP checkpoint.

    Raised for every kind of bad file: not a zip (``.npz``) archive, truncated or
    corrupt, missing members, metadata that is not the expected JSON, a configuration
    that does not make a model, or parameters of the wrong dtype or shape or not
    finite. The message names the file and what is wrong; the attributes ``path``
    and ``reason`` hold the two parts. (A file that cannot be opened at all raises
    the usual ``OSError``, e.g. ``FileNotFoundError``.)
    """

    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def save(model, path):
    """:meth:`fastnn.MLP.save`."""
    path = check_output_path(path, "path")
    meta = dict(format=_FORMAT, config=model.config(), epoch=model.epoch,
                rng_state=model.rng.bit_generator.state,
                hyperparameters=model.hyperparameters, history=list(model.history))
    tmp = _tmp_path(path)
    with _SAVE_LOCK:
        try:                # a killed save's leftover; unlink never follows a symlink
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o666)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, params=model.net.params, velocity=model.net.velocity,
                         meta=np.array(json.dumps(meta)))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        _fsync_dir(os.path.dirname(tmp))
    return path


def load(cls, path):
    """:meth:`fastnn.MLP.load` (``cls``: the class of the model to make)."""
    if path is None or isinstance(path, bool):
        raise TypeError(f"path: expected a file path (str or os.PathLike), got {type(path).__name__}")
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"path: expected a file path (str or os.PathLike), "
                        f"got {type(path).__name__}") from None
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    with open(path, "rb") as fh:
        meta, params, velocity = _read_checkpoint(fh, path)

    def bad(reason):
        return CheckpointError(path, reason)

    if not isinstance(meta, dict):
        raise bad(f"meta: expected a JSON object, got {type(meta).__name__}")
    if meta.get("format") != _FORMAT:
        raise bad(f"not a fastnn.MLP checkpoint (format {reprlib.repr(meta.get('format'))}, "
                  f"expected {_FORMAT!r})")
    config = meta.get("config")
    if not isinstance(config, dict):
        raise bad(f"meta: 'config' must be a JSON object, got {type(config).__name__}")
    missing = [k for k in _CONFIG_KEYS if k not in config]
    unknown = [k for k in config if k not in _CONFIG_KEYS]
    if missing or unknown:
        raise bad(f"config: expected the keys {list(_CONFIG_KEYS)}"
                  + (f"; missing {missing}" if missing else "")
                  + (f"; unknown {reprlib.repr(unknown)}" if unknown else ""))
    sizes = config["sizes"]
    if not (isinstance(sizes, list) and len(sizes) >= 2
            and all(type(s) is int and s >= 1 for s in sizes)):
        raise bad(f"config: sizes must be a list of at least two positive integers, "
                  f"got {reprlib.repr(sizes)}")
    if config["dtype"] not in ("float32", "float64"):
        raise bad(f"config: dtype must be 'float32' or 'float64', got {reprlib.repr(config['dtype'])}")
    dt = np.dtype(config["dtype"])
    n = sum(sizes[l + 1] * (sizes[l] + 1) for l in range(len(sizes) - 1))
    for name, a in (("params", params), ("velocity", velocity)):
        if a.dtype.kind != "f" or a.dtype.itemsize != dt.itemsize:
            raise bad(f"{name}: expected {dt.name} values (the model's dtype), got {a.dtype}")
        if a.shape != (n,):
            raise bad(f"{name}: expected shape ({n},), the parameter count of sizes {sizes}, "
                      f"got {a.shape}")
        if not np.isfinite(a).all():
            raise bad(f"{name}: contains NaN or infinite values")
    epoch = meta.get("epoch")
    if type(epoch) is not int or epoch < 0:
        raise bad(f"meta: 'epoch' must be an integer >= 0, got {reprlib.repr(epoch)}")
    hyperparameters = meta.get("hyperparameters", {})
    if not isinstance(hyperparameters, dict):
        raise bad(f"meta: 'hyperparameters' must be a JSON object, got "
                  f"{type(hyperparameters).__name__}")
    history = meta.get("history", [])
    if not isinstance(history, list):
        raise bad(f"meta: 'history' must be a list of epoch records, got {type(history).__name__}")
    for i, rec in enumerate(history):
        problem = _record_problem(rec)
        if problem:
            raise bad(f"history[{i}]: {problem}")
    rng_state = meta.get("rng_state")
    if not isinstance(rng_state, dict):
        raise bad(f"meta: 'rng_state' must be a JSON object, got {type(rng_state).__name__}")
    try:
        m = cls(**config)
    except (TypeError, ValueError) as exc:
        raise bad(f"config: {exc}") from None
    try:
        m.rng.bit_generator.state = rng_state
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        raise bad(f"rng_state: not a state of the model's PCG64 generator "
                  f"({type(exc).__name__}: {exc})") from None
    m.net.params[:] = params
    m.net.velocity[:] = velocity
    m.epoch = epoch
    m.hyperparameters = hyperparameters
    m.history = History(history)
    return m


_CONFIG_KEYS = ("sizes", "hidden", "output", "loss", "dtype", "seed", "impl")
_RECORD_KEYS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds", "samples_per_s")
_MEMBERS = ("meta.npy", "params.npy", "velocity.npy")
_SAVE_LOCK = threading.Lock()


def _tmp_path(path):
    """The one temporary file of every save to ``path``: ``.<name>.fastnn-tmp`` beside it."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.fastnn-tmp")


def _fsync_dir(folder):
    """Flush the folder's entry of the renamed file to disk, where the OS allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:         # e.g. Windows: folders cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _record_problem(rec):
    """What is wrong with one epoch record of a loaded history, or None."""
    if not isinstance(rec, dict):
        return f"expected an epoch record (a JSON object), got {type(rec).__name__}"
    missing = [k for k in _RECORD_KEYS if k not in rec]
    if missing:
        return f"missing {missing}"
    if type(rec["epoch"]) is not int:
        return f"'epoch' must be an integer, got {reprlib.repr(rec['epoch'])}"
    for k in _RECORD_KEYS[1:]:
        x = rec[k]
        if not (x is None and k.startswith("val_")) and (
                isinstance(x, bool) or not isinstance(x, (int, float))):
            return f"{k!r} must be a number, got {reprlib.repr(x)}"
    return None


def _read_exactly(f, n):
    """Up to ``n`` bytes from ``f``, fewer only at its end; memory grows with the bytes
    actually there, never with ``n`` (a header may declare any size)."""
    chunks, got = [], 0
    while got < n:
        b = f.read(min(n - got, 1 << 24))
        if not b:
            break
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def _read_npy(zf, name, path):
    """One ``.npy`` member of the archive as an array: header checked, the data read
    exactly (a truncated member or one with trailing bytes is an error)."""
    with zf.open(name) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dt = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dt = np.lib.format.read_array_header_2_0(f)
        else:
            raise CheckpointError(path, f"{name}: unsupported .npy format version {version}")
        if dt.hasobject or dt.itemsize == 0:
            raise CheckpointError(path, f"{name}: dtype {dt} cannot be in a checkpoint")
        count = math.prod(shape)
        nbytes = count * dt.itemsize
        data = _read_exactly(f, nbytes)
        if len(data) != nbytes:
            raise CheckpointError(path, f"{name}: truncated: shape {shape} {dt} needs {nbytes} "
                                        f"bytes of data, found {len(data)}")
        if f.read(1):       # also reaches the member's end, where zipfile checks its CRC
            raise CheckpointError(path, f"{name}: trailing bytes after the data of shape {shape}")
    a = np.frombuffer(data, dtype=dt, count=count)
    return a.reshape(shape, order="F" if fortran else "C")


def _read_checkpoint(fh, path):
    """-> (meta decoded from JSON, params, velocity) from the open file ``fh``; any
    failure of the archive or ``.npy`` layers is a CheckpointError naming ``path``."""
    try:
        try:
            zf = zipfile.ZipFile(fh)
        except zipfile.BadZipFile:
            raise CheckpointError(path, "not a fastnn.MLP checkpoint: not a zip (.npz) "
                                        "archive, or a truncated one") from None
        with zf:
            names = zf.namelist()
            missing = [n for n in _MEMBERS if n not in names]
            if missing:
                raise CheckpointError(path, f"not a fastnn.MLP checkpoint: no {', '.join(missing)} "
                                            f"in the archive (it holds {reprlib.repr(names)})")
            meta, params, velocity = (_read_npy(zf, n, path) for n in _MEMBERS)
            if meta.dtype.kind != "U" or meta.shape != ():
                raise CheckpointError(path, f"meta.npy: expected a JSON text (a 0-d str array), "
                                            f"got {meta.dtype} of shape {meta.shape}")
            text = str(meta[()])
    except (CheckpointError, MemoryError):
        raise
    except Exception as exc:    # the zip and .npy parsers' many ways to fail on bad bytes
        raise CheckpointError(path, f"corrupt or truncated checkpoint ({type(exc).__name__}: "
                                    f"{' '.join(str(exc).split())})") from exc
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(path, f"meta: not valid JSON ({exc})") from None
    return meta, params, velocity
