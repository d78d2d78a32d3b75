"""The atomic operations the persistent training epoch synchronises its threads with
(kernels/machine/atomic.py)."""
import numba
import numpy as np
import pytest
from numba import prange

from fastnn.kernels.machine.atomic import (compare_exchange, cycle_counter, load_acquire, spin_pause,
                                    store_release)


@numba.njit
def _cas_twice(a, i):
    first = compare_exchange(a, i, 0, 5)
    second = compare_exchange(a, i, 0, 7)
    return first, second


def test_compare_exchange_swaps_only_the_expected_value():
    a = np.zeros(4, np.int64)
    assert _cas_twice(a, 2) == (True, False)
    np.testing.assert_array_equal(a, [0, 0, 5, 0])


@numba.njit
def _store_load(a, v):
    store_release(a, 1, v)
    spin_pause()
    return load_acquire(a, 1)


def test_store_release_then_load_acquire():
    a = np.zeros(3, np.int64)
    assert _store_load(a, -(1 << 40)) == -(1 << 40)
    np.testing.assert_array_equal(a, [0, -(1 << 40), 0])


@numba.njit
def _ticks():
    t0 = cycle_counter()
    s = 0
    for i in range(100000):
        s += i
    return t0, cycle_counter(), s


def test_cycle_counter_does_not_go_back():
    t0, t1, _ = _ticks()
    assert t1 >= t0


@numba.njit(parallel=True)
def _hand_over(data, flags, n):
    """Thread 0 writes data[k] = k² and then publishes k + 1; thread 1 waits for each
    value and sums what it reads; a plain (non-atomic) flag could be read before the data
    or hoisted out of the wait."""
    total = np.zeros(2, np.int64)
    for p in prange(2):
        if p == 0:
            for k in range(n):
                data[k] = k * k
                store_release(flags, 0, k + 1)
                while load_acquire(flags, 16) < k + 1:
                    spin_pause()
        else:
            s = 0
            for k in range(n):
                while load_acquire(flags, 0) < k + 1:
                    spin_pause()
                s += data[k]
                store_release(flags, 16, k + 1)
            total[1] = s
    return total[1]


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two Numba threads")
def test_two_threads_hand_values_over():
    n = 20000
    assert _hand_over(np.zeros(n, np.int64), np.zeros(32, np.int64), n) == sum(
        k * k for k in range(n))
