"""fastnn.autodiff as an independent oracle for the hand-written backpropagation.

The loss of an MLP is written here from SPEC's formulas with the autodiff's functions
(its gradient then comes from the chain rule over primitives, not from the fused
``P − Y`` kernels), for every output/loss pair MLP supports, both hidden activations and
1, 2 and 3 weight layers, in float64; ``MLP.gradients`` must agree for every
implementation to ~1e-12. ``gradcheck(method="autodiff")`` is tested beside it."""
from __future__ import annotations

import numpy as np
import pytest

from fastnn import MLP, autodiff as ad, gradcheck
from numerics import IMPLS

PAIRS = [("softmax", "cross_entropy"), ("sigmoid", "cross_entropy"), ("sigmoid", "mse"),
         ("identity", "mse")]
DEPTHS = {1: [6, 3], 2: [6, 5, 3], 3: [6, 5, 4, 3]}


def spec_loss(sizes, hidden, output, loss, X, y):
    """L(W1, b1, ...) from SPEC "Forward" and "Losses": Z = A Wᵀ + b, A = σ(Z) (or Z) in
    the hidden layers; softmax + cross-entropy on labels, binary cross-entropy and the
    quadratic cost (1/2N) Σ ‖ŷ − y‖² on targets."""
    N, L = X.shape[0], len(sizes) - 1

    def f(*params):
        A = X
        for l in range(L):
            Z = A @ params[2 * l].T + params[2 * l + 1]
            if l < L - 1:
                A = ad.sigmoid(Z) if hidden == "sigmoid" else Z
        if output == "softmax":                     # (1/N) Σ logsumexp(Zᵢ) − Z[i, yᵢ]
            return ad.sum(ad.logsumexp(Z, axis=1) - Z[np.arange(N), y]) / N
        P = ad.sigmoid(Z) if output == "sigmoid" else Z
        if loss == "cross_entropy":                 # −(1/N) Σ y log ŷ + (1 − y) log(1 − ŷ)
            return -ad.sum(y * ad.log(P) + (1 - y) * ad.log(1 - P)) / N
        return ad.sum((P - y) ** 2) / (2 * N)
    return f


def _data(output, loss, K, N=9, D=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((N, D))
    if output == "softmax":
        return X, rng.integers(0, K, N)
    if output == "sigmoid":
        return X, rng.uniform(0.05, 0.95, (N, K))      # targets in (0, 1)
    return X, rng.standard_normal((N, K)) * 2


CONFIGS = [(depth, hidden, output, loss) for depth in DEPTHS
           for hidden in (("sigmoid", "identity") if depth > 1 else ("sigmoid",))
           for output, loss in PAIRS]


@pytest.mark.parametrize("depth,hidden,output,loss", CONFIGS)
def test_backprop_equals_autodiff(depth, hidden, output, loss):
    sizes = DEPTHS[depth]
    X, y = _data(output, loss, sizes[-1])
    m = MLP(sizes, hidden=hidden, output=output, loss=loss, dtype=np.float64, seed=depth)
    for b in m.biases:                                  # non-zero biases: their gradients
        b[...] = np.random.default_rng(7).standard_normal(b.shape) * 0.3     # matter too
    params = m.parameters()
    f = spec_loss(sizes, hidden, output, loss, X, y)
    value, ref = ad.value_and_grad(f, argnums=tuple(range(len(params))))(
        *(p.copy() for p in params.values()))
    ref = dict(zip(params, ref))
    for impl in IMPLS:
        assert m.evaluate(X, y, impl=impl)["loss"] == pytest.approx(value, rel=1e-13), impl
        got = m.gradients(X, y, impl=impl)
        assert set(got) == set(ref)
        for name in ref:
            r, g = ref[name], got[name]
            assert g.shape == r.shape and g.dtype == np.float64
            scale = np.abs(r).max()
            assert scale > 1e-3, f"{name}: vacuous (gradient ~0)"
            # relative to each entry (worst seen: 1.1e-13), floor 1e-12 of the largest entry
            np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12 * scale,
                                       err_msg=f"{impl} {name}")


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("depth,hidden,output,loss",
                         [c for c in CONFIGS if c[0] == 2 and c[1] == "sigmoid"] + [CONFIGS[-1]])
def test_gradcheck_with_autodiff_reference(depth, hidden, output, loss, impl):
    sizes = DEPTHS[depth]
    X, y = _data(output, loss, sizes[-1], seed=1)
    m = MLP(sizes, hidden=hidden, output=output, loss=loss, dtype=np.float32, seed=1)
    before = m._params.copy()
    errs = gradcheck(m, X, y, impl=impl, method="autodiff")
    central = gradcheck(m, X, y, impl=impl)
    assert set(errs) == set(m.parameters()) == set(central)
    assert max(errs.values()) < 1e-12, errs                       # exact up to rounding
    assert max(central.values()) < 1e-5                           # finite differences
    np.testing.assert_array_equal(m._params, before)              # the model is untouched


def test_gradcheck_autodiff_catches_a_wrong_gradient(monkeypatch):
    X, y = _data("softmax", "cross_entropy", 3)
    m = MLP(DEPTHS[2], dtype=np.float64, seed=1)
    real = MLP.gradients

    def wrong(self, *a, **k):
        g = real(self, *a, **k)
        g["b2"][0] += 1e-9                        # far below what central differences see
        return g
    monkeypatch.setattr(MLP, "gradients", wrong)
    errs = gradcheck(m, X, y, method="autodiff")
    assert errs["b2"] > 1e-10 and max(errs[k] for k in ("W1", "b1", "W2")) < 1e-13


def test_gradcheck_method_is_checked():
    X, y = _data("softmax", "cross_entropy", 3)
    with pytest.raises(ValueError, match="method: expected 'central' or 'autodiff', got 'exact'"):
        gradcheck(MLP(DEPTHS[1], dtype=np.float64), X, y, method="exact")
