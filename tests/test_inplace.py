"""In-place calls (``out`` is the input) give the same results as out-of-place calls.

The jit kernels take a separate path when ``out`` is the input: LLVM's runtime alias
check fails for two arrays at one address and would run its scalar loop, and
log_softmax must not use ``out`` as scratch for exp(z − m) while the input still has to
be read (a bug this file caught: in-place jit log_softmax was off by up to 2.4).
Row lengths cover the short-row path (C < LONG_ROW, blocks with one flat exp pass) and
the long-row path (vectorised reductions); row counts cover the serial and parallel
kernels.
"""
from __future__ import annotations

import numpy as np
import pytest

import fastnn
import reference as ref
from fastnn.kernels.tuning import LONG_ROW, ROWS_PARALLEL_MIN_ELEMS as PARALLEL_MIN_ELEMS
from numerics import DTYPES, IMPLS, assert_close

SHAPES = [(1, 1), (3, 7), (5, LONG_ROW - 1), (4, LONG_ROW), (6, 1000),
          (PARALLEL_MIN_ELEMS // 10 + 3, 10), (PARALLEL_MIN_ELEMS // 200 + 1, 200)]


def _impls_for(shape):
    # the loop implementation is the formula in Python: keep it to small inputs
    return [i for i in IMPLS if i != "loop" or shape[0] * shape[1] <= 10_000]


CASES = [(s, i, d) for s in SHAPES for i in _impls_for(s) for d in DTYPES]


@pytest.mark.parametrize("shape,impl,dtype", CASES)
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
def test_rows_in_place(op, shape, impl, dtype, rng):
    Z = (rng.standard_normal(shape) * 6).astype(dtype)
    expected = getattr(fastnn, op)(Z, impl=impl)
    Zi = Z.copy()
    got = getattr(fastnn, op)(Zi, out=Zi, impl=impl)
    assert got is Zi
    assert_close(Zi, expected, dtype, what=f"{op} in place vs out of place")
    assert_close(Zi, getattr(ref, op)(Z), dtype, what=f"{op} in place vs float64")


@pytest.mark.parametrize("n", [1, 17, 4096, 100_003])
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_sigmoid_in_place(n, impl, dtype, rng):
    if impl == "loop" and n > 10_000:
        n = 10_000
    Z = (rng.standard_normal(n) * 10).astype(dtype)
    Zi = Z.copy()
    fastnn.sigmoid(Zi, out=Zi, impl=impl)
    assert_close(Zi, fastnn.sigmoid(Z, impl=impl), dtype, what="sigmoid in place")
    assert_close(Zi, ref.sigmoid(Z), dtype, what="sigmoid in place vs float64")
    H = fastnn.sigmoid(Z, impl=impl)
    dH = rng.standard_normal(n).astype(dtype)
    expected = fastnn.sigmoid_backward(dH, H, impl=impl)
    fastnn.sigmoid_backward(dH, H, out=dH, impl=impl)
    assert_close(dH, expected, dtype, what="sigmoid_backward in place on dH")


@pytest.mark.parametrize("op", ["sigmoid", "softmax", "log_softmax", "sigmoid_backward"])
def test_partial_overlap_is_rejected_and_writes_nothing(op):
    # out shifted by one element over the input: a jit loop would read values it had
    # already overwritten. Exactly the input (in place) is fine; a partial overlap is not.
    buf = np.linspace(-3, 3, 13).astype(np.float32)
    before = buf.copy()
    Z, out = buf[:-1].reshape(3, 4), buf[1:].reshape(3, 4)
    with pytest.raises(ValueError, match="overlaps Z partially|overlaps dH partially"):
        if op == "sigmoid_backward":
            fastnn.sigmoid_backward(Z, np.full((3, 4), 0.5, np.float32), out=out)
        else:
            getattr(fastnn, op)(Z, out=out)
    assert np.array_equal(buf, before)


def test_sgd_update_rejects_grad_overlapping_param_partially():
    buf = np.linspace(-1, 1, 11).astype(np.float32)
    before = buf.copy()
    with pytest.raises(ValueError, match="param: overlaps grad partially"):
        fastnn.sgd_update(buf[1:], buf[:-1], lr=0.1)
    v = np.zeros(11, np.float32)
    with pytest.raises(ValueError, match="velocity: overlaps grad partially"):
        fastnn.sgd_update(np.ones(10, np.float32), v[:-1], lr=0.1, momentum=0.9, velocity=v[1:])
    assert np.array_equal(buf, before) and not v.any()
    w = np.ones(4, np.float32)
    fastnn.sgd_update(w, w, lr=0.5)            # grad is param itself: w -= 0.5 w, elementwise
    assert np.array_equal(w, np.full(4, 0.5, np.float32))
