"""Tests for fastnn.datasets: IDX reading, MNIST loading and downloading,
the digits data set and train_val_split.

Nothing here touches the internet: downloads go to a local HTTP server on
127.0.0.1, and an autouse fixture refuses any other connection.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import os
import socket
import struct
import threading
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastnn import datasets
from fastnn.datasets import (
    MNIST_FILES,
    DownloadError,
    download_mnist,
    load_mnist,
    read_idx,
    train_val_split,
)

_IDX_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode ``array`` in the IDX format (big-endian header and data)."""
    array = np.asarray(array)
    code = _IDX_CODES[array.dtype.newbyteorder("=")]
    header = bytes([0, 0, code, array.ndim]) + b"".join(
        struct.pack(">I", d) for d in array.shape
    )
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, *, gz: bool = False) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def make_mnist(n_train=5, n_test=3, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_mnist_dir(directory: Path, arrays, *, gz: bool) -> None:
    for stem, array in arrays.items():
        write_idx(directory / (stem + (".gz" if gz else "")), array, gz=gz)


def gz_payloads(arrays) -> dict[str, bytes]:
    return {stem + ".gz": gzip.compress(idx_bytes(a), mtime=0) for stem, a in arrays.items()}


def sha256_of(payloads) -> dict[str, tuple[str, str]]:
    return {n: ("sha256", hashlib.sha256(b).hexdigest()) for n, b in payloads.items()}


def md5_of(payloads) -> dict[str, tuple[str, str]]:
    return {n: ("md5", hashlib.md5(b).hexdigest()) for n, b in payloads.items()}


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch):
    """Refuse any connection that is not to the local test server."""
    real = socket.create_connection

    def guarded(address, *args, **kwargs):
        host = address[0]
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise AssertionError(f"test tried to reach the network: {address!r}")
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)


@pytest.fixture
def arrays():
    return make_mnist()


@pytest.fixture
def server(arrays):
    """A local HTTP server serving the small gz files.

    ``state["mode"]`` picks the behaviour: "ok", "truncate" (announces the
    full Content-Length, sends half), "corrupt" (right length, one byte
    flipped) or "fail_once" (503 on the first request for each file).
    ``state["requests"]`` counts requests per file name.
    """
    payloads = gz_payloads(arrays)
    state = {"mode": "ok", "requests": Counter(), "payloads": payloads}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep the test output quiet
            pass

        def do_GET(self):
            directory, _, name = self.path.rpartition("/")
            with lock:
                state["requests"][name] += 1
                count = state["requests"][name]
            body = payloads.get(name) if directory == "/mnist" else None
            if body is None:
                self.send_error(404)
                return
            mode = state["mode"]
            if mode == "fail_once" and count == 1:
                self.send_error(503)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if mode == "truncate":
                body = body[: len(body) // 2]
            elif mode == "corrupt":
                body = body[:-1] + bytes([body[-1] ^ 0xFF])
            self.wfile.write(body)

    class Server(http.server.HTTPServer):
        def handle_error(self, request, client_address):  # client hung up: fine
            pass

    httpd = Server(("127.0.0.1", 0), Handler)
    httpd.timeout = 5
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    state["url"] = f"http://127.0.0.1:{httpd.server_address[1]}/mnist/"
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
        assert not thread.is_alive()


def fast(**kwargs):
    """Keyword arguments for a quick download_mnist call."""
    return {"retries": 2, "timeout": 5, "backoff": 0.001, **kwargs}


# --------------------------------------------------------------------------
# read_idx
# --------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_read_idx_roundtrip_mnist_shapes(tmp_path, arrays, gz):
    for stem, array in arrays.items():
        got = read_idx(write_idx(tmp_path / stem, array, gz=gz))
        assert got.dtype == np.uint8
        assert got.shape == array.shape
        np.testing.assert_array_equal(got, array)
        assert got.flags.writeable


@pytest.mark.parametrize("dtype", list(_IDX_CODES))
def test_read_idx_all_type_codes(tmp_path, dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if dtype == np.uint8:
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    got = read_idx(write_idx(tmp_path / "a.idx", array))
    assert got.dtype == np.dtype(dtype)
    assert got.dtype.isnative
    np.testing.assert_array_equal(got, array)


def test_read_idx_detects_gzip_by_magic_not_name(tmp_path, arrays):
    labels = arrays["train-labels-idx1-ubyte"]
    # gzipped content under a plain name, plain content under a .gz name
    a = tmp_path / "labels-plain-name"
    a.write_bytes(gzip.compress(idx_bytes(labels)))
    b = tmp_path / "labels.gz"
    b.write_bytes(idx_bytes(labels))
    np.testing.assert_array_equal(read_idx(a), labels)
    np.testing.assert_array_equal(read_idx(b), labels)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


def _corrupt(kind: str, images: np.ndarray) -> bytes:
    good = idx_bytes(images)
    if kind == "wrong_magic":
        return b"\x12\x34" + good[2:]
    if kind == "zero_ndim":
        return b"\x00\x00\x08\x00"
    if kind == "bad_type":
        return good[:2] + b"\x07" + good[3:]
    if kind == "truncated_data":
        return good[:-10]
    if kind == "truncated_header":
        return good[:10]
    if kind == "tiny":
        return b"\x00\x00"
    if kind == "trailing":
        return good + b"\x00\x01\x02"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "pattern"),
    [
        ("wrong_magic", "magic"),
        ("zero_ndim", "magic"),
        ("bad_type", "type code 0x07"),
        ("truncated_data", r"truncated.*needs 3920 data bytes.*found 3910"),
        ("truncated_header", r"truncated IDX header: expected 16 bytes.*found 10"),
        ("tiny", "truncated"),
        ("trailing", r"3 trailing bytes.*found 3923"),
    ],
)
@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_read_idx_corrupt_raises_valueerror_naming_file(tmp_path, arrays, kind, pattern, gz):
    data = _corrupt(kind, arrays["train-images-idx3-ubyte"])
    path = tmp_path / f"broken-{kind}"
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(ValueError, match=pattern) as info:
        read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda b: b[: len(b) // 2],  # gzip stream cut short
        lambda b: b[:10] + bytes(x ^ 0x5A for x in b[10:]),  # deflate data garbled
        lambda b: b + b"garbage!",  # trailing non-gzip bytes
    ],
    ids=["cut", "garbled", "trailing"],
)
def test_read_idx_bad_gzip(tmp_path, arrays, mangle):
    good = gzip.compress(idx_bytes(arrays["train-labels-idx1-ubyte"]))
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(mangle(good))
    with pytest.raises(ValueError) as info:
        read_idx(path)
    assert str(path) in str(info.value)


