"""Bring your own kernel: register an implementation of a fastnn operation from outside.

Three ways, each giving the implementation a name that ``impl=``, ``fastnn check`` and
``fastnn bench --contenders`` accept:

1. In Python, a decorator::

       @fastnn.register("softmax", "mine")
       def softmax_mine(Z, out):          # the raw kernel's signature: SIGNATURES["softmax"]
           ...                            # write the result into out

2. In your own package's metadata, an entry point of the group ``fastnn.implementations``
   (``pyproject.toml``)::

       [project.entry-points."fastnn.implementations"]
       mine = "mypkg.kernels"                # a module whose import registers (decorators)
       # or  mine = "mypkg.kernels:IMPLS"    # a dict {op: function}, registered as "mine"

   fastnn loads them the first time it lists or looks up implementations; one that fails
   to load is reported by ``fastnn info`` and by the error of ``impl="mine"`` (it never
   breaks ``import fastnn``).

3. On the command line, ``module:function`` (importable from the current directory or
   ``PYTHONPATH``) wherever an implementation name is accepted: the function is
   registered under that text for the operation at hand (``fastnn check softmax
   mysoftmax:softmax``; ``fastnn bench --ops softmax --contenders jit,mysoftmax:softmax``).
   The object may also be a dict ``{op: function}``.

The registered function is the raw kernel (destination passing, no validation): it
receives C-contiguous arrays of one dtype, already checked by the public API, and writes
its result into the destination arguments. :data:`SIGNATURES` gives each operation's.
"""
from __future__ import annotations

import importlib
import inspect
import os
import sys
from typing import Callable, Dict, List, Optional

from .kernels import _registry as R

#: The raw kernel's signature of every operation, as a registered function must accept it
#: (destination arguments are written; the return value is used where it says so).
SIGNATURES: Dict[str, str] = {
    "sigmoid": "sigmoid(Z, out): Z and out 1-D of one length; out[i] = σ(Z[i]). "
               "out may be Z (in place)",
    "sigmoid_backward": "sigmoid_backward(dH, H, out): 1-D; out = dH·H·(1 − H). out may be dH",
    "softmax": "softmax(Z, out): Z (N, C); each row of out = softmax of Z's row. out may be Z",
    "log_softmax": "log_softmax(Z, out): Z (N, C); out = log softmax of each row. out may be Z",
    "softmax_cross_entropy": "softmax_cross_entropy(Z, y) -> loss: Z (N, C), N >= 1; y (N,) intp "
                             "labels or (N, C) target rows of Z's dtype; returns the mean loss",
    "softmax_cross_entropy_grad": "softmax_cross_entropy_grad(Z, y, dZ) -> loss: as "
                                  "softmax_cross_entropy; writes dZ = (softmax(Z)·ΣY − Y)/N",
    "sigmoid_bce_grad": "sigmoid_bce_grad(Z, Y, dZ) -> J: Z, Y, dZ (N, K); returns the mean "
                        "binary cross-entropy, writes dZ = (σ(Z) − Y)/N",
    "sigmoid_mse_grad": "sigmoid_mse_grad(Z, Y, dZ) -> E: returns Σ(σ(Z) − Y)²/(2N), writes "
                        "dZ = (σ(Z) − Y)σ(Z)(1 − σ(Z))/N",
    "linear": "linear(X, W, b, out): X (N, D), W (K, D), b (K,); out (N, K) = X Wᵀ + b",
    "linear_sigmoid": "linear_sigmoid(X, W, b, out): out = σ(X Wᵀ + b)",
    "linear_backward": "linear_backward(dZ, X, W, dW, db, dX): dZ (N, K); writes dW = dZᵀX, "
                       "db = column sums of dZ, and dX = dZ W unless dX is None",
    "hidden_delta": "hidden_delta(dZ, W, H, out): out (N, D) = (dZ W) ⊙ H ⊙ (1 − H)",
    "sgd_update": "sgd_update(param, grad, lr, momentum, velocity, weight_decay, l1, nesterov): "
                  "1-D param updated in place (velocity too when momentum != 0; else an empty "
                  "array): g = grad + weight_decay·param; v = momentum·v + g; step with v (or "
                  "g + momentum·v, nesterov); then soft-threshold by lr·l1",
    "perceptron_epoch": "perceptron_epoch(X, y, w, b, eta, threshold, order, fit_intercept) -> "
                        "errors: one epoch of the perceptron rule over the rows in order; w "
                        "and b (a 1-element array) updated in place; returns the misclassified count",
    "adaline_epoch": "adaline_epoch(X, y, w, b, eta, order, fit_intercept) -> sse: one epoch "
                     "of the ADALINE (delta) rule; w and b updated in place; returns the sum "
                     "of squared errors",
}

#: The implementations registered from outside: USER[op][name] -> where it came from.
USER: Dict[str, Dict[str, str]] = {}
#: Entry points that failed to load: name -> why.
LOAD_ERRORS: Dict[str, str] = {}
GROUP = "fastnn.implementations"
_loaded = [False]


def _nargs(op: str) -> int:
    head = SIGNATURES[op].split(")")[0]
    return len(head.split("(", 1)[1].split(","))


