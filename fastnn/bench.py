"""Benchmark cases, contenders and timing: one definition behind ``fastnn bench``
and the pytest-benchmark suite in ``benches/``.

A :class:`Case` is one operation at one shape (``linear_sigmoid`` at B=256, ...).
:func:`setup` turns (case, contender, dtype) into a :class:`Prepared`: a
zero-argument callable that does only the kernel call on inputs allocated and
validated beforehand (the numbagg pattern: allocation is not timed), plus, for
in-place operations, an untimed ``before_sample`` that restores fresh copies so
that every timed call does the same work.

Contenders
----------
* every registered implementation of the operation (``fastnn.kernels.IMPLS``,
  timed through the raw kernels): ``loop``, ``vectorized``, ``jit``, and any
  implementation registered later;
* comparators with the same mathematics where installed: ``scipy``
  (``scipy.special``), ``blas`` (the bare matrix products: the lower bound of
  the matrix-product-bound operations), ``torch`` (PyTorch CPU) and ``jax``
  (``jax.jit`` on the CPU);
* ``raw``/``api_out``/``api``: the API overhead rows (the jit kernel called
  directly, through ``fastnn.<op>(..., out=)``, and through ``fastnn.<op>(...)``
  which allocates its result).

Work model (:func:`work`): matrix-product-bound operations count floating-point
operations of their products (2·M·N·K per product); memory-bound ones count
the bytes that must be read and written once. The report divides them by the
time and compares with the ceilings measured at the start of the run.

The timing (:func:`measure`) runs in worker processes (``fastnn.bench_worker``),
one per contender, so that one library's threads never slow another's calls. The
exceptions (``INTERLEAVED_OPS``) time their contenders alternately in one process: the
API-overhead rows, and ``linear_sigmoid_vs_blas``, the jit ``linear_sigmoid`` beside a
bare BLAS product for the ratio the performance target names. Separate processes run
minutes apart on a shared host whose speed drifts by more than the 5% that ratio
allows; alternating batches share every slow spell (see :func:`measure_interleaved`
for what keeps one library's idle threads from being charged to the other).
"""
from __future__ import annotations

import dataclasses
import gc
import math
import os
import time
from typing import Callable, Optional

import numpy as np

#: A loop-implementation case runs only where one call is expected to finish
#: within this many seconds (``--loop-bound``).
LOOP_BOUND_S = 2.0

#: Hidden layer of the linear_sigmoid / linear_backward cases, and the network
#: of the training-step case.
D_IN, D_HID = 784, 128
NET = (784, 100, 10)
#: Samples of the epoch case (MNIST's training set).
EPOCH_N = 60_000
LR = 0.01
SGD_MOMENTUM = dict(momentum=0.9, weight_decay=1e-4, l1=1e-5)

#: Contenders that are not registered implementations, per operation.
EXTRAS = {
    "linear_sigmoid": ("scipy", "blas", "torch", "jax"),
    "softmax": ("scipy", "torch", "jax"),
    "softmax_cross_entropy_grad": ("torch", "jax"),
    "linear_backward": ("blas", "torch", "jax"),
    "sgd_update": ("torch", "jax"),
    "train_step": ("torch", "jax"),
}
API_CONTENDERS = ("raw", "api_out", "api")
#: Operations whose contenders run in one worker process, timed round-robin
#: (:func:`measure_interleaved`); the value names that worker.
INTERLEAVED_OPS = {"api_overhead": "api", "linear_sigmoid_vs_blas": "paired",
                   "sgd_vs_axpy": "paired"}
#: Their ``switch_warm_s`` (:func:`measure_interleaved`): the API rows run one kernel,
#: the paired rows two libraries with thread pools of their own.
SWITCH_WARM_S = {"api_overhead": 0.0, "linear_sigmoid_vs_blas": 0.01,
                 # one thread pool (Numba's) for both; fresh copies before every batch
                 "sgd_vs_axpy": 0.0}

#: The module each optional contender needs.
NEEDS = {"scipy": "scipy", "torch": "torch", "jax": "jax"}

#: One line per report section.
DESCRIPTIONS = {
    "linear_sigmoid": "H = σ(X Wᵀ + b), X (B, 784), W (128, 784)",
    "linear_sigmoid_vs_blas": "the jit linear_sigmoid and a bare BLAS X @ Wᵀ (NumPy's OpenBLAS), "
                              "shapes of linear_sigmoid, timed alternately in ONE process: the ratio "
                              "the performance target names, free of the host's drift between the "
                              "separate processes of the rows above",
    "softmax": "P = softmax(Z) over the last axis",
    "softmax_cross_entropy_grad": "loss and dZ = (softmax(Z) − Y)/N, labels y (N,)",
    "linear_backward": "dW = dZᵀX, db = Σ dZ, dX = (dZ W) ⊙ X ⊙ (1 − X)  "
                       "[linear_backward (no dX) + hidden_delta], shapes of linear_sigmoid",
    "sgd_update": "in-place SGD on n parameters (fresh copies every call)",
    "sgd_vs_axpy": "the jit sgd_update (plain) and the simplest in-place axpy w += a·g on all "
                   "the run's threads (the ceiling the performance target names: two loads and "
                   "one store per element), timed alternately in ONE process, fresh copies "
                   "before every batch: the fraction of the ceiling, free of the host's drift "
                   "between the ceiling measured at the start and the rows above",
    "train_step": "one training step (forward, backward, update) of a 784-100-10 "
                  "sigmoid/softmax network, plain SGD",
    "epoch": "one training epoch of fastnn.MLP (jit) on 60,000 MNIST-shaped samples (random "
             "data), 784-100-10, plain SGD, in order; the other contenders' epochs are their "
             "train_step rows × 60,000/B, too slow to time whole here",
    "api_overhead": "the jit kernel called raw vs through the validated API",
}
OP_ORDER = tuple(DESCRIPTIONS)


