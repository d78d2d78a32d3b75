"""Bad input: a TypeError/ValueError naming the argument, raised before anything is
written (outputs and in-place parameters are checked unchanged)."""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
from numerics import IMPLS

f32, f64 = np.float32, np.float64


def raises(exc, name, fn, *args, **kw):
    with pytest.raises(exc) as info:
        fn(*args, **kw)
    assert str(info.value).startswith(name + ":") or f"{name}:" in str(info.value), str(info.value)
    return str(info.value)


@pytest.fixture
def layer():
    r = np.random.default_rng(0)
    return (r.standard_normal((4, 3)).astype(f32), r.standard_normal((2, 3)).astype(f32),
            r.standard_normal(2).astype(f32))


@pytest.mark.parametrize("op", ["linear", "linear_sigmoid"])
def test_layer_shapes_and_dtypes(op, layer):
    fn = getattr(fastnn, op)
    X, W, b = layer
    msg = raises(ValueError, "W", fn, X, np.ones((2, 4), f32), b)
    assert "(2, 3)" in msg and "(2, 4)" in msg and "(4, 3)" in msg   # expected, X, got
    raises(ValueError, "X", fn, X[0], W, b)                  # wrong ndim
    raises(ValueError, "W", fn, X, W[0], b)
    raises(ValueError, "b", fn, X, W, np.ones(3, f32))
    raises(ValueError, "b", fn, X, W, np.ones((2, 1), f32))
    raises(TypeError, "W", fn, X, W.astype(f64), b)          # mixed float32/float64
    raises(TypeError, "b", fn, X, W, b.astype(f64))
    for bad in (np.int64, np.int32, np.complex64, np.float16, object, np.bool_):
        raises(TypeError, "X", fn, X.astype(bad), W, b)
    raises(TypeError, "X", fn, "abc", W, b)
    raises(TypeError, "X", fn, [[1, 2, 3]], W, b)            # a list of ints
    out = np.full((4, 2), 7, f32)
    raises(ValueError, "out", fn, X, W, b, out=np.empty((4, 3), f32))
    raises(TypeError, "out", fn, X, W, b, out=np.empty((4, 2), f64))
    ro = np.empty((4, 2), f32)
    ro.flags.writeable = False
    raises(ValueError, "out", fn, X, W, b, out=ro)
    raises(ValueError, "out", fn, X, W, b, out=np.empty((2, 4), f32).T)   # not C-contiguous
    raises(TypeError, "out", fn, X, W, b, out=[[0, 0]] * 4)
    # out overlapping an input
    XW = np.zeros((4, 3), f32)
    raises(ValueError, "out", fn, XW, np.ones((3, 3), f32), None, out=XW)
    # on error nothing was written
    raises(ValueError, "W", fn, X, np.ones((2, 4), f32), b, out=out)
    assert np.all(out == 7)


def test_impl_names():
    msg = raises(ValueError, "impl", fastnn.softmax, np.ones((1, 2)), impl="cuda")
    assert "'loop'" in msg and "'vectorized'" in msg and "'jit'" in msg
    raises(ValueError, "impl", fastnn.set_impl, "fast")
    with pytest.raises(ValueError, match="impl:"):
        with fastnn.use_impl("nope"):
            pass
    assert fastnn.get_impl() == "jit"


def test_impl_selection_and_restore():
    assert fastnn.impls() == ("loop", "vectorized", "jit")
    assert fastnn.get_impl() == "jit"
    with fastnn.use_impl("loop"):
        assert fastnn.get_impl() == "loop"
        with fastnn.use_impl("vectorized"):
            assert fastnn.get_impl() == "vectorized"
        assert fastnn.get_impl() == "loop"
    assert fastnn.get_impl() == "jit"
    try:
        fastnn.set_impl("vectorized")
        assert fastnn.get_impl() == "vectorized"
        # the kernel really called is the selected one: spy on the registry entry
        calls = []
        orig = fastnn.kernels.IMPLS["sigmoid"]["vectorized"]
        fastnn.kernels.IMPLS["sigmoid"]["vectorized"] = lambda Z, out: calls.append(1) or orig(Z, out)
        try:
            fastnn.sigmoid(np.zeros(3))
            fastnn.sigmoid(np.zeros(3), impl="jit")
        finally:
            fastnn.kernels.IMPLS["sigmoid"]["vectorized"] = orig
        assert calls == [1]
    finally:
        fastnn.set_impl("jit")