# --------------------------------------------------------------------------
# load_mnist
# --------------------------------------------------------------------------


def _check_loaded(result, arrays, *, dtype=np.float32, flatten=True):
    X_train, y_train, X_test, y_test = result
    images = [arrays["train-images-idx3-ubyte"], arrays["t10k-images-idx3-ubyte"]]
    labels = [arrays["train-labels-idx1-ubyte"], arrays["t10k-labels-idx1-ubyte"]]
    for X, raw in zip((X_train, X_test), images):
        assert X.dtype == np.dtype(dtype)
        assert X.shape == ((raw.shape[0], 784) if flatten else raw.shape)
        assert 0.0 <= X.min() and X.max() <= 1.0
        expected = (raw.astype(np.float64) / 255.0).astype(dtype)
        np.testing.assert_allclose(X.reshape(raw.shape), expected, rtol=0, atol=1e-7)
    for y, raw in zip((y_train, y_test), labels):
        assert y.dtype == np.int64
        np.testing.assert_array_equal(y, raw)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_load_mnist_idx_dir(tmp_path, arrays, gz):
    write_mnist_dir(tmp_path, arrays, gz=gz)
    _check_loaded(load_mnist(tmp_path), arrays)
    _check_loaded(load_mnist(str(tmp_path), flatten=False), arrays, flatten=False)
    _check_loaded(load_mnist(tmp_path, dtype=np.float64), arrays, dtype=np.float64)


def test_load_mnist_extremes_scale_exactly(tmp_path, arrays):
    arrays["train-images-idx3-ubyte"][0] = 0
    arrays["train-images-idx3-ubyte"][1] = 255
    write_mnist_dir(tmp_path, arrays, gz=True)
    X_train = load_mnist(tmp_path)[0]
    assert np.all(X_train[0] == 0.0) and np.all(X_train[1] == 1.0)


def test_load_mnist_mixed_plain_and_gz(tmp_path, arrays):
    for i, (stem, array) in enumerate(arrays.items()):
        gz = i % 2 == 0
        write_idx(tmp_path / (stem + (".gz" if gz else "")), array, gz=gz)
    _check_loaded(load_mnist(tmp_path), arrays)


def _npz(path: Path, arrays, **overrides):
    data = {
        "x_train": arrays["train-images-idx3-ubyte"],
        "y_train": arrays["train-labels-idx1-ubyte"],
        "x_test": arrays["t10k-images-idx3-ubyte"],
        "y_test": arrays["t10k-labels-idx1-ubyte"],
    }
    data.update(overrides)
    data = {k: v for k, v in data.items() if v is not None}
    np.savez_compressed(path, **data)
    return path


def test_load_mnist_npz_file_and_dir(tmp_path, arrays):
    path = _npz(tmp_path / "mnist.npz", arrays)
    _check_loaded(load_mnist(path), arrays)
    _check_loaded(load_mnist(tmp_path, flatten=False), arrays, flatten=False)


