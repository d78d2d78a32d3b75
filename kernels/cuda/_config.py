"""Launch configuration of the cuda kernels, and whether they run on the simulator."""
from __future__ import annotations

from numba.cuda.core import config as _cfg

#: True under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1`` before Numba's import).
SIM = bool(_cfg.ENABLE_CUDASIM)

#: Threads per block of the row kernels (softmax, cross-entropy) and of the reductions: a
#: power of two. The simulator runs every thread as a Python thread, so it runs the same
#: code with 16 (rows of the tests' 19 columns still stride); a GPU runs 256 (a row of
#: C = 1000 is 4 elements a thread).
ROW_BLOCK = 16 if SIM else 256
#: Threads per block of the elementwise kernels and the reductions of the losses.
FLAT_BLOCK = 32 if SIM else 256
#: Blocks of the grid-stride elementwise kernels at most (enough to fill any GPU).
MAX_BLOCKS = 4096
#: Side of the square shared-memory tiles of the matrix products (a block is TILE x TILE
#: threads, one output each): 16 on a GPU; the simulator runs the same code with 8
#: (its shapes of 19 columns still span three tiles, the last one ragged).
TILE = 8 if SIM else 16