@pytest.mark.parametrize("op", ["softmax", "log_softmax", "sigmoid"])
def test_elementwise_bad_input(op):
    fn = getattr(fastnn, op)
    if op != "sigmoid":
        raises(ValueError, "Z", fn, np.float32(1.0) * np.ones((), f32))
    raises(TypeError, "Z", fn, np.ones((2, 3), np.int64))
    raises(TypeError, "Z", fn, np.ones((2, 3), np.float16))
    raises(ValueError, "out", fn, np.ones((2, 3), f32), out=np.empty((3, 2), f32))
    raises(TypeError, "out", fn, np.ones((2, 3), f32), out=np.empty((2, 3), f64))
    ro = np.empty((2, 3), f32)
    ro.flags.writeable = False
    raises(ValueError, "out", fn, np.ones((2, 3), f32), out=ro)
    raises(ValueError, "out", fn, np.ones((2, 3), f32), out=np.empty((3, 2), f32).T)
    raises(TypeError, "out", fn, np.ones((2, 3), f32), out=[[0.0] * 3] * 2)
    Z = np.ones((4, 3), f32)
    raises(ValueError, "out", fn, Z[:2], out=Z[1:3])           # partial overlap
    before = Z.copy()
    raises(ValueError, "out", fn, Z, out=np.empty((4, 3), f32).T.copy().T)
    assert np.array_equal(Z, before)                            # nothing written


def test_sigmoid_backward_bad_input():
    H = np.full((2, 3), 0.5, f32)
    raises(ValueError, "dH", fastnn.sigmoid_backward, np.ones((3, 2), f32), H)
    raises(TypeError, "dH", fastnn.sigmoid_backward, np.ones((2, 3), f64), H)


@pytest.mark.parametrize("op", ["softmax_cross_entropy", "softmax_cross_entropy_grad"])
def test_cross_entropy_bad_labels_and_targets(op):
    fn = getattr(fastnn, op)
    Z = np.zeros((3, 4), f32)
    msg = raises(ValueError, "y", fn, Z, np.array([0, 4, 1]))
    assert "[0, 4)" in msg and "4" in msg
    raises(ValueError, "y", fn, Z, np.array([0, -1, 1]))
    raises(ValueError, "y", fn, Z, np.array([0, 1]))                 # wrong length
    raises(ValueError, "y", fn, Z, np.array([[0, 1, 2]]))            # int 2-D
    raises(TypeError, "y", fn, Z, np.array([True, False, True]))
    raises(TypeError, "y", fn, Z, np.array(["a", "b", "c"]))
    raises(ValueError, "y", fn, Z, np.zeros((3, 5), f32))            # rows, wrong C
    raises(TypeError, "y", fn, Z, np.zeros((3, 4), f64))             # rows, mixed dtype
    raises(ValueError, "y", fn, Z, np.zeros(3, f32))                 # float 1-D
    raises(ValueError, "Z", fn, np.zeros((0, 4), f32), np.zeros(0, np.int64))   # empty batch
    raises(ValueError, "Z", fn, np.zeros((3, 0), f32), np.zeros(3, np.int64))   # no classes
    raises(ValueError, "Z", fn, np.zeros(4, f32), np.zeros(1, np.int64))        # 1-D logits
    raises(TypeError, "Z", fn, np.zeros((3, 4), np.int32), np.zeros(3, np.int64))
    # labels of any integer dtype are accepted
    for dt in (np.int8, np.uint8, np.int32, np.uint64):
        fastnn.softmax_cross_entropy(Z, np.array([0, 1, 3], dt))


def test_cross_entropy_grad_out_untouched_on_error():
    Z = np.zeros((3, 4), f32)
    out = np.full((3, 4), 9, f32)
    raises(ValueError, "y", fastnn.softmax_cross_entropy_grad, Z, np.array([0, 9, 1]), out=out)
    assert np.all(out == 9)
    raises(ValueError, "out", fastnn.softmax_cross_entropy_grad, Z, np.array([0, 1, 1]),
           out=np.empty((4, 3), f32))