def test_load_mnist_npz_missing_key(tmp_path, arrays):
    path = _npz(tmp_path / "mnist.npz", arrays, y_test=None)
    with pytest.raises(ValueError, match="y_test") as info:
        load_mnist(path)
    assert str(path) in str(info.value)


def test_load_mnist_npz_refuses_pickles(tmp_path, arrays):
    path = _npz(tmp_path / "mnist.npz", arrays, y_test=np.array([1, "a", None], dtype=object))
    with pytest.raises(ValueError) as info:
        load_mnist(path)
    assert str(path) in str(info.value)


def test_load_mnist_npz_count_mismatch(tmp_path, arrays):
    path = _npz(tmp_path / "m.npz", arrays, y_train=np.zeros(4, dtype=np.uint8))
    with pytest.raises(ValueError, match="5 images but y_train has 4 labels") as info:
        load_mnist(path)
    assert str(path) in str(info.value)


def test_load_mnist_not_an_npz(tmp_path):
    path = tmp_path / "junk.npz"
    path.write_bytes(b"this is not a zip file at all")
    with pytest.raises(ValueError) as info:
        load_mnist(path)
    assert str(path) in str(info.value)


def test_load_mnist_count_mismatch_names_files(tmp_path, arrays):
    arrays["t10k-labels-idx1-ubyte"] = arrays["t10k-labels-idx1-ubyte"][:-1]
    write_mnist_dir(tmp_path, arrays, gz=True)
    with pytest.raises(ValueError, match="3 images.*2 labels") as info:
        load_mnist(tmp_path)
    assert "t10k-images-idx3-ubyte.gz" in str(info.value)
    assert "t10k-labels-idx1-ubyte.gz" in str(info.value)


def test_load_mnist_wrong_kind_of_idx(tmp_path, arrays):
    # labels where the images should be
    arrays["train-images-idx3-ubyte"] = arrays["train-labels-idx1-ubyte"]
    write_mnist_dir(tmp_path, arrays, gz=False)
    with pytest.raises(ValueError, match="3-D") as info:
        load_mnist(tmp_path)
    assert "train-images-idx3-ubyte" in str(info.value)


def test_load_mnist_corrupt_file_named(tmp_path, arrays):
    write_mnist_dir(tmp_path, arrays, gz=False)
    victim = tmp_path / "t10k-images-idx3-ubyte"
    victim.write_bytes(victim.read_bytes()[:-1])
    with pytest.raises(ValueError, match="truncated") as info:
        load_mnist(tmp_path)
    assert str(victim) in str(info.value)


def test_load_mnist_nothing_there(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_mnist(tmp_path / "empty")
    message = str(info.value)
    for name in MNIST_FILES:
        assert name[: -len(".gz")] in message
    assert "mnist.npz" in message


def test_load_mnist_incomplete(tmp_path, arrays):
    del arrays["t10k-labels-idx1-ubyte"]
    write_mnist_dir(tmp_path, arrays, gz=True)
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path)


def test_load_mnist_default_dir_from_env(tmp_path, arrays, monkeypatch):
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path))
    assert datasets.mnist_cache_dir() == tmp_path / "mnist"
    (tmp_path / "mnist").mkdir()
    write_mnist_dir(tmp_path / "mnist", arrays, gz=True)
    _check_loaded(load_mnist(), arrays)


def test_mnist_cache_dir_default(monkeypatch):
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    assert datasets.mnist_cache_dir() == Path.home() / ".cache" / "fastnn" / "mnist"


@pytest.mark.parametrize("dtype", [np.int32, np.uint8, "not a dtype", ",", "a"])
def test_load_mnist_rejects_non_float_dtype(tmp_path, arrays, dtype):
    write_mnist_dir(tmp_path, arrays, gz=False)
    with pytest.raises(ValueError, match="dtype"):
        load_mnist(tmp_path, dtype=dtype)


# --------------------------------------------------------------------------
# download_mnist
# --------------------------------------------------------------------------


def test_published_checksums_are_well_formed():
    assert set(datasets.MNIST_SHA256) == set(MNIST_FILES)
    assert set(datasets.MNIST_MD5) == set(MNIST_FILES)
    for algo, digest in datasets.MNIST_SHA256.values():
        assert algo == "sha256" and len(digest) == 64
        int(digest, 16)
    assert datasets.MNIST_MD5["train-images-idx3-ubyte.gz"] == (
        "md5",
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    )
    assert datasets.MNIST_MD5["t10k-labels-idx1-ubyte.gz"] == (
        "md5",
        "ec29112dd5afa0611ce80d1b7f02629c",
    )
    assert datasets.DEFAULT_MNIST_URL == "https://ossci-datasets.s3.amazonaws.com/mnist/"


