"""Ctrl-C during the compiled epoch, and the epoch run in parts.

MLP.fit runs the compiled epoch in parts of whole mini-batches (about
EPOCH_PART_S each), so Python sees a SIGINT between parts: the first stops training
at once (the running epoch rolled back, ``interrupted=True``), a second raises
KeyboardInterrupt at once. It used to run the epoch in one compiled call, and five
SIGINTs over 0.5 s of a 1.9 s epoch were all seen only after it.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from fastnn import MLP
from fastnn.train import fit as model_mod

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("sizes,bs,mom", [([37, 30, 6, 5], 7, 0.0), ([37, 14], 4, 0.0),
                                          ([37, 9, 5], 10, 0.5), ([37, 20, 5], 300, 0.0)])
def test_epoch_in_parts_gives_the_bits_of_one_call(monkeypatch, sizes, bs, mom):
    """Parts of 1, 2, 3 ... mini-batches (and the last one short): the same parameters,
    loss and accuracy as the whole epoch in one call."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((803, 37)).astype(np.float32)
    y = rng.integers(0, sizes[-1], 803)
    runs = []
    for part_rows, part_s in ((1 << 30, 1e9), (bs, 1e-9), (3 * bs, 1e-9), (bs, 1e9)):
        monkeypatch.setattr(model_mod, "EPOCH_PART_ROWS", part_rows)
        monkeypatch.setattr(model_mod, "EPOCH_PART_S", part_s)
        m = MLP(sizes, seed=1, dtype="float32")
        h = m.fit(X, y, epochs=2, batch_size=bs, lr=0.2, momentum=mom)
        runs.append((m._params.copy(), h.loss + h.accuracy))
    for params, rec in runs[1:]:
        np.testing.assert_array_equal(params, runs[0][0])
        assert rec == runs[0][1]


def test_epoch_in_parts_reports_the_failing_step_of_the_epoch(monkeypatch):
    """A diverging run stops at the same epoch and step, in parts or not."""
    from fastnn import NonFiniteLossError
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((400, 10)) * 30).astype(np.float32)
    Y = (rng.standard_normal((400, 3)) * 1e3).astype(np.float32)
    seen = []
    for part_rows in (1 << 30, 8):
        monkeypatch.setattr(model_mod, "EPOCH_PART_ROWS", part_rows)
        monkeypatch.setattr(model_mod, "EPOCH_PART_S", 1e-9)
        m = MLP([10, 8, 3], hidden="identity", output="identity", loss="mse", seed=0)
        with pytest.raises(NonFiniteLossError) as e:
            m.fit(X, Y, epochs=5, batch_size=8, lr=0.3)
        seen.append((e.value.epoch, e.value.step, m._params.tobytes()))
    assert seen[0] == seen[1]


_CHILD = textwrap.dedent("""
    import signal, sys, time, numpy as np
    from fastnn import MLP
    rng = np.random.default_rng(0)
    X = rng.random((60000, 784), dtype=np.float32)
    y = rng.integers(0, 10, 60000)
    m = MLP([784, 100, 10], seed=0, dtype="float32")
    m.fit(X[:200], y[:200], epochs=1, batch_size=1, lr=0.01)     # compile first
    ends = []
    def progress(rec):          # the parameters at the end of each epoch
        ends.append(m._params.copy())
        print("epoch", flush=True)
    t0 = time.perf_counter()
    try:
        h = m.fit(X, y, epochs=50, batch_size=1, lr=0.01, progress=progress)
        signal.signal(signal.SIGINT, signal.SIG_IGN)      # later signals of the test
    except KeyboardInterrupt:
        print("KeyboardInterrupt", flush=True)
        sys.exit(3)
    print("returned", h.interrupted, len(h), bool((m._params == ends[-1]).all()), flush=True)
""")


def _start_child():
    """A child in its second compiled epoch (of about 0.8 s: batch 1, 60,000 rows)."""
    env = dict(os.environ, FASTNN_COMPILE_NOTICE="0")
    p = subprocess.Popen([sys.executable, "-c", _CHILD], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    line = p.stdout.readline()
    assert line.strip() == "epoch", (line, p.stderr.read()[-2000:])
    time.sleep(0.1)
    return p


@pytest.mark.slow
def test_one_ctrl_c_stops_the_compiled_epoch_at_once_and_rolls_it_back():
    p = _start_child()
    t = time.perf_counter()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    waited = time.perf_counter() - t
    assert p.returncode == 0, err[-2000:]
    word, interrupted, epochs, same = out.split()[-4:]
    # the running epoch was rolled back: the parameters of the end of the last whole one
    assert word == "returned" and interrupted == "True" and same == "True", out
    assert int(epochs) == out.split().count("epoch") + 1, out      # (+ the one read first)
    assert waited < 0.8, waited            # parts of ~0.05 s, not the rest of the epoch


@pytest.mark.slow
def test_a_second_ctrl_c_interrupts_the_compiled_epoch_at_once():
    """The issue's case: several SIGINTs in quick succession during a compiled epoch."""
    p = _start_child()
    t = time.perf_counter()
    for _ in range(5):
        p.send_signal(signal.SIGINT)
        time.sleep(0.1)
        if p.poll() is not None:
            break
    out, err = p.communicate(timeout=120)
    waited = time.perf_counter() - t
    # the first SIGINT already stops training within a part; a second one, if it lands
    # while fit is still running, raises KeyboardInterrupt; either way at once
    assert p.returncode in (0, 3), err[-2000:]
    assert waited < 1.0, (waited, out)
    if p.returncode == 3:
        assert out.split()[-1] == "KeyboardInterrupt", out
    else:
        assert out.split()[-4:-2] == ["returned", "True"], out