@pytest.mark.parametrize("op", ["sigmoid_bce_grad", "sigmoid_mse_grad"])
def test_sigmoid_losses_bad_input(op):
    fn = getattr(fastnn, op)
    t = "y" if op == "sigmoid_bce_grad" else "Y"     # each message names the argument
    Z = np.zeros((3, 2), f32)
    raises(ValueError, t, fn, Z, np.zeros((3, 3), f32))
    raises(TypeError, t, fn, Z, np.zeros((3, 2), f64))
    raises(TypeError, t, fn, Z, np.ma.zeros((3, 2), f32))        # a mask: rejected
    raises(ValueError, "Z", fn, np.zeros((0, 2), f32), np.zeros((0, 2), f32))
    raises(ValueError, "Z", fn, np.zeros((2, 2, 2), f32), np.zeros((2, 2, 2), f32))
    if op == "sigmoid_bce_grad":
        raises(ValueError, "y", fn, Z, np.full((3, 2), 1.5, f32))
    # (N,) logits with (N,) targets, and 0/1 integer targets, are accepted
    loss, dZ = fn(np.zeros(3, f32), np.array([0, 1, 1]))
    assert dZ.shape == (3,) and dZ.dtype == f32


def test_backward_bad_input():
    dZ, X, W = np.zeros((4, 2), f32), np.zeros((4, 3), f32), np.zeros((2, 3), f32)
    raises(ValueError, "dZ", fastnn.linear_backward, np.zeros((4, 3), f32), X, W)
    raises(ValueError, "W", fastnn.linear_backward, dZ, X, np.zeros((2, 4), f32))
    raises(TypeError, "dZ", fastnn.linear_backward, dZ.astype(f64), X, W)
    dW, db, dX = np.full((2, 3), 5, f32), np.full(2, 5, f32), np.full((4, 3), 5, f32)
    raises(ValueError, "out[2] (dX)", fastnn.linear_backward, dZ, X, W, out=(dW, db, np.empty((4, 2), f32)))
    assert np.all(dW == 5) and np.all(db == 5)
    raises(ValueError, "out[2] (dX)", fastnn.linear_backward, dZ, X, W, compute_dX=False, out=(dW, db, dX))
    raises(TypeError, "out", fastnn.linear_backward, dZ, X, W, out=[dW, db, dX])
    raises(ValueError, "out[0] (dW)", fastnn.linear_backward, dZ, X, W, out=(X, db, dX))  # overlaps X
    H = np.zeros((4, 3), f32)
    raises(ValueError, "W", fastnn.hidden_delta, dZ, np.zeros((2, 4), f32), H)
    raises(ValueError, "dZ", fastnn.hidden_delta, np.zeros((4, 3), f32), W, H)
    raises(TypeError, "W", fastnn.hidden_delta, dZ, W.astype(f64), H)


def snapshot(*arrays):
    return [a.copy() for a in arrays]


def assert_unchanged(before, *arrays):
    for a, b in zip(arrays, before):
        assert np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("kw, exc, name", [
    (dict(lr=-0.1), ValueError, "lr"),
    (dict(lr=float("nan")), ValueError, "lr"),
    (dict(lr=float("inf")), ValueError, "lr"),
    (dict(lr="0.1"), TypeError, "lr"),
    (dict(lr=True), TypeError, "lr"),
    (dict(lr=np.ones(2)), TypeError, "lr"),
    (dict(momentum=1.0), ValueError, "momentum"),
    (dict(momentum=-0.1), ValueError, "momentum"),
    (dict(momentum=0.9), ValueError, "velocity"),                 # missing velocity
    (dict(momentum=0.9, velocity=np.zeros(5, f32)), ValueError, "velocity"),
    (dict(momentum=0.9, velocity=np.zeros((2, 3), f64)), TypeError, "velocity"),
    (dict(nesterov=True), ValueError, "nesterov"),
    (dict(nesterov=1), TypeError, "nesterov"),
    (dict(weight_decay=-1.0), ValueError, "weight_decay"),
    (dict(l1=-1e-3), ValueError, "l1"),
    (dict(l1=float("inf")), ValueError, "l1"),
    (dict(grad=np.ones((3, 2), f32)), ValueError, "grad"),
    (dict(grad=np.ones((2, 3), f64)), TypeError, "grad"),
    (dict(grad=np.ones((2, 3), np.int32)), TypeError, "grad"),
])
@pytest.mark.parametrize("impl", IMPLS)
def test_sgd_update_rejects_and_changes_nothing(kw, exc, name, impl):
    p = np.arange(6, dtype=f32).reshape(2, 3)
    vel = np.full((2, 3), 0.5, f32)
    args = dict(grad=np.ones((2, 3), f32), lr=0.1, momentum=0.9, velocity=vel, weight_decay=0.1,
                l1=0.01)
    if name in ("nesterov",):
        args.update(momentum=0.0, velocity=None)
    args.update(kw)
    if name == "velocity" and "velocity" not in kw:
        args["velocity"] = None
    before = snapshot(p, vel)
    grad, lr = args.pop("grad"), args.pop("lr")
    raises(exc, name, fastnn.sgd_update, p, grad, lr, impl=impl, **args)
    assert_unchanged(before, p, vel)