@pytest.mark.parametrize("digests", [sha256_of, md5_of], ids=["sha256", "md5"])
def test_download_and_load(tmp_path, server, arrays, digests):
    out = tmp_path / "dl"
    checksums = digests(server["payloads"])
    result = download_mnist(out, base_url=server["url"], **fast(checksums=checksums))
    assert result == out
    assert sorted(os.listdir(out)) == sorted(MNIST_FILES)
    for name, body in server["payloads"].items():
        assert (out / name).read_bytes() == body
        assert server["requests"][name] == 1
    _check_loaded(load_mnist(out), arrays)


def test_download_bare_hex_digests_and_no_trailing_slash(tmp_path, server):
    checksums = {n: hashlib.sha256(b).hexdigest() for n, b in server["payloads"].items()}
    download_mnist(tmp_path, base_url=server["url"].rstrip("/"), **fast(checksums=checksums))
    assert sorted(os.listdir(tmp_path)) == sorted(MNIST_FILES)


def test_download_default_dir_from_env(tmp_path, server, monkeypatch):
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "data"))
    out = download_mnist(base_url=server["url"], **fast(checksums=sha256_of(server["payloads"])))
    assert out == tmp_path / "data" / "mnist"
    assert sorted(os.listdir(out)) == sorted(MNIST_FILES)


@pytest.mark.parametrize("mode", ["truncate", "corrupt"])
def test_download_bad_bytes_fails_after_retries_leaving_nothing(tmp_path, server, mode):
    server["mode"] = mode
    checksums = sha256_of(server["payloads"])
    with pytest.raises(DownloadError) as info:
        download_mnist(tmp_path, base_url=server["url"], **fast(checksums=checksums))
    first = MNIST_FILES[0]
    message = str(info.value)
    assert first in message
    assert server["url"] + first in message
    assert "after 3 attempts" in message
    assert ("truncated" in message) if mode == "truncate" else ("sha256 mismatch" in message)
    assert info.value.__cause__ is not None
    assert server["requests"][first] == 3  # retries=2 -> three attempts
    assert os.listdir(tmp_path) == []  # no partial file, no temp file


def test_download_truncated_without_checksums_still_fails(tmp_path, server):
    server["mode"] = "truncate"
    with pytest.raises(DownloadError, match="truncated"):
        download_mnist(tmp_path, base_url=server["url"], **fast(checksums=None, retries=0))
    assert os.listdir(tmp_path) == []
    assert server["requests"][MNIST_FILES[0]] == 1


def test_download_checksum_mismatch_with_published_defaults(tmp_path, server):
    # the tiny test files cannot match the real MNIST digests
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        download_mnist(tmp_path, base_url=server["url"], retries=1, timeout=5, backoff=0.001)
    assert os.listdir(tmp_path) == []


def test_download_skips_present_files(tmp_path, server):
    payloads = server["payloads"]
    checksums = sha256_of(payloads)
    present = MNIST_FILES[1]
    (tmp_path / present).write_bytes(payloads[present])
    download_mnist(tmp_path, base_url=server["url"], **fast(checksums=checksums))
    assert server["requests"][present] == 0
    assert sum(server["requests"].values()) == 3
    # all present now: a second call makes no request at all
    download_mnist(tmp_path, base_url=server["url"], **fast(checksums=checksums))
    assert sum(server["requests"].values()) == 3


def test_download_replaces_present_file_with_wrong_checksum(tmp_path, server):
    payloads = server["payloads"]
    name = MNIST_FILES[3]
    (tmp_path / name).write_bytes(b"stale")
    download_mnist(tmp_path, base_url=server["url"], **fast(checksums=sha256_of(payloads)))
    assert server["requests"][name] == 1
    assert (tmp_path / name).read_bytes() == payloads[name]


def test_download_retries_after_server_error(tmp_path, server):
    server["mode"] = "fail_once"
    checksums = sha256_of(server["payloads"])
    download_mnist(tmp_path, base_url=server["url"], **fast(checksums=checksums, retries=1))
    for name in MNIST_FILES:
        assert server["requests"][name] == 2
    assert sorted(os.listdir(tmp_path)) == sorted(MNIST_FILES)


def test_download_fail_once_without_retries_fails(tmp_path, server):
    server["mode"] = "fail_once"
    checksums = sha256_of(server["payloads"])
    with pytest.raises(DownloadError, match="503"):
        download_mnist(tmp_path, base_url=server["url"], **fast(checksums=checksums, retries=0))
    assert os.listdir(tmp_path) == []


def test_download_404_is_not_retried(tmp_path, server):
    with pytest.raises(DownloadError, match="404") as info:
        download_mnist(tmp_path, base_url=server["url"] + "elsewhere/", **fast(retries=5))
    assert "after 1 attempt;" in str(info.value)
    assert sum(server["requests"].values()) == 1
    assert os.listdir(tmp_path) == []


