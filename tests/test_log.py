"""fast_log (kernels/machine/log.py) against an independent reference: np.log in float64
for float32 inputs, in extended precision for float64 inputs; error in units in the
last place of the correctly rounded result, over dense grids of the whole range."""
import numpy as np
import pytest

from fastnn.kernels.machine.log import LOG_MAX_ULP, log_into


def _ulp_err(x, out, ref):
    r = ref.astype(x.dtype)
    ulp = np.spacing(np.abs(r)).astype(ref.dtype)
    return np.abs(out.astype(ref.dtype) - ref) / ulp


def test_float32_every_127th_positive_float_within_bound():
    x = np.arange(1, 0x7F800000, 127, dtype=np.uint32).view(np.float32)  # subnormals too
    out = np.empty_like(x)
    log_into(x, out)
    err = _ulp_err(x, out, np.log(x.astype(np.float64)))
    assert err.max() <= LOG_MAX_ULP["float32"], (err.max(), x[np.argmax(err)])
    assert err.mean() < 0.3          # measured 0.25: most results correctly rounded


def test_float64_random_bits_and_near_one_within_bound():
    rng = np.random.default_rng(7)
    x = np.concatenate([
        rng.integers(1, 0x7FF0000000000000, 1_000_000, dtype=np.int64).view(np.float64),
        rng.uniform(0.5, 2.0, 500_000), 1.0 + rng.uniform(-1e-9, 1e-9, 100_000)])
    out = np.empty_like(x)
    log_into(x, out)
    ref = np.log(x.astype(np.longdouble))
    if np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps:   # pragma: no cover
        pytest.skip("no extended precision long double on this platform")
    err = _ulp_err(x, out, ref)
    assert float(err.max()) <= LOG_MAX_ULP["float64"], (float(err.max()), x[np.argmax(err)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_special_values_follow_numpy(dtype):
    tiny = np.finfo(dtype).smallest_subnormal
    x = np.array([0.0, -0.0, -1.0, np.inf, -np.inf, np.nan, 1.0, 2.0, tiny, 0.5], dtype)
    out = np.empty_like(x)
    log_into(x, out)
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = np.log(x.astype(np.float64)).astype(dtype)
    assert out.dtype == dtype
    np.testing.assert_array_equal(np.isnan(out), np.isnan(ref))
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(out[ok], ref[ok], rtol=2 * np.finfo(dtype).eps)
    assert out[6] == 0.0 and out[0] == -np.inf and out[3] == np.inf
