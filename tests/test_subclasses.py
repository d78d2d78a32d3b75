"""Array subclasses and foreign arrays, in every argument of every operation (issue 20,
point 6). The rule (``fastnn.functional``'s docstring): read-only inputs are
converted with ``np.asarray`` (same values, same result as the plain array), masked
arrays excepted, which are a ``TypeError`` (no kernel can honour a mask); arrays that
are written (``out``, ``sgd_update``'s ``param`` and ``velocity``) must be exactly
``numpy.ndarray``, anything else a ``TypeError`` naming the argument, raised before
anything is written. Every operation × argument × kind × implementation is tried.
"""
from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest

import fastnn
from numerics import IMPLS

f32 = np.float32


class Sub(np.ndarray):
    """A do-nothing subclass (as a library's array type might be)."""


class FakeTensor:
    """A foreign array (torch, JAX, ...): only ``__array__``, over memory it owns."""

    def __init__(self, a):
        self._a = a

    def __array__(self, dtype=None, copy=None):
        return self._a if dtype is None else self._a.astype(dtype)


def _kinds(a, tmp_path):
    """(kind, object, plain ndarray view of its memory or None) for array ``a``."""
    kinds = [("subclass", a.copy().view(Sub)),
             ("masked", np.ma.array(a.copy(), mask=np.zeros(a.shape, bool))),
             ("fake tensor", FakeTensor(a.copy()))]
    mm = np.memmap(tmp_path / f"m{a.size}_{a.ndim}.bin", dtype=a.dtype, mode="w+",
                   shape=a.shape if a.size else (1,))
    if a.size:
        mm[...] = a
        kinds.append(("memmap", mm))
    if a.ndim == 2:
        kinds.append(("matrix", a.copy().view(np.matrix)))
    return kinds


def _r(*shape, seed=0):
    return np.random.default_rng(seed + len(shape)).standard_normal(shape).astype(f32)


def _cases():
    """op -> (function of keyword arrays, the plain arrays, written argument names)."""
    X, W, b = _r(4, 3), _r(2, 3, seed=1), _r(2)
    Z, H = _r(4, 3, seed=2), np.full((4, 3), 0.25, f32)
    lab = np.array([0, 2, 1, 2])
    T = np.abs(_r(4, 3, seed=3))
    Y01 = (Z > 0).astype(f32)
    dZ = _r(4, 2, seed=4)

    def lb(dZ, X, W, dW, db, dX, impl):
        return fastnn.linear_backward(dZ, X, W, out=(dW, db, dX), impl=impl)

    def sgd(param, grad, velocity, impl):
        fastnn.sgd_update(param, grad, 0.1, momentum=0.5, velocity=velocity, impl=impl)
        return param, velocity

    return {
        "linear": (lambda X, W, b, out, impl: fastnn.linear(X, W, b, out=out, impl=impl),
                   dict(X=X, W=W, b=b, out=np.zeros((4, 2), f32)), {"out"}),
        "linear_sigmoid": (lambda X, W, b, out, impl: fastnn.linear_sigmoid(X, W, b, out=out, impl=impl),
                           dict(X=X, W=W, b=b, out=np.zeros((4, 2), f32)), {"out"}),
        "sigmoid": (lambda Z, out, impl: fastnn.sigmoid(Z, out=out, impl=impl),
                    dict(Z=Z, out=np.zeros((4, 3), f32)), {"out"}),
        "softmax": (lambda Z, out, impl: fastnn.softmax(Z, out=out, impl=impl),
                    dict(Z=Z, out=np.zeros((4, 3), f32)), {"out"}),
        "log_softmax": (lambda Z, out, impl: fastnn.log_softmax(Z, out=out, impl=impl),
                        dict(Z=Z, out=np.zeros((4, 3), f32)), {"out"}),
        "sigmoid_backward": (lambda dH, H, out, impl: fastnn.sigmoid_backward(dH, H, out=out, impl=impl),
                             dict(dH=Z, H=H, out=np.zeros((4, 3), f32)), {"out"}),
        "softmax_cross_entropy": (lambda Z, y, impl: fastnn.softmax_cross_entropy(Z, y, impl=impl),
                                  dict(Z=Z, y=lab), set()),
        "softmax_cross_entropy/targets": (
            lambda Z, y, impl: fastnn.softmax_cross_entropy(Z, y, impl=impl), dict(Z=Z, y=T), set()),
        "softmax_cross_entropy_grad": (
            lambda Z, y, out, impl: fastnn.softmax_cross_entropy_grad(Z, y, out=out, impl=impl),
            dict(Z=Z, y=lab, out=np.zeros((4, 3), f32)), {"out"}),
        "sigmoid_bce_grad": (lambda Z, y, out, impl: fastnn.sigmoid_bce_grad(Z, y, out=out, impl=impl),
                             dict(Z=Z, y=Y01, out=np.zeros((4, 3), f32)), {"out"}),
        "sigmoid_mse_grad": (lambda Z, Y, out, impl: fastnn.sigmoid_mse_grad(Z, Y, out=out, impl=impl),
                             dict(Z=Z, Y=T, out=np.zeros((4, 3), f32)), {"out"}),
        "linear_backward": (lb, dict(dZ=dZ, X=X, W=W, dW=np.zeros((2, 3), f32), db=np.zeros(2, f32),
                                     dX=np.zeros((4, 3), f32)), {"dW", "db", "dX"}),
        "hidden_delta": (lambda dZ, W, H, out, impl: fastnn.hidden_delta(dZ, W, H, out=out, impl=impl),
                         dict(dZ=dZ, W=W, H=np.full((4, 3), 0.5, f32), out=np.zeros((4, 3), f32)),
                         {"out"}),
        "sgd_update": (sgd, dict(param=_r(2, 3, seed=5), grad=_r(2, 3, seed=6),
                                 velocity=np.zeros((2, 3), f32)), {"param", "velocity"}),
    }


