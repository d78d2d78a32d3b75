"""``out`` against the inputs' memory (issue 20, point 7): in place is only ``out`` being
exactly the input (the same memory, shape and dtype, C-contiguous), and only for the
elementwise and row-wise operations (sigmoid, sigmoid_backward, softmax, log_softmax)
and sgd_update's grad; any other sharing of memory between ``out`` and an input, as
passed or after the checks' conversions (a strided input is copied first), is a
``ValueError`` raised before anything is written. Hypothesis draws the views: strided,
reversed, offset, reshaped, byte-swapped, over one buffer.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

import fastnn
import reference as ref
from numerics import IMPLS, assert_close

f32 = np.float32


def test_the_issue_case_strided_input_overlapping_out():
    """Z = buf[0:20:2] is copied (not contiguous) before the kernel runs; out = buf[5:15]
    overlaps what the caller passed: a ValueError (it was accepted)."""
    for impl in IMPLS:
        buf = np.arange(40, dtype="f4")
        with pytest.raises(ValueError, match="out: overlaps Z partially"):
            fastnn.sigmoid(buf[0:20:2], out=buf[5:15], impl=impl)
        assert np.array_equal(buf, np.arange(40, dtype="f4"))


def test_byte_swapped_view_of_out_is_not_in_place():
    buf = np.linspace(-1, 1, 12).astype(f32)
    swapped = buf.view(buf.dtype.newbyteorder(">"))             # same memory, other values
    with pytest.raises(ValueError, match="out: overlaps Z partially"):
        fastnn.sigmoid(swapped, out=buf)
    with pytest.raises(ValueError, match="out: must not overlap the input X"):
        fastnn.linear(buf.reshape(3, 4)[:, ::2], np.ones((2, 2), f32), out=buf[:6].reshape(3, 2))


def test_the_same_memory_as_another_view_is_in_place():
    """out a different array object over exactly the input's memory: in place."""
    Z = np.linspace(-3, 3, 12).astype(f32).reshape(3, 4)
    want = fastnn.softmax(Z.copy())
    out = Z.reshape(12).reshape(3, 4)                            # a new view, same memory
    assert out is not Z
    assert np.array_equal(fastnn.softmax(Z, out=out), want)


ELEMENTWISE = ("sigmoid", "softmax", "log_softmax", "sigmoid_backward")


def _run(op, x, out, impl):
    if op == "sigmoid_backward":
        return fastnn.sigmoid_backward(x, np.full(x.shape, 0.25, f32), out=out, impl=impl)
    return getattr(fastnn, op)(x, out=out, impl=impl)


def _reference(op, x):
    if op == "sigmoid_backward":
        return ref.sigmoid_backward(x, np.full(x.shape, 0.25))
    return getattr(ref, op)(x)