def test_download_connection_refused(tmp_path):
    with socket.socket() as s:  # find a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match=MNIST_FILES[0]) as info:
        download_mnist(tmp_path, base_url=f"http://127.0.0.1:{port}/", **fast(retries=1))
    assert f"http://127.0.0.1:{port}/{MNIST_FILES[0]}" in str(info.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"retries": -1}, "retries"),
        ({"retries": 1.5}, "retries"),
        ({"timeout": 0}, "timeout"),
        ({"backoff": -1}, "backoff"),
        ({"base_url": "ftp://example.invalid/"}, "base_url"),
        ({"checksums": {}}, "checksums"),
        ({"checksums": dict.fromkeys(MNIST_FILES, ("crc32", "00"))}, "algorithm"),
        ({"checksums": dict.fromkeys(MNIST_FILES, ("md5", "xyz"))}, "hex"),
        ({"checksums": dict.fromkeys(MNIST_FILES, "abc")}, "checksum"),
    ],
)
def test_download_argument_errors(tmp_path, kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        download_mnist(tmp_path, **kwargs)
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------
# train_val_split
# --------------------------------------------------------------------------


def test_train_val_split_sizes_and_partition():
    X = np.arange(200, dtype=np.float32).reshape(100, 2)
    y = np.arange(100)
    X_tr, y_tr, X_val, y_val = train_val_split(X, y, val_fraction=0.25, seed=3)
    assert X_tr.shape == (75, 2) and X_val.shape == (25, 2)
    assert y_tr.shape == (75,) and y_val.shape == (25,)
    assert X_tr.dtype == np.float32 and y_tr.dtype == y.dtype
    assert sorted(np.concatenate([y_tr, y_val]).tolist()) == list(range(100))
    np.testing.assert_array_equal(X_tr[:, 0], 2 * y_tr)  # rows stay paired
    np.testing.assert_array_equal(X_val[:, 0], 2 * y_val)
    assert not np.array_equal(y_val, np.arange(25))  # actually shuffled


def test_train_val_split_deterministic():
    X = np.random.default_rng(1).normal(size=(50, 3))
    y = np.arange(50)
    a = train_val_split(X, y, seed=7)
    b = train_val_split(X, y, seed=7)
    c = train_val_split(X, y, seed=8)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[3], c[3])
    perm = np.random.default_rng(7).permutation(50)
    np.testing.assert_array_equal(a[3], perm[:5])


def test_train_val_split_never_empty():
    X, y = np.zeros((3, 1)), np.arange(3)
    assert train_val_split(X, y, val_fraction=0.01)[3].shape == (1,)
    assert train_val_split(X, y, val_fraction=0.99)[1].shape == (1,)
    X_tr, y_tr, X_val, y_val = train_val_split([[1], [2]], [0, 1], val_fraction=0.5)
    assert isinstance(X_tr, np.ndarray) and len(y_tr) == len(y_val) == 1


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5, float("nan"), True, "0.1", None])
def test_train_val_split_bad_fraction(fraction):
    with pytest.raises(ValueError, match="val_fraction"):
        train_val_split(np.zeros((10, 2)), np.zeros(10), val_fraction=fraction)


def test_train_val_split_length_mismatch():
    with pytest.raises(ValueError, match=r"len\(X\) = 10, len\(y\) = 9"):
        train_val_split(np.zeros((10, 2)), np.zeros(9))


def test_train_val_split_too_few_samples():
    with pytest.raises(ValueError, match="at least 2"):
        train_val_split(np.zeros((1, 2)), np.zeros(1))
    with pytest.raises(ValueError):
        train_val_split(np.float64(3.0), np.zeros(1))


# --------------------------------------------------------------------------
# load_digits
# --------------------------------------------------------------------------


def test_load_digits():
    X_train, y_train, X_test, y_test = datasets.load_digits()
    assert X_train.shape[0] + X_test.shape[0] == 1797
    assert X_test.shape == (359, 64) and X_train.shape == (1438, 64)
    assert y_train.shape == (1438,) and y_test.shape == (359,)
    assert X_train.dtype == np.float32 and X_test.dtype == np.float32
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    for X in (X_train, X_test):
        assert X.min() >= 0.0 and X.max() <= 1.0
    assert X_train.max() == 1.0 and X_train.min() == 0.0
    assert set(np.unique(np.concatenate([y_train, y_test]))) == set(range(10))
    # pixel values are k / 16 for integer k
    np.testing.assert_allclose(X_train * 16, np.round(X_train * 16), atol=1e-5)

    again = datasets.load_digits()
    for u, v in zip(again, (X_train, y_train, X_test, y_test)):
        np.testing.assert_array_equal(u, v)
    other = datasets.load_digits(seed=1)
    assert not np.array_equal(other[3], y_test)

    X_tr64, _, X_te64, _ = datasets.load_digits(dtype=np.float64, test_size=0.5, seed=0)
    assert X_tr64.dtype == np.float64 and X_te64.shape == (898, 64)
    with pytest.raises(ValueError, match="test_size"):
        datasets.load_digits(test_size=1.0)
    with pytest.raises(ValueError, match="dtype"):
        datasets.load_digits(dtype=np.int64)