#: how each name of a written argument appears in messages
_MSG = {"dW": "out[0] (dW)", "db": "out[1] (db)", "dX": "out[2] (dX)"}


def _flat(result):
    if isinstance(result, tuple):
        return [np.asarray(r, np.float64) for r in result if r is not None]
    return [np.asarray(result, np.float64)]


def _data(x):
    return np.array(x._a if isinstance(x, FakeTensor) else np.asarray(x), copy=True)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("op", sorted(_cases()))
def test_every_argument_with_every_array_kind(op, impl, tmp_path):
    fn, plain, writes = _cases()[op]
    want = _flat(fn(**{k: a.copy() for k, a in plain.items()}, impl=impl))
    tried = 0
    for name, a in plain.items():
        for kind, obj in _kinds(a, tmp_path):
            args = {k: x.copy() for k, x in plain.items()}
            args[name] = obj
            others = {k: x.copy() for k, x in args.items() if k != name}
            before = _data(obj)
            tried += 1
            if name in writes or kind == "masked":
                label = _MSG.get(name, name)
                with pytest.raises(TypeError, match="^" + re.escape(label) + ": ") as info:
                    fn(**args, impl=impl)
                msg = str(info.value)
                assert type(obj).__name__ in msg or "FakeTensor" in msg, msg
                if kind == "masked":
                    assert "mask" in msg, msg
                elif name in writes and kind != "fake tensor":
                    assert f"np.asarray({label.split(' (')[0]})" in msg, msg
                elif kind == "fake tensor":
                    assert "copy" in msg, msg
                # nothing written: neither the argument nor the other outputs
                assert np.array_equal(_data(obj), before), (op, name, kind)
                for k in writes - {name}:
                    assert np.array_equal(args[k], others[k]), (op, name, kind, k)
            else:                       # read-only: converted, the same result
                got = _flat(fn(**args, impl=impl))
                assert len(got) == len(want)
                for g, w in zip(got, want):
                    assert np.array_equal(g, w), (op, name, kind)
                assert np.array_equal(_data(obj), before), (op, name, kind)
    assert tried >= 4 * len(plain)


@pytest.mark.parametrize("impl", IMPLS)
def test_sgd_update_with_a_matrix_param_is_a_clear_type_error(impl):
    """Before: jit raised a Numba TypingError dump, loop updated the wrong elements or
    none; masked params: jit failed on the first call, loop/vectorized honoured the mask."""
    p = np.arange(6, dtype=float).reshape(2, 3).view(np.matrix)
    with pytest.raises(TypeError, match=r"^param: expected a numpy.ndarray updated in place, "
                                        r"got numpy.matrix; pass np.asarray\(param\)"):
        fastnn.sgd_update(p, np.ones((2, 3)), 0.5, impl=impl)
    assert np.array_equal(p, np.arange(6).reshape(2, 3))
    q = np.asarray(p)                                    # the documented fix: a plain view
    fastnn.sgd_update(q, np.ones((2, 3)), 0.5, impl=impl)
    assert np.array_equal(p, np.arange(6).reshape(2, 3) - 0.5)
    m = np.ma.array([1.0, 2.0], mask=[False, True])
    for _ in range(2):
        with pytest.raises(TypeError, match=r"^param: .*numpy\.ma\.MaskedArray.*mask"):
            fastnn.sgd_update(m, np.ones(2), 0.5, impl=impl)
    assert np.array_equal(m.data, [1.0, 2.0])
    with pytest.raises(TypeError, match=r"^grad: masked arrays are not supported"):
        fastnn.sgd_update(np.ones(2), np.ma.array([1.0, 2.0], mask=[0, 1]), 0.5, impl=impl)


def test_foreign_arrays_as_inputs_and_outputs():
    t = FakeTensor(np.linspace(-2, 2, 6).reshape(2, 3))
    assert np.array_equal(fastnn.sigmoid(t), fastnn.sigmoid(t._a))
    with pytest.raises(TypeError, match=r"^out: expected a numpy.ndarray to write into, got "
                                        r"test_subclasses.FakeTensor: an array converted from it "
                                        r"may be a copy"):
        fastnn.sigmoid(t._a, out=FakeTensor(np.zeros((2, 3))))
    with pytest.raises(TypeError, match=r"^param: .*may be a copy"):
        fastnn.sgd_update(FakeTensor(np.ones(3)), np.ones(3), 0.1)
    with pytest.raises(TypeError, match=r"^velocity: .*may be a copy"):
        fastnn.sgd_update(np.ones(3), np.ones(3), 0.1, momentum=0.5,
                          velocity=FakeTensor(np.zeros(3)))


if importlib.util.find_spec("torch") is not None:      # (FakeTensor above covers the rest)
    def test_torch_tensors():
        import torch
        t = torch.linspace(-2, 2, 6, dtype=torch.float32).reshape(2, 3)
        assert np.array_equal(fastnn.sigmoid(t), fastnn.sigmoid(t.numpy()))
        with pytest.raises(TypeError, match=r"^out: .*got torch.Tensor.*t.numpy\(\) shares its memory"):
            fastnn.sigmoid(t, out=torch.empty(2, 3))
        with pytest.raises(TypeError, match=r"^param: .*got torch.Tensor"):
            fastnn.sgd_update(t, torch.ones(2, 3), 0.1)
