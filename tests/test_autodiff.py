"""fastnn.autodiff: the notes' example (notes 004, SPEC 7) three ways, and the gradient
of every primitive (broadcasting included) against central differences and forward mode."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import sympy  # the "test" extra installs it (pyproject.toml): no test here is skipped

import fastnn
from fastnn import autodiff as ad


def f_notes(x1, x2):
    """f(x₁, x₂) = ln(x₁) + x₁x₂ − sin(x₂), notes 004."""
    return ad.log(x1) + x1 * x2 - ad.sin(x2)


X1, X2 = 2.0, 5.0
DF1, DF2 = 1 / X1 + X2, X1 - math.cos(X2)          # the exact partial derivatives


# --- the notes' numbers -----------------------------------------------------------------
def test_trace_reproduces_the_notes_values():
    t = ad.trace(f_notes, X1, X2)
    notes = {-1: 2, 0: 5, 1: 0.693, 2: 10, 3: -0.959, 4: 10.693, 5: 11.652}
    assert [e["index"] for e in t.entries] == list(notes)
    for e in t.entries:
        assert round(float(e["value"]), 3) == notes[e["index"]], e["name"]
    assert [e["op"] for e in t.entries] == [None, None, "log", "multiply", "sin", "add", "subtract"]
    assert t.output == "v₅" and round(float(t.value), 3) == 11.652
    assert t[1] == math.log(2) and t[3] == math.sin(5) and t["v4"]["value"] == math.log(2) + 10
    text = str(t).splitlines()
    assert text == ["v₋₁ = x₁ = 2",
                    "v₀ = x₂ = 5",
                    "v₁ = ln v₋₁ = ln 2 = 0.693",
                    "v₂ = v₋₁ × v₀ = 2 × 5 = 10",
                    "v₃ = sin v₀ = sin 5 = −0.959",
                    "v₄ = v₁ + v₂ = 0.693 + 10 = 10.693",
                    "v₅ = v₄ − v₃ = 10.693 − (−0.959) = 11.652",
                    "y = v₅ = 11.652"]


def test_trace_derivative_columns():
    t = ad.trace(f_notes, X1, X2)
    # forward mode, one seed per input: v̇ along x₁ and along x₂
    tang = {e["index"]: [float(v) for v in e["tangents"]] for e in t.entries}
    assert tang[-1] == [1, 0] and tang[0] == [0, 1]
    assert tang[1] == [0.5, 0] and tang[2] == [5, 2] and tang[3] == [0, math.cos(5)]
    assert tang[5] == pytest.approx([DF1, DF2], abs=1e-12)
    # reverse mode: adjoints v̄ = ∂y/∂v
    adj = {e["index"]: float(e["adjoint"]) for e in t.entries}
    assert adj[5] == adj[4] == 1 and adj[3] == -1 and adj[2] == adj[1] == 1
    assert adj[-1] == pytest.approx(DF1, abs=1e-12) and adj[0] == pytest.approx(DF2, abs=1e-12)
    assert t.gradient == pytest.approx(t.forward_gradient, abs=1e-15)
    table = t.table().splitlines()
    assert table[0].split() == ["v", "expression", "value", "∂v/∂x₁", "∂v/∂x₂", "v̄", "=", "∂y/∂v"]
    assert table[2].split() == ["v₋₁", "x₁", "2", "1", "0", "5.5"]
    assert table[-1].split() == ["v₅", "v₄", "−", "v₃", "11.652", "5.5", "1.716", "1"]


def test_trace_in_evaluation_order():
    t = ad.trace(f_notes, X1, X2, order="evaluation")
    assert [e["op"] for e in t.entries[2:]] == ["log", "multiply", "add", "sin", "subtract"]
    assert t.value == ad.trace(f_notes, X1, X2).value and t.gradient == ad.trace(f_notes, X1, X2).gradient


def test_the_notes_derivatives_three_ways():
    exact = (DF1, DF2)
    assert DF1 == 5.5 and round(DF2, 4) == 1.7163
    reverse = ad.grad(f_notes, argnums=(0, 1))(X1, X2)
    value, rev2 = ad.value_and_grad(f_notes, argnums=(0, 1))(X1, X2)
    forward = ad.jacfwd(f_notes, argnums=(0, 1))(X1, X2)
    dual1 = f_notes(ad.Dual(X1, 1.0), ad.Dual(X2, 0.0)).tangent
    dual2 = ad.jvp(f_notes, (X1, X2), (0.0, 1.0))[1]
    symbolic = ad.symbolic_grad(f_notes, ("x1", "x2"), at=(X1, X2))
    symbolic_str = ad.symbolic_grad("ln(x1) + x1*x2 - sin(x2)", "x1 x2", at=(X1, X2))
    for got in (reverse, rev2, forward, (dual1, dual2), symbolic, symbolic_str):
        assert all(type(g) is float or isinstance(g, np.floating) for g in got)
        np.testing.assert_allclose(got, exact, rtol=1e-12, atol=0)
    assert value == pytest.approx(11.652071455223084, abs=1e-12)
    assert reverse[0] == 5.5                                   # exact in binary
    # numerical differentiation approximates the same (SPEC 7), to its own accuracy
    fwd = ad.numerical_grad(f_notes, X1, X2, argnums=(0, 1), method="forward")
    cen = ad.numerical_grad(f_notes, X1, X2, argnums=(0, 1), method="central")
    np.testing.assert_allclose(fwd, exact, rtol=1e-6)
    np.testing.assert_allclose(cen, exact, rtol=1e-9)
    assert not np.allclose(fwd, exact, rtol=1e-12, atol=0)     # it is an approximation
    h = ad.numerical_grad(f_notes, X1, X2, argnums=0, h=1e-3, method="forward")
    assert h == pytest.approx(DF1, rel=1e-3) and abs(h - DF1) > 1e-6     # O(h) error


def test_symbolic_expressions_are_the_rules_results():
    d1, d2 = ad.symbolic_grad("ln(x1) + x1*x2 - sin(x2)", ["x1", "x2"])
    x1, x2 = sympy.symbols("x1 x2")
    assert sympy.simplify(d1 - (1 / x1 + x2)) == 0
    assert sympy.simplify(d2 - (x1 - sympy.cos(x2))) == 0
    e1, e2 = ad.symbolic_grad(f_notes, ["x1", "x2"])                 # the same Python f
    assert sympy.simplify(e1 - d1) == 0 and sympy.simplify(e2 - d2) == 0
    (s,) = ad.symbolic_grad(lambda z: ad.sigmoid(z), ["z"])
    assert float(s.subs(sympy.Symbol("z"), 0)) == 0.25                 # σ'(0) = 1/4 (SPEC 5)


def test_symbolic_without_sympy_is_a_clear_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "sympy", None)
    with pytest.raises(ImportError, match=r"pip install 'fastnn-kernels\[symbolic\]'"):
        ad.symbolic_grad("x**2", ["x"])


# --- every primitive against central differences and forward mode ------------------------
R = np.random.default_rng(0)


def _pos(*shape):
    return R.uniform(0.5, 2.0, shape)


def _any(*shape):
    return R.standard_normal(shape)


ROWS = R.dirichlet(np.ones(3), 4)          # target distributions (4, 3)
TARGETS = R.uniform(0, 1, (4, 2))         # binary cross-entropy targets in [0, 1]
CASES = {  # name -> (function of the arguments, arguments)
    "add (3,4)+(4,)": (lambda a, b: a + b, (_any(3, 4), _any(4))),
    "sub (3,1)-(1,4)": (lambda a, b: a - b, (_any(3, 1), _any(1, 4))),
    "mul (2,3,4)*(3,1)": (lambda a, b: a * b, (_any(2, 3, 4), _any(3, 1))),
    "div (3,4)/(4,)": (lambda a, b: a / b, (_any(3, 4), _pos(4))),
    "rdiv scalar/(3,)": (lambda a: 2.0 / a, (_pos(3),)),
    "pow (3,4)**(4,)": (lambda a, b: a ** b, (_pos(3, 4), _any(4))),
    "pow const": (lambda a: a ** 3 - 2 ** a, (_any(5),)),
    "neg": (lambda a: -a * 2, (_any(4),)),
    "matmul 2d@2d": (lambda a, b: a @ b, (_any(3, 4), _any(4, 2))),
    "matmul 1d@2d": (lambda a, b: a @ b, (_any(4), _any(4, 2))),
    "matmul 2d@1d": (lambda a, b: a @ b, (_any(3, 4), _any(4))),
    "matmul 1d@1d": (lambda a, b: a @ b, (_any(4), _any(4))),
    "matmul 3d@2d": (lambda a, b: a @ b, (_any(2, 3, 4), _any(4, 2))),
    "matmul XWᵀ+b": (lambda X, W, b: X @ W.T + b, (_any(5, 3), _any(4, 3), _any(4))),
    "sum all": (lambda a: ad.sum(a) * a, (_any(3, 4),)),
    "sum axis0": (lambda a: ad.sum(a, axis=0), (_any(3, 4),)),
    "sum axis(0,2) keepdims": (lambda a: a.sum(axis=(0, 2), keepdims=True) * a, (_any(2, 3, 4),)),
    "mean axis-1": (lambda a: ad.mean(a, axis=-1), (_any(3, 4),)),
    "mean all": (lambda a: a.mean() * a, (_any(3, 2),)),
    "exp": (ad.exp, (_any(3, 2),)),
    "log": (ad.log, (_pos(3, 2),)),
    "log1p": (ad.log1p, (_pos(4),)),
    "sin": (ad.sin, (_any(5),)),
    "cos": (ad.cos, (_any(5),)),
    "tan": (ad.tan, (R.uniform(-1, 1, 5),)),
    "tanh": (ad.tanh, (_any(5),)),
    "sqrt": (ad.sqrt, (_pos(5),)),
    "abs": (ad.abs, (_any(5) + 0.1,)),
    "sigmoid": (ad.sigmoid, (_any(3, 4) * 4,)),
    "maximum": (lambda a, b: ad.maximum(a, b), (_any(3, 4), _any(4))),
    "reshape/transpose": (lambda a: a.reshape(4, 3).T.reshape(-1) * ad.transpose(a).reshape(12),
                          (_any(3, 4),)),
    "getitem fancy, repeats": (lambda a: a[np.array([0, 2, 0]), np.array([1, 1, 1])] * a[1:, ::2].sum(),
                               (_any(3, 4),)),
    "logsumexp": (lambda a: ad.logsumexp(a, axis=-1), (_any(3, 5) * 3,)),
    "logsumexp axis0 keepdims": (lambda a: ad.logsumexp(a, axis=0, keepdims=True) * a, (_any(3, 5),)),
    "log_softmax": (ad.log_softmax, (_any(3, 5),)),
    "softmax": (ad.softmax, (_any(3, 5),)),
    "softmax_cross_entropy labels": (lambda Z: ad.softmax_cross_entropy(Z, np.array([0, 2, 1, 2])),
                                     (_any(4, 3) * 2,)),
    "softmax_cross_entropy rows": (lambda Z: ad.softmax_cross_entropy(Z, ROWS), (_any(4, 3),)),
    "binary_cross_entropy": (lambda Z: ad.binary_cross_entropy(Z, TARGETS), (_any(4, 2) * 3,)),
    "mse": (lambda P, Y: ad.mse(ad.sigmoid(P), Y), (_any(4, 3), _any(4, 3))),
    "numpy ufuncs/functions": (lambda a, b: np.sum(np.exp(a) * b, axis=1, keepdims=True) + np.log(np.square(a) + 1),
                               (_any(3, 4), _any(4))),
}


def _weighted(fn, G):
    """L = Σ G ⊙ fn(...) (a scalar whose gradient is fn's vector-Jacobian product with G)."""
    return lambda *args: ad.sum(fn(*args) * G)


@pytest.mark.parametrize("name", list(CASES))
def test_gradient_against_central_differences_and_forward_mode(name):
    fn, args = CASES[name]
    out_shape = np.shape(fn(*args))
    G = np.random.default_rng(1).standard_normal(out_shape)
    L = _weighted(fn, G)
    nums = tuple(range(len(args)))
    rev = ad.grad(L, argnums=nums)(*args)
    fwd = ad.jacfwd(L, argnums=nums)(*args)
    num = ad.numerical_grad(lambda *a: L(*a), *args, argnums=nums, method="central")
    for k, (r, f, n, a) in enumerate(zip(rev, fwd, num, args)):
        assert r.shape == a.shape and r.dtype == np.float64
        scale = np.abs(n).max()
        assert scale > 0, f"{name}: the gradient is zero (vacuous)"
        np.testing.assert_allclose(r, n, rtol=1e-7, atol=1e-8 * scale, err_msg=f"{name} arg {k}")
        np.testing.assert_allclose(r, f, rtol=1e-12, atol=1e-13 * scale, err_msg=f"{name} arg {k}")


@pytest.mark.parametrize("name", ["matmul XWᵀ+b", "mul (2,3,4)*(3,1)", "softmax", "mse"])
def test_jvp_is_the_directional_derivative(name):
    fn, args = CASES[name]
    G = np.random.default_rng(2).standard_normal(np.shape(fn(*args)))
    L = _weighted(fn, G)
    rng = np.random.default_rng(3)
    tangents = tuple(rng.standard_normal(np.shape(a)) for a in args)
    value, d = ad.jvp(L, args, tangents)
    grads = ad.grad(L, argnums=tuple(range(len(args))))(*args)
    assert value == pytest.approx(float(L(*args)), rel=1e-14)
    assert d == pytest.approx(sum(float(np.sum(g * t)) for g, t in zip(grads, tangents)), rel=1e-12)


def test_network_functions_match_fastnn_kernels():
    rng = np.random.default_rng(4)
    Z = rng.standard_normal((6, 4)) * 3
    y = rng.integers(0, 4, 6)
    loss, dZ = fastnn.softmax_cross_entropy_grad(Z, y, impl="vectorized")
    val, g = ad.value_and_grad(lambda z: ad.softmax_cross_entropy(z, y))(Z)
    assert val == pytest.approx(float(loss), rel=1e-14)
    np.testing.assert_allclose(g, dZ, rtol=1e-12, atol=1e-15)            # (P − Y)/N
    np.testing.assert_allclose(ad.softmax(Z), fastnn.softmax(Z), rtol=1e-13)
    np.testing.assert_allclose(ad.sigmoid(Z), fastnn.sigmoid(Z), rtol=1e-15)
    Y = rng.uniform(0, 1, (6, 4))
    j, dj = fastnn.sigmoid_bce_grad(Z, Y, impl="vectorized")
    val, g = ad.value_and_grad(lambda z: ad.binary_cross_entropy(z, Y))(Z)
    assert val == pytest.approx(float(j), rel=1e-13)
    np.testing.assert_allclose(g, dj, rtol=1e-12, atol=1e-15)            # (σ(Z) − Y)/N
    e, de = fastnn.sigmoid_mse_grad(Z, Y, impl="vectorized")
    val, g = ad.value_and_grad(lambda z: ad.mse(ad.sigmoid(z), Y))(Z)
    assert val == pytest.approx(float(e), rel=1e-13)
    np.testing.assert_allclose(g, de, rtol=1e-12, atol=1e-15)


def test_extreme_logits_stay_finite_without_warnings():
    Z = np.array([[-800.0, 0.0, 800.0], [1e300, -1e300, 0.0]])
    g = ad.grad(lambda z: ad.softmax_cross_entropy(z, np.array([0, 1])))(Z)
    assert np.isfinite(g).all()
    np.testing.assert_allclose(g, [[-0.5, 0, 0.5], [0.5, -0.5, 0]], atol=1e-300)
    s = ad.grad(lambda z: ad.sum(ad.sigmoid(z)))(np.array([-800.0, 0.0, 800.0]))
    np.testing.assert_array_equal(s, [0.0, 0.25, 0.0])
    b = ad.grad(lambda z: ad.binary_cross_entropy(z, np.ones(3)))(np.array([-800.0, 0.0, 800.0]))
    np.testing.assert_allclose(b, np.array([-1.0, -0.5, 0.0]) / 3, atol=1e-300)


# --- API: types, shapes, errors ------------------------------------------------------------
def test_gradient_types_and_dtypes():
    assert type(ad.grad(lambda x: x * x)(3.0)) is float and ad.grad(lambda x: x * x)(3) == 6.0
    g32 = ad.grad(lambda x: ad.sum(x * x))(np.ones((2, 3), np.float32))
    assert g32.dtype == np.float32 and g32.shape == (2, 3)
    np.testing.assert_array_equal(g32, 2)
    gi = ad.grad(lambda x: ad.sum(x ** 2))(np.arange(3))            # ints: as float64
    assert gi.dtype == np.float64 and gi.tolist() == [0, 2, 4]
    g0 = ad.grad(lambda x, y: y * 2.0, argnums=0)(np.ones(3), 4.0)   # independent of x
    np.testing.assert_array_equal(g0, np.zeros(3))
    assert ad.grad(lambda x, y: x * y, argnums=-1)(3.0, 4.0) == 3.0
    v, g = ad.value_and_grad(lambda x: ad.sum(x) / 2)(np.arange(4.0))
    assert v == 3.0 and g.tolist() == [0.5] * 4


def test_plain_values_pass_through_as_numpy():
    assert ad.log(1.0) == 0.0 and ad.sin(0.0) == 0.0
    np.testing.assert_array_equal(ad.exp(np.zeros(3)), np.ones(3))
    assert ad.stop_gradient(ad.Dual(3.0, 1.0)) == 3.0


def test_dual_numbers():
    d = ad.Dual(3.0) ** 2 + 1
    assert d.value == 10 and d.tangent == 6
    v = ad.Dual(np.array([1.0, 2.0]), np.array([1.0, 0.0]))
    out = np.exp(v) * np.array([2.0, 3.0])                              # NumPy dispatches
    np.testing.assert_allclose(out.tangent, [2 * math.e, 0.0])
    with pytest.raises(ValueError, match=r"tangent: expected shape \(2,\)"):
        ad.Dual(np.ones(2), np.ones(3))
    with pytest.raises(TypeError, match="value: expected a real number"):
        ad.Dual("x")


@pytest.mark.parametrize("call,exc,match", [
    (lambda: ad.grad(lambda x: math.log(x))(2.0), TypeError, "math.* and float"),
    (lambda: ad.grad(lambda x: np.asarray(x))(np.ones(2)), TypeError, "cannot be converted to a NumPy"),
    (lambda: ad.grad(lambda x: x * 2)(np.ones(3)), ValueError, r"f must return a scalar.*\(3,\)"),
    (lambda: ad.grad(lambda x: x, argnums=1)(1.0), ValueError, "argnums: .* 1 positional"),
    (lambda: ad.grad(lambda x: x, argnums="0")(1.0), TypeError, "argnums: expected an int"),
    (lambda: ad.grad(lambda x, y: x, argnums=(0, 0))(1.0, 2.0), ValueError, "distinct"),
    (lambda: ad.grad(ad.grad(lambda x: x * x))(1.0), TypeError, "nested differentiation"),
    (lambda: ad.grad(lambda x: x + ad.Dual(1.0))(1.0), TypeError, "forward .* reverse"),
    (lambda: ad.grad(3)(1.0), TypeError, "f: expected a callable"),
    (lambda: ad.grad(lambda x: x)("a"), TypeError, "argument 0: expected a real number"),
    (lambda: ad.jvp(f_notes, (1.0,), (1.0, 2.0)), ValueError, "tangents: expected 1 entries"),
    (lambda: ad.jvp(f_notes, [1.0, 2.0], 1.0), TypeError, "must be tuples"),
    (lambda: ad.jvp(ad.sum, (np.ones(3),), (np.ones(2),)), ValueError, r"tangent.*\(3,\)"),
    (lambda: ad.numerical_grad(f_notes, 2.0, 5.0, method="backward"), ValueError, "method: expected"),
    (lambda: ad.numerical_grad(f_notes, 2.0, 5.0, h=0), ValueError, "h: expected a finite step > 0"),
    (lambda: ad.numerical_grad(lambda x: x * np.ones(2), 1.0), ValueError, "f: expected a scalar"),
    (lambda: ad.trace(f_notes, np.ones(2), 1.0), TypeError, r"args\[0\]: expected a real number"),
    (lambda: ad.trace(f_notes), ValueError, "args: expected the point"),
    (lambda: ad.trace(lambda x: 3.0, 1.0), ValueError, "does not depend on the inputs"),
    (lambda: ad.trace(f_notes, 1.0, 2.0, order="random"), ValueError, "order: expected"),
    (lambda: ad.symbolic_grad("x1 +* 2", ["x1"]), ValueError, "f: could not parse"),
    (lambda: ad.symbolic_grad("x1", ["1x"]), ValueError, "variables: expected variable names"),
    (lambda: ad.symbolic_grad("x1", ["x1"], at=(1.0, 2.0)), ValueError, "at: expected 1 numbers"),
])
def test_errors_name_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_numerical_grad_arrays_and_default_steps():
    rng = np.random.default_rng(5)
    W = rng.standard_normal((3, 4)) * 100                      # steps scale with |x|
    L = lambda W: float(np.sum(np.sin(W / 100) ** 2))           # noqa: E731
    exact = 2 * np.sin(W / 100) * np.cos(W / 100) / 100
    np.testing.assert_allclose(ad.numerical_grad(L, W), exact, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(ad.numerical_grad(L, W, method="forward"), exact, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(ad.grad(lambda W: ad.sum(ad.sin(W / 100) ** 2))(W), exact, rtol=1e-13)
    assert W.dtype == np.float64 and np.isfinite(W).all()       # the caller's array untouched