def check_signature(op: str, fn) -> None:
    """TypeError when ``fn`` cannot take ``op``'s raw-kernel arguments positionally (a
    function whose signature Python cannot read, a compiled one, is let through: the
    conformance check calls it)."""
    if not callable(fn):
        raise TypeError(f"fn: expected a function for {op!r}, got {type(fn).__name__}")
    target = getattr(fn, "py_func", fn)            # a Numba dispatcher: its Python function
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return
    n = _nargs(op)
    try:
        sig.bind(*range(n))
    except TypeError:
        raise TypeError(f"fn: {getattr(fn, '__name__', fn)!r}{sig} cannot take the {n} arguments of "
                        f"{SIGNATURES[op].split(':')[0]}") from None


def register(op: str, name: str, fn: Optional[Callable] = None, *, replace: bool = False,
             source: str = "register"):
    """Register ``fn`` as implementation ``name`` of the operation ``op`` (a decorator when
    ``fn`` is omitted). ``name``: letters, digits, ``_ . - :``; not one of fastnn's own
    implementations. ``replace=True`` replaces an earlier registration of yours.

    Raises ValueError for an unknown ``op`` or a taken ``name``, TypeError when ``fn``
    cannot take the raw kernel's arguments (:data:`SIGNATURES`)."""
    if not isinstance(op, str) or op not in R.IMPLS:
        raise ValueError(f"op: expected one of {', '.join(sorted(R.IMPLS))}, got {op!r}")
    if not isinstance(name, str) or not R.NAME.match(name):
        raise ValueError(f"name: expected letters, digits, '_', '.', '-', ':', got {name!r}")

    def deco(f):
        check_signature(op, f)
        table = R.IMPLS[op]
        if name in table:
            if name not in USER.get(op, {}):
                raise ValueError(f"name: {name!r} is fastnn's own implementation of {op!r}; "
                                 f"choose another name")
            if not replace:
                raise ValueError(f"name: {op}/{name} is already registered (from "
                                 f"{USER[op][name]}); pass replace=True to replace it")
            del table[name]
        R.register(op, name)(f)
        USER.setdefault(op, {})[name] = source
        return f

    return deco if fn is None else deco(fn)


def unregister(op: str, name: str) -> None:
    """Remove an implementation registered with :func:`register` (fastnn's own stay)."""
    if name not in USER.get(op, {}):
        raise ValueError(f"name: {op}/{name} was not registered from outside fastnn")
    del R.IMPLS[op][name]
    del USER[op][name]


def _register_object(obj, name: str, ops: Optional[List[str]], source: str) -> List[str]:
    """Register a function (for the single op in ``ops``) or a dict {op: function}."""
    if isinstance(obj, dict):
        done = []
        for op, fn in obj.items():
            if ops is None or op in ops:
                register(op, name, fn, replace=True, source=source)
                done.append(op)
        return done
    if callable(obj):
        if not ops or len(ops) != 1:
            raise ValueError(f"impl: {name!r} is one function; say which operation it implements "
                             f"(one operation, e.g. --ops softmax), or make it a dict {{op: function}}")
        register(ops[0], name, obj, replace=True, source=source)
        return list(ops)
    raise TypeError(f"impl: {name!r} is a {type(obj).__name__}; expected a function or a dict "
                    f"{{op: function}}")


def load_entry_points() -> None:
    """Load the ``fastnn.implementations`` entry points of the installed packages (once)."""
    if _loaded[0]:
        return
    _loaded[0] = True
    from importlib.metadata import entry_points
    try:
        eps = entry_points(group=GROUP)
    except Exception as exc:                        # noqa: BLE001 (broken metadata)
        LOAD_ERRORS["(metadata)"] = f"{type(exc).__name__}: {exc}"
        return
    for ep in eps:
        source = f"entry point {ep.name} = {ep.value}"
        try:
            obj = ep.load()
            if not inspect.ismodule(obj):
                _register_object(obj, ep.name, None, source)
        except Exception as exc:                    # noqa: BLE001 (reported, never fatal)
            why = f"{source} failed to load: {type(exc).__name__}: {' '.join(str(exc).split())}"
            LOAD_ERRORS[ep.name] = why
            R.UNAVAILABLE.setdefault(ep.name, why)


def resolve(spec: str, ops: Optional[List[str]] = None) -> str:
    """The registered name for ``spec``: a registered name as it is (entry points loaded
    first), or ``"module:function"`` imported (the current directory first on the path) and
    registered under that text for ``ops``. ValueError naming what failed."""
    load_entry_points()
    if not isinstance(spec, str):
        raise TypeError(f"impl: expected a name or 'module:function', got {type(spec).__name__}")
    if ":" not in spec or any(spec in t for t in R.IMPLS.values()):
        return spec
    modname, _, attr = spec.partition(":")
    if not modname or not attr:
        raise ValueError(f"impl: expected 'module:function', got {spec!r}")
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        mod = importlib.import_module(modname)
    except Exception as exc:                        # noqa: BLE001 (the user's module)
        raise ValueError(f"impl: cannot import module {modname!r} for {spec!r}: "
                         f"{type(exc).__name__}: {' '.join(str(exc).split())}") from None
    obj = mod
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"impl: module {modname!r} has no {attr!r} (for {spec!r})")
        obj = getattr(obj, part)
    _register_object(obj, spec, ops, f"{spec} (command line)")
    return spec