def test_load_digits_needs_no_sklearn(monkeypatch):
    """The digits ship inside fastnn: load_digits works with scikit-learn unimportable."""
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "sklearn" or name.startswith("sklearn."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    X_train, y_train, X_test, y_test = datasets.load_digits()
    assert X_train.shape == (1438, 64) and X_test.shape == (359, 64)
    assert np.bincount(np.concatenate([y_train, y_test])).tolist() == [
        178, 182, 177, 183, 181, 182, 181, 179, 174, 180]   # UCI's optdigits.tes counts


def test_embedded_digits_equal_sklearn_bit_for_bit():
    """The embedded file holds scikit-learn's arrays, and load_digits gives the very
    arrays the former scikit-learn path gave (same scaling, same split), both dtypes."""
    from sklearn.datasets import load_digits as sklearn_load_digits   # a test dependency

    bunch = sklearn_load_digits()
    data, target = datasets._read_digits()
    np.testing.assert_array_equal(data, bunch.data)
    np.testing.assert_array_equal(target, bunch.target)
    for dt, test_size, seed in ((np.float32, 0.2, 0), (np.float64, 0.5, 3)):
        X = (np.asarray(bunch.data, dtype=np.float64) / 16.0).astype(dt)
        y = np.asarray(bunch.target).astype(np.int64)
        old = datasets.train_val_split(X, y, val_fraction=test_size, seed=seed)
        new = datasets.load_digits(dtype=dt, test_size=test_size, seed=seed)
        for u, w in zip(new, old):
            assert u.dtype == w.dtype
            np.testing.assert_array_equal(u, w)


def test_damaged_digits_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "missing.npz"
    with pytest.raises(OSError, match="missing or damaged.*reinstall"):
        datasets._read_digits(missing)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, data=np.zeros((10, 64), np.uint8), target=np.zeros(10, np.uint8))
    with pytest.raises(OSError, match=r"damaged: expected uint8 arrays data \(1797, 64\)"):
        datasets._read_digits(wrong)


def test_module_imports_only_numpy_and_stdlib():
    """fastnn/datasets.py, loaded on its own, pulls in no third-party module
    but NumPy (urllib.request is imported lazily; scikit-learn is not needed)."""
    import subprocess
    import sys

    code = (
        "import importlib.util, sys\n"
        "spec = importlib.util.spec_from_file_location('_ds_alone', sys.argv[1])\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('fastnn', 'sklearn', 'scipy', 'numba', 'urllib3', 'requests'))\n"
        "assert not bad, bad\n"
        "assert 'urllib.request' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code, datasets.__file__], check=True, timeout=120)


# --------------------------------------------------------------------------
# issue 20, point 8: the download deadline, non-finite pixels, malformed IDX
# files (generated), bounded memory
# --------------------------------------------------------------------------


@pytest.fixture
def slow_server():
    """A local HTTP server that is slow on purpose. ``state["mode"]``:
    "dribble" (announces 1 MB, then sends 16 bytes every 0.1 s for up to 20 s),
    "silent" (headers, then nothing for 20 s) or "503" (always unavailable).
    ``state["requests"]`` counts the requests."""
    state = {"mode": "dribble", "requests": 0}
    stop = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            state["requests"] += 1
            if state["mode"] == "503":
                self.send_error(503)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(1_000_000))
            self.end_headers()
            self.wfile.flush()
            for _ in range(200):
                if stop.wait(0.1):
                    return
                if state["mode"] == "dribble":
                    self.wfile.write(b"x" * 16)
                    self.wfile.flush()

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):  # the client hung up: fine
            pass

    httpd = Server(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{httpd.server_address[1]}/"
    try:
        yield state
    finally:
        stop.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_download_deadline_stops_a_dribbling_server(tmp_path, slow_server):
    """The issue: 16 bytes every 0.5 s kept download_mnist(timeout=1) going for minutes
    (each read waited for 64 KiB; each recv came within the timeout)."""
    import time

    t0 = time.monotonic()
    with pytest.raises(DownloadError, match=r"deadline of 1\.5 s .* passed") as info:
        download_mnist(tmp_path, base_url=slow_server["url"], timeout=1, deadline=1.5,
                       retries=3, backoff=0.01, checksums=None)
    elapsed = time.monotonic() - t0
    assert 1.4 < elapsed < 1.5 + 1 + 1.0, elapsed       # the deadline, + at most one read
    assert MNIST_FILES[0] in str(info.value) and slow_server["url"] in str(info.value)
    assert isinstance(info.value.__cause__, TimeoutError)
    assert slow_server["requests"] == 1                  # a passed deadline is not retried
    assert os.listdir(tmp_path) == []                    # no partial file left


def test_download_deadline_bounds_the_retries_and_backoff(tmp_path, slow_server):
    import time

    slow_server["mode"] = "503"
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match=r"deadline of 1 s.*earlier error: HTTPError"):
        download_mnist(tmp_path, base_url=slow_server["url"], timeout=5, deadline=1,
                       retries=20, backoff=0.2, checksums=None)   # 0.2 + 0.4 + 0.8 + ... s
    assert time.monotonic() - t0 < 2.5
    assert 2 <= slow_server["requests"] <= 4


