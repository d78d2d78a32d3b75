"""``fastnn.MLP``: multilayer perceptrons, and the classic models of the course notes,
trained with fastnn's kernels.

    >>> import fastnn
    >>> X_train, y_train, X_test, y_test = fastnn.datasets.load_digits()
    >>> model = fastnn.MLP([64, 32, 10], seed=0)            # sigmoid hidden, softmax output
    >>> history = model.fit(X_train, y_train, epochs=30, batch_size=16, lr=0.5)
    >>> model.score(X_test, y_test)                          # accuracy

Zero hidden layers is softmax regression (``MLP([D, C])``) or logistic regression
(``MLP([D, 1], output="sigmoid")``); ``MLP([1, 1], output="identity", loss="mse")``
is linear regression; ``hidden="identity"`` gives SPEC 8's linear networks.

Outputs and losses (SPEC "Losses"; all means over the batch, summed over outputs):

=============  ===============  ===========================================  =====================
output         loss             L                                            ∂L/∂Z
=============  ===============  ===========================================  =====================
``softmax``    cross_entropy    (1/N) Σ logsumexp(Z_i) − Z[i, y_i]           (P − Y)/N
``sigmoid``    cross_entropy    −(1/N) Σ y log ŷ + (1 − y) log(1 − ŷ)        (ŷ − Y)/N
``sigmoid``    mse              (1/2N) Σ ‖ŷ − y‖²                            (ŷ − Y) ŷ (1 − ŷ)/N
``identity``   mse              (1/2N) Σ ‖Z − y‖²                            (Z − Y)/N
=============  ===============  ===========================================  =====================

Training is mini-batch SGD (SPEC "Updates" and "Modes"): ``batch_size=1`` is online
learning, ``batch_size=None`` batch gradient descent, anything else mini-batch.
With ``impl="jit"`` a whole epoch runs in one compiled function
(:mod:`fastnn._train_jit`); ``"loop"`` and ``"vectorized"`` run one step at a
time in Python through the registered kernels. ``"cuda"`` runs the same steps with
data, parameters, activations and gradients on the GPU for the whole epoch
(mini-batches gathered there; the host parameters are updated when the epoch
completes). For the same seed all follow the same trajectory (to rounding).
"""
from __future__ import annotations

import json
import math
import os
import reprlib
import signal
import sys
import threading
import time
import warnings
import zipfile

import numpy as np

from .. import _mpi
from . import compiled as tj
from .. import _validate as v
from .._paths import check_output_path
from .._impl import _check as _check_impl
from .._impl import get_impl
from ..kernels import IMPLS
from ..kernels._finite import all_finite
from ..kernels.cross_entropy import as_dtype_scalar

__all__ = ["MLP", "History", "NonFiniteLossError", "CheckpointError"]

_FORMAT = "fastnn.MLP/1"

#: Hidden activations: name -> (code in the jit epoch, the registered forward op).
HIDDEN = {"sigmoid": (tj.HIDDEN_SIGMOID, "linear_sigmoid"),
          "identity": (tj.HIDDEN_IDENTITY, "linear")}

#: (output, loss) -> code in the jit epoch. The gradient w.r.t. the logits is
#: computed by one fused kernel per pair (the ``P − Y`` shortcut and its kin).
OUTPUT_LOSS = {("softmax", "cross_entropy"): tj.LOSS_SOFTMAX_CE,
               ("sigmoid", "cross_entropy"): tj.LOSS_SIGMOID_BCE,
               ("sigmoid", "mse"): tj.LOSS_SIGMOID_MSE,
               ("identity", "mse"): tj.LOSS_IDENTITY_MSE}


#: Byte alignment of the parameter, gradient, velocity and activation buffers: one
#: 512-bit vector (see _aligned).
ALIGN = 64


def _aligned(n, dtype, fill=None):
    """A 1-D array of n elements of dtype whose data starts on an ALIGN-byte boundary.

    NumPy aligns to 16 bytes. The compiled training step's tiles (kernels/_gemm.py) load
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


# --- identity output + quadratic cost: no registered op, three versions here ---------
def identity_mse_grad_loop(Z, Y, dZ):
    """``E = Σ(Z − Y)²/(2N)``, ``dZ = (Z − Y)/N`` (dZ overwritten), one element at a time."""
    N, K = Z.shape
    total = 0.0
    for i in range(N):
        for k in range(K):
            r = float(Z[i, k]) - float(Y[i, k])
            total += r * r
            dZ[i, k] = r / N
    return as_dtype_scalar(total / (2 * N), Z.dtype)


def identity_mse_grad_vectorized(Z, Y, dZ):
    """As :func:`identity_mse_grad_loop`, with NumPy."""
    N = Z.shape[0]
    np.subtract(Z, Y, out=dZ)
    total = float(np.sum(np.square(dZ, dtype=np.float64)))
    dZ *= Z.dtype.type(1.0) / Z.dtype.type(N)
    return as_dtype_scalar(total / (2 * N), Z.dtype)


IDENTITY_MSE_GRAD = {"loop": identity_mse_grad_loop,
                     "vectorized": identity_mse_grad_vectorized,
                     "jit": tj.identity_mse_grad_jit}

#: loss code -> registered op computing (loss, dZ) from the logits.
LOSS_OP = {tj.LOSS_SOFTMAX_CE: "softmax_cross_entropy_grad",
           tj.LOSS_SIGMOID_BCE: "sigmoid_bce_grad",
           tj.LOSS_SIGMOID_MSE: "sigmoid_mse_grad"}


def _loss_kernel(code, impl):
    if code not in LOSS_OP and impl == "cuda":
        from ..kernels.cuda import kernels
        return kernels().identity_mse_grad
    return IMPLS[LOSS_OP[code]][impl] if code in LOSS_OP else IDENTITY_MSE_GRAD[impl]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite.

    Attributes ``epoch`` and ``step`` (both 1-based; step counts mini-batches within
    the epoch) say where. The model is left as it was after the last completed
    epoch (parameters, momentum buffers, RNG state and epoch counter).
    """

    def __init__(self, message, epoch, step):
        super().__init__(message)
        self.epoch = epoch
        self.step = step


class CheckpointError(ValueError):
    """A file given to :meth:`MLP.load` is not a readable fastnn.MLP checkpoint.

    Raised for every kind of bad file: not a zip (``.npz``) archive, truncated or
    corrupt, missing members, metadata that is not the expected JSON, a configuration
    that does not make a model, or parameters of the wrong dtype or shape or not
    finite. The message names the file and what is wrong; the attributes ``path``
    and ``reason`` hold the two parts. (A file that cannot be opened at all raises
    the usual ``OSError``, e.g. ``FileNotFoundError``.)
    """

    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class History(list):
    """A list of per-epoch records (dicts), with columns as attributes.

    Each record: ``epoch`` (the model's epoch count after it), ``loss`` and
    ``accuracy`` (means over the epoch's mini-batches, each taken before that
    step's update, as Keras reports them), ``val_loss`` and ``val_accuracy``
    (after the epoch; None without validation data), ``seconds`` (training time of
    the epoch, validation excluded) and ``samples_per_s``. Accuracy is NaN for
    regression (identity output). ``history.loss`` is the list of losses, etc.
    ``interrupted`` is True when Ctrl-C ended the ``fit`` early.
    """

    interrupted = False

    def __getattr__(self, name):
        if not name.startswith("_") and self and name in self[0]:
            return [r[name] for r in self]
        raise AttributeError(name)


#: The compiled epoch runs in parts of about this many seconds (the first of about
#: EPOCH_PART_ROWS rows), between which Python sees a Ctrl-C: the first stops training
#: at once (the epoch is rolled back), a second raises KeyboardInterrupt at once.
EPOCH_PART_S = 0.05
EPOCH_PART_ROWS = 4096


class _Stop(Exception):
    """Ctrl-C between steps of a Python-driven epoch."""


class _SigintGuard:
    """During ``fit``: the first Ctrl-C sets a flag (training stops at the next safe
    point), a second one raises KeyboardInterrupt. Only in the main thread."""

    def __init__(self):
        self.requested = False
        self._old = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            try:
                self._old = signal.signal(signal.SIGINT, self._handler)
            except ValueError:  # pragma: no cover - e.g. embedded interpreters
                self._old = None
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
        return False


def _name(kind, value, allowed):
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{kind}: expected one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def _int(name, x, lo):
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {type(x).__name__}")
    x = int(x)
    if x < lo:
        raise ValueError(f"{name}: expected an integer >= {lo}, got {x}")
    return x


