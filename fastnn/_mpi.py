"""What ``MLP.fit(..., comm=...)`` needs of an MPI communicator (docs/mpi.md).

Nothing here imports mpi4py: the communicator is used through its methods, and
``MPI.IN_PLACE`` is taken from mpi4py only when mpi4py is already imported (it is,
whenever a real communicator exists).
"""
from __future__ import annotations

import sys
import time
import zlib

import numpy as np

#: The methods ``fit`` calls on a communicator.
NEEDED = ("Get_size", "Get_rank", "Allreduce", "allgather")


def comm_size(comm):
    """The number of ranks of ``comm`` (1 for None), or a TypeError naming ``comm``."""
    if comm is None:
        return 1
    missing = [m for m in NEEDED if not callable(getattr(comm, m, None))]
    if missing:
        raise TypeError(f"comm: expected an MPI communicator (an mpi4py.MPI.Comm such as "
                        f"MPI.COMM_WORLD) or None, got {type(comm).__name__} (it has no "
                        f"{', '.join(missing)})")
    size = comm.Get_size()
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise TypeError(f"comm: Get_size() returned {size!r}, expected an integer >= 1")
    return int(size)


def checksum(*arrays):
    """A CRC-32 of the bytes of the arrays (~0.1 ms for 80,000 float32 values)."""
    c = 0
    for a in arrays:
        c = zlib.crc32(memoryview(np.ascontiguousarray(a)).cast("B"), c)
    return c


class Reducer:
    """In-place sums of float buffers over ``comm``, timed (``seconds``, ``calls``)."""

    def __init__(self, comm):
        self.comm = comm
        mpi = sys.modules.get("mpi4py.MPI")
        self.in_place = getattr(mpi, "IN_PLACE", None)
        self.seconds = 0.0
        self.calls = 0

    def allreduce(self, buf):
        t0 = time.perf_counter()
        if self.in_place is not None:
            self.comm.Allreduce(self.in_place, buf)
        else:
            self.comm.Allreduce(buf.copy(), buf)
        self.seconds += time.perf_counter() - t0
        self.calls += 1

    def start(self, buf):
        """A non-blocking sum of ``buf`` (``Iallreduce``); finish it with :meth:`wait`."""
        t0 = time.perf_counter()
        if self.in_place is not None:
            req = (self.comm.Iallreduce(self.in_place, buf), None)
        else:
            send = buf.copy()
            req = (self.comm.Iallreduce(send, buf), send)     # send lives until the wait
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return req

    def wait(self, req):
        t0 = time.perf_counter()
        req[0].Wait()
        self.seconds += time.perf_counter() - t0
