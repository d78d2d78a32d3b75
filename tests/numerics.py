"""Shared test helpers: tolerances per dtype (fastnn.conformance.TOL) and a comparison
that treats non-finite values exactly. (Imported by name from the test modules:
``conftest`` is not importable reliably, benches/ has one too.)"""
from __future__ import annotations

import numpy as np

import fastnn

DTYPES = (np.float32, np.float64)
IMPLS = fastnn.impls()

#: |actual − reference| <= atol·scale + rtol·|reference|, scale = the size of the
#: terms that were summed (1 for elementwise results): the tolerances ``fastnn check``
#: applies to a user's implementation too (defined once, in fastnn.conformance).
from fastnn.conformance import TOL  # noqa: E402


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
    with np.errstate(invalid="ignore"):          # inf − inf at the (equal) infinities
        err = np.abs(a - r)
    bad = (err > bound) & fa
    assert not bad.any(), (
        f"{what}: max error {err[fa].max():.3e} exceeds tolerance "
        f"(worst at {np.argwhere(bad)[0].tolist()}: got {a[bad][0]!r}, want {r[bad][0]!r})")
