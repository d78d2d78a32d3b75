"""Data sets for the examples, tests and benchmarks.

Three sources are supported:

* :func:`load_digits` -- the 8x8 handwritten digits (1,797 images) that ship
  inside fastnn (``fastnn/data/digits.npz``, scikit-learn's copy of the UCI
  data set; source and licence in ``fastnn/data/README.md``).
* :func:`load_mnist` -- MNIST from the four standard IDX files (gzipped or
  not) or from Keras' ``mnist.npz``.
* :func:`download_mnist` -- fetches the four gzipped IDX files with
  :mod:`urllib`, verifies their checksums and writes them atomically.

The IDX reader, :func:`read_idx`, is usable on its own, and
:func:`train_val_split` is the seeded shuffled split used by
:func:`load_digits`.

Only NumPy (and the standard library) is imported when this module is
imported; :mod:`urllib.request` is imported lazily by :func:`download_mnist`.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import numbers
import os
import tempfile
import time
import warnings
import zlib
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = [
    "DEFAULT_MNIST_URL",
    "MNIST_FILES",
    "MNIST_MD5",
    "MNIST_SHA256",
    "DownloadError",
    "download_mnist",
    "load_digits",
    "load_mnist",
    "mnist_cache_dir",
    "read_idx",
    "train_val_split",
]

#: Default mirror of the MNIST files (the one PyTorch's torchvision uses).
DEFAULT_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"

#: The four standard gzipped MNIST IDX files, in the order
#: train images, train labels, test images, test labels.
MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)

#: Published SHA-256 digests of the four standard MNIST ``.gz`` files
#: (9,912,422 / 28,881 / 1,648,877 / 4,542 bytes), as ``{name: ("sha256", hex)}``.
MNIST_SHA256: Mapping[str, tuple[str, str]] = {
    "train-images-idx3-ubyte.gz": (
        "sha256",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    ),
    "train-labels-idx1-ubyte.gz": (
        "sha256",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    ),
    "t10k-images-idx3-ubyte.gz": (
        "sha256",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "sha256",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
}

#: Published MD5 digests of the same four files, as ``{name: ("md5", hex)}``
#: (the ones torchvision checks); an alternative value for ``checksums``.
MNIST_MD5: Mapping[str, tuple[str, str]] = {
    "train-images-idx3-ubyte.gz": ("md5", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
    "train-labels-idx1-ubyte.gz": ("md5", "d53e105ee54ea40749a09fcbcd1e9432"),
    "t10k-images-idx3-ubyte.gz": ("md5", "9fb629c4189551a2d022fa330f9573f3"),
    "t10k-labels-idx1-ubyte.gz": ("md5", "ec29112dd5afa0611ce80d1b7f02629c"),
}

_MNIST_NPZ = "mnist.npz"
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")

# IDX type codes -> big-endian NumPy dtypes.
_IDX_TYPES = {
    0x08: np.dtype(">u1"),  # unsigned byte
    0x09: np.dtype(">i1"),  # signed byte
    0x0B: np.dtype(">i2"),  # short
    0x0C: np.dtype(">i4"),  # int
    0x0D: np.dtype(">f4"),  # float
    0x0E: np.dtype(">f8"),  # double
}

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 16
#: Trailing bytes after IDX data are counted up to this many (and not kept).
_MAX_TRAILING = 1 << 26
_HASHES = ("md5", "sha256")


class DownloadError(OSError):
    """A file could not be downloaded and verified after all the retries.

    The message names the file, the URL and the last cause; the last
    exception is also chained as ``__cause__``.
    """


# --------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------


def _check_fraction(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number in (0, 1), got {value!r}")
    value = float(value)
    if not 0.0 < value < 1.0:  # also rejects NaN
        raise ValueError(f"{name} must be in the open interval (0, 1), got {value!r}")
    return value


def _check_float_dtype(dtype, name: str = "dtype") -> np.dtype:
    try:
        with warnings.catch_warnings():  # e.g. NumPy's DeprecationWarning for "a"
            warnings.simplefilter("ignore")
            dt = np.dtype(dtype)
    except (TypeError, ValueError, SyntaxError) as exc:  # np.dtype(",") is a SyntaxError
        raise ValueError(f"{name} must be a floating-point dtype, got {dtype!r}") from exc
    if not np.issubdtype(dt, np.floating):
        raise ValueError(f"{name} must be a floating-point dtype, got {dt}")
    return dt


# --------------------------------------------------------------------------
# splitting and the digits data set
# --------------------------------------------------------------------------


def train_val_split(X, y, *, val_fraction=0.1, seed=0):
    """Split ``(X, y)`` into shuffled training and validation parts.

    The split is a plain (not stratified) shuffle: a permutation drawn from
    ``np.random.default_rng(seed)``; the first ``n_val`` permuted indices go
    to validation, the rest to training. The same ``seed`` always gives the
    same split.

    Parameters
    ----------
    X : array_like, shape (n_samples, ...)
        Samples; indexed along the first axis.
    y : array_like, shape (n_samples,)
        Targets, same length as ``X``.
    val_fraction : float, default 0.1
        Fraction of the samples to put in the validation part, in the open
        interval (0, 1). ``n_val = round(n_samples * val_fraction)``, clipped
        to ``[1, n_samples - 1]`` so neither part is empty.
    seed : int, numpy.random.Generator or None, default 0
        Seed passed to :func:`numpy.random.default_rng`. ``None`` gives a
        non-reproducible split.

    Returns
    -------
    X_tr, y_tr, X_val, y_val : numpy.ndarray
        New arrays (copies), with the dtypes of ``X`` and ``y``.

    Raises
    ------
    ValueError
        If ``X`` and ``y`` differ in length, have fewer than two samples, or
        ``val_fraction`` is not in (0, 1).
    """
    val_fraction = _check_fraction(val_fraction, "val_fraction")
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim == 0 or y.ndim == 0:
        raise ValueError("X and y must have at least one dimension (samples first)")
    n = X.shape[0]
    if y.shape[0] != n:
        raise ValueError(
            f"X and y must have the same length; got len(X) = {n}, len(y) = {y.shape[0]}"
        )
    if n < 2:
        raise ValueError(f"need at least 2 samples to split, got {n}")
    n_val = min(max(int(round(n * val_fraction)), 1), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    val_idx, tr_idx = perm[:n_val], perm[n_val:]
    return X[tr_idx], y[tr_idx], X[val_idx], y[val_idx]


#: The embedded digits: 1,797 8x8 images (fastnn/data/README.md: source and licence).
DIGITS_PATH = Path(__file__).resolve().parent / "data" / "digits.npz"
_DIGITS_SHAPE = (1797, 64)


def _read_digits(path=DIGITS_PATH):
    """-> (pixels (1797, 64) uint8 in 0..16, labels (1797,) uint8 in 0..9), checked."""
    try:
        with np.load(path, allow_pickle=False) as f:
            data, target = f["data"], f["target"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise OSError(f"the embedded digits file {path} is missing or damaged ({exc}); "
                      "reinstall fastnn-kernels") from None
    if (data.shape != _DIGITS_SHAPE or target.shape != _DIGITS_SHAPE[:1]
            or data.dtype != np.uint8 or target.dtype != np.uint8
            or int(data.max()) > 16 or int(target.max()) > 9):
        raise OSError(f"the embedded digits file {path} is damaged: expected uint8 arrays "
                      f"data {_DIGITS_SHAPE} in 0..16 and target ({_DIGITS_SHAPE[0]},) in 0..9, "
                      f"got {data.dtype} {data.shape}, {target.dtype} {target.shape}; "
                      "reinstall fastnn-kernels")
    return data, target


def load_digits(*, dtype=np.float32, test_size=0.2, seed=0):
    """Load the 8x8 handwritten digits (1,797 images), split into train and test.

    The images ship inside fastnn (``fastnn/data/digits.npz``): the values and
    order of scikit-learn's ``sklearn.datasets.load_digits``, which is a copy of
    the test set of UCI's *Optical Recognition of Handwritten Digits* (Alpaydin
    and Kaynak, 1998; CC BY 4.0; ``fastnn/data/README.md``). Nothing is downloaded
    and scikit-learn is not needed.

    The split is a seeded, plain (not stratified) shuffle made by
    :func:`train_val_split` with ``val_fraction=test_size``; pixels are scaled
    as ``x = pixel / 16`` (computed in float64, then rounded to ``dtype``).

    Parameters
    ----------
    dtype : floating dtype, default numpy.float32
        dtype of the returned images.
    test_size : float, default 0.2
        Fraction of the samples held out for testing, in (0, 1); the test
        part has ``round(1797 * test_size)`` samples (359 for 0.2, leaving
        1,438 for training).
    seed : int, numpy.random.Generator or None, default 0
        Seed of the shuffle; the same seed gives the same split.

    Returns
    -------
    X_train : numpy.ndarray, shape (n_train, 64), dtype ``dtype``
        Flattened images scaled to [0, 1] (pixel / 16).
    y_train : numpy.ndarray, shape (n_train,), int64
        Digit labels 0..9.
    X_test : numpy.ndarray, shape (n_test, 64), dtype ``dtype``
    y_test : numpy.ndarray, shape (n_test,), int64

    Raises
    ------
    ValueError
        If ``dtype`` is not a floating dtype or ``test_size`` is not in (0, 1).
    OSError
        If the embedded file is missing or damaged (a broken installation).
    """
    dt = _check_float_dtype(dtype)
    test_size = _check_fraction(test_size, "test_size")
    data, target = _read_digits()
    X = (data.astype(np.float64) / 16.0).astype(dt)
    y = target.astype(np.int64)
    return train_val_split(X, y, val_fraction=test_size, seed=seed)


# --------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------


def read_idx(path):
    """Read an IDX file (the MNIST format), gzipped or not.

    Compression is detected from the gzip magic bytes ``1f 8b`` at the start
    of the file, not from its name. The header is a big-endian magic number
    ``0x0000 | type code << 8 | ndim`` (``0x00000801`` for MNIST labels:
    unsigned bytes, 1-D; ``0x00000803`` for images: unsigned bytes, 3-D),
    then ``ndim`` big-endian uint32 dimension sizes, then the data, whose
    length must be exactly the product of the sizes times the item size.

    Supported type codes: ``0x08`` uint8, ``0x09`` int8, ``0x0B`` int16,
    ``0x0C`` int32, ``0x0D`` float32, ``0x0E`` float64.

    Parameters
    ----------
    path : str or os.PathLike
        File to read.

    Returns
    -------
    numpy.ndarray
        A new, writable array of the header's shape, in native byte order
        (``uint8`` for MNIST).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        Naming the file, if the gzip stream is corrupt, the magic number is
        wrong, the type code is unsupported, or the file is truncated or has
        trailing bytes (with the expected and found byte counts). This is the
        only exception a malformed file raises.

    Notes
    -----
    The file is read as a stream: memory follows the bytes actually present,
    never the sizes a header declares, and a gzip stream is decompressed only
    as far as the header's data (plus up to 64 MiB of trailing bytes, counted
    and dropped).
    """
    path = Path(path)
    with open(path, "rb") as fh:
        gz = fh.read(2) == _GZIP_MAGIC
        fh.seek(0)
        if not gz:
            return _read_idx_stream(fh, path)
        try:
            with gzip.GzipFile(fileobj=fh, mode="rb") as stream:
                return _read_idx_stream(stream, path)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{path}: corrupt gzip data ({exc})") from exc


def _read_up_to(fh, n: int) -> bytearray:
    """Up to ``n`` bytes from ``fh`` (fewer only at its end). Memory grows with the
    bytes actually there, never with ``n``: a header may declare any size."""
    buf = bytearray()
    while len(buf) < n:
        chunk = fh.read(min(n - len(buf), _CHUNK * 16))
        if not chunk:
            break
        buf += chunk
    return buf


def _read_idx_stream(fh, path: Path) -> np.ndarray:
    """The IDX parser of :func:`read_idx` on an open binary stream (plain or gzip)."""
    head = _read_up_to(fh, 4)
    if len(head) < 4:
        raise ValueError(
            f"{path}: truncated IDX file: expected a 4-byte magic number, "
            f"found {len(head)} bytes"
        )
    zero0, zero1, type_code, ndim = head
    magic = int.from_bytes(head, "big")
    if zero0 != 0 or zero1 != 0 or ndim == 0:
        raise ValueError(
            f"{path}: not an IDX file: bad magic number 0x{magic:08x} "
            "(expected 0x0000TTNN with type code TT and ndim NN >= 1, "
            "e.g. 0x00000801 for labels or 0x00000803 for images)"
        )
    if type_code not in _IDX_TYPES:
        raise ValueError(
            f"{path}: unsupported IDX type code 0x{type_code:02x} in magic number "
            f"0x{magic:08x} (supported: "
            + ", ".join(f"0x{c:02x}" for c in sorted(_IDX_TYPES))
            + ")"
        )
    header_len = 4 + 4 * ndim
    dims = _read_up_to(fh, 4 * ndim)
    if len(dims) < 4 * ndim:
        raise ValueError(
            f"{path}: truncated IDX header: expected {header_len} bytes for "
            f"{ndim} dimensions, found {4 + len(dims)} bytes"
        )
    shape = tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
    dtype = _IDX_TYPES[type_code]
    count = math.prod(shape)
    expected = count * dtype.itemsize
    data = _read_up_to(fh, expected)
    if len(data) < expected:
        raise ValueError(
            f"{path}: truncated IDX file: shape {shape} needs {expected} data bytes "
            f"after the {header_len}-byte header, found {len(data)}"
        )
    extra = 0
    while extra <= _MAX_TRAILING and (chunk := fh.read(_CHUNK)):
        extra += len(chunk)          # counted, not kept (and never past _MAX_TRAILING)
    if extra:
        n_extra = f"{extra}" if extra <= _MAX_TRAILING else f"more than {_MAX_TRAILING}"
        found = f"{expected + extra}" if extra <= _MAX_TRAILING else f"more than {expected + _MAX_TRAILING}"
        raise ValueError(
            f"{path}: {n_extra} trailing bytes after the IDX data: "
            f"shape {shape} needs {expected} data bytes after the "
            f"{header_len}-byte header, found {found}"
        )
    array = np.frombuffer(data, dtype=dtype, count=count)   # writable: data is a bytearray
    if not dtype.isnative:
        array = array.astype(dtype.newbyteorder("="))
    return array.reshape(shape)


# --------------------------------------------------------------------------
# MNIST
# --------------------------------------------------------------------------


def mnist_cache_dir() -> Path:
    """Return the default MNIST directory.

    ``$FASTNN_DATA/mnist`` if the environment variable ``FASTNN_DATA`` is
    set and non-empty, else ``~/.cache/fastnn/mnist``. Nothing is created.

    Returns
    -------
    pathlib.Path
    """
    root = os.environ.get("FASTNN_DATA")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "fastnn"
    return base / "mnist"


def _scale_images(x, dt: np.dtype, flatten: bool, source) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"{source}: images must be 3-D (n, rows, cols), got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
        raise ValueError(f"{source}: images must be numeric, got dtype {x.dtype}")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        bad = x[~np.isfinite(x)]
        raise ValueError(
            f"{source}: pixel values must be finite numbers in [0, 255]; found "
            f"{bad.size} NaN or infinite (first: {bad[0]})"
        )
    if x.dtype != np.uint8 and x.size and (x.min() < 0 or x.max() > 255):
        raise ValueError(
            f"{source}: pixel values must lie in [0, 255], got values in "
            f"[{x.min()}, {x.max()}]"
        )
    out = x.astype(dt) / dt.type(255)
    if flatten:
        out = out.reshape(x.shape[0], -1)
    return out.astype(dt, copy=False)


def _labels(y, source) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{source}: labels must be 1-D, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{source}: labels must be integers, got dtype {y.dtype}")
    return y.astype(np.int64)


def _npz_arrays(archive, path: Path) -> dict:
    with archive as npz:
        missing = [k for k in _NPZ_KEYS if k not in npz.files]
        if missing:
            raise ValueError(
                f"{path}: MNIST .npz is missing keys {missing} "
                f"(expected {list(_NPZ_KEYS)}, found {sorted(npz.files)})"
            )
        try:
            return {k: npz[k] for k in _NPZ_KEYS}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise ValueError(f"{path}: cannot read MNIST .npz: {exc}") from exc


def _load_mnist_npz(path: Path, dt: np.dtype, flatten: bool):
    with open(path, "rb") as fh:   # our handle: closed whatever np.load raises
        try:
            archive = np.load(fh, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{path}: cannot read MNIST .npz: {exc}") from exc
        if not hasattr(archive, "files"):
            raise ValueError(f"{path}: not an .npz archive (expected keys {list(_NPZ_KEYS)})")
        arrays = _npz_arrays(archive, path)
    out = []
    for split in ("train", "test"):
        x = _scale_images(arrays[f"x_{split}"], dt, flatten, f"{path} [x_{split}]")
        y = _labels(arrays[f"y_{split}"], f"{path} [y_{split}]")
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"{path}: x_{split} has {x.shape[0]} images but "
                f"y_{split} has {y.shape[0]} labels"
            )
        out += [x, y]
    return tuple(out)


def _load_mnist_idx(files: dict[str, Path], dt: np.dtype, flatten: bool):
    out = []
    for prefix in ("train", "t10k"):
        img_path = files[f"{prefix}-images-idx3-ubyte"]
        lbl_path = files[f"{prefix}-labels-idx1-ubyte"]
        images = read_idx(img_path)
        labels = read_idx(lbl_path)
        if images.ndim != 3 or images.dtype != np.uint8:
            raise ValueError(
                f"{img_path}: expected a 3-D unsigned-byte IDX file (magic 0x00000803), "
                f"got {images.ndim}-D {images.dtype}"
            )
        if labels.ndim != 1 or labels.dtype != np.uint8:
            raise ValueError(
                f"{lbl_path}: expected a 1-D unsigned-byte IDX file (magic 0x00000801), "
                f"got {labels.ndim}-D {labels.dtype}"
            )
        if images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"image/label count mismatch: {img_path} has {images.shape[0]} images "
                f"but {lbl_path} has {labels.shape[0]} labels"
            )
        out += [_scale_images(images, dt, flatten, img_path), labels.astype(np.int64)]
    return tuple(out)


def load_mnist(directory=None, *, dtype=np.float32, flatten=True):
    """Load MNIST from IDX files or from Keras' ``mnist.npz``.

    If ``directory`` is a file, it is read as an ``.npz`` archive with keys
    ``x_train, y_train, x_test, y_test`` (as Keras ships ``mnist.npz``),
    with ``allow_pickle=False``. If it is a directory, the four standard IDX
    files are looked for, each either plain or gzipped (the plain name is
    preferred when both exist)::

        train-images-idx3-ubyte[.gz]   train-labels-idx1-ubyte[.gz]
        t10k-images-idx3-ubyte[.gz]    t10k-labels-idx1-ubyte[.gz]

    and, if none of them is there, ``mnist.npz``.

    Parameters
    ----------
    directory : str, os.PathLike or None, default None
        Directory holding the files, or the path of an ``.npz`` file.
        ``None`` means :func:`mnist_cache_dir` (where :func:`download_mnist`
        puts the files by default).
    dtype : floating dtype, default numpy.float32
        dtype of the returned images.
    flatten : bool, default True
        Return images as ``(n, 784)`` rows; else as ``(n, 28, 28)``.

    Returns
    -------
    X_train : numpy.ndarray, shape (60000, 784) or (60000, 28, 28), dtype ``dtype``
        Pixels scaled to [0, 1] (pixel / 255).
    y_train : numpy.ndarray, shape (60000,), int64
    X_test : numpy.ndarray, shape (10000, 784) or (10000, 28, 28), dtype ``dtype``
    y_test : numpy.ndarray, shape (10000,), int64

    (The sizes are those of the standard files; any consistent sizes are
    accepted.)

    Raises
    ------
    FileNotFoundError
        If neither the IDX files nor ``mnist.npz`` are found; the message
        lists the names looked for (or the IDX files missing when only some
        are present).
    ValueError
        Naming the file, if a file is malformed (see :func:`read_idx`), the
        image and label counts disagree, or ``dtype`` is not floating.
    """
    dt = _check_float_dtype(dtype)
    path = mnist_cache_dir() if directory is None else Path(directory)
    if path.is_file():
        return _load_mnist_npz(path, dt, bool(flatten))

    stems = [name[: -len(".gz")] for name in MNIST_FILES]
    found: dict[str, Path] = {}
    for stem in stems:
        for candidate in (path / stem, path / (stem + ".gz")):
            if candidate.is_file():
                found[stem] = candidate
                break
    if len(found) == len(stems):
        return _load_mnist_idx(found, dt, bool(flatten))
    if not found and (path / _MNIST_NPZ).is_file():
        return _load_mnist_npz(path / _MNIST_NPZ, dt, bool(flatten))
    if found:
        missing = [f"{s}[.gz]" for s in stems if s not in found]
        raise FileNotFoundError(
            f"incomplete MNIST IDX files in {path}: missing {', '.join(missing)}"
        )
    looked_for = ", ".join(f"{s}[.gz]" for s in stems) + f", or {_MNIST_NPZ}"
    raise FileNotFoundError(
        f"no MNIST data in {path}: looked for {looked_for} "
        "(download_mnist() fetches the IDX files)"
    )


# --------------------------------------------------------------------------
# downloading
# --------------------------------------------------------------------------


class _ChecksumMismatch(ValueError):
    pass


def _normalise_checksum(name: str, spec) -> tuple[str, str]:
    if isinstance(spec, str):
        hexdigest = spec
        algo = {32: "md5", 64: "sha256"}.get(len(spec))
        if algo is None:
            raise ValueError(
                f"checksum for {name!r} must be a 32-hex MD5 or 64-hex SHA-256 digest "
                f"or an (algorithm, hexdigest) pair, got {spec!r}"
            )
    else:
        try:
            algo, hexdigest = spec
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"checksum for {name!r} must be an (algorithm, hexdigest) pair, got {spec!r}"
            ) from exc
        algo = str(algo).lower()
        if algo not in _HASHES:
            raise ValueError(
                f"checksum algorithm for {name!r} must be one of {_HASHES}, got {algo!r}"
            )
    hexdigest = str(hexdigest).lower()
    width = hashlib.new(algo).digest_size * 2
    if len(hexdigest) != width or any(c not in "0123456789abcdef" for c in hexdigest):
        raise ValueError(
            f"{algo} checksum for {name!r} must be {width} hex digits, got {hexdigest!r}"
        )
    return algo, hexdigest


def _file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _is_retryable(exc: BaseException) -> bool:
    import urllib.error

    if isinstance(exc, urllib.error.HTTPError):
        # Client errors will not change on a retry, except these.
        return exc.code >= 500 or exc.code in (408, 425, 429)
    return True


class _DeadlineExceeded(TimeoutError):
    """The ``deadline`` of :func:`download_mnist` passed (never retried)."""


def _time_left(end, timeout: float, received: int) -> float:
    """The socket timeout for the next connect or read: ``timeout``, or less when the
    deadline ``end`` (a :func:`time.monotonic` time, or None) is nearer."""
    if end is None:
        return timeout
    left = end - time.monotonic()
    if left <= 0:
        raise _DeadlineExceeded(f"the deadline passed after {received} bytes of this attempt")
    return min(timeout, left)


def _fetch_once(url: str, dest: Path, name: str, timeout: float, checksum, end=None,
                progress=None) -> None:
    """Download ``url`` to a temp file next to ``dest``, verify, then rename.

    Each read returns what one ``recv`` brings (``read1``), so that a server
    dribbling bytes meets the deadline ``end`` between reads."""
    import urllib.error
    import urllib.request

    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        hasher = hashlib.new(checksum[0]) if checksum else None
        received = 0
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": "fastnn"})
            with urllib.request.urlopen(
                request, timeout=_time_left(end, timeout, received)
            ) as response:
                length = response.headers.get("Content-Length")
                total = int(length) if length is not None and length.strip().isdigit() else None
                read = getattr(response, "read1", None) or response.read
                if progress is not None:
                    progress(name, url, 0, total)
                while True:
                    _time_left(end, timeout, received)      # raises once it has passed
                    chunk = read(_CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    received += len(chunk)
                    if hasher is not None:
                        hasher.update(chunk)
                    if progress is not None:
                        progress(name, url, received, total)
            out.flush()
            os.fsync(out.fileno())
        if length is not None and length.strip().isdigit() and received != int(length):
            raise OSError(
                f"truncated download: expected {int(length)} bytes, received {received}"
            )
        if hasher is not None and hasher.hexdigest() != checksum[1]:
            raise _ChecksumMismatch(
                f"{checksum[0]} mismatch: expected {checksum[1]}, got {hasher.hexdigest()} "
                f"({received} bytes)"
            )
        os.replace(tmp, dest)
    except BaseException as exc:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        if isinstance(exc, urllib.error.HTTPError):
            exc.close()  # an HTTPError holds the open response
        raise


def download_mnist(
    directory=None,
    *,
    base_url=DEFAULT_MNIST_URL,
    retries=3,
    timeout=30,
    checksums=MNIST_SHA256,
    backoff=1.0,
    deadline=600.0,
    progress=None,
):
    """Download the four gzipped MNIST IDX files and verify their checksums.

    Uses only :mod:`urllib`. Each file is written to a temporary file in
    ``directory`` and moved into place with :func:`os.replace` only once it
    is complete and verified, so a failed or interrupted download never
    leaves a partial file (the temporary file is deleted on any failure).
    Files already present with the right checksum are not downloaded again;
    a present file with a wrong checksum is replaced.

    Parameters
    ----------
    directory : str, os.PathLike or None, default None
        Where to put the files; created if needed. ``None`` means
        :func:`mnist_cache_dir`: ``~/.cache/fastnn/mnist``, or
        ``$FASTNN_DATA/mnist`` when the environment variable ``FASTNN_DATA``
        is set.
    base_url : str, default DEFAULT_MNIST_URL
        URL of the directory holding the files (``http``, ``https`` or
        ``file``); each file's URL is ``base_url`` + ``/`` + its name.
    retries : int, default 3
        Further attempts per file after the first fails (so ``retries + 1``
        attempts at most). Network errors, server errors (5xx, 408, 425,
        429), truncated bodies and checksum mismatches are retried; other
        HTTP client errors (e.g. 404) fail at once.
    timeout : float, default 30
        Seconds a connection attempt, or a single read, may wait for the
        server (a socket timeout): a silent server fails that attempt after
        ``timeout`` seconds. It does not bound a server that keeps sending a
        few bytes at a time; ``deadline`` does.
    checksums : mapping or None, default MNIST_SHA256
        ``{file name: (algorithm, hexdigest)}`` with algorithm ``"md5"`` or
        ``"sha256"`` (a bare 32- or 64-digit hex string is read as MD5 or
        SHA-256). Must cover all four files. The default holds the published
        SHA-256 digests of the standard files; :data:`MNIST_MD5` holds their
        published MD5 digests. ``None`` disables verification (then any
        present file is kept).
    backoff : float, default 1.0
        Seconds to wait before the first retry; doubled for each further one.
    deadline : float or None, default 600
        Seconds for the whole call: every file, attempt and backoff wait.
        It is checked before each connection, each read and each retry, and
        each of those waits at most ``min(timeout, time left)``, so the call
        fails within about ``deadline`` seconds (a DownloadError saying the
        deadline passed; not retried). ``None``: no overall limit. Files
        completed before it passed are kept.
    progress : callable or None, default None
        Called as ``progress(name, url, received, total)`` when a file's download
        starts (``received = 0``) and after each chunk; ``total`` is the size the
        server announced, or None. ``fastnn train --download`` prints it.

    Returns
    -------
    pathlib.Path
        The directory holding the files; pass it to :func:`load_mnist`.

    Raises
    ------
    DownloadError
        If a file cannot be fetched and verified after all the attempts, or
        the deadline passes; the message names the file, the URL and the
        last cause.
    ValueError
        For invalid arguments (e.g. a checksum mapping missing a file).
    """
    if isinstance(retries, bool) or not isinstance(retries, numbers.Integral) or retries < 0:
        raise ValueError(f"retries must be a non-negative integer, got {retries!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or not timeout > 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    if isinstance(backoff, bool) or not isinstance(backoff, numbers.Real) or not backoff >= 0:
        raise ValueError(f"backoff must be a non-negative number of seconds, got {backoff!r}")
    if deadline is not None and (
        isinstance(deadline, bool) or not isinstance(deadline, numbers.Real) or not deadline > 0
    ):
        raise ValueError(
            f"deadline must be a positive number of seconds or None, got {deadline!r}"
        )
    end = None if deadline is None else time.monotonic() + float(deadline)
    scheme = str(base_url).split(":", 1)[0].lower()
    if scheme not in ("http", "https", "file"):
        raise ValueError(f"base_url must be an http, https or file URL, got {base_url!r}")
    if checksums is None:
        expected: dict[str, tuple[str, str] | None] = dict.fromkeys(MNIST_FILES)
    else:
        missing = [name for name in MNIST_FILES if name not in checksums]
        if missing:
            raise ValueError(f"checksums has no entry for {missing}")
        expected = {name: _normalise_checksum(name, checksums[name]) for name in MNIST_FILES}

    import http.client

    retryable = (OSError, EOFError, _ChecksumMismatch, http.client.HTTPException)
    directory = mnist_cache_dir() if directory is None else Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    base = str(base_url).rstrip("/") + "/"

    for name in MNIST_FILES:
        dest = directory / name
        checksum = expected[name]
        if dest.is_file() and (checksum is None or _file_digest(dest, checksum[0]) == checksum[1]):
            continue
        url = base + name
        last_exc: BaseException | None = None
        earlier: BaseException | None = None  # the last error before the deadline passed
        attempts = int(retries) + 1
        for attempt in range(attempts):
            if attempt:
                wait = float(backoff) * 2 ** (attempt - 1)
                if end is not None:
                    wait = min(wait, max(0.0, end - time.monotonic()))
                time.sleep(wait)
            try:
                _fetch_once(url, dest, name, float(timeout), checksum, end, progress)
            except _DeadlineExceeded as exc:
                earlier, last_exc = last_exc, exc
                attempts = attempt + 1
                break
            except retryable as exc:
                # OSError covers URLError/HTTPError, socket timeouts and resets.
                last_exc = exc
                if not _is_retryable(exc):
                    attempts = attempt + 1
                    break
            else:
                last_exc = None
                break
        if isinstance(last_exc, _DeadlineExceeded):
            raise DownloadError(
                f"could not download {name} from {url}: the deadline of {float(deadline):g} s "
                f"for the whole download passed during attempt {attempts} ({last_exc}"
                + (f"; earlier error: {type(earlier).__name__}: {earlier}" if earlier else "")
                + ")"
            ) from last_exc
        if last_exc is not None:
            raise DownloadError(
                f"could not download {name} from {url} after {attempts} "
                f"attempt{'s' if attempts != 1 else ''}; last error: "
                f"{type(last_exc).__name__}: {last_exc}"
            ) from last_exc
    return directory
