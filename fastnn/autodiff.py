"""``fastnn.autodiff``: the three ways to differentiate of notes 004, in pure NumPy.

1. Numerical differentiation, :func:`numerical_grad`:
   ``∂f/∂xᵢ ≈ (f(x + h eᵢ) − f(x)) / h`` (the notes' forward difference) or the
   central difference ``(f(x + h eᵢ) − f(x − h eᵢ)) / 2h``.
2. Symbolic differentiation, :func:`symbolic_grad`: the sum, product and chain rules
   applied to the expression, through SymPy (the optional extra ``symbolic``).
3. Automatic differentiation: the function is evaluated as a sequence of elementary
   operations (the evaluation trace, :func:`trace`), and the chain rule is applied
   to each of them, either

   * forward (dual numbers, :class:`Dual`, :func:`jvp`, :func:`jacfwd`): each value
     carries its derivative along a direction, ``(v, v̇)``; or
   * in reverse (a tape, :func:`grad`, :func:`value_and_grad`): the operations are
     recorded, then the adjoints ``v̄ = ∂y/∂v`` are propagated from the output back
     to the inputs ("back propagation": one pass gives the whole gradient).

The notes' example, ``f(x₁, x₂) = ln(x₁) + x₁x₂ − sin(x₂)`` at (2, 5)::

    >>> from fastnn import autodiff as ad
    >>> f = lambda x1, x2: ad.log(x1) + x1 * x2 - ad.sin(x2)
    >>> print(ad.trace(f, 2.0, 5.0))
    v₋₁ = x₁ = 2
    v₀ = x₂ = 5
    v₁ = ln v₋₁ = ln 2 = 0.693
    v₂ = v₋₁ × v₀ = 2 × 5 = 10
    v₃ = sin v₀ = sin 5 = −0.959
    v₄ = v₁ + v₂ = 0.693 + 10 = 10.693
    v₅ = v₄ − v₃ = 10.693 − (−0.959) = 11.652
    y = v₅ = 11.652
    >>> ad.grad(f, argnums=(0, 1))(2.0, 5.0)       # (1/x₁ + x₂, x₁ − cos x₂)
    (5.5, 1.7163378145367738)

The differentiable functions carry NumPy's names (``log``, ``exp``, ``sin``, ``cos``,
``tan``, ``tanh``, ``sqrt``, ``abs``, ``log1p``, ``maximum``, ``sum``, ``mean``,
``reshape``, ``transpose``, ``matmul``, ``add``, ``subtract``, ``multiply``,
``divide``, ``power``, ``negative``) and accept plain numbers and arrays too (then they
are NumPy's). NumPy's own ufuncs and ``np.sum``/``np.mean``/``np.reshape``/
``np.transpose`` dispatch to them when given a traced value, so ``np.log(x)`` works
inside a differentiated function; ``math.log(x)`` does not (it would leave the
computation's graph: it raises ``TypeError``). The operators ``+ − × / ** @``,
unary minus, indexing (``Z[np.arange(N), y]``), ``.T``, ``.reshape``, ``.sum`` and
``.mean`` are differentiable; broadcasting is undone in the gradients (a bias
``(K,)`` added to ``(N, K)`` gets the sum over the rows). For networks:
:func:`sigmoid`, :func:`logsumexp`, :func:`log_softmax`, :func:`softmax`,
:func:`softmax_cross_entropy`, :func:`binary_cross_entropy` (from logits) and
:func:`mse` (the notes' quadratic cost), each written as a composition of the
primitives above, so their gradients come from the chain rule and not from a
hand-derived formula: that is what makes this module an independent check of
fastnn's backpropagation kernels (``fastnn.gradcheck(..., method="autodiff")``).

Scope: first derivatives (no grad of grad), real floats (float64 recommended;
float32 arrays stay float32), arguments that are numbers or arrays (no nested
containers).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = [
    "grad", "value_and_grad", "jvp", "jacfwd", "Dual", "trace", "Trace",
    "numerical_grad", "symbolic_grad", "stop_gradient",
    "add", "subtract", "multiply", "divide", "power", "negative", "matmul",
    "exp", "log", "log1p", "sin", "cos", "tan", "tanh", "sqrt", "abs", "maximum",
    "sigmoid", "sum", "mean", "reshape", "transpose",
    "logsumexp", "log_softmax", "softmax", "softmax_cross_entropy",
    "binary_cross_entropy", "mse",
]

_builtin_abs = abs          # (this module defines its own abs, sum)


# ======================================================================================
# Traced values
# ======================================================================================
class _Traced:
    """What forward (:class:`Dual`) and reverse (``_Node``) values share: NumPy's
    protocols and Python's operators, all routed to the primitives below."""

    __slots__ = ()
    __array_priority__ = 1000

    # --- array attributes ---
    @property
    def shape(self):
        return np.shape(self.value)

    @property
    def ndim(self):
        return np.ndim(self.value)

    @property
    def size(self):
        return np.size(self.value)

    @property
    def dtype(self):
        return np.asarray(self.value).dtype

    def __len__(self):
        return len(self.value)

    @property
    def T(self):
        return transpose(self)

    def reshape(self, *shape):
        return reshape(self, shape[0] if len(shape) == 1 else shape)

    def transpose(self, *axes):
        return transpose(self, axes or None)

    def sum(self, axis=None, keepdims=False):
        return sum(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return mean(self, axis=axis, keepdims=keepdims)

    # --- operators ---
    def __add__(self, o):
        return add(self, o)

    def __radd__(self, o):
        return add(o, self)

    def __sub__(self, o):
        return subtract(self, o)

    def __rsub__(self, o):
        return subtract(o, self)

    def __mul__(self, o):
        return multiply(self, o)

    def __rmul__(self, o):
        return multiply(o, self)

    def __truediv__(self, o):
        return divide(self, o)

    def __rtruediv__(self, o):
        return divide(o, self)

    def __pow__(self, o):
        return power(self, o)

    def __rpow__(self, o):
        return power(o, self)

    def __matmul__(self, o):
        return matmul(self, o)

    def __rmatmul__(self, o):
        return matmul(o, self)

    def __neg__(self):
        return negative(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return abs(self)

    def __getitem__(self, key):
        return _getitem(self, key)

    # comparisons look at the values (control flow on values is allowed; the
    # result is not differentiable)
    def __lt__(self, o):
        return self.value < _value(o)

    def __le__(self, o):
        return self.value <= _value(o)

    def __gt__(self, o):
        return self.value > _value(o)

    def __ge__(self, o):
        return self.value >= _value(o)

    def __bool__(self):
        return bool(self.value)

    __hash__ = object.__hash__

    # --- leaving the graph is an error, not a silent loss of the derivative ---
    def __float__(self):
        raise TypeError("a traced value cannot be converted to a Python float: math.* and float() "
                        "leave the computation's graph; use fastnn.autodiff.log, .exp, ... "
                        "(or stop_gradient(x) for the plain value)")

    __int__ = __index__ = __complex__ = __float__

    def __array__(self, dtype=None, copy=None):
        raise TypeError("a traced value cannot be converted to a NumPy array (np.asarray, "
                        "np.array): use the functions of fastnn.autodiff, or stop_gradient(x)")

    # --- NumPy dispatch ---
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        fn = _UFUNCS.get(ufunc)
        if method != "__call__" or fn is None or kwargs:
            return NotImplemented
        return fn(*inputs)

    def __array_function__(self, func, types, args, kwargs):
        fn = _ARRAY_FUNCTIONS.get(func)
        if fn is None:
            return NotImplemented
        return fn(*args, **kwargs)


class Dual(_Traced):
    """A dual number ``value + tangent·ε`` (ε² = 0): forward-mode differentiation.

    Every primitive maps ``(v, v̇)`` to ``(f(v), f'(v)·v̇)`` (for several arguments,
    the sum of the partial derivatives times their tangents), so the output's
    ``tangent`` is the derivative along the inputs' tangents.

    Parameters
    ----------
    value : number or float array
    tangent : number or array broadcastable to value's shape (default 1: d/dx)

    >>> from fastnn import autodiff as ad
    >>> x1, x2 = ad.Dual(2.0, 1.0), ad.Dual(5.0, 0.0)          # seed ẋ₁ = 1
    >>> print((ad.log(x1) + x1 * x2 - ad.sin(x2)).tangent)        # ∂f/∂x₁
    5.5
    """

    __slots__ = ("value", "tangent")

    def __init__(self, value, tangent=1.0):
        if isinstance(value, _Traced) or isinstance(tangent, _Traced):
            raise TypeError("Dual: nested differentiation is not supported")
        self.value = _as_float(value, "value")
        t = _as_float(tangent, "tangent")
        if np.shape(t) != np.shape(self.value):
            try:
                t = np.broadcast_to(t, np.shape(self.value)).copy()
            except ValueError:
                raise ValueError(f"tangent: expected shape {np.shape(self.value)} (value's), got "
                                 f"{np.shape(t)}") from None
        self.tangent = t

    def __repr__(self):
        return f"Dual({self.value!r}, tangent={self.tangent!r})"


class _Node(_Traced):
    """A value recorded on a tape (reverse mode): the primitive that made it, its
    arguments (nodes or constants) and their raw values."""

    __slots__ = ("value", "tape", "pos", "prim", "args", "raw", "kw", "label")

    def __init__(self, value, tape, prim=None, args=(), raw=(), kw=None, label=None):
        self.value = value
        self.tape = tape
        self.prim, self.args, self.raw, self.kw = prim, args, raw, kw or {}
        self.label = label                       # inputs: "x₁", ...
        self.pos = len(tape.nodes)
        tape.nodes.append(self)

    def __repr__(self):
        return f"<traced value {self.value!r}>"


class _Tape:
    __slots__ = ("nodes",)

    def __init__(self):
        self.nodes = []


def _value(x):
    return x.value if isinstance(x, _Traced) else x


def stop_gradient(x):
    """The plain value of ``x`` (a traced value's value): a constant for differentiation."""
    return _value(x)


def _is_sympy(x):
    return type(x).__module__.startswith("sympy")


def _as_float(x, name):
    """A number -> np.float64; an array -> a float array (ints and bools to float64)."""
    if isinstance(x, (bool, np.bool_)) or isinstance(x, (str, bytes)) or x is None:
        raise TypeError(f"{name}: expected a real number or a float array, got {type(x).__name__}")
    if isinstance(x, numbers.Real) and not isinstance(x, np.ndarray):
        return np.float64(x)
    a = np.asarray(x)
    if a.dtype.kind in "biu":
        return a.astype(np.float64)
    if a.dtype.kind != "f":
        raise TypeError(f"{name}: expected real numbers, got dtype {a.dtype}")
    return a


# ======================================================================================
# Primitives: value, forward rule (jvp) and reverse rule (vjp)
# ======================================================================================
class _Primitive:
    """One differentiable operation.

    f(*raw, **kw) -> value; jvp(tangents, out, *raw, **kw) -> the output's tangent
    (``tangents[i]`` is None for constant arguments); vjp(i, g, out, *raw, **kw) -> the
    adjoint contribution to argument i from the output's adjoint ``g``. ``fmt`` writes
    the operation in the evaluation trace; ``sym`` (optional) applies it to SymPy
    expressions.
    """

    def __init__(self, name, f, jvp, vjp, fmt, sym=None):
        self.name, self.f, self.jvp, self.vjp, self.fmt, self.sym = name, f, jvp, vjp, fmt, sym

    def __call__(self, *args, **kw):
        node = dual = None
        for a in args:
            if isinstance(a, _Node):
                if node is not None and a.tape is not node.tape:
                    raise TypeError(f"{self.name}: values of two different differentiations were "
                                    "combined (nested grad is not supported)")
                node = a
            elif isinstance(a, Dual):
                dual = a
            elif self.sym is not None and _is_sympy(a):
                return self.sym(*args, **kw)
        if node is not None and dual is not None:
            raise TypeError(f"{self.name}: forward (Dual) and reverse-mode values were combined")
        raw = tuple(_value(a) for a in args)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out = self.f(*raw, **kw)
            if dual is not None:
                tangents = tuple(a.tangent if isinstance(a, Dual) else None for a in args)
                d = Dual.__new__(Dual)
                d.value, d.tangent = out, self.jvp(tangents, out, *raw, **kw)
                return d
        if node is not None:
            return _Node(out, node.tape, self, args, raw, kw)
        return out


def _unbroadcast(g, shape):
    """Sum ``g`` over the axes that broadcasting added or stretched, to ``shape``."""
    g = np.asarray(g)
    if g.shape == tuple(shape):
        return g
    while g.ndim > len(shape):
        g = g.sum(axis=0)
    for i, n in enumerate(shape):
        if n == 1 and g.shape[i] != 1:
            g = g.sum(axis=i, keepdims=True)
    return g.reshape(shape)


def _unary(name, f, d, fmt, sym=None):
    """Elementwise f with derivative d(x, out) = f'(x)."""
    def jvp(t, out, x):
        return d(x, out) * t[0]

    def vjp(i, g, out, x):
        return g * d(x, out)
    return _Primitive(name, f, jvp, vjp, fmt, sym)


def _binary(name, f, d0, d1, fmt, sym=None):
    """Elementwise, broadcasting f(x, y) with partials d0, d1 (x, y, out)."""
    parts = (d0, d1)

    def jvp(t, out, x, y):
        acc = None
        for i in (0, 1):
            if t[i] is not None:
                c = parts[i](x, y, out) * t[i]
                acc = c if acc is None else acc + c
        return np.broadcast_to(acc, np.shape(out)).copy() if np.shape(acc) != np.shape(out) else acc

    def vjp(i, g, out, x, y):
        return _unbroadcast(g * parts[i](x, y, out), np.shape((x, y)[i]))
    return _Primitive(name, f, jvp, vjp, fmt, sym)


def _sym(fname):
    def apply(*args):
        import sympy
        return getattr(sympy, fname)(*args)
    return apply


def _stable_sigmoid(x):
    e = np.exp(-np.abs(x))                       # never overflows
    s = 1 / (1 + e)
    return np.where(np.asarray(x) >= 0, s, e * s)[()]


def _sym_sigmoid(x):
    import sympy
    return 1 / (1 + sympy.exp(-x))


def _sym_log1p(x):
    import sympy
    return sympy.log(1 + x)


add = _binary("add", np.add, lambda x, y, o: 1.0, lambda x, y, o: 1.0, "{0} + {1}",
              lambda a, b: a + b)
subtract = _binary("subtract", np.subtract, lambda x, y, o: 1.0, lambda x, y, o: -1.0,
                   "{0} − {1}", lambda a, b: a - b)
multiply = _binary("multiply", np.multiply, lambda x, y, o: y, lambda x, y, o: x, "{0} × {1}",
                   lambda a, b: a * b)
divide = _binary("divide", np.divide, lambda x, y, o: 1 / y, lambda x, y, o: -o / y, "{0} / {1}",
                 lambda a, b: a / b)
power = _binary("power", np.power, lambda x, y, o: y * np.power(x, y - 1),
                lambda x, y, o: o * np.log(x), "{0}^{1}", lambda a, b: a ** b)
maximum = _binary("maximum", np.maximum,
                  lambda x, y, o: (np.asarray(x > y, float) + 0.5 * (x == y)),
                  lambda x, y, o: (np.asarray(x < y, float) + 0.5 * (x == y)), "max({0}, {1})",
                  _sym("Max"))
negative = _unary("negative", np.negative, lambda x, o: -1.0, "−{0}", lambda a: -a)
exp = _unary("exp", np.exp, lambda x, o: o, "exp {0}", _sym("exp"))
log = _unary("log", np.log, lambda x, o: 1 / x, "ln {0}", _sym("log"))
log1p = _unary("log1p", np.log1p, lambda x, o: 1 / (1 + x), "ln(1 + {0})", _sym_log1p)
sin = _unary("sin", np.sin, lambda x, o: np.cos(x), "sin {0}", _sym("sin"))
cos = _unary("cos", np.cos, lambda x, o: -np.sin(x), "cos {0}", _sym("cos"))
tan = _unary("tan", np.tan, lambda x, o: 1 + o * o, "tan {0}", _sym("tan"))
tanh = _unary("tanh", np.tanh, lambda x, o: 1 - o * o, "tanh {0}", _sym("tanh"))
sqrt = _unary("sqrt", np.sqrt, lambda x, o: 0.5 / o, "√{0}", _sym("sqrt"))
abs = _unary("abs", np.abs, lambda x, o: np.sign(x), "|{0}|", _sym("Abs"))
sigmoid = _unary("sigmoid", _stable_sigmoid, lambda x, o: o * (1 - o), "σ({0})", _sym_sigmoid)
sigmoid.__doc__ = "σ(x) = 1/(1 + e^(−x)), computed without overflow; σ'(x) = σ(x)(1 − σ(x))."


# --- matrix product --------------------------------------------------------------------
def _matmul_grads(g, x, y):
    """Adjoints of ``x @ y`` for 1-D and N-D operands (1-D ones promoted as NumPy does)."""
    X = x if np.ndim(x) > 1 else np.reshape(x, (1, -1))
    Y = y if np.ndim(y) > 1 else np.reshape(y, (-1, 1))
    G = np.asarray(g)
    if np.ndim(y) == 1:
        G = G[..., None]
    if np.ndim(x) == 1:
        G = np.expand_dims(G, -2)
    gx = _unbroadcast(G @ np.swapaxes(Y, -1, -2), X.shape).reshape(np.shape(x))
    gy = _unbroadcast(np.swapaxes(X, -1, -2) @ G, Y.shape).reshape(np.shape(y))
    return gx, gy


def _matmul_jvp(t, out, x, y):
    acc = None
    if t[0] is not None:
        acc = np.matmul(t[0], y)
    if t[1] is not None:
        c = np.matmul(x, t[1])
        acc = c if acc is None else acc + c
    return acc


matmul = _Primitive("matmul", np.matmul, _matmul_jvp,
                    lambda i, g, out, x, y: _matmul_grads(g, x, y)[i], "{0} @ {1}")


# --- reductions and shapes -------------------------------------------------------------
def _sum_f(x, axis=None, keepdims=False):
    return np.sum(x, axis=axis, keepdims=keepdims)


def _sum_vjp(i, g, out, x, axis=None, keepdims=False):
    shape = np.shape(x)
    if axis is not None and not keepdims:
        axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
        g = np.expand_dims(g, tuple(a % len(shape) for a in axes))
    return np.broadcast_to(g, shape).copy()


_sum = _Primitive("sum", _sum_f, lambda t, out, x, **kw: _sum_f(t[0], **kw), _sum_vjp, "Σ {0}")


def sum(x, axis=None, keepdims=False):  # noqa: A001 - NumPy's name, on purpose
    """Σ over ``axis`` (None: all elements), as ``np.sum``; differentiable."""
    return _sum(x, axis=axis, keepdims=keepdims)


def mean(x, axis=None, keepdims=False):
    """Mean over ``axis`` (None: all elements): ``sum(x, axis) / count``."""
    shape = np.shape(_value(x))
    if axis is None:
        n = int(np.prod(shape))
    else:
        axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
        n = int(np.prod([shape[a] for a in axes]))
    return sum(x, axis=axis, keepdims=keepdims) / n


_reshape = _Primitive("reshape", lambda x, shape: np.reshape(x, shape),
                      lambda t, out, x, shape: np.reshape(t[0], shape),
                      lambda i, g, out, x, shape: np.reshape(g, np.shape(x)), "reshape {0}")


def reshape(x, shape):
    """``np.reshape(x, shape)``; differentiable."""
    return _reshape(x, shape=shape)


def _transpose_vjp(i, g, out, x, axes=None):
    if axes is None:
        return np.transpose(g)
    return np.transpose(g, np.argsort(axes))


_transpose = _Primitive("transpose", lambda x, axes=None: np.transpose(x, axes),
                        lambda t, out, x, axes=None: np.transpose(t[0], axes), _transpose_vjp,
                        "{0}ᵀ")


def transpose(x, axes=None):
    """``np.transpose(x, axes)`` (``x.T``); differentiable."""
    return _transpose(x, axes=None if axes is None else tuple(axes))


def _getitem_vjp(i, g, out, x, key):
    z = np.zeros(np.shape(x), np.result_type(g, np.asarray(x).dtype))
    np.add.at(z, key, g)                        # repeated indices accumulate
    return z


_getitem = _Primitive("getitem", lambda x, key: np.asarray(x)[key],
                      lambda t, out, x, key: np.asarray(t[0])[key], _getitem_vjp, "{0}[…]")


# --- network functions, composed from the primitives ---------------------------------------
def logsumexp(x, axis=-1, keepdims=False):
    """``log Σ exp(x)`` over ``axis``, as ``m + log Σ exp(x − m)`` with ``m`` the maximum
    (a constant for differentiation: its derivative cancels exactly), so it never
    overflows; the gradient, ``softmax(x)``, comes from the chain rule."""
    xv = np.asarray(_value(x))
    m = np.max(xv, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    out = log(sum(exp(x - m), axis=axis, keepdims=True)) + m
    if keepdims:
        return out
    return reshape(out, np.squeeze(m, axis=axis).shape)


def log_softmax(Z, axis=-1):
    """``Z − logsumexp(Z)`` over ``axis`` (rows for a 2-D Z)."""
    return Z - logsumexp(Z, axis=axis, keepdims=True)


def softmax(Z, axis=-1):
    """``exp(log_softmax(Z))``."""
    return exp(log_softmax(Z, axis=axis))


def softmax_cross_entropy(Z, y):
    """Mean softmax cross-entropy of logits Z (N, C) (SPEC "Losses"):
    ``(1/N) Σᵢ logsumexp(Zᵢ) − Z[i, yᵢ]`` for integer labels y (N,), or
    ``−(1/N) Σᵢ Σⱼ Y[i, j] log softmax(Z)[i, j]`` for target rows Y (N, C)."""
    y = np.asarray(_value(y))
    N = np.shape(_value(Z))[0]
    if y.ndim == 1 and y.dtype.kind in "iu":
        return mean(logsumexp(Z, axis=-1) - Z[np.arange(N), y])
    return -sum(y * log_softmax(Z)) / N


def binary_cross_entropy(Z, Y):
    """Binary cross-entropy of sigmoid outputs from their logits Z (N, K), targets Y in
    [0, 1] (SPEC "Losses"): ``−(1/N) Σ [Y log σ(Z) + (1 − Y) log(1 − σ(Z))]``, summed over
    the K outputs, written stably as ``(1/N) Σ max(Z, 0) + log(1 + e^(−|Z|)) − Y Z``."""
    N = np.shape(_value(Z))[0] if np.ndim(_value(Z)) else 1
    return sum(maximum(Z, 0.0) + log1p(exp(-abs(Z))) - Y * Z) / N


def mse(pred, target):
    """The notes' quadratic cost ``(1/2N) Σᵢ ‖predᵢ − targetᵢ‖²`` (SPEC "Losses", seeds
    001 and 004): half the squared error, summed over the outputs, averaged over the
    N rows (a 1-D ``pred`` is N rows of one output; a scalar is one)."""
    shape = np.shape(_value(pred))
    N = shape[0] if shape else 1
    d = pred - target
    return sum(d * d) / (2 * N)


_UFUNCS = {np.add: add, np.subtract: subtract, np.multiply: multiply, np.divide: divide,
           np.power: power, np.negative: negative, np.exp: exp, np.log: log, np.log1p: log1p,
           np.sin: sin, np.cos: cos, np.tan: tan, np.tanh: tanh, np.sqrt: sqrt,
           np.absolute: abs, np.maximum: maximum, np.matmul: matmul,
           np.positive: lambda x: x, np.square: lambda x: multiply(x, x)}
_ARRAY_FUNCTIONS = {np.sum: sum, np.mean: mean, np.reshape: reshape, np.transpose: transpose,
                    np.shape: lambda x: x.shape, np.ndim: lambda x: x.ndim,
                    np.size: lambda x: x.size}


# ======================================================================================
# Reverse mode: grad, value_and_grad
# ======================================================================================
def _argnums(argnums, nargs, fname):
    single = isinstance(argnums, (int, np.integer)) and not isinstance(argnums, bool)
    nums = (argnums,) if single else argnums
    if not isinstance(nums, (tuple, list)) or not nums or not all(
            isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in nums):
        raise TypeError(f"argnums: expected an int or a non-empty tuple of ints, got {argnums!r}")
    out = []
    for i in nums:
        j = int(i) + nargs if i < 0 else int(i)
        if not 0 <= j < nargs:
            raise ValueError(f"argnums: {fname} was called with {nargs} positional argument(s); "
                             f"argnums {argnums!r} names argument {i}")
        out.append(j)
    if len(set(out)) != len(out):
        raise ValueError(f"argnums: expected distinct argument numbers, got {argnums!r}")
    return single, tuple(out)


def _backward(out, tape):
    """Adjoints ``v̄ = ∂out/∂v`` of every node of the tape, by one reverse sweep
    (creation order is a topological order)."""
    adj = [None] * len(tape.nodes)
    adj[out.pos] = np.ones_like(out.value)
    for node in reversed(tape.nodes[:out.pos + 1]):
        g = adj[node.pos]
        if g is None or node.prim is None:
            continue
        for i, a in enumerate(node.args):
            if isinstance(a, _Node):
                with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                    c = node.prim.vjp(i, g, node.value, *node.raw, **node.kw)
                adj[a.pos] = c if adj[a.pos] is None else adj[a.pos] + c
    return adj


def _like_input(g, x, original):
    """The gradient in the input's form: a Python float for a number, else an array of
    the input's shape and (float) dtype."""
    if g is None:
        g = np.zeros_like(x)
    if isinstance(original, numbers.Real) and not isinstance(original, np.ndarray):
        return float(g)
    return np.asarray(g, dtype=np.asarray(x).dtype).reshape(np.shape(x))


def value_and_grad(f, argnums=0):
    """``f``'s value and gradient, by reverse mode, as a function of f's arguments.

    Parameters
    ----------
    f : callable returning a scalar (a number or a 0-d / one-element array)
    argnums : int or tuple of ints, the positional arguments to differentiate

    Returns
    -------
    callable ``(*args, **kwargs) -> (value, gradient)``: the gradient has the shape
    (and float dtype) of its argument, a Python float for a number; a tuple of them
    for a tuple ``argnums``. Integer arguments are differentiated as float64.
    """
    if not callable(f):
        raise TypeError(f"f: expected a callable, got {type(f).__name__}")

    def value_and_grad_f(*args, **kwargs):
        single, nums = _argnums(argnums, len(args), getattr(f, "__name__", "f"))
        tape = _Tape()
        args = list(args)
        originals, inputs = {}, {}
        for i in nums:
            a = args[i]
            if isinstance(a, _Traced):
                raise TypeError("grad: nested differentiation (grad of grad, grad of jvp) is not "
                                "supported")
            originals[i] = a
            inputs[i] = args[i] = _Node(_as_float(a, f"argument {i}"), tape,
                                        label=f"x{_sub(len(inputs) + 1)}")
        out = f(*args, **kwargs)
        if isinstance(out, Dual):
            raise TypeError("grad: f returned a Dual (forward and reverse mode mixed)")
        value = _value(out)
        if np.size(value) != 1:
            raise ValueError(f"grad: f must return a scalar (the gradient of a scalar function), "
                             f"got shape {np.shape(value)}")
        if isinstance(out, _Node) and out.tape is tape:
            adj = _backward(out, tape)
            grads = tuple(_like_input(adj[inputs[i].pos], inputs[i].value, originals[i])
                          for i in nums)
        else:                                       # f does not depend on the arguments
            grads = tuple(_like_input(None, inputs[i].value, originals[i]) for i in nums)
        return value, (grads[0] if single else grads)

    return value_and_grad_f


def grad(f, argnums=0):
    """The gradient function of a scalar ``f``, by reverse mode (a tape), as JAX's
    ``grad``: ``grad(f)(x)`` is ∂f/∂x (x's shape); ``grad(f, argnums=(0, 1))(x, y)``
    is the tuple (∂f/∂x, ∂f/∂y). See :func:`value_and_grad`."""
    vg = value_and_grad(f, argnums)

    def grad_f(*args, **kwargs):
        return vg(*args, **kwargs)[1]
    return grad_f


# ======================================================================================
# Forward mode: jvp, jacfwd
# ======================================================================================
def jvp(f, primals, tangents):
    """Forward mode: ``(f(*primals), J·tangents)``, the value of f and its derivative
    along the direction ``tangents`` (one per primal, of its shape), in one
    evaluation with dual numbers. As JAX's ``jvp``: primals and tangents are tuples."""
    if not isinstance(primals, (tuple, list)) or not isinstance(tangents, (tuple, list)):
        raise TypeError("jvp: primals and tangents must be tuples (one entry per argument)")
    if len(primals) != len(tangents):
        raise ValueError(f"tangents: expected {len(primals)} entries (one per primal), got "
                         f"{len(tangents)}")
    duals = []
    for k, (p, t) in enumerate(zip(primals, tangents)):
        d = Dual(p, t)
        if np.shape(_as_float(t, f"tangents[{k}]")) != np.shape(d.value):
            raise ValueError(f"tangents[{k}]: expected shape {np.shape(d.value)} (primals[{k}]'s), "
                             f"got {np.shape(t)}")
        duals.append(d)
    out = f(*duals)

    def split(o):
        if isinstance(o, Dual):
            return o.value, o.tangent
        if isinstance(o, _Node):
            raise TypeError("jvp: f returned a reverse-mode value (forward and reverse mixed)")
        return o, np.zeros_like(np.asarray(o, dtype=float))[()]   # independent of the inputs
    if isinstance(out, tuple):
        pairs = [split(o) for o in out]
        return tuple(p for p, _ in pairs), tuple(t for _, t in pairs)
    return split(out)


def jacfwd(f, argnums=0):
    """The Jacobian of f by forward mode: one :func:`jvp` per element of each
    differentiated argument. For an output of shape S and an argument of shape A the
    Jacobian has shape S + A (for a scalar f: the gradient, as :func:`grad`); a tuple
    for a tuple ``argnums``."""
    if not callable(f):
        raise TypeError(f"f: expected a callable, got {type(f).__name__}")

    def jac_f(*args):
        single, nums = _argnums(argnums, len(args), getattr(f, "__name__", "f"))
        vals = [_as_float(a, f"argument {i}") for i, a in enumerate(args)]
        result = []
        for i in nums:
            x = vals[i]
            cols = []
            for j in range(np.size(x)):
                e = np.zeros(np.size(x))
                e[j] = 1.0
                tangents = [np.zeros_like(v) for v in vals]
                tangents[i] = e.reshape(np.shape(x)).astype(np.asarray(x).dtype)
                cols.append(np.asarray(jvp(f, tuple(vals), tuple(tangents))[1]))
            out_shape = cols[0].shape if cols else ()
            J = np.stack(cols, axis=-1).reshape(out_shape + np.shape(x))
            original = args[i]
            if J.ndim == 0 and isinstance(original, numbers.Real) and not isinstance(original, np.ndarray):
                J = float(J)
            result.append(J)
        return result[0] if single else tuple(result)

    return jac_f


# ======================================================================================
# The evaluation trace (notes 004)
# ======================================================================================
_SUBSCRIPT = str.maketrans("-0123456789", "₋₀₁₂₃₄₅₆₇₈₉")


def _sub(i):
    return str(i).translate(_SUBSCRIPT)


def _num(x, digits=3):
    """A value as the notes print it: integers plain, others to ``digits`` decimals,
    the minus sign typeset (−)."""
    a = np.asarray(x)
    if a.ndim:
        return np.array2string(a, precision=digits).replace("-", "−")
    x = float(a)
    if math.isfinite(x) and _builtin_abs(x) < 1e15 and x == int(x):
        s = str(int(x))
    else:
        s = f"{x:.{digits}f}".rstrip("0").rstrip(".") if math.isfinite(x) else str(x)
    return s.replace("-", "−")


class Trace:
    """The evaluation trace of a function at a point (notes 004), with both modes of
    automatic differentiation along it.

    Attributes
    ----------
    entries : list of dicts, one per value vᵢ in evaluation order: ``name`` ("v₋₁"),
        ``index`` (−1, 0, 1, ...: the inputs are v_{1−n}..v₀), ``op`` (None for an
        input, else the primitive's name), ``expr`` ("ln v₋₁"), ``expr_values``
        ("ln 2"), ``value``, ``tangents`` (∂vᵢ/∂x_k for every input k: the forward
        mode's derivative column, one seed per input) and ``adjoint`` (v̄ᵢ = ∂y/∂vᵢ:
        the reverse mode's column).
    value : y, the function's value.  output : the name of y's entry.
    gradient : (∂y/∂x₁, ...) from the adjoints.  forward_gradient : the same from the
        tangents (equal up to rounding).

    ``str(trace)`` is the trace as the notes write it; :meth:`table` adds the
    derivative columns.
    """

    def __init__(self, entries, output, n_inputs):
        self.entries = entries
        self.output = output
        self.n_inputs = n_inputs
        out = next(e for e in entries if e["name"] == output)
        self.value = out["value"]
        self.gradient = tuple(e["adjoint"] for e in entries[:n_inputs])
        self.forward_gradient = tuple(out["tangents"])

    def __getitem__(self, name):
        """The entry named ``name`` ("v₁" or "v1") or the value of index ``name`` (an int)."""
        if isinstance(name, (int, np.integer)):
            return next(e["value"] for e in self.entries if e["index"] == name)
        key = name.translate(str.maketrans("₋₀₁₂₃₄₅₆₇₈₉", "-0123456789"))
        for e in self.entries:
            if e["name"].translate(str.maketrans("₋₀₁₂₃₄₅₆₇₈₉", "-0123456789")) == key:
                return e
        raise KeyError(name)

    def __str__(self):
        lines = []
        for e in self.entries:
            if e["op"] is None:
                lines.append(f"{e['name']} = {e['label']} = {_num(e['value'])}")
            else:
                lines.append(f"{e['name']} = {e['expr']} = {e['expr_values']} = {_num(e['value'])}")
        lines.append(f"y = {self.output} = {_num(self.value)}")
        return "\n".join(lines)

    def __repr__(self):
        return f"<Trace of {len(self.entries)} values, y = {_num(self.value)}>"

    def table(self, digits=3):
        """The trace as a table: each value, its derivative along each input (forward
        mode) and its adjoint (reverse mode)."""
        n = self.n_inputs
        head = (["v", "expression", "value"] + [f"∂v/∂x{_sub(k + 1)}" for k in range(n)]
                + ["v̄ = ∂y/∂v"])
        rows = [head]
        for e in self.entries:
            rows.append([e["name"], e["label"] if e["op"] is None else e["expr"],
                         _num(e["value"], digits)]
                        + [_num(t, digits) for t in e["tangents"]] + [_num(e["adjoint"], digits)])
        widths = [max(len(r[c]) for r in rows) for c in range(len(head))]
        out = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        out.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(out)


def trace(f, *args, order="levels"):
    """The evaluation trace of ``f(*args)`` as notes 004 tabulate it.

    Parameters
    ----------
    f : a function of real numbers written with this module's functions (or
        operators, or NumPy's ufuncs), returning a number
    *args : the point, real numbers x₁, ..., xₙ
    order : "levels" (default): the values level by level, as the notes (and the
        classic presentation of this example, Baydin et al.'s survey of automatic
        differentiation) list them: first every value computed from the inputs alone,
        then those computed from these, and so on, each level in evaluation order;
        "evaluation": the order in which Python evaluated them (for
        ``ln(x₁) + x₁x₂ − sin(x₂)``, the sum before the sine). Both are orders in which
        the values can be computed, and give the same values and derivatives.

    Returns
    -------
    :class:`Trace`: the inputs as v_{1−n} … v₀, then one value per elementary
    operation, each with its forward-mode derivatives and its adjoint.
    """
    if not callable(f):
        raise TypeError(f"f: expected a callable, got {type(f).__name__}")
    if order not in ("levels", "evaluation"):
        raise ValueError(f"order: expected 'levels' or 'evaluation', got {order!r}")
    if not args:
        raise ValueError("args: expected the point at which to evaluate f (one number per input)")
    for k, a in enumerate(args):
        if isinstance(a, (bool, np.bool_)) or not isinstance(a, numbers.Real) or isinstance(a, _Traced):
            raise TypeError(f"args[{k}]: expected a real number, got {type(a).__name__}")
    n = len(args)
    tape = _Tape()
    inputs = [_Node(np.float64(a), tape, label=f"x{_sub(k + 1)}") for k, a in enumerate(args)]
    out = f(*inputs)
    if not isinstance(out, _Node) or out.tape is not tape:
        raise ValueError("f: its result does not depend on the inputs through this module's "
                         "functions; nothing to trace")
    if np.size(out.value) != 1:
        raise ValueError(f"f: expected a scalar result, got shape {np.shape(out.value)}")
    adj = _backward(out, tape)
    level = {}
    for node in tape.nodes:
        level[node.pos] = 1 + max((level[a.pos] for a in node.args if isinstance(a, _Node)),
                                  default=-1)
    nodes = (sorted(tape.nodes, key=lambda nd: (level[nd.pos], nd.pos)) if order == "levels"
             else list(tape.nodes))
    names, tangents, entries = {}, {}, []
    for k, node in enumerate(nodes):
        idx = k - n + 1
        name = f"v{_sub(idx)}"
        names[node.pos] = name
        if node.prim is None:
            tangents[node.pos] = [np.float64(1.0 if j == node.pos else 0.0) for j in range(n)]
            entries.append(dict(name=name, index=idx, op=None, label=node.label, expr=node.label,
                                expr_values=_num(node.value), value=node.value,
                                tangents=tangents[node.pos], adjoint=_zero_or(adj[node.pos], node)))
            continue
        ts = []
        for j in range(n):
            targs = tuple(tangents[a.pos][j] if isinstance(a, _Node) else None for a in node.args)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                ts.append(node.prim.jvp(targs, node.value, *node.raw, **node.kw))
        tangents[node.pos] = ts
        sym = [names[a.pos] if isinstance(a, _Node) else _num(a) for a in node.args]
        num = [_num(a.value) if isinstance(a, _Node) else _num(a) for a in node.args]
        num = [f"({s})" if s.startswith("−") and len(node.args) > 1 and i > 0 else s
               for i, s in enumerate(num)]
        entries.append(dict(name=name, index=idx, op=node.prim.name, label=None,
                            expr=node.prim.fmt.format(*sym), expr_values=node.prim.fmt.format(*num),
                            value=node.value, tangents=ts, adjoint=_zero_or(adj[node.pos], node)))
    return Trace(entries, names[out.pos], n)


def _zero_or(a, node):
    return np.zeros_like(node.value) if a is None else a


# ======================================================================================
# Numerical and symbolic differentiation
# ======================================================================================
def numerical_grad(f, *args, argnums=0, h=None, method="central"):
    """Finite-difference gradient of a scalar ``f`` at ``args`` (notes 004), in float64.

    ``method="forward"``: ``(f(x + h eᵢ) − f(x)) / h`` (the notes' formula; error O(h)).
    ``method="central"``: ``(f(x + h eᵢ) − f(x − h eᵢ)) / 2h`` (error O(h²)).

    Parameters
    ----------
    f : callable returning a number
    *args : the point; numbers or float arrays (copied to float64)
    argnums : int or tuple of ints, as :func:`grad`
    h : step > 0, or None: ``√ε·max(1, |xᵢ|)`` (forward) or ``∛ε·max(1, |xᵢ|)``
        (central), ε float64's machine epsilon, the steps that balance truncation and
        rounding error. The step actually taken is ``(xᵢ + h) − xᵢ`` (exact in binary).

    Returns
    -------
    The gradient in :func:`grad`'s form (float for a number, else an array; a tuple
    for a tuple ``argnums``). Expect about 8 correct digits (forward) or 10 (central)
    for well-scaled f, against ~16 for :func:`grad`.
    """
    if not callable(f):
        raise TypeError(f"f: expected a callable, got {type(f).__name__}")
    if method not in ("forward", "central"):
        raise ValueError(f"method: expected 'forward' or 'central', got {method!r}")
    if h is not None:
        if isinstance(h, bool) or not isinstance(h, numbers.Real) or not (h > 0 and math.isfinite(h)):
            raise ValueError(f"h: expected a finite step > 0, got {h!r}")
    single, nums = _argnums(argnums, len(args), getattr(f, "__name__", "f"))
    point = [np.array(_as_float(a, f"argument {i}"), dtype=np.float64) for i, a in enumerate(args)]
    eps = np.finfo(np.float64).eps
    base = eps ** (0.5 if method == "forward" else 1 / 3)

    def call():
        r = f(*[p[()] if p.ndim == 0 else p for p in point])
        if np.size(r) != 1:
            raise ValueError(f"f: expected a scalar result, got shape {np.shape(r)}")
        return float(np.asarray(r).reshape(-1)[0])

    f0 = call() if method == "forward" else None
    grads = []
    for i in nums:
        x = point[i]
        flat = x.reshape(-1)                  # a view: perturbs x in place
        g = np.empty(flat.size)
        for j in range(flat.size):
            old = flat[j]
            step = h if h is not None else base * max(1.0, _builtin_abs(float(old)))
            hp = (old + step) - old
            flat[j] = old + hp
            fp = call()
            if method == "forward":
                flat[j] = old
                g[j] = (fp - f0) / hp
            else:
                hm = old - (old - step)
                flat[j] = old - hm
                fm = call()
                flat[j] = old
                g[j] = (fp - fm) / (hp + hm)
        grads.append(_like_input(g.reshape(x.shape), x, args[i]))
    return grads[0] if single else tuple(grads)


def _sympy():
    try:
        import sympy
    except ImportError:
        raise ImportError("fastnn.autodiff.symbolic_grad needs SymPy: pip install "
                          "'fastnn-kernels[symbolic]' (or pip install sympy)") from None
    return sympy


def symbolic_grad(f, variables, at=None):
    """Symbolic partial derivatives (sum, product and chain rules; notes 004) via SymPy.

    Parameters
    ----------
    f : an expression string, e.g. ``"ln(x1) + x1*x2 - sin(x2)"`` (SymPy's syntax;
        ``ln`` is ``log``), or a callable of the variables written with this module's
        functions (``lambda x1, x2: ad.log(x1) + x1 * x2 - ad.sin(x2)``), which is then
        called with SymPy symbols
    variables : sequence of names, ``("x1", "x2")`` (or one string "x1 x2")
    at : None, or the point (one number per variable)

    Returns
    -------
    tuple of SymPy expressions ∂f/∂vᵢ (``(x2 + 1/x1, x1 - cos(x2))``), or with ``at``
    their values there as floats (evaluated to 30 digits, then rounded).

    Needs the optional extra ``symbolic`` (SymPy); ImportError otherwise.
    """
    sympy = _sympy()
    if isinstance(variables, str):
        variables = variables.replace(",", " ").split()
    variables = list(variables)
    if not variables or not all(isinstance(v, str) and v.isidentifier() for v in variables):
        raise ValueError(f"variables: expected variable names like ('x1', 'x2'), got {variables!r}")
    syms = sympy.symbols(variables)
    syms = list(syms) if isinstance(syms, (list, tuple)) else [syms]
    if isinstance(f, str):
        env = {v: s for v, s in zip(variables, syms)}
        env.setdefault("ln", sympy.log)
        try:
            expr = sympy.sympify(f, locals=env)
        except (sympy.SympifyError, SyntaxError, TypeError) as exc:
            raise ValueError(f"f: could not parse {f!r} as an expression: {exc}") from None
    elif callable(f):
        expr = sympy.sympify(f(*syms))
    else:
        raise TypeError(f"f: expected an expression string or a callable, got {type(f).__name__}")
    derivs = tuple(sympy.diff(expr, s) for s in syms)
    if at is None:
        return derivs
    at = tuple(at) if np.ndim(at) else (at,)
    if len(at) != len(syms):
        raise ValueError(f"at: expected {len(syms)} numbers (one per variable), got {len(at)}")
    subs = {s: sympy.Float(float(a), 40) for s, a in zip(syms, at)}
    return tuple(float(d.evalf(30, subs=subs)) for d in derivs)
