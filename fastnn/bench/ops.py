"""The operations of ``fastnn bench``: one :class:`Op` entry per operation (one report
section) holds all that the benchmark knows about it: its description, its cases, its
work model, its inputs, and how each contender's call is prepared.

Adding an operation: write its section below (cases, work, inputs, setups) ending in
one ``_add(Op(...))``; the case list, the contenders, the report's sections and
descriptions all come from the entries, in the order they are added.

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
"""
from __future__ import annotations

import dataclasses
import math
from typing import Callable, Optional

import numpy as np

#: Hidden layer of the linear_sigmoid / linear_backward cases, and the network
#: of the training-step case.
D_IN, D_HID = 784, 128
NET = (784, 100, 10)
#: Samples of the epoch case (MNIST's training set).
EPOCH_N = 60_000
LR = 0.01
SGD_MOMENTUM = dict(momentum=0.9, weight_decay=1e-4, l1=1e-5)

API_CONTENDERS = ("raw", "api_out", "api")
#: The comparators an operation may have (:attr:`Op.extras`), in report order.
COMPARATORS = ("scipy", "blas", "torch", "jax")
#: The module each optional contender needs.
NEEDS = {"scipy": "scipy", "torch": "torch", "jax": "jax"}


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


# --- operations -------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Op:
    """Everything the benchmark knows about one operation (one report section).

    name: the report section (a kernel name, or ``train_step``, ``epoch``, ...);
    description: its line in the report;
    cases: ``() -> [Case, ...]``, its cases in report order;
    work: ``(case, itemsize) -> {"kind": "flop" | "bytes", "amount": ...}``, what one call
        must do (:func:`work`); None: not counted (``{"kind": None}``);
    make_inputs: ``(case, dtype, rng) -> {name: array}``, the inputs of a case;
    setup_impl: ``(case, K, inputs) -> Prepared``, the call of a registered implementation,
        K being that implementation's kernels ({kernel name: kernel});
    setup_scipy, setup_blas, setup_torch, setup_jax: ``(case, inputs) -> Prepared``, the
        call of that comparator; None: not a contender here (:attr:`extras`);
    kernels: the registered kernels an implementation needs to be a contender (default:
        the one named like the operation);
    with_jit: contenders added after the implementations where ``jit`` is one of them;
    fixed: the contenders, where they are none of the above (set up by name in
        :func:`setup`: ``mlp``, ``axpy``, the API rows);
    same_calls_as: ``case -> case``: the case whose calls these rows time (the paired
        rows time another operation's calls side by side);
    interleaved: the worker process that times the contenders round-robin, in one process
        (:data:`INTERLEAVED_OPS`), after ``switch_warm_s`` of untimed calls each
        (:func:`~fastnn.bench.timing.measure_interleaved`); None: a process per contender;
    xlabel: the plot's x axis (None: "size"); sizes: False where the cases are different
        workloads, not sizes of one (bars, not a line over sizes, in the plot).
    """
    name: str
    description: str
    cases: Callable[[], list]
    work: Optional[Callable] = None
    make_inputs: Optional[Callable] = None
    setup_impl: Optional[Callable] = None
    setup_scipy: Optional[Callable] = None
    setup_blas: Optional[Callable] = None
    setup_torch: Optional[Callable] = None
    setup_jax: Optional[Callable] = None
    kernels: Optional[tuple] = None
    with_jit: tuple = ()
    fixed: Optional[tuple] = None
    same_calls_as: Optional[Callable] = None
    interleaved: Optional[str] = None
    switch_warm_s: float = 0.0
    xlabel: Optional[str] = None
    sizes: bool = True

    @property
    def extras(self) -> tuple:
        """Contenders that are not registered implementations: the comparators set up here."""
        return tuple(k for k in COMPARATORS if getattr(self, f"setup_{k}") is not None)


#: Every operation, by name, in report order (:func:`_add`).
OPS: dict = {}


def _add(op: Op) -> Op:
    OPS[op.name] = op
    return op


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