def _sizes(sizes):
    """The layer widths as a list of ints, or a TypeError/ValueError naming ``sizes``."""
    example = "a sequence of layer widths like [64, 32, 10]"
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
        raise TypeError(f"sizes: expected {example}, got {type(sizes).__name__}")
    sizes = list(sizes)
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"sizes: expected {example} (integers), got {type(s).__name__} "
                            f"{reprlib.repr(s)} in {reprlib.repr(sizes)}")
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2:
        raise ValueError(f"sizes: expected at least an input and an output width, got {sizes}")
    if min(sizes) < 1:
        raise ValueError(f"sizes: expected widths >= 1, got {reprlib.repr(sizes)}")
    n = sum(sizes[l + 1] * (sizes[l] + 1) for l in range(len(sizes) - 1))
    if n * 8 + ALIGN > sys.maxsize:
        raise ValueError(f"sizes: {reprlib.repr(sizes)} has {n:,} parameters, more than an array "
                         f"can hold")
    return sizes


def _float_dtype(dtype):
    """float32 or float64 as a NumPy dtype, or a TypeError naming ``dtype``."""
    dt = None
    if dtype is not None:              # np.dtype(None) would be float64
        try:
            with warnings.catch_warnings():    # e.g. NumPy's DeprecationWarning for "a"
                warnings.simplefilter("ignore")
                dt = np.dtype(dtype)
        except (TypeError, ValueError, SyntaxError):   # np.dtype(",") is a SyntaxError
            pass
        if dt is not None and (dt == v.F32 or dt == v.F64):
            return dt
    shown = dt if dt is not None else reprlib.repr(dtype)
    raise TypeError(f"dtype: expected float32 or float64 (np.float32, 'float32', ...), got {shown}")