@st.composite
def view_and_out(draw):
    """A buffer, a view ``x`` of it (start, step, length, maybe 2-D) and an ``out`` of
    x's shape: a contiguous slice of the same buffer, or a fresh array."""
    n = 48
    step = draw(st.sampled_from([1, 1, 2, 3, -1, -2]))
    length = draw(st.integers(1, 12))
    span = (length - 1) * abs(step) + 1
    start = draw(st.integers(0, n - span))
    if step < 0:
        start += span - 1
    rows = draw(st.sampled_from([r for r in (1, 2, 3, 4) if length % r == 0]))
    shape = (rows, length // rows)
    o = draw(st.integers(0, n - length))
    fresh = draw(st.booleans())
    return n, start, step, length, shape, (None if fresh else o)


@given(view_and_out(), st.sampled_from(ELEMENTWISE), st.sampled_from(IMPLS))
def test_elementwise_out_overlap_property(case, op, impl):
    n, start, step, length, shape, o = case
    buf = np.linspace(-4, 4, n).astype(f32)
    stop = start + step * length
    x = buf[start:(stop if stop >= 0 else None):step].reshape(shape)
    x_before = x.copy()
    out = np.empty(shape, f32) if o is None else buf[o:o + length].reshape(shape)
    before = buf.copy()
    shares = np.shares_memory(out, x)
    in_place = (shares and x.flags.c_contiguous and x.ctypes.data == out.ctypes.data)
    if shares and not in_place:
        with pytest.raises(ValueError, match="out: overlaps (Z|dH) partially"):
            _run(op, x, out, impl)
        assert np.array_equal(buf, before)
        return
    got = _run(op, x, out, impl)
    assert got is out
    assert_close(got, _reference(op, x_before), f32, what=f"{op} [{impl}]")
    mask = np.ones(n, bool)                                      # nothing outside out written
    if o is not None:
        mask[o:o + length] = False
    assert np.array_equal(buf[mask], before[mask])


OTHERS = ("linear", "softmax_cross_entropy_grad", "sigmoid_bce_grad", "sigmoid_mse_grad",
          "hidden_delta", "linear_backward")


def _call_other(op, A, out, impl):
    """``op`` with its first array argument A (N, C), writing ``out``."""
    N, C = A.shape
    if op == "linear":
        return fastnn.linear(A, np.ones((C, C), f32), None, out=out, impl=impl)
    if op == "softmax_cross_entropy_grad":
        return fastnn.softmax_cross_entropy_grad(A, np.zeros(N, int), out=out, impl=impl)
    if op == "sigmoid_bce_grad":
        return fastnn.sigmoid_bce_grad(A, np.zeros((N, C), f32), out=out, impl=impl)
    if op == "sigmoid_mse_grad":
        return fastnn.sigmoid_mse_grad(A, np.zeros((N, C), f32), out=out, impl=impl)
    if op == "hidden_delta":
        return fastnn.hidden_delta(np.ones((N, C), f32), np.ones((C, C), f32), A, out=out, impl=impl)
    return fastnn.linear_backward(np.ones((N, C), f32), A, np.ones((C, C), f32),
                                  out=(np.empty((C, C), f32), np.empty(C, f32), out), impl=impl)


@given(view_and_out(), st.sampled_from(OTHERS), st.sampled_from(IMPLS))
def test_other_operations_reject_any_overlap(case, op, impl):
    n, start, step, length, shape, o = case
    assume(op != "softmax_cross_entropy_grad" or shape[1] > 1)    # one class: a ValueError
    buf = np.linspace(-1, 1, n).astype(f32)
    stop = start + step * length
    A = buf[start:(stop if stop >= 0 else None):step].reshape(shape)
    A_before = A.copy()
    out = np.empty(shape, f32) if o is None else buf[o:o + length].reshape(shape)
    before = buf.copy()
    if np.shares_memory(out, A):
        with pytest.raises(ValueError, match="must not overlap the input"):
            _call_other(op, A, out, impl)
        assert np.array_equal(buf, before)
        return
    _call_other(op, A, out, impl)
    fresh = np.empty(shape, f32)
    want = _call_other(op, A_before, fresh, impl)
    got = out
    if op != "linear" and op != "hidden_delta" and op != "linear_backward":
        want = want[1]
    elif op == "linear_backward":
        want = want[2]
    assert np.array_equal(got, want)


@pytest.mark.parametrize("impl", IMPLS)
def test_sgd_update_grad_overlap_after_conversion(impl):
    """grad strided over param's memory is copied before the update: still rejected."""
    buf = np.linspace(-1, 1, 20)
    before = buf.copy()
    with pytest.raises(ValueError, match="param: overlaps grad partially"):
        fastnn.sgd_update(buf[5:15], buf[0:20:2], 0.1, impl=impl)
    assert np.array_equal(buf, before)
    w = np.ones(6)
    fastnn.sgd_update(w, w.reshape(2, 3).reshape(6), 0.5, impl=impl)   # grad is w's memory
    assert np.array_equal(w, np.full(6, 0.5))
