"""Run by tests/test_mpi.py under ``mpiexec -n K python -m mpi4py tests/mpi_worker.py OUT``:
data-parallel fits of fastnn.MLP on each rank's shard, every result written to OUT as
``<case>_r<rank>.npy`` (parameters) and ``<case>_r<rank>.json`` (history), compared
there with one process. With 2 ranks it also runs ``fastnn train --mpi`` (save, and a
save + resume). The data and arguments are those of ``case_args``, which the test
imports to run the same fits in one process."""
from __future__ import annotations

import json
import os
import sys

import numpy as np

N, D, C = 97, 20, 3
SIZES = [D, 8, C]
FIT = dict(epochs=2, batch_size=10, lr=0.3, momentum=0.9, weight_decay=1e-3, l1=1e-4)
#: CLI runs (2 ranks): the options of tests/test_train_cli.py's save/resume test.
CLI = ["train", "--no-progress", "--quiet", "--sizes", "64,16,10", "--batch-size", "32",
       "--momentum", "0.5", "--seed", "3"]


def data(dtype):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((N, D)).astype(dtype)
    y = rng.integers(0, C, N)
    Xv = rng.standard_normal((31, D)).astype(dtype)
    yv = rng.integers(0, C, 31)
    return X, y, Xv, yv


def case_args(case):
    """(dtype, fit keyword arguments, with validation data) of a case."""
    dtype = np.float64 if case.startswith("f64") else np.float32
    kw = dict(FIT)
    if case == "f32_noshuffle":     # the first mini-batches lie on rank 0 alone: other
        kw.update(shuffle=False, batch_size=16)     # ranks have no rows in them
    return dtype, kw, case in ("f32", "f64")


CASES = ("f32", "f64", "f32_noshuffle")


def main(out):
    from mpi4py import MPI

    import fastnn

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()

    def save(name, model, history):
        np.save(os.path.join(out, f"{name}_r{rank}.npy"), model._params)
        with open(os.path.join(out, f"{name}_r{rank}.json"), "w") as f:
            json.dump([dict(r, seconds=0.0, samples_per_s=0.0) for r in history], f)

    paths = {}          # which step each fit ran ("compiled" or "kernels", MLP._comm_path)
    for case in CASES:
        dtype, kw, with_val = case_args(case)
        X, y, Xv, yv = data(dtype)
        part = np.array_split(np.arange(N), size)[rank]
        vpart = np.array_split(np.arange(Xv.shape[0]), size)[rank]
        val = (Xv[vpart], yv[vpart]) if with_val else None
        m = fastnn.MLP(SIZES, dtype=dtype, seed=0)
        save(case, m, m.fit(X[part], y[part], comm=comm, validation_data=val, **kw))
        paths[case] = m._comm_path
        if case == "f32":
            m = fastnn.MLP(SIZES, dtype=dtype, seed=0)
            save("f32_overlap", m, m.fit(X[part], y[part], comm=comm, overlap=True,
                                         validation_data=val, **kw))
            paths["f32_overlap"] = m._comm_path
            m = fastnn.MLP(SIZES, dtype=dtype, seed=0, impl="vectorized")
            save("f32_vectorized", m, m.fit(X[part], y[part], comm=comm, validation_data=val,
                                            **kw))
            paths["f32_vectorized"] = m._comm_path
            # one rank: COMM_SELF against no communicator, on all the rows
            a, b = fastnn.MLP(SIZES, dtype=dtype, seed=0), fastnn.MLP(SIZES, dtype=dtype, seed=0)
            save("self_comm", a, a.fit(X, y, comm=MPI.COMM_SELF, **kw))
            save("self_none", b, b.fit(X, y, **kw))
    with open(os.path.join(out, f"paths_r{rank}.json"), "w") as f:
        json.dump(paths, f)
    if size == 2:
        from fastnn.cli import main as cli
        rcs = [cli(CLI + ["--mpi", "--epochs", "2", "--save", os.path.join(out, "full.npz")]),
               cli(CLI + ["--mpi", "--epochs", "1", "--save", os.path.join(out, "part.npz")]),
               cli(CLI + ["--mpi", "--epochs", "2", "--resume", os.path.join(out, "part.npz"),
                          "--save", os.path.join(out, "part.npz")])]
        with open(os.path.join(out, f"cli_r{rank}.json"), "w") as f:
            json.dump(rcs, f)


if __name__ == "__main__":
    main(sys.argv[1])
