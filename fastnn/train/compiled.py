"""One whole training epoch of an :class:`fastnn.MLP` in compiled code.

``train_epoch`` runs every mini-batch of an epoch without returning to Python:
it gathers the rows of the mini-batch (in the order of a permutation drawn in
Python, once per epoch, by the model's NumPy Generator), runs the forward pass,
the loss gradient, backpropagation and the SGD update, and accumulates the
epoch's loss and accuracy. Every buffer is allocated by the caller once per
``fit``; a step allocates nothing.

Parameters live in one flat buffer: all weights first (layer by layer, each
(K, D) in C order), then all biases. ``layers[l] = (K, D, w_off, b_off)``. The
activations of a mini-batch live in one flat buffer too: ``A_0`` (the gathered
input rows) at ``act_off[0]``, ``A_l`` (the output of layer l, the logits for
the last layer) at ``act_off[l]``; the gradient w.r.t. ``A_l``'s pre-activation
is at the same offset of ``delta_buf``.

The forward product of a batch of at most ``SMALL_MAX`` (= NT_MAX_ROWS − 1) rows is the
register-tiled ``fastnn.kernels.machine.gemm.gemm_nt`` when it has more than
``TILE_MIN_FMAS`` multiply-adds (faster than BLAS there); other products go straight
to BLAS ``sgemm``/``dgemm`` (``fastnn.kernels.machine.blas.gemm``, no ``np.dot`` layout
checks or copies), one gemm (beta = 0) per block of rows. Bias and activation are
applied to each block in cache. The backward pass of a layer has two
code paths, chosen by the batch size ``nb`` and the product's size ``nb·K·D``
(``policy()``):

* tiles, for ``nb <= SMALL_MAX`` and ``nb·K·D > TILE_MIN_FMAS`` with at least
  ``BACKWARD_TILES_MIN_THREADS`` Numba threads: the register-tiled
  ``gemm_tn_acc`` (``Out += alpha·CᵀA``), no BLAS call. ``dA = dZ W`` (from the old
  W) ⊙ H(1 − H); with plain SGD (no momentum, weight decay or L1) the update is
  ``W += (−lr)·dZᵀA`` straight into the weights (``b −= lr·Σ dZ`` in a small loop),
  no gradient buffer written; otherwise ``dW = dZᵀA``, ``db = Σ dZ``.
* BLAS otherwise: ``dA = dZ W`` (gemm, from the old W) ⊙ H(1 − H); with plain SGD the
  update is fused into the weight-gradient GEMM: ``W ← W − lr·dZᵀA`` is one gemm with
  alpha = −lr, beta = 1 accumulating into W; otherwise ``dW = dZᵀA`` (gemm, beta = 0)
  and ``db = Σ dZ``.

Products of at least ``EPOCH_PARALLEL_MIN_FMAS`` multiply-adds in the tiles run on all
of Numba's threads, with the same bits as the serial tiles. Without plain SGD, the
gradients are then applied by ``sgd_update_jit`` over the flat weights and biases
(momentum, weight decay, L1).

Large batches (``BLAS_ON_NUMBA_THREADS``). With more than SMALL_MAX rows every product
goes to BLAS. There OpenBLAS's own threads ran the products, and bias, sigmoid and
its derivative ran serially in between. Now ``run_epoch`` switches OpenBLAS's
threading off for the epoch and each product runs as single-threaded gemms over blocks
(of rows; of columns for the weight update and gradient) on Numba's threads, with
bias, sigmoid and the derivative applied to each block in that core's cache
(kernels/linear.py's large-batch kernels). The blocks depend on the shapes only: the
same bits for any number of threads.

First layer ahead (``FUSE_FIRST_LAYER``). The last product of a step is the first
layer's update ``W −= lr dZᵀA0``; the first of the next step is the next mini-batch's
``A0' Wᵀ`` with that updated W. With plain SGD, when both run on the parallel tiles,
the next mini-batch is gathered first (into delta_buf's slot at ``act_off[0]``, unused
otherwise; the two slots alternate) and one parallel region runs both
(``kernels/machine/gemm.py`` ``gemm_tn_acc_nt_parallel``): each thread updates its share of W's
rows and multiplies the next batch by them while they are in its cache, and one region
starts instead of two. The next step then starts at layer 1. Every element is computed
as before, so the bits are those of the two products apart. 784-100-10, batch 10, two
threads (AMD EPYC Zen 3, python benches/epoch_paths.py --batches 10): 0.277 s per
epoch against 0.349 s (medians of 4, alternating).

One region per epoch (``PERSISTENT_EPOCH``): where every step qualifies, the whole
epoch runs in one parallel region whose threads hand each step to each other;
see :mod:`fastnn.train.persistent`.

Data parallelism (``MLP.fit(comm=...)``, docs/mpi.md) cannot fuse the update into the
gradient (the update needs the gradient summed over the ranks), so it has its own
compiled step (``step_for``): the update of the step before (``sgd_apply``), then one
rank's rows of the global mini-batch through the same forward products, loss and the
unfused backward into the flat gradient buffer; Python runs the Allreduce in between.

Both compute the same mathematics (SPEC "Gradients"/"Updates"); results agree to
rounding. Integer codes select activation and loss (``products.py``, ``layout.py``):

    hidden_code: 0 sigmoid, 1 identity
    loss_code:   0 softmax + cross-entropy (labels)   dZ = (P − Y)/N
                 1 sigmoid + binary cross-entropy     dZ = (σ(Z) − Y)/N
                 2 sigmoid + quadratic cost           dZ = (σ(Z) − Y) σ(Z)(1 − σ(Z))/N
                 3 identity + quadratic cost          dZ = (Z − Y)/N, E = Σ(Z − Y)²/(2N)
    acc_code:    0 none, 1 argmax of the row vs label, 2 (z > 0) vs (y > 0.5)
"""
from __future__ import annotations

