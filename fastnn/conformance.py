"""The conformance sweep: check any implementation of an operation as fastnn checks its own.

    >>> report = fastnn.check("softmax", "mine")        # or fastnn check softmax mine
    >>> report.ok, print(report)

:func:`check` calls the raw kernel (destination passing, the signature in
:data:`fastnn.plugins.SIGNATURES`) on a sweep of inputs and compares each result with the
independent float64 reference (:mod:`fastnn.reference`) at the per-dtype tolerance the
test suite uses (:data:`TOL`). The sweep, for float32 and float64:

- shapes: empty, one row, one row of one element, odd sizes, long rows, many rows;
- extremes and non-finite input, with the behaviour fastnn documents: logits of ±1e4 and
  ± the dtype's maximum, −inf entries (probability 0), a row of −inf (softmax: NaN), NaN
  (propagates to its row); a −inf logit at the label (loss +inf);
- in place, where the API allows it (``out`` is the input: sigmoid, sigmoid_backward,
  softmax, log_softmax).

Every call also checks the kernel's manners: it must write its result into ``out`` (a
kernel that returns a new array and leaves ``out`` alone is named as such), write nothing
outside ``out`` (each destination is a view into a larger buffer whose margins are
checked), leave its inputs unchanged, and emit no warning for finite input (NumPy's
default error state: overflow, division by zero and invalid operations warn, underflow
does not; a warning from non-finite input is reported as a note). A failing case comes with a
reproducer: its inputs, what was expected and what the kernel wrote.

fastnn's own implementations pass this sweep (``tests/test_conformance.py``).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np

from . import reference as ref

#: |actual − reference| <= atol·scale + rtol·|reference|, scale = the size of the terms
#: that were summed (1 for elementwise results); NaN and ±inf positions must match exactly.
TOL = {
    np.dtype(np.float32): dict(rtol=3e-5, atol=3e-6),
    np.dtype(np.float64): dict(rtol=1e-12, atol=1e-13),
}

DTYPES = (np.float32, np.float64)
_GUARD = 16                     # elements of margin before and after every destination
_SENTINEL = -1234.5             # what a destination (and its margins) holds before the call


def compare(actual, reference, dtype, scale=1.0) -> Optional[str]:
    """None when ``actual`` agrees with ``reference`` within :data:`TOL` (``scale``: the
    size of the summed terms, broadcast), else a one-line description of the worst
    difference."""
    a = np.asarray(actual, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    if a.shape != r.shape:
        return f"shape {a.shape}, expected {r.shape}"
    fa, fr = np.isfinite(a), np.isfinite(r)
    for what, x, y in (("NaN", np.isnan(a), np.isnan(r)), ("finite", fa, fr)):
        if not np.array_equal(x, y):
            i = tuple(np.argwhere(x != y)[0].tolist())
            return f"{what} positions differ: at {list(i)} got {a[i]!r}, expected {r[i]!r}"
    inf = ~fa & ~np.isnan(a)
    if not np.array_equal(a[inf], r[inf]):
        i = tuple(np.argwhere(inf & (a != r))[0].tolist())
        return f"infinities differ: at {list(i)} got {a[i]!r}, expected {r[i]!r}"
    tol = TOL[np.dtype(dtype)]
    bound = tol["atol"] * np.asarray(scale, dtype=np.float64) + tol["rtol"] * np.abs(r)
    with np.errstate(invalid="ignore"):
        err = np.abs(a - r)
    bad = (err > bound) & fa
    if bad.any():
        i = tuple(np.argwhere(bad)[0].tolist())
        return (f"max error {err[fa].max():.3e} exceeds the {np.dtype(dtype).name} tolerance "
                f"(first at {list(i)}: got {a[i]!r}, expected {r[i]!r})")
    return None


# --- one call: arguments, destinations, expectations --------------------------------------
@dataclass
class Dest:
    """A destination argument of ``shape`` (``init``: its content before the call, for the
    in-out arrays of sgd_update; ``alias``: the name of the input it is, in place)."""
    shape: tuple
    init: Optional[np.ndarray] = None
    alias: Optional[str] = None


@dataclass
class Case:
    """One call of the sweep: the kernel's arguments by name, in signature order (arrays,
    scalars, or :class:`Dest`), and what each output must be."""
    name: str
    dtype: type
    args: Dict[str, object]
    expect: Dict[str, tuple]          # output name ("return" or a Dest's) -> (value, scale)


@dataclass
class Outcome:
    case: Case
    problems: List[str]
    got: Dict[str, object] = field(default_factory=dict)
    notes: List[str] = field(default_factory=list)     # warnings from non-finite input

    @property
    def ok(self) -> bool:
        return not self.problems


def _guarded(shape, dtype, init=None):
    """(buffer, view): ``view`` of ``shape``, C-contiguous, inside ``buffer`` with margins."""
    n = int(np.prod(shape, dtype=np.int64))
    buf = np.full(n + 2 * _GUARD, _SENTINEL, dtype)
    view = buf[_GUARD:_GUARD + n].reshape(shape)
    if init is not None:
        view[...] = init
    return buf, view


def _run(fn: Callable, case: Case) -> Outcome:
    dt = np.dtype(case.dtype)
    call, bufs, inputs = [], {}, {}
    for name, a in case.args.items():
        if isinstance(a, Dest):
            if a.alias is not None:
                buf, view = _guarded(a.shape, dt, case.args[a.alias])
                bufs[name] = (buf, view, a.alias)
                continue
            buf, view = _guarded(a.shape, dt, a.init)
            bufs[name] = (buf, view, None)
    for name, a in case.args.items():
        if isinstance(a, Dest):
            call.append(bufs[name][1])
        elif any(alias == name for _, _, alias in bufs.values()):
            call.append(next(v for _, v, al in bufs.values() if al == name))
        else:
            if isinstance(a, np.ndarray):
                a = a.copy()
                inputs[name] = (a, a.copy())
            call.append(a)
    initial = {name: view.copy() for name, (_, view, _) in bufs.items()}
    problems, notes, got = [], [], {}
    finite = all(np.all(np.isfinite(a)) for a in case.args.values()
                 if isinstance(a, np.ndarray) and a.dtype.kind == "f")
    # NumPy's default error state (underflow is not an error: exp(−1e4) = 0 is right)
    with warnings.catch_warnings(record=True) as caught, \
            np.errstate(over="warn", divide="warn", invalid="warn", under="ignore"):
        warnings.simplefilter("always")
        try:
            ret = fn(*call)
        except Exception as exc:                       # noqa: BLE001 (reported, not hidden)
            return Outcome(case, [f"raised {type(exc).__name__}: {' '.join(str(exc).split())}"])
    for w in caught:      # a warning from finite input breaks fastnn's promise; else a note
        (problems if finite else notes).append(f"warned {w.category.__name__}: {w.message}")
    for name, (buf, view, _) in bufs.items():
        margin = np.concatenate([buf[:_GUARD], buf[_GUARD + view.size:]])
        if not np.array_equal(margin.view(np.uint8), np.full(2 * _GUARD, _SENTINEL, dt).view(np.uint8)):
            problems.append(f"wrote outside {name} (the {_GUARD} elements on either side changed)")
    for name, (a, before) in inputs.items():
        if not np.array_equal(a.view(np.uint8), before.view(np.uint8)):
            problems.append(f"changed its input {name}")
    for name, (want, scale) in case.expect.items():
        with np.errstate(over="ignore"):     # the best answer in the dtype: e.g. −6.8e38 -> −inf
            want = np.asarray(want, np.float64).astype(dt).astype(np.float64)
        if name == "return":
            try:
                have = float(ret)
            except (TypeError, ValueError):
                problems.append(f"returned {type(ret).__name__}, expected a scalar")
                continue
            got[name] = have
            msg = compare(have, want, dt, scale)
        else:
            buf, view, _ = bufs[name]
            got[name] = view.copy()
            untouched = view.size and np.array_equal(view.view(np.uint8), initial[name].view(np.uint8))
            if untouched and isinstance(ret, np.ndarray) and not np.may_share_memory(ret, view):
                problems.append(f"returned a new array and left {name} unwritten "
                                f"(the kernel must write its result into {name})")
                continue
            msg = compare(view, want, dt, scale)
        if msg:
            problems.append(f"{name}: {msg}")
    return Outcome(case, problems, got, notes)


# --- inputs --------------------------------------------------------------------------------
def _normal(rng, shape, dtype, scale=4.0):
    return (rng.standard_normal(shape) * scale).astype(dtype)


def _rows_shapes():
    return [("empty", (0, 5)), ("one row of one element", (1, 1)), ("one row", (1, 7)),
            ("odd sizes", (3, 5)), ("odd sizes", (7, 33)), ("long rows", (2, 1000)),
            ("many rows", (1000, 3))]


def _extreme_logits(dtype):
    big = float(np.finfo(dtype).max)
    inf = math.inf
    return [
        ("logits ±1e4", [[1e4, -1e4, 0.0], [-1e4, -1e4 + 1, -1e4 + 2], [5e3, 5e3, -5e3]]),
        ("logits ± the dtype's maximum", [[big, -big, 0.0], [-big, -big, -big]]),
        ("−inf entries (probability 0)", [[-inf, 0.0, 1.0], [-inf, -inf, 3.0]]),
        ("a row of −inf (no distribution: NaN)", [[-inf, -inf, -inf], [0.0, 1.0, 2.0]]),
        ("NaN (propagates to its row)", [[0.0, math.nan, 1.0], [0.0, 1.0, 2.0]]),
    ]


def _quiet(f, *a):
    with np.errstate(all="ignore"):
        return f(*a)


def _ones_scale(x):
    return 1.0


# --- the sweep of each operation -------------------------------------------------------------
def _cases_elementwise(op, dtype, rng):
    out = []
    for label, shape in _rows_shapes():
        n = shape[0] * shape[1]
        Z = _normal(rng, (n,), dtype)
        if op == "sigmoid":
            out.append(Case(f"{label} Z({n},)", dtype, {"Z": Z, "out": Dest((n,))},
                            {"out": (ref.sigmoid(Z), 1.0)}))
        else:
            dH, H = _normal(rng, (n,), dtype), rng.uniform(0, 1, n).astype(dtype)
            out.append(Case(f"{label} dH({n},) H({n},)", dtype, {"dH": dH, "H": H, "out": Dest((n,))},
                            {"out": (ref.sigmoid_backward(dH, H), np.abs(dH.astype(np.float64)) / 4)}))
    if op == "sigmoid":
        big = float(np.finfo(dtype).max)
        Z = np.array([-big, -1e4, -800, -100, -1, 0, 1, 100, 800, 1e4, big, math.nan], dtype)
        out.append(Case("extremes ± the dtype's maximum, NaN", dtype, {"Z": Z, "out": Dest(Z.shape)},
                        {"out": (_quiet(ref.sigmoid, Z), 1.0)}))
        Z = _normal(rng, (37,), dtype)
        out.append(Case("in place (out is Z)", dtype, {"Z": Z, "out": Dest(Z.shape, alias="Z")},
                        {"out": (ref.sigmoid(Z), 1.0)}))
    else:
        dH, H = _normal(rng, (37,), dtype), rng.uniform(0, 1, 37).astype(dtype)
        out.append(Case("in place (out is dH)", dtype, {"dH": dH, "H": H, "out": Dest((37,), alias="dH")},
                        {"out": (ref.sigmoid_backward(dH, H), np.abs(dH.astype(np.float64)) / 4)}))
    return out


def _cases_rows(op, dtype, rng):
    f = getattr(ref, op)

    def scale(Z):
        if op == "softmax" or Z.size == 0:
            return 1.0
        fin = np.abs(Z[np.isfinite(Z)].astype(np.float64))
        return (fin.max() if fin.size else 0.0) + math.log(Z.shape[1]) + 1

    out = []
    for label, shape in _rows_shapes():
        Z = _normal(rng, shape, dtype)
        out.append(Case(f"{label} Z{shape}", dtype, {"Z": Z, "out": Dest(shape)},
                        {"out": (f(Z), scale(Z))}))
    for label, rows in _extreme_logits(dtype):
        Z = np.array(rows, dtype)
        out.append(Case(label, dtype, {"Z": Z, "out": Dest(Z.shape)}, {"out": (_quiet(f, Z), scale(Z))}))
    Z = _normal(rng, (5, 33), dtype)
    out.append(Case("in place (out is Z)", dtype, {"Z": Z, "out": Dest(Z.shape, alias="Z")},
                    {"out": (f(Z), scale(Z))}))
    return out


def _cases_cross_entropy(op, dtype, rng):
    grad = op.endswith("_grad")
    out = []

    def case(label, Z, y):
        N, C = Z.shape
        fin = np.abs(Z[np.isfinite(Z)].astype(np.float64))
        loss_scale = (fin.max() if fin.size else 0.0) + math.log(C) + 1
        args = {"Z": Z, "y": y}
        if grad:
            L, G = _quiet(ref.softmax_cross_entropy_grad, Z, y)
            w = 1.0 if y.ndim == 1 else float(np.abs(y.astype(np.float64)).sum(axis=1).max(initial=1.0))
            args["dZ"] = Dest(Z.shape)
            expect = {"return": (L, loss_scale), "dZ": (G, w / N)}
        else:
            expect = {"return": (_quiet(ref.softmax_cross_entropy, Z, y), loss_scale)}
        out.append(Case(label, dtype, args, expect))

    for label, shape in _rows_shapes():
        if shape[0] == 0:
            continue                      # a mean over no rows: the API requires N >= 1
        Z = _normal(rng, shape, dtype)
        y = rng.integers(0, shape[1], shape[0]).astype(np.intp)
        case(f"{label} Z{shape}, labels", Z, y)
        Y = rng.uniform(0, 1, shape) * (rng.uniform(0, 1, shape) > 0.3)
        Y[:, 0] += 0.01
        case(f"{label} Z{shape}, probability rows", Z, (Y / Y.sum(axis=1, keepdims=True)).astype(dtype))
    for label, rows in _extreme_logits(dtype):
        if "row of −inf" in label:
            continue                      # no distribution: the loss is undefined
        Z = np.array(rows, dtype)
        case(label + ", labels", Z, np.full(Z.shape[0], Z.shape[1] - 1, np.intp))
    case("a −inf logit at the label (loss +inf)", np.array([[-math.inf, 0.0, 1.0]], dtype),
         np.array([0], np.intp))
    return out


def _cases_sigmoid_losses(op, dtype, rng):
    f = getattr(ref, op)
    out = []

    def case(label, Z, Y):
        N = Z.shape[0]
        J, G = _quiet(f, Z, Y)
        fin = np.abs(Z[np.isfinite(Z)].astype(np.float64))
        out.append(Case(label, dtype, {"Z": Z, "Y": Y, "dZ": Dest(Z.shape)},
                        {"return": (J, (fin.max() if fin.size else 0.0) + 1), "dZ": (G, 1.0 / N)}))

    for label, shape in _rows_shapes():
        if shape[0] == 0:
            continue
        Z = _normal(rng, shape, dtype)
        case(f"{label} Z{shape}", Z, (rng.uniform(0, 1, shape) > 0.5).astype(dtype))
    Z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4 + 1, -1e4 + 2], [5e3, 5e3, -5e3]], dtype)
    case("logits ±1e4", Z, (Z > 0).astype(dtype))
    return out


def _linear_args(rng, dtype, N, D, K):
    return _normal(rng, (N, D), dtype, 1.0), _normal(rng, (K, D), dtype, 1.0), _normal(rng, (K,), dtype, 1.0)


_LINEAR_SHAPES = [("empty", (0, 3, 2)), ("one row of one element", (1, 1, 1)), ("one row", (1, 7, 3)),
                  ("odd sizes", (3, 5, 4)), ("odd sizes", (7, 33, 9)), ("long rows", (2, 1000, 3)),
                  ("many rows", (300, 8, 5))]


def _cases_linear(op, dtype, rng):
    out = []
    for label, (N, D, K) in _LINEAR_SHAPES:
        X, W, b = _linear_args(rng, dtype, N, D, K)
        X64, W64 = np.abs(X.astype(np.float64)), np.abs(W.astype(np.float64))
        if op in ("linear", "linear_sigmoid"):
            terms = X64 @ W64.T + np.abs(b.astype(np.float64))
            f = getattr(ref, op)
            out.append(Case(f"{label} X({N},{D}) W({K},{D})", dtype,
                            {"X": X, "W": W, "b": b, "out": Dest((N, K))},
                            {"out": (f(X, W, b), terms if op == "linear" else terms / 4)}))
        elif op == "hidden_delta":
            dZ = _normal(rng, (N, K), dtype, 1.0)
            H = rng.uniform(0, 1, (N, D)).astype(dtype)
            H64 = H.astype(np.float64)
            out.append(Case(f"{label} dZ({N},{K}) W({K},{D}) H({N},{D})", dtype,
                            {"dZ": dZ, "W": W, "H": H, "out": Dest((N, D))},
                            {"out": (ref.hidden_delta(dZ, W, H),
                                     (np.abs(dZ.astype(np.float64)) @ W64) * (H64 * (1 - H64)) + 1e-30)}))
        else:                                         # linear_backward
            dZ = _normal(rng, (N, K), dtype, 1.0)
            dZ64 = np.abs(dZ.astype(np.float64))
            dW, db, dX = ref.linear_backward(dZ, X, W)
            out.append(Case(f"{label} dZ({N},{K}) X({N},{D}) W({K},{D})", dtype,
                            {"dZ": dZ, "X": X, "W": W, "dW": Dest((K, D)), "db": Dest((K,)),
                             "dX": Dest((N, D))},
                            {"dW": (dW, dZ64.T @ X64), "db": (db, dZ64.sum(axis=0)),
                             "dX": (dX, dZ64 @ W64)}))
    if op in ("linear", "linear_sigmoid"):
        X = np.array([[math.nan, 1.0], [1.0, 2.0]], dtype)
        W, b = np.ones((2, 2), dtype), np.zeros(2, dtype)
        f = getattr(ref, op)
        out.append(Case("NaN in X (propagates to its row)", dtype, {"X": X, "W": W, "b": b, "out": Dest((2, 2))},
                        {"out": (_quiet(f, X, W, b), 3.0)}))
    if op == "linear_sigmoid":
        X = np.array([[1e4], [-1e4]], dtype)
        W, b = np.ones((2, 1), dtype), np.zeros(2, dtype)
        out.append(Case("pre-activations ±1e4 (saturate to exactly 1 and 0)", dtype,
                        {"X": X, "W": W, "b": b, "out": Dest((2, 2))},
                        {"out": (ref.linear_sigmoid(X, W, b), 1.0)}))
    return out


def _cases_sgd(op, dtype, rng):
    out = []
    variants = [("plain", dict(lr=0.1, momentum=0.0, weight_decay=0.0, l1=0.0, nesterov=False)),
                ("momentum", dict(lr=0.05, momentum=0.9, weight_decay=0.0, l1=0.0, nesterov=False)),
                ("nesterov + weight decay", dict(lr=0.05, momentum=0.9, weight_decay=1e-2, l1=0.0,
                                                 nesterov=True)),
                ("momentum + weight decay + L1", dict(lr=0.05, momentum=0.5, weight_decay=1e-3, l1=0.5,
                                                      nesterov=False))]
    for size, n in (("empty", 0), ("one element", 1), ("odd sizes", 7), ("long", 1001)):
        for label, h in variants:
            w, g = _normal(rng, (n,), dtype, 1.0), _normal(rng, (n,), dtype, 1.0)
            v = _normal(rng, (n,), dtype, 0.1) if h["momentum"] else np.empty(0, dtype)
            w_new, v_new = ref.sgd_update(w, g, h["lr"], h["momentum"], v, h["weight_decay"], h["l1"],
                                          h["nesterov"])
            a64 = lambda x: np.abs(x.astype(np.float64))     # noqa: E731
            sv = (h["momentum"] * a64(v) if h["momentum"] else 0) + a64(g) + h["weight_decay"] * a64(w)
            sw = a64(w) + h["lr"] * sv * (1 + h["momentum"]) + h["lr"] * h["l1"]
            args = {"param": Dest((n,), init=w), "grad": g, "lr": h["lr"], "momentum": h["momentum"],
                    "velocity": Dest(v.shape, init=v) if h["momentum"] else v,
                    "weight_decay": h["weight_decay"], "l1": h["l1"], "nesterov": h["nesterov"]}
            expect = {"param": (w_new, sw)}
            if h["momentum"]:
                expect["velocity"] = (v_new, sv)
            out.append(Case(f"{label}, {size} n={n}", dtype, args, expect))
    w = np.array([1e-3, -1e-3, 0.5, -0.5, 0.0], dtype)
    g = np.zeros_like(w)
    out.append(Case("L1 larger than the weights (soft threshold to exactly 0)", dtype,
                    {"param": Dest(w.shape, init=w), "grad": g, "lr": 1.0, "momentum": 0.0,
                     "velocity": np.empty(0, dtype), "weight_decay": 0.0, "l1": 0.01, "nesterov": False},
                    {"param": (ref.sgd_update(w, g, 1.0, l1=0.01)[0], np.abs(w.astype(np.float64)) + 0.01)}))
    return out


SWEEPS: Dict[str, Callable] = {
    "sigmoid": _cases_elementwise, "sigmoid_backward": _cases_elementwise,
    "softmax": _cases_rows, "log_softmax": _cases_rows,
    "softmax_cross_entropy": _cases_cross_entropy, "softmax_cross_entropy_grad": _cases_cross_entropy,
    "sigmoid_bce_grad": _cases_sigmoid_losses, "sigmoid_mse_grad": _cases_sigmoid_losses,
    "linear": _cases_linear, "linear_sigmoid": _cases_linear, "linear_backward": _cases_linear,
    "hidden_delta": _cases_linear, "sgd_update": _cases_sgd,
}


def cases(op: str, seed: int = 0) -> List[Case]:
    """The sweep of ``op``: float32 then float64."""
    if op not in SWEEPS:
        raise ValueError(f"op: expected one of {', '.join(sorted(SWEEPS))}, got {op!r}"
                         + (" (the learners' epochs are checked by their own tests)"
                            if op in ("perceptron_epoch", "adaline_epoch") else ""))
    rng = np.random.default_rng(seed)
    return [c for dt in DTYPES for c in SWEEPS[op](op, dt, rng)]


# --- the report -------------------------------------------------------------------------------
def _show(a, limit=8):
    if isinstance(a, Dest):
        return f"np.empty({a.shape}, dtype)" if a.init is None and a.alias is None else (
            f"{a.alias} (in place)" if a.alias else _show(a.init, limit))
    if isinstance(a, np.ndarray):
        if a.size <= limit * limit:
            return f"np.array({np.array2string(a, separator=', ', threshold=limit * limit)}, " \
                   f"dtype=np.{a.dtype.name})"
        return f"<{a.dtype.name} array of shape {a.shape}>"
    return repr(a)


@dataclass
class Report:
    """What :func:`check` found: ``ok``, the outcomes, the first failure as a reproducer."""
    op: str
    impl: str
    outcomes: List[Outcome]

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    @property
    def failures(self) -> List[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def reproducer(self, outcome: Optional[Outcome] = None) -> str:
        """The first (or the given) failing case: inputs, expected and got."""
        o = outcome or (self.failures[0] if self.failures else None)
        if o is None:
            return ""
        c = o.case
        L = [f"case: {c.name} ({np.dtype(c.dtype).name})",
             f"call: {self.impl}({', '.join(c.args)})"]
        for name, a in c.args.items():
            L.append(f"  {name} = {_show(a)}")
        for name, (want, _) in c.expect.items():
            L.append(f"  expected {name} = {_show(np.asarray(want, np.float64)) if np.ndim(want) else repr(want)}")
            if name in o.got:
                have = o.got[name]
                L.append(f"  got      {name} = {_show(have) if np.ndim(have) else repr(have)}")
        L += [f"  problem: {p}" for p in o.problems]
        return "\n".join(L)

    def __str__(self) -> str:
        n, bad = len(self.outcomes), self.failures
        L = [f"fastnn check {self.op} {self.impl}: {n - len(bad)} of {n} cases passed"
             + ("" if bad else " (float32 and float64)")]
        seen = {}
        for o in self.outcomes:
            key = o.case.name
            seen.setdefault(key, []).append(o)
        for key, os_ in seen.items():
            marks = ", ".join(f"{np.dtype(o.case.dtype).name} {'ok' if o.ok else 'FAIL'}" for o in os_)
            L.append(f"  {'ok  ' if all(o.ok for o in os_) else 'FAIL'} {key}: {marks}")
        noted = [o for o in self.outcomes if o.ok and o.notes]
        if noted:
            L.append(f"notes: {len(noted)} passing case(s) with non-finite input warned "
                     f"(allowed; fastnn's own kernels do not), e.g. {noted[0].case.name} "
                     f"({np.dtype(noted[0].case.dtype).name}): {noted[0].notes[0]}")
        if bad:
            L.append("")
            L.append("first failure:")
            L.append(self.reproducer(bad[0]))
        return "\n".join(L)


def check(op: str, impl, *, seed: int = 0) -> Report:
    """Run the conformance sweep of ``op`` on ``impl``: a registered implementation's name,
    a ``"module:function"`` text, or the function itself (the raw kernel's signature, see
    :data:`fastnn.plugins.SIGNATURES`). Returns a :class:`Report` (``report.ok``)."""
    from . import plugins
    sweep = cases(op, seed)                 # op checked first
    if callable(impl):
        fn, name = impl, getattr(impl, "__name__", repr(impl))
        plugins.check_signature(op, fn)
    else:
        name = plugins.resolve(impl, [op])
        from .kernels import IMPLS
        if name not in IMPLS[op]:
            from .kernels import available
            raise ValueError(f"impl: operation {op!r} has no {name!r} implementation "
                             f"(it has {', '.join(available(op))})")
        fn = IMPLS[op][name]
    return Report(op, name, [_run(fn, c) for c in sweep])
