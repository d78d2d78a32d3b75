"""The command line at the edges (issue 20, point 9): every bad argument is one line on
stderr naming it, a non-zero exit, and no work done (nothing loaded, trained or
benchmarked where it can be known before); Ctrl-C is one line and status 130."""
from __future__ import annotations

import argparse
import contextlib
import functools
import io
import math
import socket
import sys
import time

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import fastnn
from fastnn import bench as B
from fastnn import datasets, train_cli
from fastnn._cli_util import split_list
from fastnn.bench import cli as bench_cli
from fastnn.cli import build_parser, main
from fastnn.model import MLP

needs_sklearn = pytest.mark.skipif(
    __import__("importlib").util.find_spec("sklearn") is None, reason="digits need scikit-learn")


def _run(argv):
    """main(argv) -> (exit status, stdout, stderr), SystemExit included."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()


def _assert_one_line(rc, err, cmd, option):
    lines = err.strip().splitlines()
    assert rc == 2, (rc, err)
    assert "Traceback" not in err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"fastnn {cmd}: error: "), err
    assert option in lines[0], (option, err)


@pytest.fixture
def work(monkeypatch):
    """Counts the work done: data loaded, downloads, epochs trained, benchmark workers."""
    calls = {"load": 0, "download": 0, "fit": 0, "bench": 0}

    def counting(name, real):
        @functools.wraps(real)
        def wrapper(*a, **k):
            calls[name] += 1
            return real(*a, **k)
        return wrapper
    for fn in ("load_digits", "load_mnist"):
        monkeypatch.setattr(datasets, fn, counting("load", getattr(datasets, fn)))
    monkeypatch.setattr(datasets, "download_mnist", counting("download", datasets.download_mnist))

    def no_fit(self, *a, **k):
        calls["fit"] += 1
        raise AssertionError("fit was called")
    monkeypatch.setattr(MLP, "fit", no_fit)

    def no_bench(*a, **k):
        calls["bench"] += 1
        raise AssertionError("the benchmark ran")
    monkeypatch.setattr(bench_cli, "run", no_bench)
    monkeypatch.setattr(bench_cli, "_run_worker", no_bench)
    return calls


# --- fastnn train ------------------------------------------------------------------------------
_TRAIN_BEFORE_LOADING = [  # (arguments, the option the message must name)
    (["--sizes", "64,x,10"], "--sizes"),
    (["--sizes", "64"], "--sizes"),
    (["--sizes", "64,,10"], "--sizes"),
    (["--sizes", "64,0,10"], "--sizes"),
    (["--sizes", ""], "--sizes"),
    (["--batch-size", "-1"], "--batch-size"),
    (["--batch-size", "2.5"], "--batch-size"),
    (["--lr", "nan"], "--lr"),
    (["--lr", "-1"], "--lr"),
    (["--lr", "inf"], "--lr"),
    (["--lr", "fast"], "--lr"),
    (["--momentum", "1"], "--momentum"),
    (["--momentum", "-0.1"], "--momentum"),
    (["--weight-decay", "-1e-3"], "--weight-decay"),
    (["--l1", "nan"], "--l1"),
    (["--threads", "0"], "--threads"),
    (["--val-fraction", "1.5"], "--val-fraction"),
    (["--val-fraction", "1"], "--val-fraction"),
    (["--val-fraction", "-0.1"], "--val-fraction"),
    (["--epochs", "0"], "--epochs"),
    (["--epochs", "-5"], "--epochs"),
    (["--seed", "-1"], "--seed"),
    (["--impl", "cuda"], "--impl"),
    (["--download"], "--download"),
    (["--no-such-option"], "--no-such-option"),
]


@pytest.mark.parametrize("argv,option", _TRAIN_BEFORE_LOADING)
def test_train_bad_argument_is_one_line_before_any_work(work, argv, option):
    t0 = time.perf_counter()
    rc, out, err = _run(["train", "--no-progress"] + argv)
    _assert_one_line(rc, err, "train", option)
    assert work == {"load": 0, "download": 0, "fit": 0, "bench": 0}
    assert time.perf_counter() - t0 < 2.0
    assert "epoch" not in out


def _paths_before_loading(tmp_path):
    (tmp_path / "folder").mkdir()
    return [
        (["--mnist", str(tmp_path / "missing")], "--mnist"),
        (["--mnist", str(tmp_path / "f.npz"), "--download"], "--mnist"),
        (["--resume", str(tmp_path / "missing.npz")], "--resume"),
        (["--resume", str(tmp_path / "folder")], "--resume"),
        (["--save", str(tmp_path / "missing" / "run.npz")], "--save"),
        (["--save", str(tmp_path / "folder")], "--save"),
        (["--plot", str(tmp_path / "missing" / "curves.png")], "--plot"),
    ]


def test_train_bad_paths_are_one_line_before_any_work(work, tmp_path):
    (tmp_path / "f.npz").write_bytes(b"x")
    for argv, option in _paths_before_loading(tmp_path):
        rc, out, err = _run(["train", "--no-progress"] + argv)
        _assert_one_line(rc, err, "train", option)
        assert work == {"load": 0, "download": 0, "fit": 0, "bench": 0}, argv


def test_train_plot_without_matplotlib_fails_before_training(work, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)        # import matplotlib fails
    rc, out, err = _run(["train", "--no-progress", "--plot", str(tmp_path / "c.png")])
    _assert_one_line(rc, err, "train", "--plot needs matplotlib")
    assert work["load"] == work["fit"] == 0


@needs_sklearn
@pytest.mark.parametrize("argv,option", [
    (["--sizes", "10,32,10"], "--sizes: 10,32,10 does not fit digits: expected 64 inputs and 10 outputs"),
    (["--sizes", "64,32,3"], "expected 64 inputs and 10 outputs"),
    (["--sizes", "64,32,11"], "--sizes"),
])
def test_train_sizes_that_do_not_fit_the_data_fail_before_training(work, argv, option):
    rc, out, err = _run(["train", "--no-progress"] + argv)
    _assert_one_line(rc, err, "train", option)
    assert work["load"] == 1 and work["fit"] == 0


@needs_sklearn
def test_train_resume_of_a_bad_or_mismatched_checkpoint(work, tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a checkpoint")
    rc, out, err = _run(["train", "--no-progress", "--resume", str(junk)])
    _assert_one_line(rc, err, "train", "--resume")
    assert "not a zip" in err
    MLP([5, 3]).save(tmp_path / "five.npz")
    rc, out, err = _run(["train", "--no-progress", "--resume", str(tmp_path / "five.npz")])
    _assert_one_line(rc, err, "train", "expects 5 inputs, digits has 64")
    MLP([64, 8, 10]).save(tmp_path / "ok.npz")
    rc, out, err = _run(["train", "--no-progress", "--resume", str(tmp_path / "ok.npz"),
                         "--sizes", "64,32,10"])
    _assert_one_line(rc, err, "train", "--sizes: 64,32,10 differs from the checkpoint's 64,8,10")
    assert work["fit"] == 0


def test_train_mnist_folder_without_data(work, tmp_path):
    rc, out, err = _run(["train", "--no-progress", "--mnist", str(tmp_path)])
    _assert_one_line(rc, err, "train", "--mnist: no MNIST data in")
    assert work["fit"] == 0


def test_train_offline_download_is_one_line(work, tmp_path, monkeypatch):
    with socket.socket() as s:                      # a port nobody listens on: "offline"
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    real = datasets.download_mnist
    monkeypatch.setattr(datasets, "download_mnist", functools.partial(
        real, base_url=f"http://127.0.0.1:{port}/", retries=1, backoff=0.01))
    rc, out, err = _run(["train", "--no-progress", "--mnist", str(tmp_path / "dl"), "--download"])
    _assert_one_line(rc, err, "train", "--download: could not download train-images-idx3-ubyte.gz")
    assert work["fit"] == 0


def test_train_safety_net_and_ctrl_c(monkeypatch):
    def boom(args):
        raise ValueError("something\nwent wrong")
    monkeypatch.setattr(train_cli, "run", boom)
    rc, out, err = _run(["train"])
    _assert_one_line(rc, err, "train", "something went wrong")

    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr(train_cli, "run", interrupted)
    rc, out, err = _run(["train"])
    assert rc == 130 and err.strip() == "fastnn train: interrupted"


@needs_sklearn
def test_train_good_arguments_still_train(tmp_path):
    """The checks do not refuse the documented forms (batch 0, val-fraction 0, lr 0)."""
    save = tmp_path / "run.npz"
    rc, out, err = _run(["train", "--no-progress", "--quiet", "--epochs", "2", "--batch-size", "0",
                         "--lr", "0", "--val-fraction", "0", "--sizes", "64, 8 ,10", "--impl",
                         "vectorized", "--save", str(save)])
    assert rc == 0, err
    m = MLP.load(save)
    assert m.epoch == 2 and m.sizes == (64, 8, 10)
    np.testing.assert_array_equal(m._params, MLP([64, 8, 10], seed=0)._params)   # lr 0


# --- fastnn bench ------------------------------------------------------------------------------
def _bench_cases(tmp_path):
    (tmp_path / "junk.json").write_text("{not json")
    (tmp_path / "empty.json").write_text("{}")
    missing = tmp_path / "nonexistent"
    return [
        (["--json", str(missing / "x.json")], "--json"),
        (["--json", str(tmp_path)], "--json"),
        (["--contenders", "nonsense"], "--contenders: unknown 'nonsense'"),
        (["--contenders", "jit,nonsense,vectorized"], "--contenders"),
        (["--copy-mib", "-5"], "--copy-mib"),
        (["--copy-mib", "0"], "--copy-mib"),
        (["--loop-bound", "-1"], "--loop-bound"),
        (["--loop-bound", "nan"], "--loop-bound"),
        (["--passes", "0"], "--passes"),
        (["--threads", "0"], "--threads"),
        (["--threads", "two"], "--threads"),
        (["--ops", "softmax,nope"], "--ops: unknown 'nope'"),
        (["--sizes", "banana"], "--sizes: no case has 'banana'"),
        (["--sizes", "inf"], "--sizes"),
        (["--sizes", "Z(256,10"], "--sizes: unbalanced"),
        (["--ops", "softmax", "--sizes", "1"], "--sizes: no case of --ops softmax"),
        (["--dtype", "float16"], "--dtype"),
        (["--from-json", str(missing / "run.json")], "--from-json: no such file"),
        (["--from-json", str(tmp_path / "junk.json")], "--from-json: cannot read"),
        (["--from-json", str(tmp_path / "empty.json")], "--from-json"),
        (["--plot", str(missing / "b.png")], "--plot"),
    ]


def test_bench_bad_argument_is_one_line_before_running(work, tmp_path):
    for argv, option in _bench_cases(tmp_path):
        t0 = time.perf_counter()
        rc, out, err = _run(["bench"] + argv)
        _assert_one_line(rc, err, "bench", option)
        assert work["bench"] == 0, argv
        assert time.perf_counter() - t0 < 2.0
    assert not (tmp_path / "nonexistent").exists()


def test_bench_plot_without_matplotlib_fails_before_running(work, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    rc, out, err = _run(["bench", "--plot", str(tmp_path / "b.png")])
    _assert_one_line(rc, err, "bench", "--plot needs matplotlib")
    assert work["bench"] == 0


def test_bench_sizes_accept_the_shapes_help_documents(monkeypatch):
    """The issue: --sizes "Z(256,10)" was split on its comma and could never match."""
    assert split_list("Z(256,10), C=1000 ,plain,") == ["Z(256,10)", "C=1000", "plain"]
    args = build_parser().parse_args(["bench", "--sizes", "Z(256,10),X(1,784) W(128,784)",
                                      "--no-coldstart", "--contenders", "jit"])
    assert [c.id for c in bench_cli._cases(args)] == [
        "linear_sigmoid||X(1,784) W(128,784)", "linear_sigmoid_vs_blas||X(1,784) W(128,784)",
        "softmax|C=10|Z(256,10)", "softmax_cross_entropy_grad|C=10|Z(256,10)"]
    seen = []

    def worker(spec, env, timeout=0):          # no process: every case reports an error
        seen.append(spec)
        return {"error": "not run in this test"}
    monkeypatch.setattr(bench_cli, "_run_worker", worker)
    record = bench_cli.run(build_parser().parse_args(
        ["bench", "--ops", "softmax", "--sizes", "Z(256,10)", "--contenders", "jit,vectorized",
         "--no-coldstart", "--passes", "1"]))
    assert record["settings"]["sizes"] == ["Z(256,10)"]
    assert {(r["case"], r["contender"]) for r in record["results"]} == {
        ("softmax|C=10|Z(256,10)", "jit"), ("softmax|C=10|Z(256,10)", "vectorized")}
    assert seen[0]["mode"] == "ceilings" and len(seen) == 3


# --- fastnn demo and the parser -------------------------------------------------------------------
@pytest.mark.parametrize("rows", ["0", "-3", "x", ""])
def test_demo_bad_rows(rows):
    rc, out, err = _run(["demo", "--rows", rows])
    _assert_one_line(rc, err, "demo", "--rows")


def test_no_command_is_one_line():
    rc, out, err = _run([])
    assert rc == 2 and len(err.strip().splitlines()) == 1 and err.startswith("fastnn: error:")


# --- properties: the command line accepts exactly what the library accepts --------------------
_TRAIN_NUMBERS = {  # option: (int or float, lo, hi, hi excluded, the library's check)
    "--epochs": (int, 1, None, False, lambda x: fastnn.model._int("epochs", x, 1)),
    "--batch-size": (int, 0, None, False, lambda x: x == 0 or fastnn.model._int("batch_size", x, 1)),
    "--seed": (int, 0, None, False, lambda x: MLP([2, 2], seed=x)),
    "--threads": (int, 1, None, False, lambda x: None),
    "--lr": (float, 0.0, None, False, lambda x: fastnn._validate.real("lr", x, lo=0.0)),
    "--momentum": (float, 0.0, 1.0, True, lambda x: fastnn._validate.real(
        "momentum", x, lo=0.0, hi=1.0, hi_open=True)),
    "--weight-decay": (float, 0.0, None, False, lambda x: fastnn._validate.real("wd", x, lo=0.0)),
    "--l1": (float, 0.0, None, False, lambda x: fastnn._validate.real("l1", x, lo=0.0)),
    "--val-fraction": (float, 0.0, 1.0, True, lambda x: x == 0 or datasets._check_fraction(x, "v")),
}

_number_texts = st.one_of(
    st.integers(-10 ** 6, 10 ** 6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(-2, 2).map(str),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "-1e-400", "", " ", "abc", "0x10", "1_000",
                     "1.0", "-0", "-0.0", "+3", " 7 ", "1e3", "0.999999999999999999", "1,5"]),
    st.text(max_size=5))


def _expected(kind, lo, hi, hi_open, text):
    try:
        x = kind(text)
    except ValueError:
        return None
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if x < lo or (hi is not None and (x > hi or (hi_open and x == hi))):
        return None
    return x


def _parse(argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            return build_parser().parse_args(argv), ""
        except SystemExit as exc:
            assert exc.code == 2
            return None, err.getvalue()


@given(st.sampled_from(sorted(_TRAIN_NUMBERS)), _number_texts)
@settings(max_examples=300)
def test_train_numbers_accepted_exactly_in_their_documented_range(option, text):
    kind, lo, hi, hi_open, library = _TRAIN_NUMBERS[option]
    args, err = _parse(["train", f"{option}={text}"])
    want = _expected(kind, lo, hi, hi_open, text)
    if want is None:
        assert args is None, (option, text)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("fastnn train: error: argument " + option)
    else:
        assert args is not None, (option, text, err)
        got = getattr(args, option[2:].replace("-", "_"))
        assert got == want and type(got) is kind
        library(got)                           # never refused later, by the library


@given(st.text(alphabet="0123456789, -x", max_size=12))
@example("--")              # Python 3.11's argparse stored [] for it, without the type's check
@settings(max_examples=300)
def test_train_sizes_accepted_exactly_when_they_make_a_model(text):
    args, err = _parse(["train", f"--sizes={text}"])
    try:
        want = [int(t) for t in text.split(",")]
        ok = len(want) >= 2 and min(want) >= 1
    except ValueError:
        ok = False
    assert (args is not None) == ok, (text, err)
    if ok:
        assert args.sizes == want
        assert fastnn.model._sizes(want) == want      # what MLP checks (without allocating)
    else:
        assert err.startswith("fastnn train: error: argument --sizes") and err.count("\n") == 1


_KNOWN = bench_cli.known_contenders()
_TOKENS = sorted(t for t in {str(c.size) for c in B.all_cases()} | {c.shape for c in B.all_cases()}
                 | {c.variant for c in B.all_cases() if c.variant} | {"100k", "1M", "16M"}
                 if split_list(t) == [t])    # not "batch 1, 60,000 samples": a comma outside (...)
_NOT_TOKENS = ["banana", "0", "-1", "inf", "nan", "1e400", "Z(1,1)", "C=7", "k", "M"]


def _bench_args(**kw):
    return argparse.Namespace(**dict(dict(quick=False, ops=None, sizes=None, dtype="float32",
                                          threads=None, contenders=None, loop_bound=2.0,
                                          json=None, plot=None, no_coldstart=True, copy_mib=32,
                                          from_json=None, passes=None), **kw))


@given(st.lists(st.sampled_from(_KNOWN + ["nonsense", "Jit", "torch2", "loop "]), min_size=1,
                max_size=4))
@settings(max_examples=200)
def test_bench_contenders_accepted_exactly_when_known(names):
    args = _bench_args(contenders=",".join(names))
    if all(n.strip() in _KNOWN for n in names):
        bench_cli.check_args(args)
    else:
        with pytest.raises(fastnn._cli_util.UsageError, match="^--contenders: unknown"):
            bench_cli.check_args(args)


@given(st.lists(st.sampled_from(_TOKENS + _NOT_TOKENS), min_size=1, max_size=4))
@settings(max_examples=200)
def test_bench_sizes_accepted_exactly_when_each_selects_a_case(tokens):
    args = _bench_args(sizes=",".join(tokens))
    if any(t in _NOT_TOKENS for t in tokens):
        with pytest.raises(fastnn._cli_util.UsageError, match="^--sizes"):
            bench_cli.check_args(args)
        return
    bench_cli.check_args(args)
    chosen = bench_cli._cases(args)
    for t in tokens:                     # every item is honoured: it selects a case it names
        assert any(t in (c.shape, c.variant) or str(c.size) == t or B.parse_size(t) == c.size
                   for c in chosen), t


def test_bench_json_argument_checked_like_a_checkpoint(tmp_path):
    good = tmp_path / "run.json"
    bench_cli.check_args(_bench_args(json=str(good)))
    assert not good.exists()                       # checked, not created


@pytest.mark.parametrize("cmd", ["train", "bench", "check", "compile"])
def test_help_shows_defaults_in_plain_text(cmd, capsys):
    """--help: every option with a default says it; no docstring markup."""
    from fastnn.cli import main
    with pytest.raises(SystemExit) as info:
        main([cmd, "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "``" not in text and ":mod:" not in text and ":func:" not in text
    if cmd == "train":
        for want in ("--lr LR", "(default: 0.5)", "(default: sigmoid)", "(default: float32)",
                     "(default: jit)", "(default: 30)"):
            assert want in text, want
        assert "seed 004" not in text
    if cmd == "check":
        assert "(default: 0)" in text          # --seed