import numba  # noqa: F401  (fastnn._train_jit.numba: the tests reach Numba through it)
import numpy as np
from typing import NamedTuple

from ..kernels.machine.blas import THREAD_CONTROL, on_numba_threads
from ..kernels._config import jit, num_threads
from ..kernels.machine.gemm import (FUSED_GROUP, NT_MAX_ROWS, SMALL_GEMM_FMAS, TN_PARALLEL_MIN_FMAS,
                             gemm_tn_acc_nt_parallel)
from ..kernels.fast.cross_entropy import sce_grad_labels_rows_long, sce_grad_labels_rows_short
from ..kernels.tuning import LONG_ROW
from ..kernels.fast.linear import affine_blocks_parallel, bias_act, hidden_delta_blocks_parallel
from ..kernels.sgd import sgd_update_jit
from ..kernels.sigmoid_losses import sigmoid_bce_grad_jit, sigmoid_mse_grad_jit
from .products import (  # noqa: F401  (the codes, gather, bias_sgd: also fastnn._train_jit's)
    ACCURACY_LABELS, ACCURACY_SIGN, ACT_IDENTITY, ACT_SIGMOID,
    HIDDEN_IDENTITY, HIDDEN_SIGMOID, LOSS_IDENTITY_MSE, LOSS_SIGMOID_BCE, LOSS_SIGMOID_MSE,
    LOSS_SOFTMAX_CE, bias_sgd, _correct_labels, _correct_sign, _delta_blas, _delta_tiles,
    _delta_tiles_par, _forward_blas, _forward_tiles, _forward_tiles_par, gather, _grad_blas,
    _grad_blas_par, _grad_tiles, _grad_tiles_par, _layer, _rows, _update_blas,
    _update_blas_par, _update_tiles, _update_tiles_par, identity_mse_grad_jit)
from .persistent import (  # noqa: F401  (the control words: also fastnn._train_jit's, for tests)
    _JOIN, _LINE, _lead_join, _persistent_epoch, _persistent_ok, _work_join)


#: Products of at least this many multiply-adds (nb·K·D) in a batch of fewer than
#: NT_MAX_ROWS rows run on all of Numba's threads (gemm_nt_parallel and
#: gemm_tn_acc_parallel, the same bits as the serial tiles); see ``policy``.
EPOCH_PARALLEL_MIN_FMAS = TN_PARALLEL_MIN_FMAS


#: The products of a layer (forward, backward, weight update) use the compiled tiles
#: (kernels/machine/gemm.py ``gemm_nt``/``gemm_tn_acc``, no BLAS call) when the batch has at
#: most SMALL_MAX rows and the product more than TILE_MIN_FMAS multiply-adds; otherwise
#: the direct BLAS gemm. At most 100³ multiply-adds OpenBLAS (AVX-512 builds) runs its
#: unthreaded small-matrix kernels, which beat the tiles; above it, it packs and
#: threads, and on these short batches the tiles win (see ``policy`` for the figures).
SMALL_MAX = NT_MAX_ROWS - 1
TILE_MIN_FMAS = SMALL_GEMM_FMAS
#: Plain SGD, first layer on the parallel tiles, next mini-batch too: the layer's weight
#: update and the next mini-batch's forward product run in one parallel region
#: (``gemm_tn_acc_nt_parallel``; the same bits as the two products apart). See the
#: module docstring.
FUSE_FIRST_LAYER = True
#: Batches of more than SMALL_MAX rows: each BLAS product runs in blocks of rows (of
#: columns for the weight update), one single-threaded gemm per block, on Numba's
#: threads, with bias, activation and the sigmoid derivative in those blocks, as the
#: jit kernels do from NT_MAX_ROWS rows (kernels/linear.py). See the module docstring.
BLAS_ON_NUMBA_THREADS = True
#: Plain SGD with the first layer ahead at every step and every other product on the
#: serial tiles: the whole epoch runs in one parallel region whose threads hand each
#: step to each other (``_persistent_epoch``; the same bits). See the module docstring.
PERSISTENT_EPOCH = True
#: A threshold no product reaches.
NEVER = np.iinfo(np.int64).max


#: The positions of the policy vector's entries (:meth:`EpochPolicy.vector`); module-level
#: ints, so compile-time constants where the compiled code indexes the vector with them.
(P_SMALL_MAX, P_TILE_MIN, P_BACK_TILE_MIN, P_PAR_MIN, P_SHARES, P_BLAS_ON_NUMBA,
 P_PERSISTENT) = range(7)


class EpochPolicy(NamedTuple):
    """Which path each product of the compiled epoch takes (see :func:`policy`), by name;
    :meth:`vector` is the int64 array the compiled code takes."""
    small_max: int              # batches of at most this many rows may use the tiles
    tile_min_fmas: int          # forward products on the tiles above this many multiply-adds
    back_tile_min_fmas: int     # the same for the backward products
    parallel_min_fmas: int      # products of at least this many on the parallel tiles
    shares: int                 # shares of the fused first-layer region (0: no fusion)
    blas_on_numba_threads: int  # 1: large batches' BLAS products in blocks on Numba's
    #                             threads (the epoch must then run under ``run_epoch``)
    persistent: int             # 1: the epoch may run in one persistent region

    def vector(self):
        """The policy as the int64 array the compiled epoch and step read (``P_*``)."""
        return np.array(self, np.int64)