def _draws(dt, rng):
    """``normal(*shape, scale=1.0)`` and ``unif(*shape)``: random arrays of dtype ``dt``."""
    def normal(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(dt)

    def unif(*shape):
        return rng.random(shape).astype(dt)
    return normal, unif


def _torch_tensors(inp) -> dict:
    import torch
    return {k: torch.from_numpy(a) for k, a in inp.items()}       # shares memory, no copy


def _jax_arrays(inp) -> dict:
    import jax.numpy as jnp
    return {k: jnp.asarray(a) for k, a in inp.items()}


def _jax_logits_loss(Z, y):
    """The mean softmax cross-entropy of logits Z (N, C) and labels y (N,), in JAX."""
    import jax
    import jax.numpy as jnp
    return jnp.mean(jax.nn.logsumexp(Z, axis=1) - jnp.take_along_axis(Z, y[:, None], axis=1)[:, 0])


# --- linear_sigmoid ---------------------------------------------------------------------
def _linear_sigmoid_cases() -> list:
    cs = []
    for B in (1, 32, 256, 4096):
        cs.append(Case("linear_sigmoid", "", f"X({B},{D_IN}) W({D_HID},{D_IN})", B,
                       (("B", B),), quick=B in (1, 256)))
    return cs


def _linear_sigmoid_work(case, s) -> dict:
    p = case.p
    return {"kind": "flop", "amount": 2.0 * p["B"] * D_IN * D_HID}


def _linear_inputs(case, dt, rng) -> dict:
    """The inputs of linear_sigmoid (and of linear_backward, with dZ)."""
    normal, unif = _draws(dt, rng)
    p = case.p
    B = p["B"]
    d = {"X": unif(B, D_IN), "W": normal(D_HID, D_IN, scale=0.05), "b": normal(D_HID, scale=0.1)}
    if case.op == "linear_backward":
        d["dZ"] = normal(B, D_HID, scale=1.0 / max(B, 1))
    return d


def _linear_sigmoid_impl(case, K, inp) -> Prepared:
    X, W, b = inp["X"], inp["W"], inp["b"]
    out = np.empty((X.shape[0], W.shape[0]), X.dtype)
    k = K["linear_sigmoid"]
    return Prepared(lambda: k(X, W, b, out))


def _linear_sigmoid_scipy(case, inp) -> Prepared:
    from scipy.special import expit
    X, W, b = inp["X"], inp["W"], inp["b"]
    out = np.empty((X.shape[0], W.shape[0]), X.dtype)
    WT = W.T

    def f():
        np.matmul(X, WT, out=out)
        np.add(out, b, out=out)
        expit(out, out=out)
    return Prepared(f)


def _linear_sigmoid_blas(case, inp) -> Prepared:
    X, W = inp["X"], inp["W"]
    out = np.empty((X.shape[0], W.shape[0]), X.dtype)
    WT = W.T
    return Prepared(lambda: np.matmul(X, WT, out=out))


def _linear_sigmoid_torch(case, inp) -> Prepared:
    import torch
    import torch.nn.functional as F
    T = _torch_tensors(inp)
    X, W, b = T["X"], T["W"], T["b"]
    return Prepared(lambda: torch.sigmoid_(F.linear(X, W, b)))


def _linear_sigmoid_jax(case, inp) -> Prepared:
    import jax
    J = _jax_arrays(inp)
    block = jax.block_until_ready
    f = jax.jit(lambda X, W, b: jax.nn.sigmoid(X @ W.T + b))
    X, W, b = J["X"], J["W"], J["b"]
    return Prepared(lambda: block(f(X, W, b)))


_add(Op(
    "linear_sigmoid", "H = σ(X Wᵀ + b), X (B, 784), W (128, 784)",
    cases=_linear_sigmoid_cases, work=_linear_sigmoid_work, make_inputs=_linear_inputs,
    setup_impl=_linear_sigmoid_impl, setup_scipy=_linear_sigmoid_scipy,
    setup_blas=_linear_sigmoid_blas, setup_torch=_linear_sigmoid_torch,
    setup_jax=_linear_sigmoid_jax, xlabel="batch B"))


# --- linear_sigmoid_vs_blas -------------------------------------------------------------
def _linear_sigmoid_vs_blas_cases() -> list:
    cs = []
    for B in (1, 32, 256, 4096):
        cs.append(Case("linear_sigmoid_vs_blas", "", f"X({B},{D_IN}) W({D_HID},{D_IN})", B,
                       (("B", B),), quick=B == 256))
    return cs


_add(Op(
    "linear_sigmoid_vs_blas",
    "the jit linear_sigmoid and a bare BLAS X @ Wᵀ (NumPy's OpenBLAS), "
    "shapes of linear_sigmoid, timed alternately in ONE process: the ratio "
    "the performance target names, free of the host's drift between the "
    "separate processes of the rows above",
    cases=_linear_sigmoid_vs_blas_cases, work=_linear_sigmoid_work, fixed=("jit", "blas"),
    # the same calls as linear_sigmoid's rows
    same_calls_as=lambda case: dataclasses.replace(case, op="linear_sigmoid"),
    # two libraries with thread pools of their own
    interleaved="paired", switch_warm_s=0.01))


# --- softmax and softmax_cross_entropy_grad -----------------------------------------------
def _logits_cases(op) -> list:
    cs = []
    for B in (32, 256, 4096, 65536):
        cs.append(Case(op, "C=10", f"Z({B},10)", B, (("shape", (B, 10)),), quick=B in (32, 4096)))
    for B in (256, 4096):
        cs.append(Case(op, "C=1000", f"Z({B},1000)", B, (("shape", (B, 1000)),)))
    if op == "softmax":
        shp = (16, 16, 128, 128)
        cs.append(Case(op, "4-D", "Z(16,16,128,128)", 16 * 16 * 128, (("shape", shp),)))
    return cs


def _logits_inputs(case, dt, rng) -> dict:
    """The inputs of softmax (and of softmax_cross_entropy_grad, with labels y)."""
    normal, unif = _draws(dt, rng)
    p = case.p
    shp = p["shape"]
    d = {"Z": normal(*shp, scale=3.0)}
    if case.op == "softmax_cross_entropy_grad":
        d["y"] = rng.integers(0, shp[-1], shp[0]).astype(np.int64)
    return d


def _softmax_work(case, s) -> dict:
    p = case.p
    return {"kind": "bytes", "amount": 2.0 * math.prod(p["shape"]) * s}


def _softmax_impl(case, K, inp) -> Prepared:
    Z2 = inp["Z"].reshape(-1, inp["Z"].shape[-1])
    out = np.empty_like(Z2)
    k = K["softmax"]
    return Prepared(lambda: k(Z2, out))


def _softmax_scipy(case, inp) -> Prepared:
    from scipy.special import softmax
    Z = inp["Z"]
    return Prepared(lambda: softmax(Z, axis=-1))


def _softmax_torch(case, inp) -> Prepared:
    import torch
    T = _torch_tensors(inp)
    Z = T["Z"]
    out = torch.empty_like(Z)
    return Prepared(lambda: torch.softmax(Z, -1, out=out))


def _softmax_jax(case, inp) -> Prepared:
    import jax
    J = _jax_arrays(inp)
    block = jax.block_until_ready
    f = jax.jit(lambda Z: jax.nn.softmax(Z, axis=-1))
    Z = J["Z"]
    return Prepared(lambda: block(f(Z)))


_add(Op(
    "softmax", "P = softmax(Z) over the last axis",
    cases=lambda: _logits_cases("softmax"), work=_softmax_work, make_inputs=_logits_inputs,
    setup_impl=_softmax_impl, setup_scipy=_softmax_scipy, setup_torch=_softmax_torch,
    setup_jax=_softmax_jax, xlabel="rows"))


def _sce_grad_work(case, s) -> dict:
    p = case.p
    N, C = p["shape"]
    return {"kind": "bytes", "amount": 2.0 * N * C * s + 8.0 * N}   # Z in, dZ out, int64 labels


def _sce_grad_impl(case, K, inp) -> Prepared:
    Z, y = inp["Z"], inp["y"]
    dZ = np.empty_like(Z)
    k = K["softmax_cross_entropy_grad"]
    return Prepared(lambda: k(Z, y, dZ))


def _sce_grad_torch(case, inp) -> Prepared:
    import torch
    import torch.nn.functional as F
    T = _torch_tensors(inp)
    Z = T["Z"].clone().requires_grad_(True)
    y = T["y"]

    def f():
        loss = F.cross_entropy(Z, y)
        (g,) = torch.autograd.grad(loss, Z)
        return loss, g
    return Prepared(f)


def _sce_grad_jax(case, inp) -> Prepared:
    import jax
    J = _jax_arrays(inp)
    block = jax.block_until_ready
    f = jax.jit(jax.value_and_grad(_jax_logits_loss))
    Z, y = J["Z"], J["y"]
    return Prepared(lambda: block(f(Z, y)))


_add(Op(
    "softmax_cross_entropy_grad", "loss and dZ = (softmax(Z) − Y)/N, labels y (N,)",
    cases=lambda: _logits_cases("softmax_cross_entropy_grad"), work=_sce_grad_work,
    make_inputs=_logits_inputs, setup_impl=_sce_grad_impl, setup_torch=_sce_grad_torch,
    setup_jax=_sce_grad_jax, xlabel="rows N"))


# --- linear_backward --------------------------------------------------------------------
def _linear_backward_cases() -> list:
    cs = []
    for B in (1, 32, 256, 4096):
        cs.append(Case("linear_backward", "", f"dZ({B},{D_HID}) X({B},{D_IN}) W({D_HID},{D_IN})", B,
                       (("B", B),), quick=B in (1, 256)))
    return cs


def _linear_backward_work(case, s) -> dict:
    p = case.p
    # dW = dZᵀX and dZ W: two products
    return {"kind": "flop", "amount": 4.0 * p["B"] * D_IN * D_HID}


def _linear_backward_impl(case, K, inp) -> Prepared:
    dZ, X, W = inp["dZ"], inp["X"], inp["W"]
    dW, db, dX = np.empty_like(W), np.empty(W.shape[0], W.dtype), np.empty_like(X)
    lb, hd = K["linear_backward"], K["hidden_delta"]

    def f():
        lb(dZ, X, W, dW, db, None)
        hd(dZ, W, X, dX)                # X is the previous layer's sigmoid output
    return Prepared(f)


def _linear_backward_blas(case, inp) -> Prepared:
    dZ, X, W = inp["dZ"], inp["X"], inp["W"]
    dW, dX, dZT = np.empty_like(W), np.empty_like(X), dZ.T

    def f():
        np.matmul(dZT, X, out=dW)
        np.matmul(dZ, W, out=dX)
    return Prepared(f)


def _linear_backward_torch(case, inp) -> Prepared:
    import torch
    T = _torch_tensors(inp)
    dZ, X, W = T["dZ"], T["X"], T["W"]
    dW, db, dX = torch.empty_like(W), torch.empty(W.shape[0], dtype=W.dtype), torch.empty_like(X)
    dZT = dZ.t()

    def f():
        torch.mm(dZT, X, out=dW)
        torch.sum(dZ, 0, out=db)
        torch.mm(dZ, W, out=dX)
        dX.mul_(X).mul_(1 - X)
    return Prepared(f)


def _linear_backward_jax(case, inp) -> Prepared:
    import jax
    J = _jax_arrays(inp)
    block = jax.block_until_ready
    f = jax.jit(lambda dZ, X, W: (dZ.T @ X, dZ.sum(0), (dZ @ W) * X * (1 - X)))
    dZ, X, W = J["dZ"], J["X"], J["W"]
    return Prepared(lambda: block(f(dZ, X, W)))


_add(Op(
    "linear_backward", "dW = dZᵀX, db = Σ dZ, dX = (dZ W) ⊙ X ⊙ (1 − X)  "
                       "[linear_backward (no dX) + hidden_delta], shapes of linear_sigmoid",
    cases=_linear_backward_cases, work=_linear_backward_work, make_inputs=_linear_inputs,
    setup_impl=_linear_backward_impl, setup_blas=_linear_backward_blas,
    setup_torch=_linear_backward_torch, setup_jax=_linear_backward_jax,
    kernels=("linear_backward", "hidden_delta"), xlabel="batch B"))


# --- sgd_update -------------------------------------------------------------------------
def _sgd_update_cases() -> list:
    cs = []
    for variant in ("plain", "momentum+wd+l1"):
        for n in (100_000, 1_000_000, 16_000_000):
            cs.append(Case("sgd_update", variant, f"n={_fmt_n(n)}", n, (("n", n),),
                           quick=n in (100_000, 1_000_000)))
    return cs


def _sgd_work(case, s) -> dict:
    p = case.p
    n = p["n"]
    per = 3 if case.variant == "plain" else 5    # w, g in, w out (+ v in, v out)
    return {"kind": "bytes", "amount": float(per * n * s)}


def _sgd_inputs(case, dt, rng) -> dict:
    normal, unif = _draws(dt, rng)
    p = case.p
    n = p["n"]
    return {"w": normal(n, scale=0.1), "g": normal(n, scale=0.01), "v": normal(n, scale=0.01)}


def _sgd_args(case):
    if case.variant == "plain":
        return dict(momentum=0.0, weight_decay=0.0, l1=0.0)
    return dict(SGD_MOMENTUM)


def _sgd_update_impl(case, K, inp) -> Prepared:
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


def _sgd_update_torch(case, inp) -> Prepared:
    import torch
    import torch.nn.functional as F
    T = _torch_tensors(inp)
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


def _sgd_update_jax(case, inp) -> Prepared:
    import jax
    import jax.numpy as jnp
    J = _jax_arrays(inp)
    block = jax.block_until_ready
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


_add(Op(
    "sgd_update", "in-place SGD on n parameters (fresh copies every call)",
    cases=_sgd_update_cases, work=_sgd_work, make_inputs=_sgd_inputs,
    setup_impl=_sgd_update_impl, setup_torch=_sgd_update_torch, setup_jax=_sgd_update_jax,
    xlabel="parameters"))


# --- sgd_vs_axpy ------------------------------------------------------------------------
def _sgd_vs_axpy_cases() -> list:
    cs = []
    for n in (1_000_000, 16_000_000):
        cs.append(Case("sgd_vs_axpy", "plain", f"n={_fmt_n(n)}", n, (("n", n),),
                       quick=n == 1_000_000))
    return cs


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

    from ..kernels._config import pjit

    global _parallel_axpy_kernel
    if _parallel_axpy_kernel is None:
        def axpy(w, g, a):
            for i in prange(w.shape[0]):
                w[i] += a * g[i]
        _parallel_axpy_kernel = pjit(axpy)
    _parallel_axpy_kernel(w, g, a)


_parallel_axpy_kernel = None


_add(Op(
    "sgd_vs_axpy",
    "the jit sgd_update (plain) and the simplest in-place axpy w += a·g on all "
    "the run's threads (the ceiling the performance target names: two loads and "
    "one store per element), timed alternately in ONE process, fresh copies "
    "before every batch: the fraction of the ceiling, free of the host's drift "
    "between the ceiling measured at the start and the rows above",
    cases=_sgd_vs_axpy_cases, work=_sgd_work, fixed=("jit", "axpy"),
    # the same calls as sgd_update's plain rows
    same_calls_as=lambda case: dataclasses.replace(case, op="sgd_update", variant="plain"),
    # one thread pool (Numba's) for both; fresh copies before every batch
    interleaved="paired", switch_warm_s=0.0))


# --- train_step and epoch -----------------------------------------------------------------
def _train_step_cases() -> list:
    cs = []
    for B in (1, 10, 64, 256):
        cs.append(Case("train_step", "", f"B={B} {NET[0]}-{NET[1]}-{NET[2]}", B, (("B", B),),
                       quick=B in (1, 64)))
    return cs


def _train_step_work(case, s) -> dict:
    p = case.p
    B, (D, H, C) = p["B"], NET
    # forward X W1ᵀ, H W2ᵀ; backward dW2 = dZᵀH, dZ W2, dW1 = dHᵀX
    return {"kind": "flop", "amount": 2.0 * B * (2 * D * H + 3 * H * C)}


def _network_inputs(case, dt, rng) -> dict:
    """The inputs of train_step (B rows) and epoch (N rows): data and parameters."""
    normal, unif = _draws(dt, rng)
    p = case.p
    B, (D, H, C) = p.get("N", p["B"]), NET
    return {"X": unif(B, D), "y": rng.integers(0, C, B).astype(np.int64),
            "W1": normal(H, D, scale=D ** -0.5), "b1": np.zeros(H, dt),
            "W2": normal(C, H, scale=H ** -0.5), "b2": np.zeros(C, dt)}


def _train_step_impl(case, K, inp) -> Prepared:
    return Prepared(_fastnn_train_step(K, inp))


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
    from ..train import MLP
    X, y = inp["X"], inp["y"]
    B = case.p["B"]             # the batch: all of X (train_step) or a part (epoch)
    model = MLP([X.shape[1], inp["W1"].shape[0], inp["W2"].shape[0]], dtype=X.dtype, seed=0,
                impl="jit")
    model.set_parameters(weights=[inp["W1"], inp["W2"]], biases=[inp["b1"], inp["b2"]])
    prep = Prepared(model.compiled_epoch(X, y, batch_size=B, lr=LR))
    prep.model = model                  # the model the timed calls train (for the tests)
    return prep


def _train_step_torch(case, inp) -> Prepared:
    import torch
    import torch.nn.functional as F
    T = _torch_tensors(inp)
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


def _train_step_jax(case, inp) -> Prepared:
    import jax
    J = _jax_arrays(inp)
    block = jax.block_until_ready

    def loss(p, X, y):
        W1, b1, W2, b2 = p
        H = jax.nn.sigmoid(X @ W1.T + b1)
        return _jax_logits_loss(H @ W2.T + b2, y)

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


_add(Op(
    "train_step", "one training step (forward, backward, update) of a 784-100-10 "
                  "sigmoid/softmax network, plain SGD",
    cases=_train_step_cases, work=_train_step_work, make_inputs=_network_inputs,
    setup_impl=_train_step_impl, setup_torch=_train_step_torch, setup_jax=_train_step_jax,
    kernels=("linear_sigmoid", "linear", "softmax_cross_entropy_grad", "linear_backward",
             "hidden_delta", "sgd_update"),
    with_jit=("mlp",),          # fastnn.MLP's compiled step (the jit training epoch)
    xlabel="batch B"))


def _epoch_cases() -> list:
    cs = []
    for B in (1, 10):
        cs.append(Case("epoch", "", f"batch {B}, {EPOCH_N:,} samples", B, (("B", B), ("N", EPOCH_N))))
    return cs


def _epoch_work(case, s) -> dict:
    p = case.p
    (D, H, C) = NET
    return {"kind": "flop", "amount": 2.0 * p["N"] * (2 * D * H + 3 * H * C)}


_add(Op(
    "epoch", "one training epoch of fastnn.MLP (jit) on 60,000 MNIST-shaped samples (random "
             "data), 784-100-10, plain SGD, in order; the other contenders' epochs are their "
             "train_step rows × 60,000/B, too slow to time whole here",
    cases=_epoch_cases, work=_epoch_work, make_inputs=_network_inputs, fixed=("mlp",),
    sizes=False))     # batch 1 and batch 10: two workloads, not two sizes


# --- api_overhead -----------------------------------------------------------------------
def _api_overhead_cases() -> list:
    cs = []
    cs.append(Case("api_overhead", "softmax", "Z(1,10)", 1, (("op", "softmax"),), quick=True))
    # tiny inputs: the kernel takes about a microsecond, so the API's own cost shows
    cs.append(Case("api_overhead", "linear_sigmoid", "X(1,16) W(8,16)", 1,
                   (("op", "linear_sigmoid"),), quick=True))
    return cs


def _api_inputs(case, dt, rng) -> dict:
    normal, unif = _draws(dt, rng)
    p = case.p
    if p["op"] == "softmax":
        return {"Z": normal(1, 10)}
    return {"X": unif(1, 16), "W": normal(8, 16, scale=0.25), "b": normal(8, scale=0.1)}


def _setup_api(case, contender, inp) -> Prepared:
    import fastnn
    from ..kernels import IMPLS
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


_add(Op(
    "api_overhead", "the jit kernel called raw vs through the validated API",
    cases=_api_overhead_cases, make_inputs=_api_inputs, fixed=API_CONTENDERS,
    # the API rows run one kernel
    interleaved="api", switch_warm_s=0.0,
    sizes=False))     # two operations' overheads, not two sizes


# --- every operation ----------------------------------------------------------------------
#: One line per report section.
DESCRIPTIONS = {op.name: op.description for op in OPS.values()}
OP_ORDER = tuple(DESCRIPTIONS)
#: Contenders that are not registered implementations, per operation.
EXTRAS = {op.name: op.extras for op in OPS.values() if op.extras}
#: Operations whose contenders run in one worker process, timed round-robin
#: (:func:`~fastnn.bench.timing.measure_interleaved`); the value names that worker.
INTERLEAVED_OPS = {op.name: op.interleaved for op in OPS.values() if op.interleaved}
#: Their ``switch_warm_s`` (:func:`~fastnn.bench.timing.measure_interleaved`): the API rows
#: run one kernel, the paired rows two libraries with thread pools of their own.
SWITCH_WARM_S = {op.name: op.switch_warm_s for op in OPS.values() if op.interleaved}


def contenders(case: Case) -> list:
    """Contenders of a case: registered implementations first, then comparators."""
    from ..kernels import IMPL_NAMES, IMPLS
    op = OPS[case.op]
    if op.fixed is not None:
        return list(op.fixed)
    needed = op.kernels or (case.op,)
    names = [n for n in IMPL_NAMES if all(n in IMPLS[o] for o in needed)]
    for n in IMPLS[needed[0]]:
        if n not in names and all(n in IMPLS[o] for o in needed):
            names.append(n)
    if "jit" in names:
        names.extend(op.with_jit)
    return names + list(op.extras)


def process_group(contender: str, op: Optional[str] = None) -> str:
    """Worker process a contender runs in: one per contender, except for the operations
    of INTERLEAVED_OPS, whose contenders share one."""
    if op in INTERLEAVED_OPS:
        return INTERLEAVED_OPS[op]
    return "api" if contender in API_CONTENDERS else contender


def work(case: Case, dtype) -> dict:
    """What one call must do: ``{"kind": "flop", "amount": ...}`` for matrix-product-bound
    cases (2·M·N·K per product), ``{"kind": "bytes", ...}`` for memory-bound ones (the
    bytes read and written once), or ``{"kind": None}`` (API overhead)."""
    s = np.dtype(dtype).itemsize
    op = OPS.get(case.op)
    if op is None or op.work is None:
        return {"kind": None, "amount": None}
    return op.work(case, s)


def make_inputs(case: Case, dtype, rng) -> dict:
    """The input arrays of a case (NumPy, C-contiguous, of ``dtype``)."""
    dt = np.dtype(dtype)
    op = OPS.get(case.op)
    if op is None or op.make_inputs is None:
        raise ValueError(f"unknown case op {case.op!r}")
    return op.make_inputs(case, dt, rng)


def setup(case: Case, contender: str, dtype, rng=None) -> Prepared:
    """Allocate and validate everything for one timed call of ``contender`` on ``case``."""
    rng = np.random.default_rng(0) if rng is None else rng
    op = OPS.get(case.op)
    if op is not None and op.same_calls_as is not None:     # the paired rows
        case = op.same_calls_as(case)
    inp = make_inputs(case, dtype, rng)
    op = OPS[case.op]
    if contender == "axpy":
        return _setup_axpy(inp)
    if contender in ("torch", "jax"):
        return _comparator(op, contender)(case, inp)
    from ..kernels import IMPLS
    if contender in API_CONTENDERS:
        return _setup_api(case, contender, inp)
    if contender in ("scipy", "blas"):
        return _comparator(op, contender)(case, inp)
    if contender == "mlp":
        return _setup_mlp_step(case, inp)
    K = {name: IMPLS[name][contender] for name in IMPLS if contender in IMPLS[name]}
    if op.setup_impl is None:
        raise ValueError(f"{case.op}: no implementation setup")
    return op.setup_impl(case, K, inp)


def _comparator(op: Op, contender: str) -> Callable:
    fn = getattr(op, f"setup_{contender}")
    if fn is None:
        raise ValueError(f"{op.name}: no {contender} contender")
    return fn
