"""``fastnn train``: the command line around fastnn.MLP."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from fastnn.cli import main
from fastnn.model import MLP


def test_train_digits_default_reaches_95(capsys):
    assert main(["train", "--no-progress", "--epochs", "30"]) == 0
    out = capsys.readouterr().out
    assert "epoch   30" in out
    acc = float(out.strip().splitlines()[-1].split()[-1])
    assert acc >= 0.95


def test_train_runs_without_sklearn(tmp_path):
    """The default data set ships inside fastnn: `fastnn train` with scikit-learn made
    unimportable (as after `pip install fastnn-kernels` alone) trains and reports."""
    code = textwrap.dedent("""
        import sys
        sys.modules["sklearn"] = None            # any `import sklearn` raises ImportError
        from fastnn.cli import main
        rc = main(["train", "--no-progress", "--epochs", "1"])
        assert not any(m == "sklearn" or m.startswith("sklearn.") for m in sys.modules
                       if sys.modules[m] is not None)
        sys.exit(rc)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       cwd=tmp_path, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.strip().splitlines()
    assert any(line.startswith("epoch    1") for line in lines), r.stdout
    acc = float(lines[-1].split()[-1])
    assert 0.5 < acc <= 1.0, r.stdout          # one epoch of 64-32-10: well above chance


def test_train_save_resume_matches_one_run(tmp_path, capsys):
    common = ["train", "--no-progress", "--quiet", "--sizes", "64,16,10", "--batch-size", "32",
              "--momentum", "0.5", "--seed", "3"]
    assert main(common + ["--epochs", "4", "--save", str(tmp_path / "full.npz")]) == 0
    assert main(common + ["--epochs", "2", "--save", str(tmp_path / "part.npz")]) == 0
    assert main(common + ["--epochs", "4", "--resume", str(tmp_path / "part.npz"),
                          "--save", str(tmp_path / "part.npz")]) == 0
    full, part = MLP.load(tmp_path / "full.npz"), MLP.load(tmp_path / "part.npz")
    assert full.epoch == part.epoch == 4
    np.testing.assert_array_equal(full._params, part._params)
    capsys.readouterr()


def test_train_options_and_plot(tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    import fastnn.train_cli as T
    png = tmp_path / "curves.png"
    drawn = []
    real = T.plot_history
    monkeypatch.setattr(T, "plot_history", lambda h, path, title=None: (drawn.append((h, title)),
                                                                       real(h, path, title)))
    assert main(["train", "--no-progress", "--epochs", "2", "--loss", "mse", "--lr", "2",
                 "--batch-size", "0", "--impl", "vectorized", "--val-fraction", "0.2",
                 "--l1", "1e-4", "--weight-decay", "1e-4", "--threads", "1",
                 "--plot", str(png)]) == 0
    assert png.stat().st_size > 1000
    assert "val_loss" in capsys.readouterr().out
    (history, title), = drawn
    assert all(r["val_loss"] is not None for r in history)      # the validation curve is drawn
    for want in ("digits", "64-32-10", "impl=vectorized", "lr=2", "batch all", "l1=0.0001",
                 "weight decay=0.0001", "test accuracy"):
        assert want in title, (want, title)


def test_train_reports_divergence(capsys):
    assert main(["train", "--no-progress", "--epochs", "3", "--hidden", "identity",
                 "--lr", "1e30", "--dtype", "float32"]) == 1
    assert "non-finite at epoch 1" in capsys.readouterr().err


def test_train_help_lists_the_options(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for opt in ("--mnist", "--download", "--sizes", "--hidden", "--loss", "--lr", "--batch-size",
                "--epochs", "--momentum", "--weight-decay", "--l1", "--impl", "--seed",
                "--threads", "--save", "--resume", "--plot"):
        assert opt in out
