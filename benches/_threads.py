"""``--threads N`` for the stand-alone bench scripts: sets the thread variables of
OpenMP, OpenBLAS and Numba. Must run before NumPy (and so fastnn) is imported, which is
why it is its own module and imports nothing."""
import os


def set_threads(n):
    """Use n threads everywhere (None: leave the defaults)."""
    if n:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
            os.environ[var] = str(n)
