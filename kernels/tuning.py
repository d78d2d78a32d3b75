"""Every size threshold of the jit kernels, one meaning per name.

The kernels read these as module-level constants, which Numba compiles in (no cost
at run time). Numba's cache keys each kernel by its own source file, not by this one:
after editing a value here, clear the cache (``find kernels fastnn -name '*.nb[ic]'
-delete``, README) or the kernels keep the old one. Each says which path a size takes and where it was measured; none depends on
the number of threads, so the bits do not either. Where the CPU matters the value is
a function of ``HAS_AVX512`` (Numba's cache is keyed by the CPU). The compiled
training epoch combines them into its own policy (``fastnn.train``).

Machines named: "the Xeon" (Sapphire Rapids, AVX-512), "the Zen 3" (AMD EPYC, AVX2),
both 2-core guests.
"""
from __future__ import annotations

from ._config import HAS_AVX512

# --- rows: softmax, log_softmax, the softmax cross-entropy (fast/softmax.py, ...) ----
#: Inputs of at least this many elements (R·C) go to the parallel kernels (the
#: grain size PyTorch uses on the CPU too).
ROWS_PARALLEL_MIN_ELEMS = 1 << 15
#: Rows at least this long use the vectorised reductions, and softmax handles them
#: one row at a time (max, fused exp(z − m) and sum, scale); shorter rows use short
#: unrolled reductions, and softmax handles them a block at a time, with one flat exp
#: pass per block so that C = 10 leaves no scalar remainder per row.
LONG_ROW = 64
#: Elements per block of rows (16 KiB of float32): a block is max(1, ROW_BLOCK_ELEMS // C)
#: whole rows, whose passes stay in L1. Blocks, not rows, are what the parallel kernels
#: distribute over threads, and the losses are added block by block.
ROW_BLOCK_ELEMS = 4096
#: The parallel kernels split their blocks into at most this many runs of consecutive
#: blocks, each with one scratch allocation: about 5% on Z (65536, 10) at 2 threads on
#: the Zen 3 (0.65 -> 0.62 ms) against a scratch per block.
SCRATCH_RUNS = 64
#: Rows of at most this many elements go through the transposed path (16 rows at a
#: time, machine/gather.py); longer short rows keep the row-by-row path, faster there.
TRANSPOSE_MAX_C = 16
#: The serial entry points transpose a batch only from this many rows per element of a
#: row (R >= 16·C for the labels gradient, R >= 32·C for softmax): below, the row path
#: is as fast or faster, and a first call on a short batch compiles only it (the
#: transposed kernel is 1.3-2 s of compiling on its own). Where the two cross, the Zen 3,
#: one thread, float32, median µs transposed / rows (python benches/transposed_rows.py):
#: gradient C = 2: 32 rows 0.98 / 1.08, 64 rows 1.24 / 1.30; C = 10: 128 rows 3.56 /
#: 3.86, 256 rows 6.07 / 7.16; C = 16: 256 rows 8.97 / 8.34, 4096 rows 127 / 127.
#: softmax C = 2: 64 rows 0.91 / 0.86, 128 rows 1.17 / 1.32; C = 4: 128 rows 1.63 / 1.56,
#: 256 rows 2.51 / 2.77. Not measured on the Xeon.
SCE_TRANSPOSE_ROWS_PER_C = 16
SOFTMAX_TRANSPOSE_ROWS_PER_C = 32
#: softmax (not the gradient) transposes rows of at most this many elements. Without
#: AVX-512 (no fast gathers) the row path wins from C = 8 at any batch: the Zen 3, one
#: thread, 4096 rows, C = 3 / 4 / 6 / 8 / 10 / 16: transposed 25.5 / 31.4 / 48.4 / 61.4 /
#: 81.2 / 126 µs, rows 37.5 / 38.8 / 56.0 / 54.2 / 72.5 / 86.5 µs (and (65536, 10) on two
#: threads 645 against 595 µs). The gradient's row path is slower (a second row maximum
#: and the loss), so it keeps C <= 16 (4096 × 10: 87 against 108 µs). On the Xeon
#: (AVX-512) softmax (65536, 10) took 0.84-1.26 ms transposed against 1.4-1.9 ms by
#: rows, one core.
SOFTMAX_TRANSPOSE_MAX_C = TRANSPOSE_MAX_C if HAS_AVX512 else 6

