"""The conventions users bring (issue 22): ``axis=`` as scipy.special.softmax and
torch.softmax(dim=), cross-entropy ``reduction=`` and ``ignore_index=`` as
torch.nn.functional.cross_entropy, and errors that say what is wrong when samples are
in columns (Nielsen's network.py). Every implementation, float32 and float64, against
SciPy in float64."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import special

import fastnn
from numerics import DTYPES, IMPLS, assert_close


def _z(shape, dtype, seed=0):
    return (np.random.default_rng(seed).standard_normal(shape) * 4).astype(dtype)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(7,), (3, 5), (4, 1), (3, 4, 5), (2, 1, 6)])
def test_softmax_and_log_softmax_over_any_axis(shape, dtype, impl):
    Z = _z(shape, dtype)
    Z64 = Z.astype(np.float64)
    before = Z.copy()
    for axis in range(-len(shape), len(shape)):
        P = fastnn.softmax(Z, axis, impl=impl)
        L = fastnn.log_softmax(Z, axis=axis, impl=impl)
        assert P.dtype == dtype and P.shape == shape and P.flags.c_contiguous
        assert_close(P, special.softmax(Z64, axis=axis), dtype, what=f"softmax axis={axis}")
        assert_close(L, special.log_softmax(Z64, axis=axis), dtype, scale=np.abs(Z64).max() + 3,
                     what=f"log_softmax axis={axis}")
        assert_close(P.sum(axis=axis), np.ones(P.sum(axis=axis).shape), dtype, scale=shape[axis])
        np.testing.assert_array_equal(Z, before)      # the input is never written
    # the last axis, named either way, is the default path: the same bits
    np.testing.assert_array_equal(fastnn.softmax(Z, len(shape) - 1, impl=impl), fastnn.softmax(Z, impl=impl))
    np.testing.assert_array_equal(fastnn.softmax(Z, -1, impl=impl), fastnn.softmax(Z, impl=impl))


@pytest.mark.parametrize("impl", IMPLS)
def test_axis_with_out_and_in_place(impl):
    Z = _z((3, 4, 5), np.float32)
    want = special.softmax(Z.astype(np.float64), axis=0)
    out = np.full(Z.shape, 7, np.float32)
    assert fastnn.softmax(Z, 0, out=out, impl=impl) is out
    assert_close(out, want, np.float32)
    W = Z.copy()
    assert fastnn.log_softmax(W, 1, out=W, impl=impl) is W            # in place over axis 1
    assert_close(W, special.log_softmax(Z.astype(np.float64), axis=1), np.float32, scale=20)
    with pytest.raises(ValueError, match="out: expected shape"):
        fastnn.softmax(Z, 0, out=np.empty((5, 4, 3), np.float32), impl=impl)


def test_bad_axis_is_named_and_changes_nothing():
    Z = _z((3, 4), np.float64)
    out = np.full((3, 4), 7.0)
    for bad, err, msg in [(2, ValueError, r"axis: expected an integer in \[-2, 2\) for a 2-D Z, got 2"),
                          (-3, ValueError, r"got -3"), (1.0, TypeError, "axis: expected an integer, got float"),
                          (True, TypeError, "got bool"), (None, TypeError, "got NoneType")]:
        for f in (fastnn.softmax, fastnn.log_softmax):
            with pytest.raises(err, match=msg):
                f(Z, bad, out=out)
            assert np.all(out == 7.0)
    np.testing.assert_array_equal(fastnn.softmax(Z, np.int64(0)), fastnn.softmax(Z, 0))


def _ce_reference(Z, y, ignore_index=None):
    """Per-sample losses and per-row gradients of the sum (float64, SciPy), ignored rows 0."""
    Z = np.asarray(Z, np.float64)
    N, C = Z.shape
    keep = np.ones(N, bool) if ignore_index is None or y.ndim == 2 else y != ignore_index
    if y.ndim == 1:
        Y = np.zeros((N, C))
        Y[np.flatnonzero(keep), y[keep]] = 1
    else:
        Y = y.astype(np.float64)
    lse = special.logsumexp(Z, axis=1, keepdims=True)
    L = np.where(keep, (Y * (lse - Z)).sum(axis=1), 0.0)
    G = special.softmax(Z, axis=1) * Y.sum(axis=1, keepdims=True) - Y
    G[~keep] = 0
    return L, G, int(keep.sum())


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("targets", ["labels", "rows", "ignored"])
def test_cross_entropy_reductions(targets, dtype, impl):
    rng = np.random.default_rng(3)
    N, C = 9, 6
    Z = _z((N, C), dtype, 3)
    ignore = None
    if targets == "rows":
        y = special.softmax(rng.standard_normal((N, C)), axis=1).astype(dtype)
    else:
        y = rng.integers(0, C, N)
        if targets == "ignored":
            ignore = -100
            y[[1, 4, 5]] = -100
    L, G, n = _ce_reference(Z, y, ignore)
    scale = np.abs(Z.astype(np.float64)).max() + np.log(C) + 1
    kw = dict(ignore_index=ignore, impl=impl)
    for reduction, want_L, want_G in (("mean", L.sum() / n, G / n), ("sum", L.sum(), G), ("none", L, G)):
        loss = fastnn.softmax_cross_entropy(Z, y, reduction=reduction, **kw)
        loss2, dZ = fastnn.softmax_cross_entropy_grad(Z, y, reduction=reduction, **kw)
        assert np.asarray(loss).dtype == dtype and dZ.dtype == dtype and dZ.shape == (N, C)
        assert np.shape(loss) == (() if reduction != "none" else (N,))
        s = scale * (n if reduction == "sum" else 1)
        assert_close(loss, want_L, dtype, scale=s, what=f"loss {reduction}")
        assert_close(loss2, want_L, dtype, scale=s, what=f"grad's loss {reduction}")
        assert_close(dZ, want_G, dtype, scale=1.0 if reduction != "mean" else 1.0 / n, what=f"dZ {reduction}")
        # samples in columns: axis=0, targets as columns, the gradient in Z's layout
        yt = y.T if y.ndim == 2 else y
        lossT, dZT = fastnn.softmax_cross_entropy_grad(Z.T, yt, axis=0, reduction=reduction, **kw)
        assert dZT.shape == (C, N)
        assert_close(lossT, want_L, dtype, scale=s)
        assert_close(dZT, want_G.T, dtype, scale=1.0 if reduction != "mean" else 1.0 / n)
    if targets == "labels":       # the defaults are the mean over every row, bit for bit
        np.testing.assert_array_equal(fastnn.softmax_cross_entropy(Z, y, reduction="mean", ignore_index=-7,
                                                                   impl=impl),
                                      fastnn.softmax_cross_entropy(Z, y, impl=impl))


@pytest.mark.parametrize("impl", IMPLS)
def test_ignore_index_edges(impl):
    Z = _z((3, 4), np.float32)
    y = np.array([-1, -1, -1])
    with pytest.raises(ValueError, match="every label is ignore_index"):
        fastnn.softmax_cross_entropy(Z, y, ignore_index=-1, impl=impl)
    out = np.full((3, 4), 7, np.float32)
    with pytest.raises(ValueError, match="every label is ignore_index"):
        fastnn.softmax_cross_entropy_grad(Z, y, ignore_index=-1, out=out, impl=impl)
    assert np.all(out == 7)
    assert fastnn.softmax_cross_entropy(Z, y, ignore_index=-1, reduction="sum", impl=impl) == 0
    loss, dZ = fastnn.softmax_cross_entropy_grad(Z, y, ignore_index=-1, reduction="none", impl=impl)
    assert np.array_equal(loss, np.zeros(3, np.float32)) and np.array_equal(dZ, np.zeros((3, 4), np.float32))
    # an ignored label may lie outside [0, C); the others may not
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        fastnn.softmax_cross_entropy(Z, np.array([0, 9, -1]), ignore_index=-1, impl=impl)
    # -inf logits: the loss of a -inf label is +inf, per sample too; never NaN
    Zi = np.array([[-np.inf, 0.0, 1.0], [0.0, 1.0, 2.0]], np.float32)
    per = fastnn.softmax_cross_entropy(Zi, np.array([0, 2]), reduction="none", impl=impl)
    assert per[0] == np.inf and np.isfinite(per[1])


def test_bad_reduction_and_ignore_index_are_named():
    Z = _z((3, 4), np.float64)
    y = np.array([0, 1, 2])
    cases = [(dict(reduction="avg"), ValueError, "reduction: expected 'mean', 'sum' or 'none', got 'avg'"),
             (dict(reduction=None), ValueError, "reduction: expected"),
             (dict(ignore_index=1.5), TypeError, "ignore_index: expected an integer label or None, got float"),
             (dict(ignore_index=True), TypeError, "ignore_index: expected an integer"),
             (dict(axis=2), ValueError, r"axis: expected an integer in \[-2, 2\)")]
    for kw, err, msg in cases:
        for f in (fastnn.softmax_cross_entropy, fastnn.softmax_cross_entropy_grad):
            with pytest.raises(err, match=msg):
                f(Z, y, **kw)
    with pytest.raises(ValueError, match="ignore_index: applies to integer labels"):
        fastnn.softmax_cross_entropy(Z, np.eye(3, 4), ignore_index=0)


def test_samples_in_columns_get_errors_that_say_so():
    """Nielsen's network.py keeps one sample per column: (10, 1) logits, (784, 1) inputs."""
    z, onehot = _z((10, 1), np.float64), np.eye(10)[:, [3]]
    for f in (fastnn.softmax_cross_entropy, fastnn.softmax_cross_entropy_grad):
        for y in (onehot, np.array([0] * 10)):
            with pytest.raises(ValueError, match=r"Z: one class \(shape \(10, 1\)\).*pass axis=0 or Z.T"):
                f(z, y)
    # ... and with axis=0 the column is one sample of 10 classes
    loss, dZ = fastnn.softmax_cross_entropy_grad(z, np.array([3]), axis=0)
    L, G, _ = _ce_reference(z.T, np.array([3]))
    assert_close(loss, L[0], np.float64, scale=20)
    assert dZ.shape == (10, 1)
    assert_close(dZ, G.T, np.float64)
    x, W = np.ones((784, 1)), np.ones((30, 784))
    for f in (fastnn.linear, fastnn.linear_sigmoid):
        with pytest.raises(ValueError, match=r"^X: expected shape \(N, 784\).*got \(784, 1\).*pass X.T"):
            f(x, W)
    with pytest.raises(ValueError, match=r"^W: expected shape \(30, 10\).*pass X.T"):
        fastnn.linear(np.ones((784, 10)), W)         # ambiguous: W named, X.T suggested