class MLP:
    """A fully connected network trained by (mini-batch) SGD on fastnn's kernels.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths from input to output, e.g. ``[784, 100, 10]``; at least two
        (``[D, C]`` has no hidden layer).
    hidden : {"sigmoid", "identity"}
        Activation of every hidden layer.
    output : {"softmax", "sigmoid", "identity"}
        Output activation; ``loss`` must suit it (table in the module docstring).
    loss : {"cross_entropy", "mse"}
        ``cross_entropy`` is categorical for softmax, binary for sigmoid outputs;
        ``mse`` is the quadratic cost ``(1/2N) Σ ‖ŷ − y‖²``.
    dtype : float32 or float64
        Parameters and computation; inputs are converted to it.
    seed : int or None
        Seeds the model's ``numpy.random.Generator`` (PCG64), used for the
        initialisation and then for the shuffling of every epoch.
    impl : {"loop", "vectorized", "jit", "cuda"} or None
        Implementation of the kernels; None means :func:`fastnn.get_impl` at the
        time of each call (``"jit"`` by default). ``"cuda"`` where registered (an
        NVIDIA GPU or Numba's CUDA simulator, see :mod:`fastnn.kernels.cuda`).

    Initialisation: weights ``W_l ~ Uniform(−a, a)``, ``a = sqrt(6/(fan_in + fan_out))``
    (Glorot), drawn layer by layer in float64 from the generator and rounded to
    ``dtype``; biases 0. Set parameters explicitly with :meth:`set_parameters`.

    Attributes
    ----------
    weights, biases : lists of arrays (views into the model: writing into them
        changes the model); ``W_l`` has shape (sizes[l+1], sizes[l]) like
        ``torch.nn.Linear``.
    epoch : number of completed training epochs.
    history : :class:`History` of every epoch trained so far (also after load).
    """

    def __init__(self, sizes, *, hidden="sigmoid", output="softmax", loss="cross_entropy",
                 dtype=np.float32, seed=0, impl=None):
        sizes = _sizes(sizes)
        _name("hidden", hidden, tuple(HIDDEN))
        _name("output", output, ("softmax", "sigmoid", "identity"))
        _name("loss", loss, ("cross_entropy", "mse"))
        if (output, loss) not in OUTPUT_LOSS:
            raise ValueError(f"loss: {loss!r} does not go with output {output!r}; supported pairs: "
                             + ", ".join(f"{o}+{lo}" for o, lo in OUTPUT_LOSS))
        if output == "softmax" and sizes[-1] < 2:
            raise ValueError("sizes: a softmax output needs at least 2 classes; "
                             "for one binary output use output='sigmoid'")
        dt = _float_dtype(dtype)
        if seed is not None:
            seed = _int("seed", seed, 0)
        if impl is not None:
            _check_impl(impl)
        self.sizes = tuple(sizes)
        self.hidden, self.output, self.loss = hidden, output, loss
        self.dtype = dt
        self.seed = seed
        self.impl = impl
        self._rng = np.random.default_rng(seed)
        self._plans = {}           # compiled-epoch plans by (batch, rows, accuracy, plain, policy)
        self._build()
        for W in self.weights:
            K, D = W.shape
            a = math.sqrt(6.0 / (K + D))
            W[...] = self._rng.uniform(-a, a, size=(K, D))
        self.epoch = 0
        self.history = History()
        self.hyperparameters = {}

    # --- layout -------------------------------------------------------------------
    def _build(self):
        L = len(self.sizes) - 1
        layers = np.empty((L, 4), np.int64)
        off = 0
        for l in range(L):
            K, D = self.sizes[l + 1], self.sizes[l]
            layers[l, :3] = (K, D, off)
            off += K * D
        self._n_weights = off
        for l in range(L):
            layers[l, 3] = off
            off += layers[l, 0]
        self._layers = layers
        self._params = _aligned(off, self.dtype, 0)
        self._grads = _aligned(off, self.dtype, 0)
        self._velocity = _aligned(off, self.dtype, 0)
        self.weights = [self._params[o:o + K * D].reshape(K, D) for K, D, o, _ in layers]
        self.biases = [self._params[o:o + K] for K, _, _, o in layers]
        self._gW = [self._grads[o:o + K * D].reshape(K, D) for K, D, o, _ in layers]
        self._gb = [self._grads[o:o + K] for K, _, _, o in layers]
        self._hcode, self._hop = HIDDEN[self.hidden]
        self._lcode = OUTPUT_LOSS[(self.output, self.loss)]

    @property
    def n_layers(self):
        """Number of weight layers (hidden layers + 1)."""
        return len(self.sizes) - 1

    def _names(self):
        for l in range(self.n_layers):
            yield f"W{l + 1}", self.weights[l]
            yield f"b{l + 1}", self.biases[l]

    def parameters(self):
        """``{"W1": W₁, "b1": b₁, "W2": ...}`` (1-based as in SPEC): views into the model."""
        return dict(self._names())

    def set_parameters(self, params=None, *, weights=None, biases=None):
        """Set parameters explicitly, e.g. SPEC 3's ``w = b = 0``::

            model.set_parameters(weights=[[[0.0]]], biases=[[0.0]])
            model.set_parameters({"W1": W1, "b2": b2})     # a subset by name

        Values are checked (shape, finite) before anything is written and copied
        (rounded to the model's dtype). Momentum buffers are reset to zero.
        """
        new = {}
        if params is not None:
            if not hasattr(params, "items"):
                raise TypeError(f"params: expected a mapping like {{'W1': array}}, got {type(params).__name__}")
            new.update(params)
        for kind, seq in (("W", weights), ("b", biases)):
            if seq is None:
                continue
            seq = list(seq)
            if len(seq) != self.n_layers:
                raise ValueError(f"{'weights' if kind == 'W' else 'biases'}: expected {self.n_layers} "
                                 f"arrays (one per layer), got {len(seq)}")
            new.update({f"{kind}{l + 1}": a for l, a in enumerate(seq)})
        current = self.parameters()
        checked = {}
        for name, value in new.items():
            if name not in current:
                raise ValueError(f"params: unknown parameter {name!r}; expected one of {list(current)}")
            a = np.asarray(value, dtype=np.float64)
            if a.shape != current[name].shape:
                raise ValueError(f"{name}: expected shape {current[name].shape}, got {a.shape}")
            if not np.all(np.isfinite(a)):
                raise ValueError(f"{name}: parameters must be finite")
            checked[name] = a
        for name, a in checked.items():
            current[name][...] = a
        self._velocity[:] = 0

    def _impl(self, impl=None):
        if impl is not None:
            return _check_impl(impl)
        return self.impl if self.impl is not None else get_impl()

    # --- input checks -----------------------------------------------------------------
    def _check_X(self, X, name="X"):
        D = self.sizes[0]
        if isinstance(X, (str, bytes)) or X is None:
            raise TypeError(f"{name}: expected an array of shape (N, {D}), got {type(X).__name__}")
        try:
            X = np.asarray(X)
        except Exception as exc:
            raise TypeError(f"{name}: could not convert {type(X).__name__} to an array: {exc}") from None
        if X.dtype.kind not in "biuf":
            raise TypeError(f"{name}: expected real numbers, got dtype {X.dtype}")
        if X.ndim == 1 and D == 1:
            X = X.reshape(-1, 1)
        if X.ndim != 2 or X.shape[1] != D:
            raise ValueError(f"{name}: expected shape (N, {D}) for the model's input size {D}, got "
                             f"{X.shape}" + ("; use X[None, :] for one sample" if X.ndim == 1 else ""))
        if X.shape[0] == 0:
            raise ValueError(f"{name}: no samples (N = 0)")
        X = v.convert_floats(name, X, self.dtype)    # no cast warning; out of range: named
        if not all_finite(X):
            raise ValueError(f"{name}: contains NaN or infinite values")
        return X

    def _check_y(self, y, N, name="y"):
        """-> (labels (N,) intp or (0,), targets (N, K) or (0, K), accuracy code)."""
        K = self.sizes[-1]
        if y is None or isinstance(y, (str, bytes)):
            raise TypeError(f"{name}: expected labels or targets for {N} samples, got {type(y).__name__}")
        y = np.asarray(y)
        no_labels = np.empty(0, np.intp)
        no_targets = np.empty((0, K), self.dtype)
        if y.dtype.kind not in "biuf":
            raise TypeError(f"{name}: expected numbers, got dtype {y.dtype}")
        if y.shape[:1] != (N,):
            raise ValueError(f"{name}: expected {N} rows to match X, got shape {y.shape}")
        integral = y.dtype.kind in "biu"
        if self._lcode == tj.LOSS_SOFTMAX_CE or (integral and y.ndim == 1 and K > 1
                                                  and self.output == "sigmoid"):
            if not integral or y.ndim != 1:
                raise TypeError(f"{name}: expected integer class labels of shape ({N},) for a "
                                f"{self.output} output, got {y.dtype} {y.shape}")
            lo, hi = int(y.min()), int(y.max())
            if lo < 0 or hi >= K:
                raise ValueError(f"{name}: labels must lie in [0, {K}) for {K} outputs, got "
                                 f"{lo if lo < 0 else hi}")
            labels = np.ascontiguousarray(y, dtype=np.intp)
            if self._lcode == tj.LOSS_SOFTMAX_CE:
                return labels, no_targets, 1
            Y = np.zeros((N, K), self.dtype)                  # one-hot targets (seed 004)
            Y[np.arange(N), labels] = 1
            return labels, Y, 1
        Y = y.reshape(N, 1) if (y.ndim == 1 and K == 1) else y
        if Y.shape != (N, K):
            raise ValueError(f"{name}: expected targets of shape ({N}, {K})"
                             + (f" or ({N},)" if K == 1 else "") + f", got {y.shape}")
        Y = np.ascontiguousarray(Y, dtype=self.dtype)
        if not all_finite(Y):
            raise ValueError(f"{name}: contains NaN or infinite values")
        if self._lcode == tj.LOSS_SIGMOID_BCE and (Y.min() < 0 or Y.max() > 1):
            raise ValueError(f"{name}: binary cross-entropy targets must lie in [0, 1], got "
                             f"values in [{Y.min()}, {Y.max()}]")
        if self.output == "identity":
            return no_labels, Y, 0
        if K == 1:
            return no_labels, Y, 2
        return np.ascontiguousarray(np.argmax(Y, axis=1), dtype=np.intp), Y, 1

    # --- the Python-driven forward/backward (any implementation) -------------------------
    def _buffers(self, B):
        acts = [np.empty((B, w), self.dtype) for w in self.sizes]
        deltas = [np.empty((B, w), self.dtype) for w in self.sizes]
        return acts, deltas

    def _forward_into(self, acts, nb, impl):
        fwd_h = IMPLS[self._hop][impl]
        fwd_o = IMPLS["linear"][impl]
        L = self.n_layers
        for l in range(L):
            f = fwd_o if l == L - 1 else fwd_h
            f(acts[l][:nb], self.weights[l], self.biases[l], acts[l + 1][:nb])
        return acts[L][:nb]

    def _forward_backward(self, acts, deltas, nb, yb, Yb, impl, scale=None, ready=None):
        """Forward, loss gradient and backward on the rows ``acts[0][:nb]``; fills the
        gradient buffer; returns the loss (a NaN/inf loss returns before backward).
        ``scale``: the gradient of the loss is multiplied by it (a part of a larger
        mini-batch: nb / its rows). ``ready(l)`` is called once layer l's gradient is
        in the buffer."""
        Z = self._forward_into(acts, nb, impl)
        L = self.n_layers
        dZ = deltas[L][:nb]
        loss = _loss_kernel(self._lcode, impl)(Z, yb if self._lcode == tj.LOSS_SOFTMAX_CE else Yb, dZ)
        if not math.isfinite(loss):
            return loss
        if scale is not None and scale != 1:
            dZ *= self.dtype.type(scale)
        lb = IMPLS["linear_backward"][impl]
        hd = IMPLS["hidden_delta"][impl]
        sig = self._hcode == tj.HIDDEN_SIGMOID
        for l in range(L - 1, -1, -1):
            dZl, A = deltas[l + 1][:nb], acts[l][:nb]
            if l == 0:
                lb(dZl, A, self.weights[l], self._gW[l], self._gb[l], None)
            elif sig:
                lb(dZl, A, self.weights[l], self._gW[l], self._gb[l], None)
                if ready is not None:
                    ready(l)
                hd(dZl, self.weights[l], A, deltas[l][:nb])      # δ = (dZ W) ⊙ H ⊙ (1 − H)
                continue
            else:
                lb(dZl, A, self.weights[l], self._gW[l], self._gb[l], deltas[l][:nb])
            if ready is not None:
                ready(l)
        return loss

    def _sgd(self, impl, hp):
        upd = IMPLS["sgd_update"][impl]
        nw = self._n_weights
        # weight decay and L1 act on the weights only, never on the biases
        upd(self._params[:nw], self._grads[:nw], hp["lr"], hp["momentum"], self._velocity[:nw],
            hp["weight_decay"], hp["l1"], False)
        upd(self._params[nw:], self._grads[nw:], hp["lr"], hp["momentum"], self._velocity[nw:],
            0.0, 0.0, False)

    @staticmethod
    def _n_correct(acc_code, Z, yb, Yb):
        if acc_code == 1:
            return int(np.count_nonzero(np.argmax(Z, axis=1) == yb))
        if acc_code == 2:
            return int(np.count_nonzero((Z[:, 0] > 0) == (Yb[:, 0] > 0.5)))
        return 0

    def _epoch_python(self, X, y, Y, acc_code, perm, B, hp, impl, bufs, guard):
        acts, deltas = bufs
        yb_buf = np.empty(B, np.intp)
        Yb_buf = np.empty((B, self.sizes[-1]), self.dtype)
        N = X.shape[0]
        loss_sum, correct = 0.0, 0
        for step, s in enumerate(range(0, N, B)):
            if guard.requested:
                raise _Stop
            idx = perm[s:s + B]
            nb = idx.shape[0]
            np.take(X, idx, axis=0, out=acts[0][:nb])
            if y.shape[0]:
                np.take(y, idx, out=yb_buf[:nb])
            if Y.shape[0]:
                np.take(Y, idx, axis=0, out=Yb_buf[:nb])
            loss = self._forward_backward(acts, deltas, nb, yb_buf[:nb], Yb_buf[:nb], impl)
            if not math.isfinite(loss):
                return loss_sum, correct, step
            loss_sum += float(loss) * nb
            correct += self._n_correct(acc_code, acts[-1][:nb], yb_buf[:nb], Yb_buf[:nb])
            self._sgd(impl, hp)
        return loss_sum, correct, -1

    def _epoch_jit(self, X, y, Y, acc_code, perm, B, hp, bufs, guard=None):
        """The compiled epoch over ``perm`` (whole, or in parts of whole mini-batches when
        ``guard`` is given, so that Ctrl-C is seen between parts): (Σ loss·nb, correct,
        failing step or −1). The parts give the bits of one call (tested)."""
        act_buf, delta_buf, act_off, yb_buf, Yb_buf, stats = bufs
        pol = tj.policy()
        N = perm.shape[0]
        key = (B, N, acc_code, hp["momentum"] == 0 and hp["weight_decay"] == 0 and hp["l1"] == 0,
               pol.tobytes())
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = tj._plan_of(
                self._layers, N, B, self._hcode, self._lcode, acc_code, hp["momentum"],
                hp["weight_decay"], hp["l1"], pol, True)
        args = (self._params, self._grads, self._velocity, self._n_weights, self._layers,
                act_off, self._hcode, self._lcode, acc_code, X, y, Y)
        tail = (hp["lr"], hp["momentum"], hp["weight_decay"], hp["l1"], pol, act_buf, delta_buf,
                yb_buf, Yb_buf, stats)
        if guard is None:
            tj.run_epoch(*args, perm, B, *tail, epoch_rows=N, plan=plan)
            return float(stats[0]), int(stats[1]), int(stats[2])
        loss_sum, correct = 0.0, 0
        steps = max(1, EPOCH_PART_ROWS // B)      # mini-batches in the next part
        s = 0
        while s < N:
            if guard.requested:
                raise _Stop
            e = min(N, s + steps * B)
            t0 = time.perf_counter()
            tj.run_epoch(*args, perm[s:e], B, *tail, epoch_rows=N, plan=plan)
            dt = time.perf_counter() - t0
            loss_sum += float(stats[0])
            correct += int(stats[1])
            if stats[2] >= 0:
                return loss_sum, correct, s // B + int(stats[2])
            s = e
            # parts of about EPOCH_PART_S: a Ctrl-C waits at most that long
            steps = max(1, min(8 * steps, int(steps * EPOCH_PART_S / max(dt, 1e-6))))
        return loss_sum, correct, -1

    # --- the epoch on the GPU (impl="cuda") ------------------------------------------------
    def _cuda_buffers(self, B, X, y, Y):
        """Device arrays for a fit: the data (copied once), parameters, gradients, velocity
        (copied in at each epoch's start, out at its end), activations and deltas."""
        from numba import cuda
        dt = self.dtype
        d = {"X": cuda.to_device(X), "y": cuda.to_device(y if y.shape[0] else np.zeros(1, np.intp)),
             "Y": cuda.to_device(Y if Y.shape[0] else np.zeros((1, self.sizes[-1]), dt)),
             "params": cuda.device_array(self._params.shape, dt),
             "grads": cuda.device_array(self._grads.shape, dt),
             "velocity": cuda.device_array(self._velocity.shape, dt),
             "acts": [cuda.device_array((B, w), dt) for w in self.sizes],
             "deltas": [cuda.device_array((B, w), dt) for w in self.sizes],
             "yb": cuda.device_array(B, np.intp), "Yb": cuda.device_array((B, self.sizes[-1]), dt),
             "counter": cuda.device_array(1, np.int64)}
        P, G = d["params"], d["grads"]
        d["W"] = [P[o:o + K * D].reshape(K, D) for K, D, o, _ in self._layers]
        d["b"] = [P[o:o + K] for K, _, _, o in self._layers]
        d["gW"] = [G[o:o + K * D].reshape(K, D) for K, D, o, _ in self._layers]
        d["gb"] = [G[o:o + K] for K, _, _, o in self._layers]
        return d

    def _epoch_cuda(self, X, y, Y, acc_code, perm, B, hp, d, guard):
        """The Python-driven epoch with every array on the device: mini-batches gathered
        there by index, the kernels of IMPLS[op]["cuda"] on device arrays; per step the
        one transfer is the loss (8 bytes, which also synchronises: the non-finite check).
        The host parameters change only when the epoch completes."""
        from numba import cuda

        from ..kernels.cuda import kernels
        k = kernels()
        d["params"].copy_to_device(self._params)
        d["velocity"].copy_to_device(self._velocity)
        d["counter"].copy_to_device(np.zeros(1, np.int64))
        dperm = cuda.to_device(np.ascontiguousarray(perm, dtype=np.intp))
        acts, deltas, W, b = d["acts"], d["deltas"], d["W"], d["b"]
        L = self.n_layers
        fwd_h, fwd_o = IMPLS[self._hop]["cuda"], IMPLS["linear"]["cuda"]
        loss_fn = _loss_kernel(self._lcode, "cuda")
        lb, hd = IMPLS["linear_backward"]["cuda"], IMPLS["hidden_delta"]["cuda"]
        upd = IMPLS["sgd_update"]["cuda"]
        sig = self._hcode == tj.HIDDEN_SIGMOID
        labels = self._lcode == tj.LOSS_SOFTMAX_CE
        nw = self._n_weights
        N = X.shape[0]
        loss_sum = 0.0
        for step, s in enumerate(range(0, N, B)):
            if guard.requested:
                raise _Stop
            nb = min(B, N - s)
            idx = dperm[s:s + nb]
            k.gather_rows(d["X"], idx, acts[0][:nb])
            yb, Yb = d["yb"][:nb], d["Yb"][:nb]
            if y.shape[0]:
                k.gather(d["y"], idx, yb)
            if Y.shape[0]:
                k.gather_rows(d["Y"], idx, Yb)
            for l in range(L):
                (fwd_o if l == L - 1 else fwd_h)(acts[l][:nb], W[l], b[l], acts[l + 1][:nb])
            Z = acts[L][:nb]
            loss = loss_fn(Z, yb if labels else Yb, deltas[L][:nb])
            if not math.isfinite(loss):
                return loss_sum, 0, step
            loss_sum += float(loss) * nb
            k.count_correct(Z, yb, Yb, acc_code, d["counter"])
            for l in range(L - 1, -1, -1):
                dZl, A = deltas[l + 1][:nb], acts[l][:nb]
                if l == 0 or sig:
                    lb(dZl, A, W[l], d["gW"][l], d["gb"][l], None)
                    if l:
                        hd(dZl, W[l], A, deltas[l][:nb])
                else:
                    lb(dZl, A, W[l], d["gW"][l], d["gb"][l], deltas[l][:nb])
            P, G, V = d["params"], d["grads"], d["velocity"]
            upd(P[:nw], G[:nw], hp["lr"], hp["momentum"], V[:nw], hp["weight_decay"], hp["l1"],
                False)
            upd(P[nw:], G[nw:], hp["lr"], hp["momentum"], V[nw:], 0.0, 0.0, False)
        d["params"].copy_to_host(self._params)
        d["velocity"].copy_to_host(self._velocity)
        return loss_sum, int(d["counter"].copy_to_host()[0]), -1

    def _jit_buffers(self, B):
        widths = np.array(self.sizes, np.int64)
        act_off = np.concatenate([[0], np.cumsum(widths * B)]).astype(np.int64)
        return (_aligned(int(act_off[-1]), self.dtype), _aligned(int(act_off[-1]), self.dtype),
                act_off, np.empty(B, np.intp), np.empty((B, self.sizes[-1]), self.dtype),
                np.zeros(4, np.float64))

    # --- training ---------------------------------------------------------------------
    def _fit_args(self, X, y, epochs, batch_size, lr, momentum, weight_decay, l1, shuffle,
                  validation_data, progress, checkpoint):
        """``fit``'s checks, in order: (X, labels, targets, accuracy code, epochs,
        batch_size (an int or None), hyperparameters, validation data or None,
        checkpoint path or None)."""
        X = self._check_X(X)
        N = X.shape[0]
        y, Y, acc_code = self._check_y(y, N)
        epochs = _int("epochs", epochs, 1)
        if batch_size is not None:
            batch_size = _int("batch_size", batch_size, 1)
        hp = dict(lr=v.real("lr", lr, lo=0.0),
                  momentum=v.real("momentum", momentum, lo=0.0, hi=1.0, hi_open=True),
                  weight_decay=v.real("weight_decay", weight_decay, lo=0.0),
                  l1=v.real("l1", l1, lo=0.0))
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle: expected a bool, got {type(shuffle).__name__}")
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise TypeError("validation_data: expected a pair (X_val, y_val)")
            Xv = self._check_X(validation_data[0], "validation_data[0]")
            val = (Xv,) + self._check_y(validation_data[1], Xv.shape[0], "validation_data[1]")
        if not (progress is None or isinstance(progress, bool) or callable(progress)):
            raise TypeError(f"progress: expected None, a bool or a callable, got {type(progress).__name__}")
        if checkpoint is not None:
            checkpoint = check_output_path(checkpoint, "checkpoint")
        return X, y, Y, acc_code, epochs, batch_size, hp, val, checkpoint

    def fit(self, X, y, *, epochs, batch_size, lr, momentum=0.0, weight_decay=0.0, l1=0.0,
            shuffle=True, validation_data=None, progress=None, checkpoint=None, comm=None,
            overlap=False):
        """Train for ``epochs`` more epochs of mini-batch SGD; returns a :class:`History`.

        Parameters
        ----------
        X : (N, sizes[0]) array (converted to the model's dtype); (N,) when sizes[0] == 1
        y : softmax output: integer labels (N,) in [0, C). Sigmoid output: 0/1 (N,)
            for one output, or (N, K) targets in [0, 1] (quadratic cost: any real),
            or integer labels (N,) (one-hot encoded). Identity output: (N, K) or (N,).
        epochs : int >= 1, epochs to run now (they add to ``self.epoch``).
        batch_size : int >= 1 or None. 1 is online learning; None (or >= N) batch
            gradient descent; anything else mini-batch (the last one may be smaller).
        lr : learning rate η >= 0.  momentum : μ in [0, 1) (classical: v ← μv + g).
        weight_decay : λ >= 0 adds λW to the gradient of the weights (not the biases).
        l1 : α >= 0, proximal L1 on the weights after each step:
            ``w ← sign(w) max(|w| − ηα, 0)`` (exact zeros).
        shuffle : draw a new order of the samples every epoch from the model's
            generator (else the given order).
        validation_data : ``(X_val, y_val)`` evaluated after every epoch, or None.
        progress : None, True (print one line per epoch) or a callable called with
            each epoch's record.
        checkpoint : path or None. When set, the model is saved there (atomically,
            see :meth:`save`) after every epoch and when training stops on Ctrl-C.
            Checked before training: its folder must exist and be writable and the
            path must not be a folder (else ValueError naming ``checkpoint``).

        comm : None or an MPI communicator (``mpi4py.MPI.Comm``, e.g. ``MPI.COMM_WORLD``):
            data-parallel training (docs/mpi.md). Every rank calls ``fit`` with the same
            model and arguments and its own rows ``(X, y)``; rank r's rows are global rows
            ``offset_r .. offset_r + n_r − 1`` in rank order (as ``np.array_split`` gives
            them), and the global mini-batches are those ``fit`` would draw on all the
            rows in one process. Each step every rank computes the gradient of its rows
            of the mini-batch, one Allreduce sums them, and every rank applies the same
            update. Losses and accuracies in the history are global; the parameters are
            checked to be identical on every rank after every epoch. ``checkpoint`` is
            written by rank 0 only, ``progress=True`` prints on rank 0 only (a callable is
            called on every rank that passes one). A communicator of one rank trains as
            without ``comm`` (bit for bit). With more ranks and ``"jit"`` each step is
            one compiled call (the update of the step before, then this rank's gradient)
            and one Allreduce; the other implementations run their kernels one at a
            time. Ctrl-C is not caught there (it ends the run).
        overlap : with ``comm``: start the Allreduce of the last layer's weight gradient
            (``Iallreduce``) while the earlier layers' gradients are computed. The same
            result as without; off by default (it did not pay, docs/mpi.md).

        Every argument is checked before anything changes. The update of each step is
        SPEC "Updates" with the mean-over-the-batch gradient.

        Ctrl-C: training stops at the next safe point (after the running epoch with
        ``impl="jit"``; with the Python implementations the running epoch is
        abandoned and the model rolled back to its start), the checkpoint is written
        if set, and ``fit`` returns the history so far with ``interrupted=True``. A
        second Ctrl-C raises KeyboardInterrupt at once.

        Raises
        ------
        NonFiniteLossError (a FloatingPointError) when the loss becomes NaN or
        infinite, naming the epoch and step; the model is left as after the last
        completed epoch.
        """
        size = _mpi.comm_size(comm)
        if not isinstance(overlap, (bool, np.bool_)):
            raise TypeError(f"overlap: expected a bool, got {type(overlap).__name__}")
        if size > 1:
            return self._fit_comm(comm, X, y, epochs=epochs, batch_size=batch_size, lr=lr,
                                  momentum=momentum, weight_decay=weight_decay, l1=l1,
                                  shuffle=shuffle, validation_data=validation_data,
                                  progress=progress, checkpoint=checkpoint, overlap=bool(overlap))
        (X, y, Y, acc_code, epochs, batch_size, hp, val,
         checkpoint) = self._fit_args(X, y, epochs, batch_size, lr, momentum, weight_decay, l1,
                                      shuffle, validation_data, progress, checkpoint)
        N = X.shape[0]
        B = N if batch_size is None else min(batch_size, N)
        impl = self._impl()

        self.hyperparameters = dict(hp, batch_size=batch_size, shuffle=bool(shuffle), impl=impl)
        jit_path = impl == "jit"
        bufs = (self._jit_buffers(B) if jit_path else self._cuda_buffers(B, X, y, Y)
                if impl == "cuda" else self._buffers(B))
        history = History()
        with _SigintGuard() as guard:
            for _ in range(epochs):
                snapshot = (self._params.copy(), self._velocity.copy(),
                            self._rng.bit_generator.state)
                perm = self._rng.permutation(N) if shuffle else np.arange(N)
                perm = perm.astype(np.int64, copy=False)
                t0 = time.perf_counter()
                try:
                    if jit_path:
                        loss_sum, correct, fail = self._epoch_jit(X, y, Y, acc_code, perm, B, hp,
                                                                  bufs, guard)
                    elif impl == "cuda":
                        loss_sum, correct, fail = self._epoch_cuda(X, y, Y, acc_code, perm, B,
                                                                   hp, bufs, guard)
                    else:   # divergence is reported by NonFiniteLossError, as in jit code
                        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                            loss_sum, correct, fail = self._epoch_python(
                                X, y, Y, acc_code, perm, B, hp, impl, bufs, guard)
                except (_Stop, KeyboardInterrupt) as exc:
                    self._restore(snapshot)
                    history.interrupted = True
                    if checkpoint is not None:
                        self.save(checkpoint)
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    break
                seconds = time.perf_counter() - t0
                if fail >= 0:
                    self._restore(snapshot)
                    raise self._non_finite(fail, N, B, hp)
                self.epoch += 1
                rec = dict(epoch=self.epoch, loss=loss_sum / N,
                           accuracy=correct / N if acc_code else float("nan"),
                           val_loss=None, val_accuracy=None, seconds=seconds,
                           samples_per_s=N / seconds if seconds > 0 else float("inf"))
                if val is not None:
                    rec["val_loss"], rec["val_accuracy"] = self._evaluate(*val, impl)
                history.append(rec)
                self.history.append(rec)
                if checkpoint is not None:
                    self.save(checkpoint)
                if progress is True:
                    print(format_record(rec), flush=True)
                elif callable(progress):
                    progress(rec)
                if guard.requested:
                    history.interrupted = True
                    break
        return history

    # --- data-parallel training over MPI (fit with comm; docs/mpi.md) ---------------------
    def _fit_comm(self, comm, X, y, *, epochs, batch_size, lr, momentum, weight_decay, l1,
                  shuffle, validation_data, progress, checkpoint, overlap):
        """``fit`` with a communicator of more than one rank (see ``fit``)."""
        rank, size = int(comm.Get_rank()), int(comm.Get_size())
        # every rank checks its own arguments; when one rank's fail, every rank raises
        # (the failing one its own error), so that none waits in a collective for it
        err, info = None, None
        try:
            args = self._fit_args(X, y, epochs, batch_size, lr, momentum, weight_decay, l1,
                                  shuffle, validation_data, progress, checkpoint)
            if overlap and not callable(getattr(comm, "Iallreduce", None)):
                raise TypeError(f"overlap: needs a communicator with Iallreduce, "
                                f"{type(comm).__name__} has none")
        except (TypeError, ValueError) as exc:
            err = exc
        impl = self._impl()
        if err is None:
            X, y, Y, acc_code, epochs, batch_size, hp, val, checkpoint = args
            info = dict(rows=X.shape[0], validation_data=val is not None, config=self._config(),
                        epoch=self.epoch,
                        rng=_mpi.checksum(np.frombuffer(
                            json.dumps(self._rng.bit_generator.state).encode(), np.uint8)),
                        parameters=_mpi.checksum(self._params, self._velocity),
                        epochs=epochs, batch_size=batch_size, hyperparameters=hp,
                        shuffle=bool(shuffle), impl=impl, overlap=overlap)
        everyone = comm.allgather((None if err is None else f"{type(err).__name__}: {err}", info))
        if err is not None:
            raise err
        for r, (msg, _) in enumerate(everyone):
            if msg is not None:
                raise ValueError(f"comm: rank {r} of {size} rejected its arguments to fit "
                                 f"({msg}); fit stops on every rank")
        for key, mine in info.items():
            if key == "rows":
                continue
            for r, (_, other) in enumerate(everyone):
                if other[key] != mine:
                    what = {"rng": "the generator state", "parameters": "the parameters "
                            "(or momentum buffers)"}.get(key, key)
                    raise ValueError(
                        f"comm: {what} differs between ranks (rank {rank}: {reprlib.repr(mine)}, "
                        f"rank {r}: {reprlib.repr(other[key])}); every rank must call fit with "
                        f"the same model and arguments, only its own rows")
        rows = [o["rows"] for _, o in everyone]
        N = sum(rows)
        offset = sum(rows[:rank])
        B = N if batch_size is None else min(batch_size, N)
        self.hyperparameters = dict(hp, batch_size=batch_size, shuffle=bool(shuffle), impl=impl)
        reducer = _mpi.Reducer(comm)
        self._comm_stats = reducer            # time in the collectives (benches/mpi_epoch.py)
        compiled = impl == "jit"
        R = min(B, X.shape[0])
        bufs = self._jit_buffers(R) if compiled else self._buffers(R)
        history = History()
        for _ in range(epochs):
            snapshot = (self._params.copy(), self._velocity.copy(), self._rng.bit_generator.state)
            perm = self._rng.permutation(N) if shuffle else np.arange(N)
            perm = perm.astype(np.int64, copy=False)
            t0 = time.perf_counter()
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                if compiled:
                    loss_sum, correct, fail = self._epoch_comm_jit(
                        reducer, X, y, Y, acc_code, perm, B, offset, hp, bufs, overlap)
                else:
                    loss_sum, correct, fail = self._epoch_comm(
                        reducer, X, y, Y, acc_code, perm, B, offset, hp, impl, bufs, overlap)
            totals = np.array([loss_sum, correct], np.float64)
            reducer.allreduce(totals)
            seconds = time.perf_counter() - t0
            if fail >= 0:       # the same step on every rank: it is seen after the Allreduce
                self._restore(snapshot)
                raise self._non_finite(fail, N, B, hp)
            self.epoch += 1
            sums = comm.allgather(_mpi.checksum(self._params, self._velocity))
            if len(set(sums)) > 1:
                raise RuntimeError(
                    f"comm: the parameters differ between ranks after epoch {self.epoch} "
                    f"(CRC-32 by rank: {', '.join(f'{c:08x}' for c in sums)}); the ranks must "
                    f"run the same fastnn and MPI library on the same kind of CPU")
            rec = dict(epoch=self.epoch, loss=float(totals[0]) / N,
                       accuracy=float(totals[1]) / N if acc_code else float("nan"),
                       val_loss=None, val_accuracy=None, seconds=seconds,
                       samples_per_s=N / seconds if seconds > 0 else float("inf"))
            if val is not None:
                nv = val[0].shape[0]
                vl, va = self._evaluate(*val, impl)
                part = np.array([vl * nv, (va if acc_code else 0.0) * nv, nv], np.float64)
                reducer.allreduce(part)
                rec["val_loss"] = float(part[0] / part[2])
                rec["val_accuracy"] = float(part[1] / part[2]) if acc_code else float("nan")
            history.append(rec)
            self.history.append(rec)
            if checkpoint is not None and rank == 0:
                self.save(checkpoint)
            if progress is True:
                if rank == 0:
                    print(format_record(rec), flush=True)
            elif callable(progress):
                progress(rec)
        return history

    def _epoch_comm(self, reducer, X, y, Y, acc_code, perm, B, offset, hp, impl, bufs,
                    overlap):
        """One epoch of data-parallel SGD over the global order ``perm``: at each global
        mini-batch this rank's rows (global rows offset .. offset + n − 1) give their part
        of the mean gradient (the loss gradient scaled by rows / the mini-batch's rows),
        one in-place Allreduce sums the parts, and the update runs on the sum. A rank
        with no rows in the mini-batch contributes zeros; a non-finite loss on any rank
        makes the summed gradient's first element NaN, so every rank stops at the same
        step. -> (this rank's Σ loss·rows, correct, failing step or −1)."""
        self._comm_path = "kernels"       # the path of the last epoch (tests/test_mpi.py)
        acts, deltas = bufs
        n, N = X.shape[0], perm.shape[0]
        R = acts[0].shape[0]
        yb_buf = np.empty(R, np.intp)
        Yb_buf = np.empty((R, self.sizes[-1]), self.dtype)
        local = perm - offset
        own = (local >= 0) & (local < n)
        grads = self._grads
        L = self.n_layers
        split = overlap and L > 1
        pending = []
        ready = None
        if split:
            K, D, w_last, _ = (int(t) for t in self._layers[L - 1])
            last = grads[w_last:w_last + K * D]
            rest = (grads[:w_last], grads[self._n_weights:])

            def ready(l):
                if l == L - 1:
                    pending.append(reducer.start(last))
        loss_sum, correct = 0.0, 0
        for step, s in enumerate(range(0, N, B)):
            e = min(N, s + B)
            idx = local[s:e][own[s:e]]
            nb = idx.shape[0]
            loss = 0.0
            if nb:
                np.take(X, idx, axis=0, out=acts[0][:nb])
                if y.shape[0]:
                    np.take(y, idx, out=yb_buf[:nb])
                if Y.shape[0]:
                    np.take(Y, idx, axis=0, out=Yb_buf[:nb])
                loss = self._forward_backward(acts, deltas, nb, yb_buf[:nb], Yb_buf[:nb], impl,
                                              scale=nb / (e - s), ready=ready)
            if nb == 0 or not math.isfinite(loss):
                grads[:] = 0
                if nb:
                    grads[0] = np.nan
            if split:
                if not pending:
                    pending.append(reducer.start(last))
                for part in rest:
                    reducer.allreduce(part)
                reducer.wait(pending.pop())
            else:
                reducer.allreduce(grads)
            if not math.isfinite(grads[0]):
                return loss_sum, correct, step
            if nb:
                loss_sum += float(loss) * nb
                correct += self._n_correct(acc_code, acts[-1][:nb], yb_buf[:nb], Yb_buf[:nb])
            self._sgd(impl, hp)
        return loss_sum, correct, -1

    def _epoch_comm_jit(self, reducer, X, y, Y, acc_code, perm, B, offset, hp, bufs, overlap):
        """``_epoch_comm`` for ``impl="jit"`` in compiled code (``tj.step_for``): per step
        one compiled call (the update of the step before, then this rank's scaled
        gradient into the flat buffer) and one in-place Allreduce; one more compiled call
        applies the last update. With ``overlap`` the call is split after the last
        layer's gradient, whose Iallreduce starts in between. Results as
        ``_epoch_comm``."""
        self._comm_path = "compiled"      # the path of the last epoch (tests/test_mpi.py)
        act_buf, delta_buf, act_off, yb_buf, Yb_buf, stats = bufs
        pol = tj.policy()
        R = yb_buf.shape[0]
        key = ("comm", R, acc_code, pol.tobytes())
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = tj.make_step_plan(self._layers, R, self._hcode,
                                                        self._lcode, acc_code, pol)
        run = tj.step_for(plan)
        if pol[5] and R > pol[0]:      # BLAS blocks on Numba's threads: OpenBLAS unthreaded
            return tj.on_numba_threads(self._comm_steps, run, reducer, X, y, Y, perm, B, offset,
                                       hp, bufs, pol, overlap)
        return self._comm_steps(run, reducer, X, y, Y, perm, B, offset, hp, bufs, pol, overlap)

    def _comm_steps(self, run, reducer, X, y, Y, perm, B, offset, hp, bufs, pol, overlap):
        act_buf, delta_buf, act_off, yb_buf, Yb_buf, stats = bufs
        params, grads, velocity, nw, layers = (self._params, self._grads, self._velocity,
                                               self._n_weights, self._layers)
        lr, mom, wd, l1 = hp["lr"], hp["momentum"], hp["weight_decay"], hp["l1"]
        N, L = perm.shape[0], self.n_layers
        split = overlap and L > 1
        if split:
            K, D, w_last, _ = (int(t) for t in layers[L - 1])
            last = grads[w_last:w_last + K * D]
            rest = (grads[:w_last], grads[nw:])
        stats[:] = 0
        for step, s in enumerate(range(0, N, B)):
            e = min(N, s + B)
            if split:
                run(params, grads, velocity, nw, layers, act_off, X, y, Y, perm, s, e, offset,
                    lr, mom, wd, l1, step > 0, L - 1, L, pol, act_buf, delta_buf, yb_buf,
                    Yb_buf, stats)
                req = reducer.start(last)
                run(params, grads, velocity, nw, layers, act_off, X, y, Y, perm, s, e, offset,
                    lr, mom, wd, l1, False, 0, L - 1, pol, act_buf, delta_buf, yb_buf,
                    Yb_buf, stats)
                for part in rest:
                    reducer.allreduce(part)
                reducer.wait(req)
            else:
                run(params, grads, velocity, nw, layers, act_off, X, y, Y, perm, s, e, offset,
                    lr, mom, wd, l1, step > 0, 0, L, pol, act_buf, delta_buf, yb_buf,
                    Yb_buf, stats)
                reducer.allreduce(grads)
            if not math.isfinite(grads[0]):
                return float(stats[0]), int(stats[1]), step
        tj.sgd_apply(params, grads, velocity, nw, lr, mom, wd, l1)
        return float(stats[0]), int(stats[1]), -1

    def _non_finite(self, fail, N, B, hp):
        """The error of a fit whose loss became non-finite at step ``fail`` (0-based) of the
        epoch after ``self.epoch``, the model already restored (one process or many)."""
        return NonFiniteLossError(
            f"training loss became non-finite at epoch {self.epoch + 1}, step "
            f"{fail + 1} (mini-batch {fail + 1} of {-(-N // B)}; lr={hp['lr']}); "
            f"the model was restored to its state after epoch {self.epoch}. "
            f"Try a smaller learning rate.", self.epoch + 1, fail + 1)

    def _restore(self, snapshot):
        params, velocity, state = snapshot
        self._params[:] = params
        self._velocity[:] = velocity
        self._rng.bit_generator.state = state

    def partial_fit(self, X, y, *, lr, batch_size=None, momentum=0.0, weight_decay=0.0,
                    l1=0.0, shuffle=True):
        """One epoch over ``(X, y)`` (see :meth:`fit`); returns its record."""
        return self.fit(X, y, epochs=1, batch_size=batch_size, lr=lr, momentum=momentum,
                        weight_decay=weight_decay, l1=l1, shuffle=shuffle)[-1]

    # --- inference ------------------------------------------------------------------------
    def decision_function(self, X, *, impl=None):
        """The logits ``Z`` (N, K) of the output layer."""
        X = self._check_X(X)
        impl = self._impl(impl)
        acts = [X] + [np.empty((X.shape[0], w), self.dtype) for w in self.sizes[1:]]
        return self._forward_into(acts, X.shape[0], impl).copy()

    def predict_proba(self, X, *, impl=None):
        """Output activations: softmax probabilities (N, C), σ(Z) (N, K) for a
        sigmoid output, Z for an identity output."""
        impl = self._impl(impl)
        Z = self.decision_function(X, impl=impl)
        if self.output == "softmax":
            IMPLS["softmax"][impl](Z, Z)
        elif self.output == "sigmoid":
            flat = Z.reshape(-1)
            IMPLS["sigmoid"][impl](flat, flat)
        return Z

    def predict(self, X, *, impl=None):
        """Class labels (N,) for classifiers (argmax; ``σ(z) > 0.5`` for one sigmoid
        output); for an identity output the predictions, (N,) when K = 1 else (N, K)."""
        Z = self.decision_function(X, impl=impl)
        if self.output == "identity":
            return Z[:, 0] if Z.shape[1] == 1 else Z
        if Z.shape[1] == 1:
            return (Z[:, 0] > 0).astype(np.intp)
        return np.argmax(Z, axis=1)

    def score(self, X, y):
        """Accuracy for classifiers; R² (averaged over outputs) for an identity output."""
        X = self._check_X(X)
        labels, Y, acc_code = self._check_y(y, X.shape[0])
        if self.output == "identity":
            P = self.decision_function(X).astype(np.float64)
            Yd = Y.astype(np.float64)
            ss_res = ((Yd - P) ** 2).sum(axis=0)
            ss_tot = ((Yd - Yd.mean(axis=0)) ** 2).sum(axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                r2 = np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1), 0.0)
            return float(r2.mean())
        Z = self.decision_function(X)
        return self._n_correct(acc_code, Z, labels, Y) / X.shape[0]

    def _evaluate(self, X, labels, Y, acc_code, impl):
        N = X.shape[0]
        acts = [X] + [np.empty((N, w), self.dtype) for w in self.sizes[1:]]
        Z = self._forward_into(acts, N, impl)
        dZ = np.empty_like(Z)
        loss = _loss_kernel(self._lcode, impl)(
            Z, labels if self._lcode == tj.LOSS_SOFTMAX_CE else Y, dZ)
        acc = self._n_correct(acc_code, Z, labels, Y) / N if acc_code else float("nan")
        return float(loss), acc

    def evaluate(self, X, y, *, impl=None):
        """``{"loss": mean loss (no regularisation), "accuracy": ...}`` on ``(X, y)``."""
        X = self._check_X(X)
        loss, acc = self._evaluate(X, *self._check_y(y, X.shape[0]), self._impl(impl))
        return {"loss": loss, "accuracy": acc}

    def gradients(self, X, y, *, impl=None):
        """Backprop gradients of the mean loss over ``(X, y)`` at the current parameters,
        ``{"W1": ∂L/∂W₁, "b1": ..., ...}`` (new arrays; no regularisation terms; the
        model is not changed)."""
        X = self._check_X(X)
        N = X.shape[0]
        labels, Y, _ = self._check_y(y, N)
        impl = self._impl(impl)
        acts, deltas = self._buffers(N)
        acts[0] = X
        loss = self._forward_backward(acts, deltas, N, labels, Y, impl)
        if not math.isfinite(loss):
            raise FloatingPointError(f"the loss is not finite ({loss}) at the current parameters")
        out = {}
        for l in range(self.n_layers):
            out[f"W{l + 1}"] = self._gW[l].copy()
            out[f"b{l + 1}"] = self._gb[l].copy()
        return out

    # --- copies, saving and loading ---------------------------------------------------------
    def _config(self):
        return dict(sizes=list(self.sizes), hidden=self.hidden, output=self.output,
                    loss=self.loss, dtype=self.dtype.name, seed=self.seed, impl=self.impl)

    def astype(self, dtype):
        """A copy of the model (parameters, momentum, RNG state, epoch, history) in ``dtype``."""
        cfg = self._config()
        cfg["dtype"] = dtype
        m = MLP(**cfg)
        m._params[:] = self._params
        m._velocity[:] = self._velocity
        m._rng.bit_generator.state = self._rng.bit_generator.state
        m.epoch = self.epoch
        m.history = History(dict(r) for r in self.history)
        m.hyperparameters = dict(self.hyperparameters)
        return m

    def copy(self):
        """An independent copy of the model."""
        return self.astype(self.dtype)

    def save(self, path):
        """Save to ``path`` (a ``.npz``; the name is used as given): parameters,
        momentum buffers, the generator's state, the epoch count, the last ``fit``'s
        hyperparameters and the history. Load with :meth:`MLP.load`.

        Atomic: the file is written to ``.<name>.fastnn-tmp`` in the same folder,
        flushed to disk and renamed over ``path``, so that ``path`` always holds the
        previous checkpoint or the new one, whole. The temporary name is the same for
        every save to ``path``: a save killed before its rename (``kill -9``, a power
        cut) leaves at most that one file, which the next save to ``path`` removes
        before writing its own. Saves are serialised within a process; two processes
        must not save to the same path at the same time.

        Raises ValueError (naming ``path``), before writing anything, when the folder
        does not exist or is not writable or ``path`` is a folder."""
        path = check_output_path(path, "path")
        meta = dict(format=_FORMAT, config=self._config(), epoch=self.epoch,
                    rng_state=self._rng.bit_generator.state,
                    hyperparameters=self.hyperparameters, history=list(self.history))
        tmp = _tmp_path(path)
        with _SAVE_LOCK:
            try:                # a killed save's leftover; unlink never follows a symlink
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                         0o666)
            try:
                with os.fdopen(fd, "wb") as f:
                    np.savez(f, params=self._params, velocity=self._velocity,
                             meta=np.array(json.dumps(meta)))
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
            _fsync_dir(os.path.dirname(tmp))
        return path

    @classmethod
    def load(cls, path):
        """Load a model written by :meth:`save`. Training it further continues exactly
        as if it had never stopped (same parameters, bit for bit, with the same
        implementation).

        The file is read with its own parser (never pickle) and checked whole before
        a model is made: the archive and its three members (``meta``, ``params``,
        ``velocity``), the metadata (format tag ``fastnn.MLP/1``, a configuration
        that :class:`MLP` accepts, the epoch count, the generator state, the
        history), and the parameters and momentum buffers: the model's float dtype
        (float32 or float64; any byte order), one value per parameter of ``sizes``,
        all finite.

        Raises
        ------
        CheckpointError (a ValueError) naming the file and what is wrong, for every
        malformed file; OSError (e.g. FileNotFoundError) when it cannot be opened.
        """
        if path is None or isinstance(path, bool):
            raise TypeError(f"path: expected a file path (str or os.PathLike), got {type(path).__name__}")
        try:
            path = os.fspath(path)
        except TypeError:
            raise TypeError(f"path: expected a file path (str or os.PathLike), "
                            f"got {type(path).__name__}") from None
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        with open(path, "rb") as fh:
            meta, params, velocity = _read_checkpoint(fh, path)

        def bad(reason):
            return CheckpointError(path, reason)

        if not isinstance(meta, dict):
            raise bad(f"meta: expected a JSON object, got {type(meta).__name__}")
        if meta.get("format") != _FORMAT:
            raise bad(f"not a fastnn.MLP checkpoint (format {reprlib.repr(meta.get('format'))}, "
                      f"expected {_FORMAT!r})")
        config = meta.get("config")
        if not isinstance(config, dict):
            raise bad(f"meta: 'config' must be a JSON object, got {type(config).__name__}")
        missing = [k for k in _CONFIG_KEYS if k not in config]
        unknown = [k for k in config if k not in _CONFIG_KEYS]
        if missing or unknown:
            raise bad(f"config: expected the keys {list(_CONFIG_KEYS)}"
                      + (f"; missing {missing}" if missing else "")
                      + (f"; unknown {reprlib.repr(unknown)}" if unknown else ""))
        sizes = config["sizes"]
        if not (isinstance(sizes, list) and len(sizes) >= 2
                and all(type(s) is int and s >= 1 for s in sizes)):
            raise bad(f"config: sizes must be a list of at least two positive integers, "
                      f"got {reprlib.repr(sizes)}")
        if config["dtype"] not in ("float32", "float64"):
            raise bad(f"config: dtype must be 'float32' or 'float64', got {reprlib.repr(config['dtype'])}")
        dt = np.dtype(config["dtype"])
        n = sum(sizes[l + 1] * (sizes[l] + 1) for l in range(len(sizes) - 1))
        for name, a in (("params", params), ("velocity", velocity)):
            if a.dtype.kind != "f" or a.dtype.itemsize != dt.itemsize:
                raise bad(f"{name}: expected {dt.name} values (the model's dtype), got {a.dtype}")
            if a.shape != (n,):
                raise bad(f"{name}: expected shape ({n},), the parameter count of sizes {sizes}, "
                          f"got {a.shape}")
            if not np.isfinite(a).all():
                raise bad(f"{name}: contains NaN or infinite values")
        epoch = meta.get("epoch")
        if type(epoch) is not int or epoch < 0:
            raise bad(f"meta: 'epoch' must be an integer >= 0, got {reprlib.repr(epoch)}")
        hyperparameters = meta.get("hyperparameters", {})
        if not isinstance(hyperparameters, dict):
            raise bad(f"meta: 'hyperparameters' must be a JSON object, got "
                      f"{type(hyperparameters).__name__}")
        history = meta.get("history", [])
        if not isinstance(history, list):
            raise bad(f"meta: 'history' must be a list of epoch records, got {type(history).__name__}")
        for i, rec in enumerate(history):
            problem = _record_problem(rec)
            if problem:
                raise bad(f"history[{i}]: {problem}")
        rng_state = meta.get("rng_state")
        if not isinstance(rng_state, dict):
            raise bad(f"meta: 'rng_state' must be a JSON object, got {type(rng_state).__name__}")
        try:
            m = cls(**config)
        except (TypeError, ValueError) as exc:
            raise bad(f"config: {exc}") from None
        try:
            m._rng.bit_generator.state = rng_state
        except (TypeError, ValueError, KeyError, OverflowError) as exc:
            raise bad(f"rng_state: not a state of the model's PCG64 generator "
                      f"({type(exc).__name__}: {exc})") from None
        m._params[:] = params
        m._velocity[:] = velocity
        m.epoch = epoch
        m.hyperparameters = hyperparameters
        m.history = History(history)
        return m

    def __repr__(self):
        return (f"MLP({list(self.sizes)}, hidden={self.hidden!r}, output={self.output!r}, "
                f"loss={self.loss!r}, dtype={self.dtype.name}, epoch={self.epoch})")


