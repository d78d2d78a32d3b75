"""The flat layout of an :class:`~fastnn.MLP`'s parameters and of its training buffers.

Parameters live in one flat buffer: all weights first (layer by layer, each (K, D) in C
order), then all biases; ``layers[l] = (K, D, w_off, b_off)``. The gradient and
momentum buffers have the same layout. :func:`build` makes them, with views of each
layer, as one :class:`Net`; the buffers of a ``fit`` are :func:`epoch_buffers` (the
compiled epoch) or :func:`step_buffers` (the Python-driven steps).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .products import HIDDEN_IDENTITY, HIDDEN_SIGMOID, LOSS_IDENTITY_MSE, LOSS_SIGMOID_BCE
from .products import LOSS_SIGMOID_MSE, LOSS_SOFTMAX_CE

#: Hidden activations: name -> (code in the jit epoch, the registered forward op).
HIDDEN = {"sigmoid": (HIDDEN_SIGMOID, "linear_sigmoid"),
          "identity": (HIDDEN_IDENTITY, "linear")}

#: (output, loss) -> code in the jit epoch. The gradient w.r.t. the logits is
#: computed by one fused kernel per pair (the ``P − Y`` shortcut and its kin).
OUTPUT_LOSS = {("softmax", "cross_entropy"): LOSS_SOFTMAX_CE,
               ("sigmoid", "cross_entropy"): LOSS_SIGMOID_BCE,
               ("sigmoid", "mse"): LOSS_SIGMOID_MSE,
               ("identity", "mse"): LOSS_IDENTITY_MSE}


#: Byte alignment of the parameter, gradient, velocity and activation buffers: one
#: 512-bit vector (see _aligned).
ALIGN = 64


def _aligned(n, dtype, fill=None):
    """A 1-D array of n elements of dtype whose data starts on an ALIGN-byte boundary.

    NumPy aligns to 16 bytes. The compiled training step's tiles (kernels/machine/gemm.py) load
    and store rows of the weights as 64-byte vectors; when a row starts mid cache line
    each of those touches two lines, and the weight update was measured up to twice as
    slow (784-100-10, batch 10: 0.39-0.47 s per epoch instead of 0.23-0.30 s)."""
    dtype = np.dtype(dtype)
    raw = np.empty(n * dtype.itemsize + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    out = raw[start:start + n * dtype.itemsize].view(dtype)
    if fill is not None:
        out[...] = fill
    return out


class Net(NamedTuple):
    """A network's flat buffers, the views of its layers in them, and its kind (the codes
    the compiled epoch takes). Made by :func:`build`; ``MLP.net``."""
    sizes: tuple            # layer widths, input first
    dtype: np.dtype
    params: np.ndarray      # (P,) weights then biases (the module docstring)
    grads: np.ndarray       # (P,) the same layout
    velocity: np.ndarray    # (P,) momentum buffers
    n_weights: int          # params[:n_weights] are the weights
    layers: np.ndarray      # (L, 4) int64: K, D, w_off, b_off
    weights: list           # W_l (K, D), views of params
    biases: list            # b_l (K,), views of params
    gW: list                # views of grads like weights
    gb: list                # views of grads like biases
    hidden_code: int        # HIDDEN_*
    hidden_op: str          # the registered forward op of a hidden layer
    loss_code: int          # LOSS_* (output and loss)
    output: str             # "softmax", "sigmoid" or "identity"
    plans: dict             # compiled-epoch plans made for this network, by their key

    @property
    def n_layers(self):
        return len(self.sizes) - 1


def build(sizes, dtype, hidden, output, loss):
    """The :class:`Net` of an MLP of these layer widths and kind (parameters zero)."""
    dtype = np.dtype(dtype)
    L = len(sizes) - 1
    layers = np.empty((L, 4), np.int64)
    off = 0
    for l in range(L):
        K, D = sizes[l + 1], sizes[l]
        layers[l, :3] = (K, D, off)
        off += K * D
    n_weights = off
    for l in range(L):
        layers[l, 3] = off
        off += layers[l, 0]
    params = _aligned(off, dtype, 0)
    grads = _aligned(off, dtype, 0)
    velocity = _aligned(off, dtype, 0)
    weights = [params[o:o + K * D].reshape(K, D) for K, D, o, _ in layers]
    biases = [params[o:o + K] for K, _, _, o in layers]
    gW = [grads[o:o + K * D].reshape(K, D) for K, D, o, _ in layers]
    gb = [grads[o:o + K] for K, _, _, o in layers]
    hidden_code, hidden_op = HIDDEN[hidden]
    return Net(tuple(sizes), dtype, params, grads, velocity, n_weights, layers, weights, biases,
               gW, gb, hidden_code, hidden_op, OUTPUT_LOSS[(output, loss)], output, {})


class EpochBuffers(NamedTuple):
    """The compiled epoch's buffers of a ``fit`` (:func:`epoch_buffers`): the flat
    activations and deltas of a mini-batch (``A_l`` at ``act_off[l]``), its labels and
    targets, and the epoch's results (``stats``, see ``compiled.train_epoch``)."""
    act_buf: np.ndarray
    delta_buf: np.ndarray
    act_off: np.ndarray
    yb_buf: np.ndarray
    Yb_buf: np.ndarray
    stats: np.ndarray


def epoch_buffers(net, B):
    """The compiled epoch's buffers for mini-batches of at most B rows."""
    widths = np.array(net.sizes, np.int64)
    act_off = np.concatenate([[0], np.cumsum(widths * B)]).astype(np.int64)
    n = int(act_off[-1])
    return EpochBuffers(_aligned(n, net.dtype), _aligned(n, net.dtype),
                        act_off, np.empty(B, np.intp), np.empty((B, net.sizes[-1]), net.dtype),
                        np.zeros(4, np.float64))


def step_buffers(net, B):
    """(activations, deltas): one (B, width) array per layer, for the Python-driven steps."""
    acts = [np.empty((B, w), net.dtype) for w in net.sizes]
    deltas = [np.empty((B, w), net.dtype) for w in net.sizes]
    return acts, deltas
