"""The public functions are annotated (and fastnn ships py.typed): mypy sees ndarrays,
tuples and the argument types, not Any, in a user's code."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

USER = textwrap.dedent('''
    import numpy as np
    import fastnn

    Z = np.ones((2, 3), np.float32)
    reveal_type(fastnn.softmax(Z))
    L, dZ = fastnn.softmax_cross_entropy_grad(Z, [0, 1])
    reveal_type(dZ)
    dW, db, dX = fastnn.linear_backward(Z, Z, Z)
    reveal_type(dX)
    reveal_type(fastnn.sgd_update(np.ones(3), np.ones(3), 0.1))
    fastnn.softmax(Z, axis="last")
    fastnn.linear(Z, Z, impl=3)
''')


def test_mypy_sees_the_public_signatures(tmp_path):
    (tmp_path / "user.py").write_text(USER)
    env = dict(os.environ, MYPYPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "mypy", "--follow-imports=silent", "--no-incremental",
                        "--cache-dir", str(tmp_path / ".mypy"), "user.py"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300, env=env)
    out = r.stdout
    revealed = [line.split("Revealed type is ", 1)[1] for line in out.splitlines() if "Revealed type" in line]
    assert len(revealed) == 4, out
    assert all("numpy.ndarray" in t and "Any\"" != t for t in revealed), out
    assert revealed[2].endswith('| None"'), out                   # dX: None without compute_dX
    assert 'Argument "axis" to "softmax" has incompatible type "str"; expected "int"' in out, out
    assert 'Argument "impl" to "linear" has incompatible type "int"; expected "str | None"' in out, out
    assert r.returncode == 1 and "Found 2 errors" in out, out