def test_download_timeout_fails_a_silent_server_per_attempt(tmp_path, slow_server):
    import time

    slow_server["mode"] = "silent"
    t0 = time.monotonic()
    with pytest.raises(DownloadError, match="after 2 attempts"):
        download_mnist(tmp_path, base_url=slow_server["url"], timeout=0.3, deadline=None,
                       retries=1, backoff=0.01, checksums=None)
    assert time.monotonic() - t0 < 3
    assert slow_server["requests"] == 2


@pytest.mark.parametrize("deadline", [0, -1, float("nan"), "5", True])
def test_download_rejects_a_bad_deadline(tmp_path, deadline):
    with pytest.raises(ValueError, match="deadline must be a positive number"):
        download_mnist(tmp_path, deadline=deadline)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_load_mnist_rejects_non_finite_pixels(tmp_path, arrays, bad, dtype):
    """The issue: NaN pixels from a float .npz passed the [0, 255] check (NaN compares false)."""
    x = arrays["train-images-idx3-ubyte"].astype(dtype)
    x[1, 2, 3] = bad
    path = _npz(tmp_path / "m.npz", arrays, x_train=x)
    with pytest.raises(ValueError, match=r"x_train\].*must be finite.*found 1 NaN or infinite") as info:
        load_mnist(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("bad", [-0.5, 255.5, 1e9])
def test_load_mnist_rejects_out_of_range_float_pixels(tmp_path, arrays, bad):
    x = arrays["t10k-images-idx3-ubyte"].astype(np.float64)
    x[0, 0, 0] = bad
    path = _npz(tmp_path / "m.npz", arrays, x_test=x)
    with pytest.raises(ValueError, match=r"x_test\].*must lie in \[0, 255\], got values in"):
        load_mnist(path)


def test_load_mnist_float_pixels_in_range_still_load(tmp_path, arrays):
    x = arrays["train-images-idx3-ubyte"].astype(np.float32)
    X_train = load_mnist(_npz(tmp_path / "m.npz", arrays, x_train=x))[0]
    np.testing.assert_array_equal(X_train.reshape(x.shape), x / np.float32(255))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_load_mnist_bad_npz_leaks_no_file_handle(tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_bytes(b"PK\x03\x04" + b"\0" * 64)          # zip magic, then nothing valid
    before = len(os.listdir("/proc/self/fd"))
    errors = []
    for _ in range(5):
        with pytest.raises(ValueError, match="cannot read MNIST .npz") as info:
            load_mnist(path)
        errors.append(info)                                # keeps the frames alive
    assert len(os.listdir("/proc/self/fd")) == before


def _gzip_chunks(chunks) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)            # wbits 31: a gzip stream
    return b"".join([c.compress(b) for b in chunks] + [c.flush()])


def _peak_bytes(fn):
    import tracemalloc

    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_read_idx_huge_declared_sizes_allocate_nothing(tmp_path, gz):
    header = bytes([0, 0, 0x0E, 3]) + struct.pack(">III", 2**32 - 1, 2**32 - 1, 60000)
    data = header + bytes(1000)
    path = tmp_path / "huge-idx"
    path.write_bytes(gzip.compress(data) if gz else data)

    def read():
        with pytest.raises(ValueError, match=r"truncated IDX file: shape \(4294967295, 4294967295, "
                                             r"60000\) needs \d+ data bytes.*found 1000"):
            read_idx(path)
    assert _peak_bytes(read) < 4 << 20


def test_read_idx_gzip_bomb_is_not_decompressed_whole(tmp_path):
    """10 data bytes and 32 MiB of trailing zeros (32 KiB compressed): counted in chunks."""
    labels = np.arange(10, dtype=np.uint8)
    path = tmp_path / "bomb-idx1-ubyte.gz"
    path.write_bytes(_gzip_chunks([idx_bytes(labels)] + [bytes(1 << 20)] * 32))
    assert path.stat().st_size < 100_000

    def read():
        with pytest.raises(ValueError, match=r"33554432 trailing bytes after the IDX data"):
            read_idx(path)
    assert _peak_bytes(read) < 4 << 20         # it was 32 MiB and more: gzip.decompress whole


def test_read_idx_truncated_at_every_offset(tmp_path, arrays):
    good = idx_bytes(arrays["train-labels-idx1-ubyte"][:4])
    path = tmp_path / "cut"
    for gz in (False, True):
        full = gzip.compress(good, mtime=0) if gz else good
        for k in range(len(full)):
            path.write_bytes(full[:k])
            with pytest.raises(ValueError) as info:
                read_idx(path)
            assert str(path) in str(info.value), (gz, k)
        path.write_bytes(full)
        np.testing.assert_array_equal(read_idx(path), arrays["train-labels-idx1-ubyte"][:4])


@st.composite
def _idx_files(draw):
    """A valid small IDX file, then at most a few mutations of its bytes (header, dims,
    data, length), and optionally gzip with mutations of the compressed bytes."""
    dtype = draw(st.sampled_from(list(_IDX_CODES)))
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=1, max_size=3)))
    n = int(np.prod(shape))
    array = np.frombuffer(draw(st.binary(min_size=n * dtype.itemsize, max_size=n * dtype.itemsize)),
                          dtype=dtype.newbyteorder(">"), count=n).reshape(shape)
    data = bytearray(idx_bytes(array.astype(dtype)))
    ndim = len(shape)
    for kind in draw(st.lists(st.sampled_from(["truncate", "flip", "append", "dims", "magic", "ndim"]),
                              max_size=3)):
        if kind == "truncate":
            del data[draw(st.integers(0, len(data))):]
        elif kind == "flip" and data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif kind == "append":
            data += draw(st.binary(min_size=1, max_size=16))
        elif kind == "dims" and len(data) >= 4 + 4 * ndim:
            i = draw(st.integers(0, ndim - 1))
            data[4 + 4 * i: 8 + 4 * i] = struct.pack(">I", draw(st.sampled_from(
                [0, 1, 5, 2**16, 2**31, 2**32 - 1]) | st.integers(0, 2**32 - 1)))
        elif kind == "magic" and len(data) >= 4:
            data[:4] = draw(st.binary(min_size=4, max_size=4))
        elif kind == "ndim" and len(data) >= 4:
            data[3] = draw(st.integers(0, 255))
    raw = bytes(data)
    if draw(st.booleans()):
        gz = bytearray(gzip.compress(raw, mtime=0))
        for kind in draw(st.lists(st.sampled_from(["truncate", "flip", "append"]), max_size=2)):
            if kind == "truncate":
                del gz[draw(st.integers(0, len(gz))):]
            elif kind == "flip" and gz:
                gz[draw(st.integers(0, len(gz) - 1))] = draw(st.integers(0, 255))
            else:
                gz += draw(st.binary(min_size=1, max_size=16))
        return bytes(gz)
    return raw