# --- elementwise ---------------------------------------------------------------------
#: Parameter vectors of at least this many elements are updated by all threads (sgd.py).
SGD_PARALLEL_MIN_ELEMS = 1 << 18
#: The finite-input check of the API: elements per block (256 KiB of float32) ...
FINITE_BLOCK_ELEMS = 1 << 16
#: ... and arrays of at least this many elements are checked on all of Numba's threads.
FINITE_PARALLEL_MIN_ELEMS = 1 << 21

# --- products: register tiles (machine/gemm.py) and BLAS (fast/linear.py) ------------
#: Batches of at least this many rows go to BLAS instead of the register tiles
#: (machine/gemm.py: for X (32, 784) and W (128, 784), one thread, the tiles take 64 µs
#: where OpenBLAS takes 128 µs; 256 rows: 640 µs against 554 µs).
NT_MAX_ROWS = 256
#: Products of at least this many multiply-adds (B·N·K) use the parallel tile kernel.
NT_PARALLEL_MIN_FMAS = 1 << 19
#: Products of at most this many multiply-adds go to BLAS rather than to the tiles, in
#: both directions. On AVX-512 CPUs OpenBLAS (its SkylakeX kernels) runs them on its
#: unthreaded small-matrix kernels (M·N·K <= 100³), which match or beat the tiles (Xeon,
#: X (10, 784) W (100, 784), one process, alternating: 11-11.7 µs against 12.4-13.2 µs;
#: 2 rows: 2.8 vs 4.3 µs). Above it OpenBLAS packs and threads, and on batches of fewer
#: than NT_MAX_ROWS rows the tiles win by far (16 rows: 20-25 µs against 68-92 µs;
#: the compiled epoch's policy has the epoch's figures). Without AVX-512 OpenBLAS has
#: no small-matrix path (its Haswell kernels, also on AMD Zen): it packs every product,
#: and the tiles win from the first row (the Zen 3, one thread, alternating in one
#: process: 1 / 10 / 32 rows 3.6 / 19.8 / 77.7 µs against 27.6 / 45.3 / 99.7 µs), so
#: the threshold is 0 there.
SMALL_GEMM_FMAS = 100 ** 3 if HAS_AVX512 else 0
#: ... and the parallel tn tiles from this many (a parallel region costs ~2.5 µs to start).
#: On the Xeon (AVX-512) 1.5M: a batch-10 product (784k) takes 11-20 µs on one core and
#: ran slower split. Without AVX-512 a core does half the multiply-adds per cycle and the
#: split pays off sooner: on the Zen 3, 784-100-10 epochs (python benches/epoch_paths.py
#: with the thresholds moved, alternating in one process), parallel against serial tiles at
#: batch 4 / 8 / 10 / 16: 0.35 / 0.32 / 0.27 / 0.29 s against 0.41 / 0.37 / 0.33 / 0.37 s;
#: at batch 1 (78k) 0.85 against 0.78 s. Hence 300k there (batch 4 and up).
TN_PARALLEL_MIN_FMAS = 1_500_000 if HAS_AVX512 else 300_000
#: BLAS products one block of rows at a time: a block of the product holds about this
#: many elements (256k floats = 1 MiB in float32), inside a 2 MiB L2 per core, ...
BLAS_BLOCK_ELEMS = 1 << 18
#: ... and at least this many rows, so that each BLAS call stays efficient.
MIN_BLOCK_ROWS = 256
#: The parallel large-batch path: row blocks of at most this many rows (an output block
#: of 256 KiB in float32 for K = 128, inside the 512 KiB L2 of the Zen 3), their number
#: even, so that two threads get equal shares.
PAR_BLOCK_ROWS = 512
#: Column blocks of dW in the parallel backward: at most this many columns each, their
#: number even (a function of D only, as the row blocks are of N).
PAR_BLOCK_COLS = 512