_CONFIG_KEYS = ("sizes", "hidden", "output", "loss", "dtype", "seed", "impl")
_RECORD_KEYS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "seconds", "samples_per_s")
_MEMBERS = ("meta.npy", "params.npy", "velocity.npy")
_SAVE_LOCK = threading.Lock()


def _tmp_path(path):
    """The one temporary file of every save to ``path``: ``.<name>.fastnn-tmp`` beside it."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.fastnn-tmp")


def _fsync_dir(folder):
    """Flush the folder's entry of the renamed file to disk, where the OS allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:         # e.g. Windows: folders cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _record_problem(rec):
    """What is wrong with one epoch record of a loaded history, or None."""
    if not isinstance(rec, dict):
        return f"expected an epoch record (a JSON object), got {type(rec).__name__}"
    missing = [k for k in _RECORD_KEYS if k not in rec]
    if missing:
        return f"missing {missing}"
    if type(rec["epoch"]) is not int:
        return f"'epoch' must be an integer, got {reprlib.repr(rec['epoch'])}"
    for k in _RECORD_KEYS[1:]:
        x = rec[k]
        if not (x is None and k.startswith("val_")) and (
                isinstance(x, bool) or not isinstance(x, (int, float))):
            return f"{k!r} must be a number, got {reprlib.repr(x)}"
    return None