def current_policy():
    """The :class:`EpochPolicy` of this module's settings now: SMALL_MAX, TILE_MIN_FMAS
    (forward and backward), EPOCH_PARALLEL_MIN_FMAS, Numba's thread count as the shares
    when FUSE_FIRST_LAYER (else 0), BLAS_ON_NUMBA_THREADS (with OpenBLAS's threading
    under fastnn's control), PERSISTENT_EPOCH."""
    return EpochPolicy(*_policy_fields())


def _policy_fields():
    return (SMALL_MAX, TILE_MIN_FMAS, TILE_MIN_FMAS, EPOCH_PARALLEL_MIN_FMAS,
            num_threads() if FUSE_FIRST_LAYER else 0,
            1 if BLAS_ON_NUMBA_THREADS and THREAD_CONTROL else 0,
            1 if PERSISTENT_EPOCH else 0)


def policy():
    """The thresholds the compiled epoch takes, as the int64 array it reads
    (``current_policy().vector()``; the fields of :class:`EpochPolicy`), read at each
    ``fit`` from this module's settings, so tests can move them.

    Which product runs where depends on the shapes only, never on the thread count
    (the backward tiles once needed BACKWARD_TILES_MIN_THREADS threads: with one thread
    the epoch then ran other code, and its bits differed). The thread count only sets
    how many shares a region is split into, and every element is computed by the same
    tile whatever the split.

    TILE_MIN_FMAS is ``_gemm.SMALL_GEMM_FMAS``: 100³ on CPUs with AVX-512, where OpenBLAS
    has small-matrix kernels, 0 elsewhere. On an AMD EPYC (Zen 3, AVX2, 2 threads),
    seconds per epoch, python benches/epoch_paths.py, BLAS only / forward tiles with a BLAS
    backward / tiles only: batch 1: 2.63 / 1.02 / 0.91; 10: 0.47 / 0.40 / 0.35; 32: 0.28 /
    0.31 / 0.25; 64: 0.24 / 0.28 / 0.21; 128: 0.23 / 0.22 / 0.20; 255: 0.22 / 0.23 / 0.23.

    Measured on a Xeon (AVX-512) with the 784-100-10 float32 epoch (60,000 rows, plain SGD,
    2 threads), epochs alternating in one process (python benches/epoch_paths.py and
    variants of it):

    * backward on the tiles against BLAS (forward on gemm_nt in both): batch 8 / 12,
      under 100³: 0.32 / 0.26 s with tiles, 0.28 / 0.25 s with BLAS; batch 16 / 32 / 64 /
      128 / 255: 0.24 / 0.24 / 0.19 / 0.19 / 0.18 s with tiles, 0.53 / 0.47 / 0.26 / 0.24
      / 0.21 s with BLAS (OpenBLAS's threaded path, which costs more than it gives on
      these shapes);
    * everything on BLAS against everything on the tiles, under 100³: batch 1 / 2 / 4 /
      10: 0.92 / 0.50 / 0.37 / 0.22 s against 1.08 / 0.59 / 0.40 / 0.26 s;
    * parallel tiles against serial ones for the first layer: batch 10 / 16 / 24 / 32:
      0.31 / 0.26 / 0.21 / 0.22 s against 0.29 / 0.25 / 0.24 / 0.27 s, hence
      EPOCH_PARALLEL_MIN_FMAS = 1.5M on that Xeon (batch 20 and up; 300k, batch 4 and up, on
      the Zen 3: kernels/machine/gemm.py TN_PARALLEL_MIN_FMAS). A parallel region costs
      ~2.5 µs to start, and a batch-10 product takes 11-20 µs on one core.
    """
    # a plain tuple, not the named one: this runs on every compiled epoch call (0.8 µs
    # less, 4% of a one-row training step)
    return np.array(_policy_fields(), np.int64)


# --- where each product runs: one function of the shapes, for jit code and Python ------
#: Product paths (``forward_path``/``backward_path``): the serial register tiles, the
#: parallel tiles, one BLAS gemm per block of rows, those blocks on Numba's threads.
TILES, TILES_PAR, BLAS, BLAS_PAR = 0, 1, 2, 3


@jit
def forward_path(nb, K, D, small_max, tile_min, par_min, blas_on_numba):
    """The path of a layer's forward product ``A Wᵀ`` (A (nb, D), W (K, D))."""
    fmas = nb * K * D
    if nb <= small_max and fmas > tile_min:
        return TILES_PAR if fmas >= par_min else TILES
    return BLAS_PAR if blas_on_numba and nb > small_max and K > 0 and D > 0 else BLAS


@jit
def backward_path(nb, K, D, small_max, back_tile_min, par_min, blas_on_numba):
    """The path of a layer's backward products (``dZ W`` and ``dZᵀ A``)."""
    fmas = nb * K * D
    if nb <= small_max and fmas > back_tile_min:
        return TILES_PAR if fmas >= par_min else TILES
    return BLAS_PAR if blas_on_numba and nb > small_max and K > 0 and D > 0 else BLAS


@jit
def ahead_possible(nb, nn, K0, D0, small_max, tile_min, back_tile_min, par_min, shares):
    """Whether a plain-SGD step of nb rows runs the first layer's update with the next
    mini-batch's (nn rows) forward product in one region (``gemm_tn_acc_nt_parallel``)."""
    fmas = nb * K0 * D0
    nfmas = nn * K0 * D0
    return (nb <= small_max and fmas > back_tile_min and fmas >= par_min and shares > 0
            and nn > 0 and nn <= small_max and nfmas > tile_min and nfmas >= par_min)


