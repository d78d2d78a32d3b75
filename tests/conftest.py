"""Shared test helpers: tolerances per dtype (defined once, here), comparison that
treats non-finite values exactly, and a float64 reference for every operation."""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import fastnn

# Numba compiles on the first example: no per-example deadline.
settings.register_profile(
    "fastnn", deadline=None, max_examples=int(os.environ.get("FASTNN_HYPOTHESIS_EXAMPLES", "20")),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile("fastnn")

DTYPES = (np.float32, np.float64)
IMPLS = fastnn.impls()

#: |actual − reference| <= atol·scale + rtol·|reference|, scale = the size of the
#: terms that were summed (1 for elementwise results).
TOL = {
    np.dtype(np.float32): dict(rtol=3e-5, atol=3e-6),
    np.dtype(np.float64): dict(rtol=1e-12, atol=1e-13),
}


def assert_close(actual, reference, dtype, scale=1.0, what=""):
    """Compare with the per-dtype tolerance; NaN/inf positions must match exactly."""
    a = np.asarray(actual, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    assert a.shape == r.shape, f"{what}: shape {a.shape} != {r.shape}"
    fa, fr = np.isfinite(a), np.isfinite(r)
    assert np.array_equal(fa, fr), f"{what}: finite positions differ"
    assert np.array_equal(np.isnan(a), np.isnan(r)), f"{what}: NaN positions differ"
    assert np.array_equal(a[~fa & ~np.isnan(a)], r[~fr & ~np.isnan(r)]), f"{what}: infinities differ"
    tol = TOL[np.dtype(dtype)]
    bound = tol["atol"] * np.asarray(scale, dtype=np.float64) + tol["rtol"] * np.abs(r)
    err = np.abs(a - r)
    bad = (err > bound) & fa
    assert not bad.any(), (
        f"{what}: max error {err[fa].max():.3e} exceeds tolerance "
        f"(worst at {np.argwhere(bad)[0].tolist()}: got {a[bad][0]!r}, want {r[bad][0]!r})")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def less_uniform(rng, shape, dtype, scale=3.0):
    """Random values with a spread of magnitudes (so that tests are meaningful)."""
    x = rng.standard_normal(shape) * scale * rng.uniform(0.1, 2.0, size=shape)
    return x.astype(dtype)