# --- cases ------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Case:
    """One operation at one shape.

    op: report section (a kernel name, or ``train_step``/``api_overhead``);
    variant: sub-family (``C=10``, ``momentum+wd+l1``, ...), '' if none;
    shape: compact shape text (also the pytest-benchmark group);
    size: the main size (batch rows, or parameters), for ``--sizes`` and the plot;
    params: the shape parameters; quick: part of ``--quick``.
    """
    op: str
    variant: str
    shape: str
    size: int
    params: tuple
    quick: bool = False

    @property
    def id(self) -> str:
        return f"{self.op}|{self.variant}|{self.shape}"

    @property
    def p(self) -> dict:
        return dict(self.params)

    def group(self, dtype: str) -> str:
        v = f"{self.variant} " if self.variant else ""
        return f"{self.op}|{v}{self.shape}|{dtype}"


def _fmt_n(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1000 and n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def all_cases() -> list:
    """Every case, in report order (the definition shared with ``benches/``)."""
    cs = []
    for B in (1, 32, 256, 4096):
        cs.append(Case("linear_sigmoid", "", f"X({B},{D_IN}) W({D_HID},{D_IN})", B,
                       (("B", B),), quick=B in (1, 256)))
    for B in (1, 32, 256, 4096):
        cs.append(Case("linear_sigmoid_vs_blas", "", f"X({B},{D_IN}) W({D_HID},{D_IN})", B,
                       (("B", B),), quick=B == 256))
    for op in ("softmax", "softmax_cross_entropy_grad"):
        for B in (32, 256, 4096, 65536):
            cs.append(Case(op, "C=10", f"Z({B},10)", B, (("shape", (B, 10)),), quick=B in (32, 4096)))
        for B in (256, 4096):
            cs.append(Case(op, "C=1000", f"Z({B},1000)", B, (("shape", (B, 1000)),)))
        if op == "softmax":
            shp = (16, 16, 128, 128)
            cs.append(Case(op, "4-D", "Z(16,16,128,128)", 16 * 16 * 128, (("shape", shp),)))
    for B in (1, 32, 256, 4096):
        cs.append(Case("linear_backward", "", f"dZ({B},{D_HID}) X({B},{D_IN}) W({D_HID},{D_IN})", B,
                       (("B", B),), quick=B in (1, 256)))
    for variant in ("plain", "momentum+wd+l1"):
        for n in (100_000, 1_000_000, 16_000_000):
            cs.append(Case("sgd_update", variant, f"n={_fmt_n(n)}", n, (("n", n),),
                           quick=n in (100_000, 1_000_000)))
    for n in (1_000_000, 16_000_000):
        cs.append(Case("sgd_vs_axpy", "plain", f"n={_fmt_n(n)}", n, (("n", n),),
                       quick=n == 1_000_000))
    for B in (1, 10, 64, 256):
        cs.append(Case("train_step", "", f"B={B} {NET[0]}-{NET[1]}-{NET[2]}", B, (("B", B),),
                       quick=B in (1, 64)))
    for B in (1, 10):
        cs.append(Case("epoch", "", f"batch {B}, {EPOCH_N:,} samples", B, (("B", B), ("N", EPOCH_N))))
    cs.append(Case("api_overhead", "softmax", "Z(1,10)", 1, (("op", "softmax"),), quick=True))
    # tiny inputs: the kernel takes about a microsecond, so the API's own cost shows
    cs.append(Case("api_overhead", "linear_sigmoid", "X(1,16) W(8,16)", 1,
                   (("op", "linear_sigmoid"),), quick=True))
    return cs


CASES = {c.id: c for c in all_cases()}


def parse_size(tok: str) -> Optional[int]:
    """``"256"`` -> 256, ``"100k"`` -> 100000, ``"16M"`` -> 16000000; None if not a size."""
    t = tok.strip()
    mult = {"k": 1000, "K": 1000, "m": 1_000_000, "M": 1_000_000}.get(t[-1:], 1)
    if mult != 1:
        t = t[:-1]
    try:
        return int(float(t) * mult)
    except ValueError:
        return None


def select(ops=None, sizes=None, quick=False) -> list:
    """The cases kept by ``--ops`` (names), ``--sizes`` (sizes like 256 or 1M, or shape
    texts like ``Z(256,10)``, or variants like ``C=1000``) and ``--quick``."""
    out = []
    for c in all_cases():
        if ops and c.op not in ops:
            continue
        if sizes:
            ok = False
            for tok in sizes:
                n = parse_size(tok)
                if (n is not None and n == c.size) or tok in (c.shape, c.variant):
                    ok = True
            if not ok:
                continue
        elif quick and not c.quick:
            continue
        out.append(c)
    return out


def contenders(case: Case) -> list:
    """Contenders of a case: registered implementations first, then comparators."""
    from .kernels import IMPL_NAMES, IMPLS
    if case.op == "api_overhead":
        return list(API_CONTENDERS)
    if case.op == "epoch":
        return ["mlp"]
    if case.op == "linear_sigmoid_vs_blas":
        return ["jit", "blas"]
    if case.op == "sgd_vs_axpy":
        return ["jit", "axpy"]
    if case.op == "linear_backward":
        needed = ("linear_backward", "hidden_delta")
    elif case.op == "train_step":
        needed = ("linear_sigmoid", "linear", "softmax_cross_entropy_grad", "linear_backward",
                  "hidden_delta", "sgd_update")
    else:
        needed = (case.op,)
    names = [n for n in IMPL_NAMES if all(n in IMPLS[o] for o in needed)]
    for n in IMPLS[needed[0]]:
        if n not in names and all(n in IMPLS[o] for o in needed):
            names.append(n)
    if case.op == "train_step" and "jit" in names:
        names.append("mlp")          # fastnn.MLP's compiled step (the jit training epoch)
    return names + list(EXTRAS.get(case.op, ()))


def process_group(contender: str, op: Optional[str] = None) -> str:
    """Worker process a contender runs in: one per contender, except for the operations
    of INTERLEAVED_OPS, whose contenders share one."""
    if op in INTERLEAVED_OPS:
        return INTERLEAVED_OPS[op]
    return "api" if contender in API_CONTENDERS else contender


# --- work model ---------------------------------------------------------------------------
def work(case: Case, dtype) -> dict:
    """What one call must do: ``{"kind": "flop", "amount": ...}`` for matrix-product-bound
    cases (2·M·N·K per product), ``{"kind": "bytes", ...}`` for memory-bound ones (the
    bytes read and written once), or ``{"kind": None}`` (API overhead)."""
    s = np.dtype(dtype).itemsize
    p = case.p
    if case.op in ("linear_sigmoid", "linear_sigmoid_vs_blas"):
        return {"kind": "flop", "amount": 2.0 * p["B"] * D_IN * D_HID}
    if case.op == "linear_backward":             # dW = dZᵀX and dZ W: two products
        return {"kind": "flop", "amount": 4.0 * p["B"] * D_IN * D_HID}
    if case.op == "train_step":
        B, (D, H, C) = p["B"], NET
        # forward X W1ᵀ, H W2ᵀ; backward dW2 = dZᵀH, dZ W2, dW1 = dHᵀX
        return {"kind": "flop", "amount": 2.0 * B * (2 * D * H + 3 * H * C)}
    if case.op == "epoch":
        (D, H, C) = NET
        return {"kind": "flop", "amount": 2.0 * p["N"] * (2 * D * H + 3 * H * C)}
    if case.op == "softmax":
        return {"kind": "bytes", "amount": 2.0 * math.prod(p["shape"]) * s}
    if case.op == "softmax_cross_entropy_grad":
        N, C = p["shape"]
        return {"kind": "bytes", "amount": 2.0 * N * C * s + 8.0 * N}   # Z in, dZ out, int64 labels
    if case.op in ("sgd_update", "sgd_vs_axpy"):
        n = p["n"]
        per = 3 if case.variant == "plain" else 5    # w, g in, w out (+ v in, v out)
        return {"kind": "bytes", "amount": float(per * n * s)}
    return {"kind": None, "amount": None}


# --- inputs -------------------------------------------------------------------------------
def make_inputs(case: Case, dtype, rng) -> dict:
    """The input arrays of a case (NumPy, C-contiguous, of ``dtype``)."""
    dt = np.dtype(dtype)
    p = case.p

    def normal(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(dt)

    def unif(*shape):
        return rng.random(shape).astype(dt)

    if case.op in ("linear_sigmoid", "linear_backward"):
        B = p["B"]
        d = {"X": unif(B, D_IN), "W": normal(D_HID, D_IN, scale=0.05), "b": normal(D_HID, scale=0.1)}
        if case.op == "linear_backward":
            d["dZ"] = normal(B, D_HID, scale=1.0 / max(B, 1))
        return d
    if case.op in ("softmax", "softmax_cross_entropy_grad"):
        shp = p["shape"]
        d = {"Z": normal(*shp, scale=3.0)}
        if case.op == "softmax_cross_entropy_grad":
            d["y"] = rng.integers(0, shp[-1], shp[0]).astype(np.int64)
        return d
    if case.op == "sgd_update":
        n = p["n"]
        return {"w": normal(n, scale=0.1), "g": normal(n, scale=0.01), "v": normal(n, scale=0.01)}
    if case.op in ("train_step", "epoch"):
        B, (D, H, C) = p.get("N", p["B"]), NET
        return {"X": unif(B, D), "y": rng.integers(0, C, B).astype(np.int64),
                "W1": normal(H, D, scale=D ** -0.5), "b1": np.zeros(H, dt),
                "W2": normal(C, H, scale=H ** -0.5), "b2": np.zeros(C, dt)}
    if case.op == "api_overhead":
        if p["op"] == "softmax":
            return {"Z": normal(1, 10)}
        return {"X": unif(1, 16), "W": normal(8, 16, scale=0.25), "b": normal(8, scale=0.1)}
    raise ValueError(f"unknown case op {case.op!r}")


# --- prepared calls -------------------------------------------------------------------------
class Prepared:
    """A zero-argument callable to time, and what the timer must know about it.

    fn: does one call (only the kernel call); before_sample(n): untimed, called before
    every timed batch of n calls (restores fresh copies for in-place operations);
    max_inner: the most calls one batch may hold (the number of fresh copies).
    """

    def __init__(self, fn: Callable, before_sample: Optional[Callable] = None,
                 max_inner: Optional[int] = None):
        self.fn = fn
        self.before_sample = before_sample
        self.max_inner = max_inner


class _Pool:
    """Fresh copies of the arrays an in-place call modifies: call k of a batch uses copy k,
    and every copy is restored (untimed) before each batch."""

    def __init__(self, originals: dict, max_copies: int = 64, max_bytes: int = 256 << 20):
        per = sum(a.nbytes for a in originals.values()) or 1
        self.n = max(1, min(max_copies, max_bytes // per))
        self.originals = originals
        self.copies = [{k: a.copy() for k, a in originals.items()} for _ in range(self.n)]
        self.i = 0

    def next(self) -> dict:
        c = self.copies[self.i]         # IndexError if a batch asks for more calls than copies
        self.i += 1
        return c

    def restore(self, n: int) -> None:
        for c in self.copies[:min(n, self.n)]:
            for k, a in self.originals.items():
                np.copyto(c[k], a)
        self.i = 0


def _sgd_args(case):
    if case.variant == "plain":
        return dict(momentum=0.0, weight_decay=0.0, l1=0.0)
    return dict(SGD_MOMENTUM)


def setup(case: Case, contender: str, dtype, rng=None) -> Prepared:
    """Allocate and validate everything for one timed call of ``contender`` on ``case``."""
    rng = np.random.default_rng(0) if rng is None else rng
    if case.op == "linear_sigmoid_vs_blas":     # the same calls as linear_sigmoid's rows
        case = dataclasses.replace(case, op="linear_sigmoid")
    if case.op == "sgd_vs_axpy":                # the same calls as sgd_update's plain rows
        case = dataclasses.replace(case, op="sgd_update", variant="plain")
    inp = make_inputs(case, dtype, rng)
    if contender == "axpy":
        return _setup_axpy(inp)
    if contender in ("torch", "jax"):
        return _SETUP_EXT[contender](case, inp)
    from .kernels import IMPLS
    if contender in API_CONTENDERS:
        return _setup_api(case, contender, inp)
    if contender in ("scipy", "blas"):
        return _setup_numpy_extra(case, contender, inp)
    if contender == "mlp":
        return _setup_mlp_step(case, inp)
    K = {op: IMPLS[op][contender] for op in IMPLS if contender in IMPLS[op]}
    return _setup_impl(case, K, inp)


def _setup_impl(case, K, inp) -> Prepared:
    op = case.op
    if op == "linear_sigmoid":
        X, W, b = inp["X"], inp["W"], inp["b"]
        out = np.empty((X.shape[0], W.shape[0]), X.dtype)
        k = K["linear_sigmoid"]
        return Prepared(lambda: k(X, W, b, out))
    if op == "softmax":
        Z2 = inp["Z"].reshape(-1, inp["Z"].shape[-1])
        out = np.empty_like(Z2)
        k = K["softmax"]
        return Prepared(lambda: k(Z2, out))
    if op == "softmax_cross_entropy_grad":
        Z, y = inp["Z"], inp["y"]
        dZ = np.empty_like(Z)
        k = K["softmax_cross_entropy_grad"]
        return Prepared(lambda: k(Z, y, dZ))
    if op == "linear_backward":
        dZ, X, W = inp["dZ"], inp["X"], inp["W"]
        dW, db, dX = np.empty_like(W), np.empty(W.shape[0], W.dtype), np.empty_like(X)
        lb, hd = K["linear_backward"], K["hidden_delta"]

        def f():
            lb(dZ, X, W, dW, db, None)
            hd(dZ, W, X, dX)                # X is the previous layer's sigmoid output
        return Prepared(f)
    if op == "sgd_update":
        a = _sgd_args(case)
        k = K["sgd_update"]
        g = inp["g"]
        mu, wd, l1 = a["momentum"], a["weight_decay"], a["l1"]
        orig = {"w": inp["w"]}
        if mu:
            orig["v"] = inp["v"]
        pool = _Pool(orig)
        empty = np.empty(0, g.dtype)

        def f():
            c = pool.next()
            k(c["w"], g, LR, mu, c.get("v", empty), wd, l1, False)
        prep = Prepared(f, pool.restore, pool.n)
        prep.pool = pool
        return prep
    if op == "train_step":
        return Prepared(_fastnn_train_step(K, inp))
    raise ValueError(f"{op}: no implementation setup")


def _fastnn_train_step(K, inp):
    """One SGD step of the 784-100-10 network through raw kernels and preallocated buffers."""
    X, y, W1, b1, W2, b2 = (inp[k] for k in ("X", "y", "W1", "b1", "W2", "b2"))
    dt = X.dtype
    B = X.shape[0]
    H = np.empty((B, W1.shape[0]), dt)
    Z = np.empty((B, W2.shape[0]), dt)
    dZ, dH = np.empty_like(Z), np.empty_like(H)
    dW1, db1, dW2, db2 = np.empty_like(W1), np.empty_like(b1), np.empty_like(W2), np.empty_like(b2)
    pairs = [(W1.reshape(-1), dW1.reshape(-1)), (b1, db1), (W2.reshape(-1), dW2.reshape(-1)), (b2, db2)]
    empty = np.empty(0, dt)
    ls, lin, sce = K["linear_sigmoid"], K["linear"], K["softmax_cross_entropy_grad"]
    lb, hd, sgd = K["linear_backward"], K["hidden_delta"], K["sgd_update"]

    def step():
        ls(X, W1, b1, H)                     # H = σ(X W1ᵀ + b1)
        lin(H, W2, b2, Z)                    # Z = H W2ᵀ + b2
        loss = sce(Z, y, dZ)                 # dZ = (P − Y)/B
        lb(dZ, H, W2, dW2, db2, None)        # dW2, db2
        hd(dZ, W2, H, dH)                    # dH = (dZ W2) ⊙ H ⊙ (1 − H)
        lb(dH, X, W1, dW1, db1, None)        # dW1, db1 (no dX: X is the input)
        for w, g in pairs:
            sgd(w, g, LR, 0.0, empty, 0.0, 0.0, False)
        return loss
    return step


def _setup_mlp_step(case, inp) -> Prepared:
    """One step of ``fastnn.MLP`` with ``impl="jit"``: its compiled epoch run over exactly
    one mini-batch of B rows (no Python between the kernels, preallocated buffers), the
    same parameters and plain SGD as the other contenders. For the epoch case, the same
    compiled epoch over all N rows in mini-batches of B, in order (what ``MLP.fit`` runs
    per epoch, less the shuffle)."""
    from .model import MLP
    X, y = inp["X"], inp["y"]
    B = case.p["B"]             # the batch: all of X (train_step) or a part (epoch)
    model = MLP([X.shape[1], inp["W1"].shape[0], inp["W2"].shape[0]], dtype=X.dtype, seed=0,
                impl="jit")
    model.set_parameters(weights=[inp["W1"], inp["W2"]], biases=[inp["b1"], inp["b2"]])
    prep = Prepared(model.compiled_epoch(X, y, batch_size=B, lr=LR))
    prep.model = model                  # the model the timed calls train (for the tests)
    return prep


def _setup_numpy_extra(case, contender, inp) -> Prepared:
    op = case.op
    if contender == "blas" and op == "linear_sigmoid":
        X, W = inp["X"], inp["W"]
        out = np.empty((X.shape[0], W.shape[0]), X.dtype)
        WT = W.T
        return Prepared(lambda: np.matmul(X, WT, out=out))
    if contender == "blas" and op == "linear_backward":
        dZ, X, W = inp["dZ"], inp["X"], inp["W"]
        dW, dX, dZT = np.empty_like(W), np.empty_like(X), dZ.T

        def f():
            np.matmul(dZT, X, out=dW)
            np.matmul(dZ, W, out=dX)
        return Prepared(f)
    if contender == "scipy" and op == "linear_sigmoid":
        from scipy.special import expit
        X, W, b = inp["X"], inp["W"], inp["b"]
        out = np.empty((X.shape[0], W.shape[0]), X.dtype)
        WT = W.T

        def f():
            np.matmul(X, WT, out=out)
            np.add(out, b, out=out)
            expit(out, out=out)
        return Prepared(f)
    if contender == "scipy" and op == "softmax":
        from scipy.special import softmax
        Z = inp["Z"]
        return Prepared(lambda: softmax(Z, axis=-1))
    raise ValueError(f"{op}: no {contender} contender")


def _setup_api(case, contender, inp) -> Prepared:
    import fastnn
    from .kernels import IMPLS
    which = case.p["op"]
    if which == "softmax":
        Z = inp["Z"]
        out = np.empty_like(Z)
        raw = IMPLS["softmax"]["jit"]
        fns = {"raw": lambda: raw(Z, out),
               "api_out": lambda: fastnn.softmax(Z, out=out, impl="jit"),
               "api": lambda: fastnn.softmax(Z, impl="jit")}
    else:
        X, W, b = inp["X"], inp["W"], inp["b"]
        out = np.empty((1, W.shape[0]), X.dtype)
        raw = IMPLS["linear_sigmoid"]["jit"]
        fns = {"raw": lambda: raw(X, W, b, out),
               "api_out": lambda: fastnn.linear_sigmoid(X, W, b, out=out, impl="jit"),
               "api": lambda: fastnn.linear_sigmoid(X, W, b, impl="jit")}
    return Prepared(fns[contender])


# --- PyTorch -------------------------------------------------------------------------------
def _setup_torch(case, inp) -> Prepared:
    import torch
    import torch.nn.functional as F
    op = case.op
    T = {k: torch.from_numpy(a) for k, a in inp.items()}       # shares memory, no copy
    if op == "linear_sigmoid":
        X, W, b = T["X"], T["W"], T["b"]
        return Prepared(lambda: torch.sigmoid_(F.linear(X, W, b)))
    if op == "softmax":
        Z = T["Z"]
        out = torch.empty_like(Z)
        return Prepared(lambda: torch.softmax(Z, -1, out=out))
    if op == "softmax_cross_entropy_grad":
        Z = T["Z"].clone().requires_grad_(True)
        y = T["y"]

        def f():
            loss = F.cross_entropy(Z, y)
            (g,) = torch.autograd.grad(loss, Z)
            return loss, g
        return Prepared(f)
    if op == "linear_backward":
        dZ, X, W = T["dZ"], T["X"], T["W"]
        dW, db, dX = torch.empty_like(W), torch.empty(W.shape[0], dtype=W.dtype), torch.empty_like(X)
        dZT = dZ.t()

        def f():
            torch.mm(dZT, X, out=dW)
            torch.sum(dZ, 0, out=db)
            torch.mm(dZ, W, out=dX)
            dX.mul_(X).mul_(1 - X)
        return Prepared(f)
    if op == "sgd_update":
        a = _sgd_args(case)
        orig = {"w": inp["w"]}
        if a["momentum"]:
            orig["v"] = inp["v"]
        pool = _Pool(orig)
        g = T["g"]
        thr = LR * a["l1"]
        opts = []
        for c in pool.copies:
            w = torch.from_numpy(c["w"]).requires_grad_(True)
            w.grad = g
            opt = torch.optim.SGD([w], lr=LR, momentum=a["momentum"], weight_decay=a["weight_decay"])
            if a["momentum"]:
                opt.state[w]["momentum_buffer"] = torch.from_numpy(c["v"])
            opts.append((w, opt))
        it = [0]

        def f():
            w, opt = opts[it[0]]
            it[0] += 1
            opt.step()
            if thr:
                with torch.no_grad():
                    w.copy_(F.softshrink(w, thr))     # sign(w)·max(|w| − lr·l1, 0)

        def before(n):
            pool.restore(n)
            it[0] = 0
        return Prepared(f, before, pool.n)
    if op == "train_step":
        D, H, C = NET
        model = torch.nn.Sequential(torch.nn.Linear(D, H), torch.nn.Sigmoid(), torch.nn.Linear(H, C))
        model = model.to(T["X"].dtype)
        with torch.no_grad():
            for layer, (w, b) in zip((model[0], model[2]), (("W1", "b1"), ("W2", "b2"))):
                layer.weight.copy_(T[w])
                layer.bias.copy_(T[b])
        opt = torch.optim.SGD(model.parameters(), lr=LR)
        X, y = T["X"], T["y"]

        def f():
            opt.zero_grad()
            loss = F.cross_entropy(model(X), y)
            loss.backward()
            opt.step()
            return loss
        return Prepared(f)
    raise ValueError(f"{op}: no torch contender")


# --- JAX -----------------------------------------------------------------------------------
def _setup_jax(case, inp) -> Prepared:
    import jax
    import jax.numpy as jnp
    op = case.op
    J = {k: jnp.asarray(a) for k, a in inp.items()}
    block = jax.block_until_ready

    def logits_loss(Z, y):
        return jnp.mean(jax.nn.logsumexp(Z, axis=1) - jnp.take_along_axis(Z, y[:, None], axis=1)[:, 0])

    if op == "linear_sigmoid":
        f = jax.jit(lambda X, W, b: jax.nn.sigmoid(X @ W.T + b))
        X, W, b = J["X"], J["W"], J["b"]
        return Prepared(lambda: block(f(X, W, b)))
    if op == "softmax":
        f = jax.jit(lambda Z: jax.nn.softmax(Z, axis=-1))
        Z = J["Z"]
        return Prepared(lambda: block(f(Z)))
    if op == "softmax_cross_entropy_grad":
        f = jax.jit(jax.value_and_grad(logits_loss))
        Z, y = J["Z"], J["y"]
        return Prepared(lambda: block(f(Z, y)))
    if op == "linear_backward":
        f = jax.jit(lambda dZ, X, W: (dZ.T @ X, dZ.sum(0), (dZ @ W) * X * (1 - X)))
        dZ, X, W = J["dZ"], J["X"], J["W"]
        return Prepared(lambda: block(f(dZ, X, W)))
    if op == "sgd_update":
        a = _sgd_args(case)
        mu, wd, thr = a["momentum"], a["weight_decay"], LR * a["l1"]

        def upd(w, g, v):
            g = g + wd * w
            v = mu * v + g
            w = w - LR * v
            w = jnp.sign(w) * jnp.maximum(jnp.abs(w) - thr, 0)
            return w, v
        w, g, v = J["w"], J["g"], J["v"]
        if not mu:
            f = jax.jit(lambda w, g: w - LR * g)
            return Prepared(lambda: block(f(w, g)))
        f = jax.jit(upd)
        return Prepared(lambda: block(f(w, g, v)))
    if op == "train_step":
        def loss(p, X, y):
            W1, b1, W2, b2 = p
            H = jax.nn.sigmoid(X @ W1.T + b1)
            return logits_loss(H @ W2.T + b2, y)

        @jax.jit
        def step(p, X, y):
            val, g = jax.value_and_grad(loss)(p, X, y)
            return tuple(w - LR * gw for w, gw in zip(p, g)), val
        state = [tuple(J[k] for k in ("W1", "b1", "W2", "b2"))]
        X, y = J["X"], J["y"]

        def f():
            state[0], val = step(state[0], X, y)
            block((state[0], val))
        return Prepared(f)
    raise ValueError(f"{op}: no jax contender")


_SETUP_EXT = {"torch": _setup_torch, "jax": _setup_jax}


# --- timing --------------------------------------------------------------------------------
#: Timing settings: each sample is a batch of calls lasting at least target_s; at least
#: min_samples samples, at most max_samples, and no new sample once budget_s is spent.
FULL = dict(target_s=1e-3, min_samples=5, max_samples=25, budget_s=0.6, loop_min_samples=3)
QUICK = dict(target_s=1e-3, min_samples=3, max_samples=7, budget_s=0.12, loop_min_samples=1)


#: Passes of a full run (``fastnn bench --passes``): the contenders' worker processes run
#: in turn, pass after pass, each pass with a share of the samples and of the time budget
#: (:func:`pass_settings`), and the samples of all passes are pooled (:func:`pool_passes`).
#: A slow spell of a shared machine then falls on every contender alike rather than on
#: whichever one ran during it. The loop implementation runs in the first pass only.
FULL_PASSES = 3


def pass_settings(settings: dict, passes: int) -> dict:
    """The timing settings of one of ``passes`` passes: together they take about the
    samples and the time budget of ``settings``, and at least 2 samples each."""
    s = dict(settings)
    if passes > 1:
        s["min_samples"] = max(2, math.ceil(settings["min_samples"] / passes))
        s["max_samples"] = max(s["min_samples"], math.ceil(settings["max_samples"] / passes))
        s["budget_s"] = settings["budget_s"] / passes
    return s


def pool_passes(passes: list) -> list:
    """Merge the result lists of several passes: one result per (case, contender), in
    first-seen order. Where every pass measured it ("ok"), the samples are pooled and the
    summary recomputed over all of them (``passes``, ``pass_medians_s`` and
    ``inner_per_pass`` say how each pass went); otherwise the first failed pass's result
    is kept, so that an error is never hidden by a later success."""
    groups, order = {}, []
    for res in passes:
        for r in res:
            k = (r["case"], r["contender"])
            if k not in groups:
                groups[k] = []
                order.append(k)
            groups[k].append(r)
    out = []
    for k in order:
        rs = groups[k]
        if len(rs) == 1:
            out.append(rs[0])
            continue
        bad = [r for r in rs if r.get("status") != "ok"]
        r = dict(bad[0] if bad else rs[0])
        r["passes"] = len(rs)
        if not bad:
            r["samples_s"] = [x for q in rs for x in q["samples_s"]]
            r["inner_per_pass"] = [q["inner"] for q in rs]
            r["pass_medians_s"] = [q["median_s"] for q in rs]
            r["wall_s"] = sum(q.get("wall_s", 0.0) for q in rs)
            r.update(summarize(r["samples_s"]))
        out.append(r)
    return out


def _batch(prep: Prepared, n: int) -> float:
    if prep.before_sample is not None:
        prep.before_sample(n)
    fn = prep.fn
    t0 = time.perf_counter_ns()
    for _ in range(n):
        fn()
    return (time.perf_counter_ns() - t0) * 1e-9


def measure(prep: Prepared, settings: dict = FULL, bound_s: Optional[float] = None) -> dict:
    """Time ``prep.fn``: a first call (compiles, warms caches; its time is kept), a second
    call to size the batches, then samples of n calls each. Returns seconds per call.

    ``bound_s``: if the first call takes longer, stop there with status "not run (too slow)".
    """
    gc_was = gc.isenabled()
    first = _batch(prep, 1)
    if bound_s is not None and first > bound_s:
        return {"status": "not run (too slow)", "first_call_s": first, "bound_s": bound_s}
    slow = bound_s is not None and first > 0.05
    est = first if slow else _batch(prep, 1)
    n = max(1, math.ceil(settings["target_s"] / max(est, 1e-9)))
    if prep.max_inner:
        n = min(n, prep.max_inner)
    min_s = settings["loop_min_samples"] if slow else settings["min_samples"]
    samples = []
    t_start = time.perf_counter()
    try:
        gc.disable()
        while len(samples) < settings["max_samples"]:
            samples.append(_batch(prep, n) / n)
            if len(samples) >= min_s and time.perf_counter() - t_start > settings["budget_s"]:
                break
    finally:
        if gc_was:
            gc.enable()
    return {"status": "ok", "first_call_s": first, "inner": n, "samples_s": samples,
            **summarize(samples)}


def measure_interleaved(preps: dict, settings: dict = FULL, switch_warm_s: float = 0.0) -> dict:
    """Time several contenders of one case round-robin (one batch of each in turn), so
    that a slow spell of the machine hits all of them alike: for differences of a
    microsecond between calls of a few microseconds (the API overhead), and for ratios
    between libraries (``linear_sigmoid_vs_blas``). Returns {contender: the same fields
    as :func:`measure`}.

    ``switch_warm_s`` > 0: before each timed batch, untimed calls of the contender for
    at least that long. Idle threads of the previous contender may still be spinning:
    GNU OpenMP's, under Numba's parallel kernels, spin for milliseconds after each
    region by default, and a 2-thread OpenBLAS product started right after one took
    twice as long here. The warm-up calls absorb that, and leave this contender's own
    threads awake, as in a run of its calls alone. (An idle pause instead let the
    virtual CPUs go idle: both contenders' next calls then took up to twice as long.)"""
    if switch_warm_s > 0 and any(p.before_sample is not None for p in preps.values()):
        raise ValueError("switch_warm_s: the warm-up calls need contenders without before_sample")
    firsts = {k: _batch(p, 1) for k, p in preps.items()}
    ns = {}
    for k, p in preps.items():
        est = _batch(p, 1)
        ns[k] = max(1, math.ceil(settings["target_s"] / max(est, 1e-9)))
        if p.max_inner:
            ns[k] = min(ns[k], p.max_inner)
    samples = {k: [] for k in preps}
    gc_was = gc.isenabled()
    t_start = time.perf_counter()
    try:
        gc.disable()
        while len(samples[next(iter(preps))]) < settings["max_samples"]:
            for k, p in preps.items():
                if switch_warm_s > 0:
                    t_warm = time.perf_counter()
                    while True:
                        p.fn()
                        if time.perf_counter() - t_warm >= switch_warm_s:
                            break
                samples[k].append(_batch(p, ns[k]) / ns[k])
            if (len(samples[next(iter(preps))]) >= settings["min_samples"]
                    and time.perf_counter() - t_start > settings["budget_s"] * len(preps)):
                break
    finally:
        if gc_was:
            gc.enable()
    return {k: {"status": "ok", "first_call_s": firsts[k], "inner": ns[k], "samples_s": samples[k],
                "interleaved": True, **summarize(samples[k])} for k in preps}


def summarize(samples) -> dict:
    a = np.asarray(samples, float)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {"median_s": float(med), "q1_s": float(q1), "q3_s": float(q3),
            "min_s": float(a.min()), "max_s": float(a.max())}


class LoopGate:
    """Decides whether a slow contender (the loop implementation) runs a case: one call is
    expected within ``bound_s`` seconds. The time of one call of the smallest case of the
    same family (op, variant), measured first as a probe, scaled by the work, decides; a
    measured case refines the rate. The estimate only decides; it is never reported."""

    def __init__(self, bound_s: float, dtype, seed: int = 0):
        self.bound_s, self.dtype, self.seed = bound_s, dtype, seed
        self.rate = {}                          # (op, variant) -> seconds per unit of work

    def units(self, case: Case) -> float:
        w = work(case, self.dtype)["amount"]
        return w if w else float(case.size)

    def estimate(self, case: Case, contender: str) -> float:
        key = (case.op, case.variant)
        if key not in self.rate:
            small = min((c for c in all_cases() if (c.op, c.variant) == key), key=self.units)
            prep = setup(small, contender, self.dtype, np.random.default_rng(self.seed))
            self.rate[key] = _batch(prep, 1) / self.units(small)
        return self.rate[key] * self.units(case)

    def allows(self, case: Case, contender: str) -> bool:
        return self.estimate(case, contender) <= self.bound_s

    def observed(self, case: Case, seconds: float) -> None:
        self.rate[(case.op, case.variant)] = seconds / self.units(case)


def run_tasks(tasks, dtype, settings=FULL, loop_bound=LOOP_BOUND_S, seed=0, progress=None) -> list:
    """Time (case, contender) pairs in this process, smallest cases first. The loop
    implementation runs a case only where :class:`LoopGate` expects one call within
    ``loop_bound`` seconds, and stops after its first call if that took longer."""
    results = []
    # the contenders of an INTERLEAVED_OPS case are timed together, round-robin
    together = {}
    for case, contender in tasks:
        if case.op in INTERLEAVED_OPS:
            together.setdefault(case, []).append(contender)
    for case, contenders in together.items():
        t0 = time.perf_counter()
        try:
            preps = {c: setup(case, c, dtype, np.random.default_rng(seed)) for c in contenders}
            got = measure_interleaved(preps, settings, SWITCH_WARM_S[case.op])
        except Exception as exc:  # reported, not fatal
            got = {c: {"status": f"error: {type(exc).__name__}: {exc}"} for c in contenders}
        for c in contenders:
            r = {"case": case.id, "op": case.op, "variant": case.variant, "shape": case.shape,
                 "size": case.size, "contender": c, "dtype": np.dtype(dtype).name,
                 "work": work(case, dtype), **got[c], "wall_s": time.perf_counter() - t0}
            results.append(r)
            if progress:
                progress(r)
    tasks = [t for t in tasks if t[0].op not in INTERLEAVED_OPS]
    gate = LoopGate(loop_bound, dtype, seed)
    key = lambda t: (t[1], OP_ORDER.index(t[0].op), t[0].variant, gate.units(t[0]))  # noqa: E731
    for case, contender in sorted(tasks, key=key):
        r = {"case": case.id, "op": case.op, "variant": case.variant, "shape": case.shape,
             "size": case.size, "contender": contender, "dtype": np.dtype(dtype).name,
             "work": work(case, dtype)}
        t0 = time.perf_counter()
        try:
            bound = loop_bound if contender == "loop" else None
            if bound is not None and not gate.allows(case, contender):
                r.update(status="not run (too slow)", bound_s=bound)
                results.append(r)
                continue
            prep = setup(case, contender, dtype, np.random.default_rng(seed))
            res = measure(prep, settings, bound)
            if bound is not None:
                gate.observed(case, res["first_call_s"])
            r.update(res)
            del prep
        except ImportError as exc:
            r.update(status="not installed", error=str(exc))
        except Exception as exc:  # a failing contender is reported, not fatal
            r.update(status=f"error: {type(exc).__name__}: {exc}")
        r["wall_s"] = time.perf_counter() - t0
        results.append(r)
        if progress:
            progress(r)
    return results


def _setup_axpy(inp) -> Prepared:
    """The ceiling of the plain SGD rows: ``w += (−LR)·g`` as the simplest ``prange`` loop
    (two loads and one store per element, on all of Numba's threads), on the same fresh
    copies of w as sgd_update's rows."""
    g = inp["g"]
    a = g.dtype.type(-LR)
    pool = _Pool({"w": inp["w"]})

    def f():
        _parallel_axpy(pool.next()["w"], g, a)
    prep = Prepared(f, pool.restore, pool.n)
    prep.pool = pool
    return prep


def _parallel_axpy(w, g, a):
    from numba import prange

    from .kernels._config import pjit

    global _parallel_axpy_kernel
    if _parallel_axpy_kernel is None:
        def axpy(w, g, a):
            for i in prange(w.shape[0]):
                w[i] += a * g[i]
        _parallel_axpy_kernel = pjit(axpy)
    _parallel_axpy_kernel(w, g, a)


_parallel_axpy_kernel = None


# --- ceilings and cold start (run in their own worker processes) ----------------------------------
def _parallel_copy(src, dst):
    from numba import prange

    from .kernels._config import pjit

    global _parallel_copy_kernel
    if _parallel_copy_kernel is None:
        def copy(a, b):
            for i in prange(a.shape[0]):
                b[i] = a[i]
        _parallel_copy_kernel = pjit(copy)
    _parallel_copy_kernel(src, dst)


_parallel_copy_kernel = None


def measure_ceilings(dtype="float32", copy_mib=512, n_gemm=1024) -> dict:
    """This machine's ceilings: GEMM GFLOP/s through NumPy's BLAS (n³ products, float32 and
    the run's dtype) and copy GB/s (between two arrays of ``copy_mib`` MiB, far beyond the last-level
    cache; bytes read + bytes written; the faster of np.copyto and a copy on all the
    run's threads). Best and median of samples."""
    rng = np.random.default_rng(0)
    out = {}
    for dt in sorted({"float32", np.dtype(dtype).name}):
        A = rng.standard_normal((n_gemm, n_gemm)).astype(dt)
        Bm = rng.standard_normal((n_gemm, n_gemm)).astype(dt)
        C = np.empty_like(A)
        np.matmul(A, Bm, out=C)
        ts = []
        for _ in range(7):
            t0 = time.perf_counter_ns()
            np.matmul(A, Bm, out=C)
            ts.append((time.perf_counter_ns() - t0) * 1e-9)
        fl = 2.0 * n_gemm ** 3
        out[f"gemm_{dt}_gflops"] = fl / min(ts) / 1e9
        out[f"gemm_{dt}_gflops_median"] = fl / float(np.median(ts)) / 1e9
    n = (copy_mib << 20) // 8
    src = np.ones(n, np.float64)
    dst = np.zeros(n, np.float64)
    # np.copyto runs on one core; a prange copy on all the run's threads (a streaming
    # kernel with one load and one store per element): the ceiling is the faster one
    copies = {"numpy": lambda: np.copyto(dst, src), "threads": lambda: _parallel_copy(src, dst)}
    best = {}
    for name, fn in copies.items():
        fn()
        ts = []
        for _ in range(5):
            t0 = time.perf_counter_ns()
            fn()
            ts.append((time.perf_counter_ns() - t0) * 1e-9)
        best[name] = ts
    name = min(best, key=lambda k: min(best[k]))
    ts = best[name]
    out["copy_gbs"] = 2.0 * src.nbytes / min(ts) / 1e9
    out["copy_gbs_median"] = 2.0 * src.nbytes / float(np.median(ts)) / 1e9
    out["copy_by"] = name
    out["copy_gbs_numpy"] = 2.0 * src.nbytes / min(best["numpy"]) / 1e9
    out["copy_mib"] = copy_mib
    out["gemm_n"] = n_gemm
    return out


def coldstart_args(op: str, dtype):
    """Small arguments for one call of every registered operation (for the cold-start
    timing of its jit kernel)."""
    dt = np.dtype(dtype)
    rng = np.random.default_rng(0)
    X = rng.random((8, 16)).astype(dt)
    W = rng.standard_normal((4, 16)).astype(dt)
    b = np.zeros(4, dt)
    Z = rng.standard_normal((8, 4)).astype(dt)
    y = rng.integers(0, 4, 8).astype(np.int64)
    Y01 = rng.random((8, 4)).astype(dt)
    v = rng.standard_normal(32).astype(dt)
    table = {
        "linear": (X, W, b, np.empty((8, 4), dt)),
        "linear_sigmoid": (X, W, b, np.empty((8, 4), dt)),
        "sigmoid": (v, np.empty_like(v)),
        "sigmoid_backward": (v, 1 / (1 + np.exp(-v)), np.empty_like(v)),
        "softmax": (Z, np.empty_like(Z)),
        "log_softmax": (Z, np.empty_like(Z)),
        "softmax_cross_entropy": (Z, y),
        "softmax_cross_entropy_grad": (Z, y, np.empty_like(Z)),
        "sigmoid_bce_grad": (Z, Y01, np.empty_like(Z)),
        "sigmoid_mse_grad": (Z, Y01, np.empty_like(Z)),
        "linear_backward": (Z, X, W, np.empty_like(W), np.empty(4, dt), np.empty_like(X)),
        "hidden_delta": (Z, W, X, np.empty_like(X)),
        "sgd_update": (v.copy(), v, 0.1, 0.9, np.zeros_like(v), 1e-4, 1e-5, False),
    }
    if op in ("perceptron_epoch", "adaline_epoch"):
        from .kernels import perceptron
        return perceptron.make_inputs(op, dt)
    return table[op]