class Plan(NamedTuple):
    """What one compiled epoch must be able to do: the compile-time constants of
    ``_make_epoch``. Code for anything not in the plan is never compiled."""
    hidden: int         # HIDDEN_*
    loss: int           # LOSS_*
    acc: int            # 0 none, 1 argmax vs label, 2 (z > 0) vs (y > 0.5)
    fused: bool         # plain SGD: updates fused into the products, no gradient buffer
    forward: int        # bit p set: some forward product on path p (TILES, ...)
    backward: int       # bit p set: some backward product on path p
    ahead: bool         # some step runs the first layer ahead (see the module docstring)
    long_rows: bool = False     # the output layer has at least LONG_ROW units: the
    #                             softmax cross-entropy compiles that row path only


def batch_sizes(N, batch_size):
    """The mini-batch sizes of an epoch, in order of appearance: (full, last)."""
    B = min(batch_size, N)
    last = N - ((N - 1) // B) * B if N else 0
    return tuple(sorted({B, last} - {0}, reverse=True))


def make_plan(layers, N, batch_size, hidden_code, loss_code, acc_code, plain, fuse, pol):
    """The :class:`Plan` of an epoch of N rows (``layers`` as in the module docstring,
    ``pol`` = ``policy()``)."""
    fwd = bwd = 0
    ahead = False
    sizes = batch_sizes(N, batch_size)
    for nb in sizes:
        for l in range(layers.shape[0]):
            K, D = int(layers[l, 0]), int(layers[l, 1])
            fwd |= 1 << forward_path.py_func(nb, K, D, pol[P_SMALL_MAX], pol[P_TILE_MIN],
                                             pol[P_PAR_MIN], pol[P_BLAS_ON_NUMBA])
            bwd |= 1 << backward_path.py_func(nb, K, D, pol[P_SMALL_MAX], pol[P_BACK_TILE_MIN],
                                              pol[P_PAR_MIN], pol[P_BLAS_ON_NUMBA])
    fused = bool(plain and fuse)
    if fused and pol[P_SHARES] > 0 and N > 0:
        B = sizes[0]
        steps = -(-N // B)
        last = N - (steps - 1) * B
        pairs = set()                   # (rows of a step, rows of the next step)
        if steps >= 3:
            pairs.add((B, B))
        if steps >= 2:
            pairs.add((B, last))
        K0, D0 = int(layers[0, 0]), int(layers[0, 1])
        ahead = any(ahead_possible.py_func(nb, nn, K0, D0, pol[P_SMALL_MAX], pol[P_TILE_MIN],
                                           pol[P_BACK_TILE_MIN], pol[P_PAR_MIN], pol[P_SHARES])
                    for nb, nn in pairs)
    long_rows = layers.shape[0] > 0 and int(layers[-1, 0]) >= LONG_ROW
    return Plan(int(hidden_code), int(loss_code), int(acc_code), fused, fwd, bwd, ahead,
                bool(long_rows))



_EPOCHS = {}


def epoch_for(plan):
    """The compiled epoch of a :class:`Plan` (made once per plan and process; Numba's
    cache keeps each plan's machine code, keyed by the plan's values)."""
    f = _EPOCHS.get(plan)
    if f is None:
        f = _EPOCHS[plan] = _make_epoch(*plan)
    return f


def _make_epoch(hidden, loss, acc, fused, forward, backward, ahead_ok, long_rows=False):
    """The epoch loop with the plan's values as compile-time constants: Numba prunes the
    branches they rule out before typing, so their code is never compiled."""
    SIG = hidden == HIDDEN_SIGMOID
    FT = bool(forward & (1 << TILES))
    FTP = bool(forward & (1 << TILES_PAR))
    FB = bool(forward & (1 << BLAS))
    FBP = bool(forward & (1 << BLAS_PAR))
    BT = bool(backward & (1 << TILES))
    BTP = bool(backward & (1 << TILES_PAR))
    BB = bool(backward & (1 << BLAS))
    BBP = bool(backward & (1 << BLAS_PAR))
    CE = loss == LOSS_SOFTMAX_CE
    BCE = loss == LOSS_SIGMOID_BCE
    SMSE = loss == LOSS_SIGMOID_MSE
    ACC_LABELS = acc == ACCURACY_LABELS
    ACC_SIGN = acc == ACCURACY_SIGN
    FUSED = fused
    AHEAD = ahead_ok
    # the labels gradient for this row length only (the same bits as sce_grad_labels_rows);
    # a bool, not the dispatcher, in the closure: Numba's cache keys closures by their
    # pickled cells, and a dispatcher's differ from process to process
    LONG = bool(long_rows)

    @jit
    def epoch(params, grads, velocity, n_weights, layers, act_off, X, y, Y, perm,
              batch_size, lr, momentum, weight_decay, l1, policy, act_buf, delta_buf,
              yb_buf, Yb_buf, stats):
        T = params.dtype.type
        lr_ = T(lr)
        L = layers.shape[0]
        N = perm.shape[0]          # the rows of this epoch (or part of one)
        D0 = X.shape[1]
        K = Yb_buf.shape[1]
        small_max, tile_min = policy[P_SMALL_MAX], policy[P_TILE_MIN]
        back_tile_min, par_min = policy[P_BACK_TILE_MIN], policy[P_PAR_MIN]
        parts = policy[P_SHARES]
        blas_on_numba = policy[P_BLAS_ON_NUMBA] != 0
        stats[2] = -1.0
        stats[3] = 0.0
        loss_sum = 0.0
        n_correct = 0
        step = 0
        # Layer 0's update may run with the next mini-batch's layer-0 forward product
        # (gemm_tn_acc_nt_parallel): then that batch's rows were gathered into the other
        # of two input buffers (act_buf's and delta_buf's slot at act_off[0]; delta_buf's
        # is otherwise unused) and its first layer is done ("ahead").
        ahead = False
        in_delta = False        # this batch's input rows are in delta_buf's slot
        for s in range(0, N, batch_size):
            nb = min(batch_size, N - s)
            src = delta_buf if in_delta else act_buf
            A0 = _rows(src, act_off[0], nb, D0)
            if not ahead:
                gather(X, y, Y, perm, s, A0, yb_buf, Yb_buf)
            yb = yb_buf[:nb]
            Yb = Yb_buf[:nb]
            # forward
            for l in range(1 if ahead else 0, L):
                Kl = layers[l, 0]
                Dl = layers[l, 1]
                W, b = _layer(params, layers, l)
                A = A0 if l == 0 else _rows(act_buf, act_off[l], nb, Dl)
                out = _rows(act_buf, act_off[l + 1], nb, Kl)
                act = ACT_SIGMOID if SIG and l < L - 1 else ACT_IDENTITY
                path = forward_path(nb, Kl, Dl, small_max, tile_min, par_min, blas_on_numba)
                if FT and path == TILES:
                    _forward_tiles(A, W, b, out, act)
                elif FTP and path == TILES_PAR:
                    _forward_tiles_par(A, W, b, out, act)
                elif FBP and path == BLAS_PAR:
                    affine_blocks_parallel(A, W, b, out, act)
                elif FB:
                    _forward_blas(A, W, b, out, act)
            Z = _rows(act_buf, act_off[L], nb, K)
            dZ = _rows(delta_buf, act_off[L], nb, K)
            if CE:
                if LONG:
                    loss = sce_grad_labels_rows_long(Z, yb, dZ)
                else:
                    loss = sce_grad_labels_rows_short(Z, yb, dZ)
            elif BCE:
                loss = sigmoid_bce_grad_jit(Z, Yb, dZ)
            elif SMSE:
                loss = sigmoid_mse_grad_jit(Z, Yb, dZ)
            else:
                loss = identity_mse_grad_jit(Z, Yb, dZ)
            if not np.isfinite(loss):
                stats[2] = step
                break
            loss_sum += np.float64(loss) * nb
            if ACC_LABELS:
                n_correct += _correct_labels(Z, yb)
            elif ACC_SIGN:
                n_correct += _correct_sign(Z, Yb)
            ahead_next = False
            # backward (and, for plain SGD, the fused update)
            for l in range(L - 1, -1, -1):
                Kl = layers[l, 0]
                Dl = layers[l, 1]
                W, b = _layer(params, layers, l)
                A = A0 if l == 0 else _rows(act_buf, act_off[l], nb, Dl)
                dZl = _rows(delta_buf, act_off[l + 1], nb, Kl)
                dW, db = _layer(grads, layers, l)
                dA = _rows(delta_buf, act_off[l], nb, Dl)   # unused for l = 0
                path = backward_path(nb, Kl, Dl, small_max, back_tile_min, par_min,
                                     blas_on_numba)
                if l > 0:                                   # with the old W
                    if BT and path == TILES:
                        _delta_tiles(dZl, W, A, dA, SIG)
                    elif BTP and path == TILES_PAR:
                        _delta_tiles_par(dZl, W, A, dA, SIG)
                    elif BBP and path == BLAS_PAR:
                        hidden_delta_blocks_parallel(dZl, W, A, dA, SIG)
                    elif BB:
                        _delta_blas(dZl, W, A, dA, SIG)
                nn = min(batch_size, N - s - nb)            # rows of the next mini-batch
                if (AHEAD and l == 0 and path == TILES_PAR
                        and ahead_possible(nb, nn, Kl, Dl, small_max, tile_min, back_tile_min,
                                           par_min, parts)):
                    # W −= lr dZᵀ A, then the next batch's A0 Wᵀ, in one region (the
                    # same bits as the update, then the forward's gemm_nt_parallel)
                    dst = act_buf if in_delta else delta_buf
                    An = _rows(dst, act_off[0], nn, D0)
                    gather(X, y, Y, perm, s + nb, An, yb_buf, Yb_buf)
                    bias_sgd(dZl, b, lr_)
                    out = _rows(act_buf, act_off[1], nn, Kl)
                    gemm_tn_acc_nt_parallel(dZl, A, W, -lr_, An, out, parts)
                    bias_act(out, b, ACT_SIGMOID if SIG and L > 1 else ACT_IDENTITY)  # as forward
                    ahead_next = True
                elif FUSED:
                    if BT and path == TILES:
                        _update_tiles(dZl, A, W, b, lr_)
                    elif BTP and path == TILES_PAR:
                        _update_tiles_par(dZl, A, W, b, lr_)
                    elif BBP and path == BLAS_PAR:
                        _update_blas_par(dZl, A, W, b, lr_)
                    elif BB:
                        _update_blas(dZl, A, W, b, lr_)
                else:
                    if BT and path == TILES:
                        _grad_tiles(dZl, A, dW, db)
                    elif BTP and path == TILES_PAR:
                        _grad_tiles_par(dZl, A, dW, db)
                    elif BBP and path == BLAS_PAR:
                        _grad_blas_par(dZl, A, dW, db)
                    elif BB:
                        _grad_blas(dZl, A, dW, db)
            if not FUSED:
                P = params.shape[0]
                sgd_update_jit(params[:n_weights], grads[:n_weights], lr, momentum,
                               velocity[:n_weights], weight_decay, l1, False)
                sgd_update_jit(params[n_weights:], grads[n_weights:], lr, momentum,
                               velocity[n_weights:P], 0.0, 0.0, False)
            if ahead_next:
                in_delta = not in_delta
            ahead = ahead_next
            step += 1
        stats[0] = loss_sum
        stats[1] = n_correct

    return epoch


def plan_of(layers, N, batch_size, hidden_code, loss_code, acc_code, momentum,
            weight_decay, l1, policy, fuse):
    """The :class:`Plan` of an epoch with these hyperparameters (plain SGD: no momentum,
    weight decay or L1)."""
    plain = momentum == 0 and weight_decay == 0 and l1 == 0
    return make_plan(layers, N, batch_size, hidden_code, loss_code, acc_code,
                     plain, fuse, policy)


# --- one data-parallel step (MLP.fit with comm; docs/mpi.md) -------------------------
class StepPlan(NamedTuple):
    """The compile-time constants of ``_make_step``: the network kind and the product
    paths any step of at most ``rows`` rows takes (``make_step_plan``)."""
    hidden: int
    loss: int
    acc: int
    forward: int
    backward: int
    long_rows: bool = False     # as Plan.long_rows


def make_step_plan(layers, rows, hidden_code, loss_code, acc_code, pol):
    """The :class:`StepPlan` of steps of 1 .. ``rows`` rows (a rank's rows of a global
    mini-batch vary from step to step)."""
    fwd = bwd = 0
    for nb in range(1, rows + 1):
        for l in range(layers.shape[0]):
            K, D = int(layers[l, 0]), int(layers[l, 1])
            fwd |= 1 << forward_path.py_func(nb, K, D, pol[P_SMALL_MAX], pol[P_TILE_MIN],
                                             pol[P_PAR_MIN], pol[P_BLAS_ON_NUMBA])
            bwd |= 1 << backward_path.py_func(nb, K, D, pol[P_SMALL_MAX], pol[P_BACK_TILE_MIN],
                                              pol[P_PAR_MIN], pol[P_BLAS_ON_NUMBA])
    long_rows = layers.shape[0] > 0 and int(layers[-1, 0]) >= LONG_ROW
    return StepPlan(int(hidden_code), int(loss_code), int(acc_code), fwd, bwd, bool(long_rows))


_STEPS = {}


def step_for(plan):
    """The compiled data-parallel step of a :class:`StepPlan` (``_make_step``)."""
    f = _STEPS.get(plan)
    if f is None:
        f = _STEPS[plan] = _make_step(*plan)
    return f


@jit
def sgd_apply(params, grads, velocity, n_weights, lr, momentum, weight_decay, l1):
    """The update of the compiled epoch's unfused path (``sgd_update_jit`` over the flat
    weights, with weight decay and L1, then over the flat biases, without)."""
    P = params.shape[0]
    sgd_update_jit(params[:n_weights], grads[:n_weights], lr, momentum, velocity[:n_weights],
                   weight_decay, l1, False)
    sgd_update_jit(params[n_weights:], grads[n_weights:], lr, momentum, velocity[n_weights:P],
                   0.0, 0.0, False)


def _make_step(hidden, loss, acc, forward, backward, long_rows=False):
    """One rank's part of a data-parallel step, with the plan's values as compile-time
    constants (as ``_make_epoch``; the same products, the unfused gradient path)."""
    SIG = hidden == HIDDEN_SIGMOID
    LONG = bool(long_rows)      # as in _make_epoch
    FT = bool(forward & (1 << TILES))
    FTP = bool(forward & (1 << TILES_PAR))
    FB = bool(forward & (1 << BLAS))
    FBP = bool(forward & (1 << BLAS_PAR))
    BT = bool(backward & (1 << TILES))
    BTP = bool(backward & (1 << TILES_PAR))
    BB = bool(backward & (1 << BLAS))
    BBP = bool(backward & (1 << BLAS_PAR))
    CE = loss == LOSS_SOFTMAX_CE
    BCE = loss == LOSS_SIGMOID_BCE
    SMSE = loss == LOSS_SIGMOID_MSE
    ACC_LABELS = acc == ACCURACY_LABELS
    ACC_SIGN = acc == ACCURACY_SIGN

    @jit
    def step(params, grads, velocity, n_weights, layers, act_off, X, y, Y, perm, s, e, offset,
             lr, momentum, weight_decay, l1, update, lo, hi, policy, act_buf, delta_buf,
             yb_buf, Yb_buf, stats):
        """This rank's gradient of its rows of the global mini-batch perm[s:e] (global row
        numbers; this rank holds rows offset .. offset + X.shape[0] − 1) into ``grads``,
        the loss gradient scaled by its rows / (e − s), so that the sum over the ranks is
        the mean gradient of the mini-batch. Backward runs for layers lo .. hi − 1 (from
        the top); with hi = L the call starts the step: first, when ``update``, the SGD
        update with ``grads`` (the summed gradient of the step before; ``sgd_apply``),
        then the gather, forward and loss. stats: [Σ loss·rows (added to), correct (added
        to), this step's rows, 1 if its loss was not finite]. No rows: ``grads`` is zero;
        a non-finite loss: zero with grads[0] = NaN (so the sum is NaN on every rank)."""
        T = params.dtype.type
        L = layers.shape[0]
        D0 = X.shape[1]
        K = Yb_buf.shape[1]
        small_max, tile_min = policy[P_SMALL_MAX], policy[P_TILE_MIN]
        back_tile_min, par_min = policy[P_BACK_TILE_MIN], policy[P_PAR_MIN]
        blas_on_numba = policy[P_BLAS_ON_NUMBA] != 0
        n = X.shape[0]
        if hi == L:
            if update:
                sgd_apply(params, grads, velocity, n_weights, lr, momentum, weight_decay, l1)
            nb = 0
            for j in range(s, e):
                r = perm[j] - offset
                if r >= 0 and r < n:
                    nb += 1
            stats[2] = nb
            stats[3] = 0.0
            if nb == 0:
                grads[:] = 0
                return
            A0 = _rows(act_buf, act_off[0], nb, D0)
            i = 0
            for j in range(s, e):
                r = perm[j] - offset
                if r >= 0 and r < n:
                    for d in range(D0):
                        A0[i, d] = X[r, d]
                    if y.shape[0] > 0:
                        yb_buf[i] = y[r]
                    if Y.shape[0] > 0:
                        for k in range(K):
                            Yb_buf[i, k] = Y[r, k]
                    i += 1
            yb = yb_buf[:nb]
            Yb = Yb_buf[:nb]
            for l in range(L):
                Kl = layers[l, 0]
                Dl = layers[l, 1]
                W, b = _layer(params, layers, l)
                A = _rows(act_buf, act_off[l], nb, Dl)
                out = _rows(act_buf, act_off[l + 1], nb, Kl)
                act = ACT_SIGMOID if SIG and l < L - 1 else ACT_IDENTITY
                path = forward_path(nb, Kl, Dl, small_max, tile_min, par_min, blas_on_numba)
                if FT and path == TILES:
                    _forward_tiles(A, W, b, out, act)
                elif FTP and path == TILES_PAR:
                    _forward_tiles_par(A, W, b, out, act)
                elif FBP and path == BLAS_PAR:
                    affine_blocks_parallel(A, W, b, out, act)
                elif FB:
                    _forward_blas(A, W, b, out, act)
            Z = _rows(act_buf, act_off[L], nb, K)
            dZ = _rows(delta_buf, act_off[L], nb, K)
            if CE:
                if LONG:
                    loss = sce_grad_labels_rows_long(Z, yb, dZ)
                else:
                    loss = sce_grad_labels_rows_short(Z, yb, dZ)
            elif BCE:
                loss = sigmoid_bce_grad_jit(Z, Yb, dZ)
            elif SMSE:
                loss = sigmoid_mse_grad_jit(Z, Yb, dZ)
            else:
                loss = identity_mse_grad_jit(Z, Yb, dZ)
            if not np.isfinite(loss):
                stats[3] = 1.0
                grads[:] = 0
                grads[0] = np.nan
                return
            stats[0] += np.float64(loss) * nb
            if ACC_LABELS:
                stats[1] += _correct_labels(Z, yb)
            elif ACC_SIGN:
                stats[1] += _correct_sign(Z, Yb)
            if nb != e - s:
                scale = T(nb / (e - s))
                for i in range(nb):
                    for k in range(K):
                        dZ[i, k] *= scale
        else:
            nb = int(stats[2])
            if nb == 0 or stats[3] != 0:
                return
        for l in range(hi - 1, lo - 1, -1):
            Kl = layers[l, 0]
            Dl = layers[l, 1]
            W = _layer(params, layers, l)[0]
            A = _rows(act_buf, act_off[l], nb, Dl)
            dZl = _rows(delta_buf, act_off[l + 1], nb, Kl)
            dW, db = _layer(grads, layers, l)
            dA = _rows(delta_buf, act_off[l], nb, Dl)
            path = backward_path(nb, Kl, Dl, small_max, back_tile_min, par_min, blas_on_numba)
            if l > 0:                                       # with the old W
                if BT and path == TILES:
                    _delta_tiles(dZl, W, A, dA, SIG)
                elif BTP and path == TILES_PAR:
                    _delta_tiles_par(dZl, W, A, dA, SIG)
                elif BBP and path == BLAS_PAR:
                    hidden_delta_blocks_parallel(dZl, W, A, dA, SIG)
                elif BB:
                    _delta_blas(dZl, W, A, dA, SIG)
            if BT and path == TILES:
                _grad_tiles(dZl, A, dW, db)
            elif BTP and path == TILES_PAR:
                _grad_tiles_par(dZl, A, dW, db)
            elif BBP and path == BLAS_PAR:
                _grad_blas_par(dZl, A, dW, db)
            elif BB:
                _grad_blas(dZl, A, dW, db)

    return step


def train_epoch(params, grads, velocity, n_weights, layers, act_off, hidden_code, loss_code,
                acc_code, X, y, Y, perm, batch_size, lr, momentum, weight_decay, l1,
                policy, act_buf, delta_buf, yb_buf, Yb_buf, stats, epoch_rows=None, plan=None):
    """Run one epoch; see the module docstring.

    params, grads, velocity : (P,) flat buffers (velocity updated when momentum > 0)
    X : (N, D0) inputs;  y : (N,) int64 labels or (0,);  Y : (N, K) float targets or (0, K)
    perm : (M,) int64 the rows of X this call trains on, in order (M <= N: a whole epoch's
           permutation, or a run of whole mini-batches of it, so that an epoch can run
           in parts with the same bits);  batch_size >= 1
    policy : (7,) int64, ``policy()`` (``EpochPolicy(...).vector()``; entries at P_*):
             small_max, forward and backward tile_min_fmas, parallel_min_fmas, fused
             first-layer shares, BLAS blocks on Numba's threads (1: call through
             ``run_epoch``), persistent region (1: allowed; read by ``run_epoch``)
    act_buf, delta_buf : flat, batch_size · Σ widths;  yb_buf (batch_size,), Yb_buf (batch_size, K)
    stats : (4,) float64, written: [Σ loss·nb, number correct, failing step (−1: none),
            1 if the epoch ran in one persistent region (``_persistent_epoch``, called
            by ``run_epoch`` instead of this function) else 0]
    A non-finite loss stops the epoch before that step's update: stats[2] = step (0-based).
    epoch_rows : the rows of the whole epoch when ``perm`` is a part of it (the compiled
                 plan is the epoch's, so that its parts share one compiled loop)
    plan : the :class:`Plan` (computed from the arguments when None; callers that run
           many epochs or parts compute it once: ``MLP._epoch_jit``)
    """
    _train_epoch(params, grads, velocity, n_weights, layers, act_off, hidden_code, loss_code,
                 acc_code, X, y, Y, perm, batch_size, lr, momentum, weight_decay, l1,
                 policy, True, act_buf, delta_buf, yb_buf, Yb_buf, stats, epoch_rows, plan)


def _train_epoch(params, grads, velocity, n_weights, layers, act_off, hidden_code, loss_code,
                 acc_code, X, y, Y, perm, batch_size, lr, momentum, weight_decay, l1,
                 policy, fuse, act_buf, delta_buf, yb_buf, Yb_buf, stats, epoch_rows=None,
                 plan=None):
    """``train_epoch`` with one more switch: ``fuse`` (False: plain SGD writes the
    gradient and runs ``sgd_update_jit``, as the other optimisers do; for tests of the
    fused paths)."""
    if plan is None or not fuse:
        plan = plan_of(layers, perm.shape[0] if epoch_rows is None else epoch_rows, batch_size,
                        hidden_code, loss_code, acc_code, momentum, weight_decay, l1, policy,
                        fuse)
    epoch_for(plan)(params, grads, velocity, n_weights, layers, act_off, X, y, Y, perm,
                    batch_size, lr, momentum, weight_decay, l1, policy, act_buf, delta_buf,
                    yb_buf, Yb_buf, stats)


def run_epoch(params, grads, velocity, n_weights, layers, act_off, hidden_code, loss_code,
              acc_code, X, y, Y, perm, batch_size, lr, momentum, weight_decay, l1, policy,
              act_buf, delta_buf, yb_buf, Yb_buf, stats, epoch_rows=None, plan=None):
    """``train_epoch`` with the same arguments; when its BLAS products may run in blocks
    on Numba's threads (``policy[P_BLAS_ON_NUMBA]``, batches above ``policy[P_SMALL_MAX]``
    rows), under ``kernels/machine/blas.py`` ``on_numba_threads``: OpenBLAS single-threaded for the
    epoch, its thread count restored afterwards (also on error). The callers of the
    compiled epoch (``MLP.fit``, the benches) go through here."""
    args = (params, grads, velocity, n_weights, layers, act_off, hidden_code, loss_code,
            acc_code, X, y, Y, perm, batch_size, lr, momentum, weight_decay, l1, policy,
            act_buf, delta_buf, yb_buf, Yb_buf, stats)
    if policy[P_BLAS_ON_NUMBA] and batch_size > policy[P_SMALL_MAX]:
        return on_numba_threads(train_epoch, *args, epoch_rows, plan)
    # the persistent epoch is called from here, not from train_epoch, so that it is
    # compiled only for the networks and dtypes that take it
    if (policy[P_PERSISTENT] and momentum == 0 and weight_decay == 0 and l1 == 0
            and policy[P_SHARES] >= 2
            and _persistent_ok(layers, perm.shape[0], batch_size, policy[P_SMALL_MAX],
                               policy[P_TILE_MIN], policy[P_BACK_TILE_MIN], policy[P_PAR_MIN])):
        P = min(int(policy[P_SHARES]), (int(layers[0, 0]) + FUSED_GROUP - 1) // FUSED_GROUP)
        if P >= 2 and _persistent_epoch(params, layers, act_off, hidden_code, loss_code,
                                        acc_code, X, y, Y, perm, batch_size, lr,
                                        policy[P_SMALL_MAX], policy[P_TILE_MIN],
                                        policy[P_PAR_MIN], act_buf, delta_buf, yb_buf,
                                        Yb_buf, stats, P):
            return None
    return train_epoch(*args, epoch_rows, plan)


def run_net_epoch(net, bufs, X, y, Y, acc_code, perm, batch_size, hp, policy, epoch_rows=None,
                  plan=None):
    """:func:`run_epoch` with the network and its buffers as bundles: ``net`` a
    :class:`fastnn.train.layout.Net`, ``bufs`` its
    :class:`~fastnn.train.layout.EpochBuffers`, ``hp`` ``{"lr", "momentum",
    "weight_decay", "l1"}``; the results in ``bufs.stats``."""
    return run_epoch(net.params, net.grads, net.velocity, net.n_weights, net.layers,
                     bufs.act_off, net.hidden_code, net.loss_code, acc_code, X, y, Y, perm,
                     batch_size, hp["lr"], hp["momentum"], hp["weight_decay"], hp["l1"], policy,
                     bufs.act_buf, bufs.delta_buf, bufs.yb_buf, bufs.Yb_buf, bufs.stats,
                     epoch_rows=epoch_rows, plan=plan)
