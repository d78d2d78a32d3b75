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
(:mod:`fastnn.train.compiled`); ``"loop"`` and ``"vectorized"`` run one step at a
time in Python through the registered kernels. ``"cuda"`` runs the same steps with
data, parameters, activations and gradients on the GPU for the whole epoch
(mini-batches gathered there; the host parameters are updated when the epoch
completes). For the same seed all follow the same trajectory (to rounding).
"""
from __future__ import annotations

from __future__ import annotations

import math

import numpy as np

from .. import _mpi
from .._impl import _check as _check_impl
from .._impl import get_impl
from ..kernels import IMPLS
from . import checkpoint
from .checkpoint import CheckpointError
from .checks import _float_dtype, _int, _name, _sizes, check_X, check_y
from .comm import train_comm
from .fit import History, NonFiniteLossError, compiled_epoch, train
from .layout import HIDDEN, OUTPUT_LOSS, build, epoch_buffers, step_buffers
from .python_epoch import evaluate, forward_backward, forward_into, n_correct

__all__ = ["MLP", "History", "NonFiniteLossError", "CheckpointError"]


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
    hyperparameters : the last ``fit``'s (dict).
    net : the flat buffers and the per-layer views of parameters and gradients
        (:class:`fastnn.train.layout.Net`).
    comm_stats, comm_path : after a ``fit`` with ``comm`` of more than one rank: the time
        in its collectives (``seconds``, ``calls``) and which step it ran ("compiled" or
        "kernels"); None before.
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
        self._build()
        for W in self.weights:
            K, D = W.shape
            a = math.sqrt(6.0 / (K + D))
            W[...] = self._rng.uniform(-a, a, size=(K, D))
        self.epoch = 0
        self.history = History()
        self.hyperparameters = {}
        self.comm_stats = None
        self.comm_path = None

    # --- layout -------------------------------------------------------------------
    def _build(self):
        self.net = net = build(self.sizes, self.dtype, self.hidden, self.output, self.loss)
        # the flat buffers under their old names (tests, and code written against them)
        self._params, self._grads, self._velocity = net.params, net.grads, net.velocity
        self.weights, self.biases = net.weights, net.biases

    @property
    def _comm_path(self):
        """``comm_path`` under its old name (tests/mpi_worker.py reads it)."""
        return self.comm_path

    @property
    def rng(self):
        """The model's ``numpy.random.Generator`` (initialisation, then every shuffle)."""
        return self._rng

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

    def resolve_impl(self, impl=None):
        """The implementation a call with ``impl=`` runs: ``impl`` (checked), else the
        model's, else :func:`fastnn.get_impl`'s."""
        if impl is not None:
            return _check_impl(impl)
        return self.impl if self.impl is not None else get_impl()

    # --- input checks (fastnn.train.checks) ---------------------------------------------
    def _check_X(self, X, name="X"):
        return check_X(self.net, X, name)

    def _check_y(self, y, N, name="y"):
        """-> (labels (N,) intp or (0,), targets (N, K) or (0, K), accuracy code)."""
        return check_y(self.net, y, N, name)

    # --- the compiled epoch (fastnn.train.fit, fastnn.train.compiled) ----------------------
    def _jit_buffers(self, B):
        return epoch_buffers(self.net, B)

    def _epoch_jit(self, X, y, Y, acc_code, perm, B, hp, bufs, guard=None):
        return compiled_epoch(self.net, X, y, Y, acc_code, perm, B, hp, bufs, guard)

    def compiled_epoch(self, X, y, *, batch_size, lr, momentum=0.0, weight_decay=0.0, l1=0.0):
        """A function that runs one compiled epoch (``impl="jit"``) over ``(X, y)`` in the
        given order, in mini-batches of ``batch_size``, each call on buffers allocated
        here once: what :meth:`fit` runs per epoch, less the shuffle, the checks, the
        Ctrl-C parts and the history (for benchmarks; ``fastnn bench`` times it).

        Each call trains the model (parameters and momentum buffers; not ``epoch``,
        ``history`` or the generator) and returns ``(Σ loss·rows, correct, failing step
        or −1)``. ``X`` and ``y`` are checked as in :meth:`fit`.
        """
        X = check_X(self.net, X)
        N = X.shape[0]
        labels, Y, acc_code = check_y(self.net, y, N)
        B = min(_int("batch_size", batch_size, 1), N)
        hp = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "l1": l1}
        perm = np.arange(N, dtype=np.int64)
        bufs = epoch_buffers(self.net, B)
        net = self.net
        return lambda: compiled_epoch(net, X, labels, Y, acc_code, perm, B, hp, bufs)

    # --- training (fastnn.train.fit, fastnn.train.comm) -----------------------------------
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
            return train_comm(self, comm, X, y, epochs=epochs, batch_size=batch_size, lr=lr,
                              momentum=momentum, weight_decay=weight_decay, l1=l1,
                              shuffle=shuffle, validation_data=validation_data,
                              progress=progress, checkpoint=checkpoint, overlap=bool(overlap))
        return train(self, X, y, epochs=epochs, batch_size=batch_size, lr=lr, momentum=momentum,
                     weight_decay=weight_decay, l1=l1, shuffle=shuffle,
                     validation_data=validation_data, progress=progress, checkpoint=checkpoint)

    def partial_fit(self, X, y, *, lr, batch_size=None, momentum=0.0, weight_decay=0.0,
                    l1=0.0, shuffle=True):
        """One epoch over ``(X, y)`` (see :meth:`fit`); returns its record."""
        return self.fit(X, y, epochs=1, batch_size=batch_size, lr=lr, momentum=momentum,
                        weight_decay=weight_decay, l1=l1, shuffle=shuffle)[-1]

    # --- inference ------------------------------------------------------------------------
    def decision_function(self, X, *, impl=None):
        """The logits ``Z`` (N, K) of the output layer."""
        X = check_X(self.net, X)
        impl = self.resolve_impl(impl)
        acts = [X] + [np.empty((X.shape[0], w), self.dtype) for w in self.sizes[1:]]
        return forward_into(self.net, acts, X.shape[0], impl).copy()

    def predict_proba(self, X, *, impl=None):
        """Output activations: softmax probabilities (N, C), σ(Z) (N, K) for a
        sigmoid output, Z for an identity output."""
        impl = self.resolve_impl(impl)
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
        X = check_X(self.net, X)
        labels, Y, acc_code = check_y(self.net, y, X.shape[0])
        if self.output == "identity":
            P = self.decision_function(X).astype(np.float64)
            Yd = Y.astype(np.float64)
            ss_res = ((Yd - P) ** 2).sum(axis=0)
            ss_tot = ((Yd - Yd.mean(axis=0)) ** 2).sum(axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                r2 = np.where(ss_tot > 0, 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1), 0.0)
            return float(r2.mean())
        Z = self.decision_function(X)
        return n_correct(acc_code, Z, labels, Y) / X.shape[0]

    def evaluate(self, X, y, *, impl=None):
        """``{"loss": mean loss (no regularisation), "accuracy": ...}`` on ``(X, y)``."""
        X = check_X(self.net, X)
        loss, acc = evaluate(self.net, X, *check_y(self.net, y, X.shape[0]), self.resolve_impl(impl))
        return {"loss": loss, "accuracy": acc}

    def gradients(self, X, y, *, impl=None):
        """Backprop gradients of the mean loss over ``(X, y)`` at the current parameters,
        ``{"W1": ∂L/∂W₁, "b1": ..., ...}`` (new arrays; no regularisation terms; the
        model is not changed)."""
        X = check_X(self.net, X)
        N = X.shape[0]
        labels, Y, _ = check_y(self.net, y, N)
        impl = self.resolve_impl(impl)
        acts, deltas = step_buffers(self.net, N)
        acts[0] = X
        loss = forward_backward(self.net, acts, deltas, N, labels, Y, impl)
        if not math.isfinite(loss):
            raise FloatingPointError(f"the loss is not finite ({loss}) at the current parameters")
        out = {}
        for l in range(self.n_layers):
            out[f"W{l + 1}"] = self.net.gW[l].copy()
            out[f"b{l + 1}"] = self.net.gb[l].copy()
        return out

    # --- copies, state, saving and loading (fastnn.train.checkpoint) ----------------------
    def config(self):
        """The constructor's arguments (a dict): ``MLP(**m.config())`` is a new model
        like ``m``."""
        return dict(sizes=list(self.sizes), hidden=self.hidden, output=self.output,
                    loss=self.loss, dtype=self.dtype.name, seed=self.seed, impl=self.impl)

    _config = config

    def state(self):
        """A snapshot of everything training changes, copied: ``{"config", "params",
        "velocity", "rng_state", "epoch", "hyperparameters", "history"}`` (the flat
        parameters and momentum buffers, the generator's state, ...). Restore it with
        :meth:`set_state` into a model made with ``MLP(**state["config"])``."""
        return dict(config=self.config(), params=self._params.copy(),
                    velocity=self._velocity.copy(), rng_state=self._rng.bit_generator.state,
                    epoch=self.epoch, hyperparameters=dict(self.hyperparameters),
                    history=[dict(r) for r in self.history])

    def set_state(self, state):
        """Restore a :meth:`state` (its ``config`` is not read: the model must have been
        made with it); parameters and momentum are copied in, rounded to the dtype."""
        self._params[:] = state["params"]
        self._velocity[:] = state["velocity"]
        self._rng.bit_generator.state = state["rng_state"]
        self.epoch = state["epoch"]
        self.hyperparameters = state["hyperparameters"]
        self.history = History(state["history"])

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
        return checkpoint.save(self, path)

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
        return checkpoint.load(cls, path)

    def __repr__(self):
        return (f"MLP({list(self.sizes)}, hidden={self.hidden!r}, output={self.output!r}, "
                f"loss={self.loss!r}, dtype={self.dtype.name}, epoch={self.epoch})")