def _read_exactly(f, n):
    """Up to ``n`` bytes from ``f``, fewer only at its end; memory grows with the bytes
    actually there, never with ``n`` (a header may declare any size)."""
    chunks, got = [], 0
    while got < n:
        b = f.read(min(n - got, 1 << 24))
        if not b:
            break
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def _read_npy(zf, name, path):
    """One ``.npy`` member of the archive as an array: header checked, the data read
    exactly (a truncated member or one with trailing bytes is an error)."""
    with zf.open(name) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dt = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dt = np.lib.format.read_array_header_2_0(f)
        else:
            raise CheckpointError(path, f"{name}: unsupported .npy format version {version}")
        if dt.hasobject or dt.itemsize == 0:
            raise CheckpointError(path, f"{name}: dtype {dt} cannot be in a checkpoint")
        count = math.prod(shape)
        nbytes = count * dt.itemsize
        data = _read_exactly(f, nbytes)
        if len(data) != nbytes:
            raise CheckpointError(path, f"{name}: truncated: shape {shape} {dt} needs {nbytes} "
                                        f"bytes of data, found {len(data)}")
        if f.read(1):       # also reaches the member's end, where zipfile checks its CRC
            raise CheckpointError(path, f"{name}: trailing bytes after the data of shape {shape}")
    a = np.frombuffer(data, dtype=dt, count=count)
    return a.reshape(shape, order="F" if fortran else "C")