def _decoded(file_bytes: bytes) -> bytes:
    return gzip.decompress(file_bytes) if file_bytes[:2] == b"\x1f\x8b" else file_bytes


@given(_idx_files())
@settings(max_examples=400, suppress_health_check=list(HealthCheck))
def test_read_idx_malformed_files_raise_valueerror_or_read_exactly(tmp_path, file_bytes):
    """Any file: read_idx raises a ValueError naming it, or returns the array that encodes
    back to exactly the (decompressed) bytes of the file."""
    path = tmp_path / "fuzzed-idx"
    path.write_bytes(file_bytes)
    try:
        got = read_idx(path)
    except ValueError as exc:
        assert str(path) in str(exc)
        return
    assert got.dtype.isnative and got.flags.writeable
    assert idx_bytes(got) == _decoded(file_bytes)


def test_download_reports_progress(tmp_path, server):
    """progress(name, url, received, total): a start event (0 bytes) and the bytes so far,
    ending at each file's size; and fastnn train --download's printer says what it fetches."""
    import io

    from fastnn.train_cli import _DownloadProgress
    events = []
    download_mnist(tmp_path, base_url=server["url"], progress=lambda *e: events.append(e),
                   **fast(checksums=sha256_of(server["payloads"])))
    for name, body in server["payloads"].items():
        mine = [e for e in events if e[0] == name]
        assert mine[0][1] == server["url"].rstrip("/") + "/" + name and mine[0][2] == 0
        assert mine[-1][2] == len(body) and all(e[3] in (None, len(body)) for e in mine)
        assert [e[2] for e in mine] == sorted(e[2] for e in mine)
    out = io.StringIO()
    p = _DownloadProgress(out)
    p("train-images-idx3-ubyte.gz", "https://x/train-images-idx3-ubyte.gz", 0, 9_912_422)
    p("train-images-idx3-ubyte.gz", "https://x/train-images-idx3-ubyte.gz", 9_912_422, 9_912_422)
    assert out.getvalue() == ("downloading train-images-idx3-ubyte.gz from "
                              "https://x/train-images-idx3-ubyte.gz (9.9 MB)\n")   # not a terminal