def test_sgd_update_param_requirements():
    raises(TypeError, "param", fastnn.sgd_update, [1.0, 2.0], np.ones(2), 0.1)
    raises(TypeError, "param", fastnn.sgd_update, np.ones(2, np.int64), np.ones(2), 0.1)
    ro = np.ones(3)
    ro.flags.writeable = False
    raises(ValueError, "param", fastnn.sgd_update, ro, np.ones(3), 0.1)
    raises(ValueError, "param", fastnn.sgd_update, np.ones((3, 2)).T, np.ones((2, 3)), 0.1)
    p = np.ones(4)
    raises(ValueError, "velocity", fastnn.sgd_update, p, np.ones(4), 0.1, momentum=0.5, velocity=p)
    # empty parameters: a no-op
    e = np.zeros(0, f32)
    assert fastnn.sgd_update(e, np.zeros(0, f32), 0.1) is e


@pytest.mark.parametrize("impl", IMPLS)
def test_empty_batches_are_documented_results(impl):
    X = np.zeros((0, 3), f32)
    W = np.ones((2, 3), f32)
    assert fastnn.linear(X, W, None, impl=impl).shape == (0, 2)
    assert fastnn.linear_sigmoid(X, W, None, impl=impl).shape == (0, 2)
    assert fastnn.softmax(np.zeros((0, 5), f32), impl=impl).shape == (0, 5)
    assert fastnn.softmax(np.zeros((3, 0), f32), impl=impl).shape == (3, 0)
    assert fastnn.log_softmax(np.zeros((2, 0, 4), f32), impl=impl).shape == (2, 0, 4)
    assert fastnn.sigmoid(np.zeros((0,), f32), impl=impl).shape == (0,)
    dW, db, dX = fastnn.linear_backward(np.zeros((0, 2), f32), X, W, impl=impl)
    assert np.array_equal(dW, np.zeros((2, 3))) and np.array_equal(db, np.zeros(2)) and dX.shape == (0, 3)


def test_inputs_made_contiguous_and_byte_swapped_accepted():
    r = np.random.default_rng(1)
    Z = r.standard_normal((6, 8))
    ref_ = fastnn.softmax(Z)
    assert np.allclose(fastnn.softmax(np.asfortranarray(Z)), ref_, atol=1e-15)
    assert np.allclose(fastnn.softmax(Z.astype(">f8")), ref_, atol=1e-15)
    assert np.allclose(fastnn.softmax(Z.T.copy().T), ref_, atol=1e-15)
    X = r.standard_normal((10, 4))[::2]                      # strided view
    W = r.standard_normal((3, 4))
    assert np.allclose(fastnn.linear(X, W, None), X @ W.T, atol=1e-12)
    assert np.allclose(fastnn.softmax(Z[:, ::2]), fastnn.softmax(np.ascontiguousarray(Z[:, ::2])))


def test_softmax_in_place():
    Z = np.random.default_rng(2).standard_normal((5, 7)).astype(f32)
    P = fastnn.softmax(Z)
    out = Z.copy()
    assert fastnn.softmax(out, out=out) is out
    assert np.array_equal(out, P)