def _read_checkpoint(fh, path):
    """-> (meta decoded from JSON, params, velocity) from the open file ``fh``; any
    failure of the archive or ``.npy`` layers is a CheckpointError naming ``path``."""
    try:
        try:
            zf = zipfile.ZipFile(fh)
        except zipfile.BadZipFile:
            raise CheckpointError(path, "not a fastnn.MLP checkpoint: not a zip (.npz) "
                                        "archive, or a truncated one") from None
        with zf:
            names = zf.namelist()
            missing = [n for n in _MEMBERS if n not in names]
            if missing:
                raise CheckpointError(path, f"not a fastnn.MLP checkpoint: no {', '.join(missing)} "
                                            f"in the archive (it holds {reprlib.repr(names)})")
            meta, params, velocity = (_read_npy(zf, n, path) for n in _MEMBERS)
            if meta.dtype.kind != "U" or meta.shape != ():
                raise CheckpointError(path, f"meta.npy: expected a JSON text (a 0-d str array), "
                                            f"got {meta.dtype} of shape {meta.shape}")
            text = str(meta[()])
    except (CheckpointError, MemoryError):
        raise
    except Exception as exc:    # the zip and .npy parsers' many ways to fail on bad bytes
        raise CheckpointError(path, f"corrupt or truncated checkpoint ({type(exc).__name__}: "
                                    f"{' '.join(str(exc).split())})") from exc
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(path, f"meta: not valid JSON ({exc})") from None
    return meta, params, velocity


def format_record(rec):
    """One line for an epoch record (used by ``progress=True`` and ``fastnn train``)."""
    s = f"epoch {rec['epoch']:4d}  loss {rec['loss']:.4f}"
    if not math.isnan(rec["accuracy"]):
        s += f"  acc {rec['accuracy']:.4f}"
    if rec.get("val_loss") is not None:
        s += f"  val_loss {rec['val_loss']:.4f}"
        if rec.get("val_accuracy") is not None and not math.isnan(rec["val_accuracy"]):
            s += f"  val_acc {rec['val_accuracy']:.4f}"
    s += f"  {rec['seconds']:.3f} s  {rec['samples_per_s']:,.0f} samples/s"
    return s

