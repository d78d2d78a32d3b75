"""Cold start of two (or more) installs of fastnn side by side: each round runs every
interpreter in turn, in a fresh process with an empty NUMBA_CACHE_DIR, and times
``import fastnn``, the first softmax (64×10), the first linear_sigmoid (32×784 -> 30) and
the first ``MLP([784, 30, 10]).fit`` (600 rows, batch 10, one epoch).

    python benches/coldstart_compare.py --rounds 2 \\
        base=/path/to/old-checkout/.venv/bin/python now=.venv/bin/python

Prints one JSON line per run and a table of the ranges (README "First run")."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time

CODE = r'''
import time, json
t0 = time.perf_counter()
import numpy as np, fastnn
t1 = time.perf_counter()
Z = np.random.default_rng(0).standard_normal((64, 10)).astype(np.float32)
fastnn.softmax(Z); t2 = time.perf_counter()
X = np.random.default_rng(1).random((32, 784)).astype(np.float32)
W = np.random.default_rng(2).random((30, 784)).astype(np.float32)
fastnn.linear_sigmoid(X, W, np.zeros(30, np.float32)); t3 = time.perf_counter()
Xf = np.random.default_rng(3).random((600, 784)).astype(np.float32); y = np.arange(600) % 10
fastnn.MLP([784, 30, 10], seed=0).fit(Xf, y, epochs=1, batch_size=10, lr=0.5); t4 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "softmax": t2 - t1, "linear_sigmoid": t3 - t2, "fit": t4 - t3}))
'''


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("pythons", nargs="+", metavar="NAME=PYTHON")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    pythons = dict(a.split("=", 1) for a in args.pythons)
    runs = {k: [] for k in pythons}
    for _ in range(args.rounds):
        for name, exe in pythons.items():
            env = dict(os.environ, NUMBA_CACHE_DIR=tempfile.mkdtemp(prefix="coldcache-"),
                       FASTNN_COMPILE_NOTICE="0")
            t = time.perf_counter()
            r = subprocess.run([exe, "-c", CODE], cwd=tempfile.gettempdir(), env=env,
                               capture_output=True, text=True)
            d = (json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0
                 else {"error": r.stderr[-500:]})
            d.update(process=time.perf_counter() - t, load=os.getloadavg()[0])
            runs[name].append(d)
            print(json.dumps({name: d}), flush=True)
    print("| first call, empty cache | " + " | ".join(pythons) + " |")
    print("|---|" + "---:|" * len(pythons))
    for key in ("import", "softmax", "linear_sigmoid", "fit", "process"):
        cells = []
        for name in pythons:
            xs = [d[key] for d in runs[name] if key in d]
            cells.append(f"{min(xs):.2f}-{max(xs):.2f} s" if xs else "error")
        print(f"| {key} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
