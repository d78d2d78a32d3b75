"""Accuracy, special values and typing of ``fastnn.kernels.machine.exp.fast_exp``.

References: ``np.exp`` in float64 for float32 inputs (the float32 input is exact
in float64), and ``np.exp`` in ``np.longdouble`` (x87 extended precision on
x86-64) for float64 inputs.  Relative errors are checked wherever the true
result is a normal number of the input dtype; subnormal results get an absolute
bound.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from numba.core.errors import TypingError

from fastnn.kernels._config import HAS_AVX512, jit
from fastnn.kernels.machine.exp import (EXP_MAX_REL_ERR, EXP_NAME, exp_inplace, exp_into,
                                 fast_exp)

DTYPES = [np.float32, np.float64]


@jit
def _scalar_call(x):
    # fast_exp inlined into a jitted caller (its normal use).
    return fast_exp(x)


def _fast(x):
    out = np.empty_like(x)
    exp_into(x, out)
    return out


def _reference(x):
    """exp(x) in a wider precision, and whether that precision is really wider."""
    if x.dtype == np.float32:
        return np.exp(x.astype(np.float64)), True
    wide = np.finfo(np.longdouble).eps < np.finfo(np.float64).eps
    with np.errstate(over="ignore", under="ignore"):
        return np.exp(x.astype(np.longdouble)), wide


def _max_rel_err_normal(x):
    """Max relative error of fast_exp over x where exp(x) is a normal number."""
    fi = np.finfo(x.dtype)
    got = _fast(x)
    ref, wide = _reference(x)
    normal = (ref >= fi.tiny) & (ref <= fi.max)
    assert normal.any()
    rel = np.abs(got[normal].astype(ref.dtype) - ref[normal]) / ref[normal]
    slack = 0.0 if wide else float(fi.eps) / 2  # reference itself rounded to float64
    return float(rel.max()), slack


# --------------------------------------------------------------------------
# accuracy
# --------------------------------------------------------------------------
def test_float32_dense_grid_whole_range():
    x = np.linspace(-104.0, 89.0, 6_000_001, dtype=np.float32)
    err, slack = _max_rel_err_normal(x)
    assert err <= EXP_MAX_REL_ERR["float32"] + slack, err


def test_float32_every_value_in_one_binade():
    # all 2^23 float32 values in [1, 2) and (-2, -1]: every mantissa pattern.
    bits = np.arange(0x3F800000, 0x40000000, dtype=np.uint32)
    x = bits.view(np.float32)
    for xs in (x, -x, x * np.float32(40.0), -x * np.float32(40.0)):
        err, slack = _max_rel_err_normal(xs)
        assert err <= EXP_MAX_REL_ERR["float32"] + slack, err


def test_float64_dense_grid_whole_range():
    x = np.linspace(-745.0, 710.0, 6_000_001)
    err, slack = _max_rel_err_normal(x)
    assert err <= EXP_MAX_REL_ERR["float64"] + slack, err


def test_float64_small_arguments():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.uniform(-1.0, 1.0, 2_000_000),
                        rng.uniform(-1e-6, 1e-6, 100_000),
                        np.linspace(-0.35, 0.35, 1_000_001)])
    err, slack = _max_rel_err_normal(x)
    assert err <= EXP_MAX_REL_ERR["float64"] + slack, err


def test_documented_bounds_are_tight_enough():
    # The bounds are about 2 ulp; make sure nobody loosened them silently.
    assert EXP_MAX_REL_ERR["float32"] <= 2.5e-7
    assert EXP_MAX_REL_ERR["float64"] <= 5e-16
    assert "degree" in EXP_NAME


@pytest.mark.parametrize("dtype", DTYPES)
def test_subnormal_results_absolute_error(dtype):
    fi = np.finfo(dtype)
    lo = {np.float32: -104.0, np.float64: -746.0}[dtype]
    hi = float(np.log(fi.tiny))  # below this the result is subnormal
    x = np.linspace(lo, hi, 1_000_001, dtype=dtype)
    got = _fast(x)
    ref, _ = _reference(x)
    err = np.abs(got.astype(ref.dtype) - ref)
    bound = fi.smallest_subnormal + EXP_MAX_REL_ERR[np.dtype(dtype).name] * ref
    assert np.all(err <= bound), float((err / bound).max())
    # and gradual underflow happens: not flushed to zero
    assert np.count_nonzero(got) > 0.5 * x.size


@pytest.mark.parametrize("dtype", DTYPES)
def test_random_arrays_match_numpy(dtype):
    rng = np.random.default_rng(7)
    for scale in (1.0, 10.0, 80.0):
        x = (rng.standard_normal(100_003) * scale).astype(dtype)
        with np.errstate(over="ignore", under="ignore"):
            ref = np.exp(x)
        got = _fast(x)
        rtol = 2 * EXP_MAX_REL_ERR[np.dtype(dtype).name] + float(np.finfo(dtype).eps)
        np.testing.assert_allclose(got, ref, rtol=rtol,
                                   atol=float(np.finfo(dtype).tiny))
        y = x.copy()
        exp_inplace(y)
        np.testing.assert_array_equal(y, got)


# --------------------------------------------------------------------------
# special values and edges
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_special_values(dtype):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan], dtype=dtype)
    got = _fast(x)
    assert got[0] == 1.0 and got[1] == 1.0  # exactly
    assert got[2] == np.inf
    assert got[3] == 0.0
    assert np.isnan(got[4]) and np.isnan(got[5])
    # the scalar path, inlined into a jitted caller
    assert _scalar_call(dtype(0.0)) == 1.0
    assert _scalar_call(dtype(np.inf)) == np.inf
    assert _scalar_call(dtype(-np.inf)) == 0.0
    assert np.isnan(_scalar_call(dtype(np.nan)))


@pytest.mark.parametrize("dtype", DTYPES)
def test_huge_finite_inputs_no_nan(dtype):
    fi = np.finfo(dtype)
    x = np.array([fi.max, -fi.max, 1e30, -1e30, 1e4, -1e4, 1000.0, -1000.0],
                 dtype=dtype)
    got = _fast(x)
    assert not np.isnan(got).any()
    np.testing.assert_array_equal(got[0::2], np.inf)
    np.testing.assert_array_equal(got[1::2], 0.0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_overflow_edge_matches_numpy(dtype):
    # the largest x with a finite exp(x) and its neighbours
    fi = np.finfo(dtype)
    xmax = dtype(np.log(np.float64(fi.max)) if dtype == np.float32
                 else np.log(np.longdouble(fi.max)))
    xs = [xmax]
    for _ in range(20):
        xs.append(np.nextafter(xs[-1], dtype(np.inf)))
    xs += [np.nextafter(xmax, dtype(-np.inf))]
    x = np.array(xs, dtype=dtype)
    with np.errstate(over="ignore"):
        ref = np.exp(x)
    got = _fast(x)
    np.testing.assert_array_equal(np.isinf(got), np.isinf(ref))
    fin = np.isfinite(ref)
    np.testing.assert_allclose(got[fin], ref[fin],
                               rtol=EXP_MAX_REL_ERR[np.dtype(dtype).name])


@pytest.mark.parametrize("dtype", DTYPES)
def test_underflow_edge(dtype):
    fi = np.finfo(dtype)
    # below ln(smallest_subnormal / 2) the result is 0, just above it is not
    zero_below = float(np.log(np.float64(fi.smallest_subnormal))) - np.log(2.0)
    x = np.array([zero_below - 0.5, zero_below - 5, -1e3, -1e5], dtype=dtype)
    np.testing.assert_array_equal(_fast(x), 0.0)
    y = np.array([zero_below + 0.5, np.log(np.float64(fi.tiny))], dtype=dtype)
    got = _fast(y)
    assert np.all(got > 0)


# --------------------------------------------------------------------------
# typing
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
def test_result_dtype(dtype):
    x = np.linspace(-3, 3, 17).astype(dtype)
    assert _fast(x).dtype == dtype
    r = _scalar_call(dtype(1.5))
    sig = [s for s in _scalar_call.nopython_signatures
           if s.args[0] == _numba_type(dtype)]
    assert len(sig) == 1 and sig[0].return_type == _numba_type(dtype)
    assert r == pytest.approx(np.exp(1.5), rel=EXP_MAX_REL_ERR[np.dtype(dtype).name])


def _numba_type(dtype):
    from numba import types
    return {np.float32: types.float32, np.float64: types.float64}[dtype]


def _fresh_loop(dtype):
    """The loop ``out[i] = fast_exp(x[i])`` compiled for dtype (project flags), without
    the on-disk cache: Numba cannot inspect cached code."""
    def loop(x, out):
        for i in range(x.shape[0]):
            out[i] = fast_exp(x[i])

    kernel = jit(cache=False)(loop)
    x = np.ones(8, dtype)
    kernel(x, np.empty_like(x))
    return kernel


def _fresh_loop_ir(dtype):
    """LLVM IR of ``_fresh_loop(dtype)``'s loop function."""
    kernel = _fresh_loop(dtype)
    llvm = kernel.inspect_llvm(kernel.signatures[0])
    body = llvm[llvm.index("\ndefine"):]  # the first function is the loop itself
    return body[:body.index("\n}")]


def test_float32_computed_in_float32():
    # No float64 arithmetic in the float32 kernel: any promotion would show up
    # as 'double' operations or conversions in the LLVM IR of the loop.
    body = _fresh_loop_ir(np.float32)
    assert "<8 x float>" in body or "<16 x float>" in body or "<4 x float>" in body
    assert not re.search(r"\b(fadd|fsub|fmul|fpext|fptrunc)\b[^\n]*double", body)


def test_integer_argument_rejected():
    with pytest.raises(TypingError):
        _scalar_call(3)


@pytest.mark.parametrize("dtype", DTYPES)
def test_loop_is_vectorised_without_calls(dtype):
    body = _fresh_loop_ir(dtype)
    assert re.search(r"<\d+ x (float|double)>", body), "loop not vectorised"
    calls = set(re.findall(r"call [^\n]*?@([\w.]+)", body))
    allowed = ("llvm.floor", "llvm.ldexp") if HAS_AVX512 else ("llvm.floor",)
    assert all(c.startswith(allowed) for c in calls), calls


_VSCALEF_CHECK = """
import re
import numpy as np
from numba import types
from fastnn.kernels._config import HAS_AVX512, jit, wide_vectors
from fastnn.kernels.machine.exp import fast_exp
assert HAS_AVX512
def loop(x, out):
    wide_vectors()      # a kernel whose loops call fast_exp asks for 512-bit vectors itself
    for i in range(x.shape[0]):
        out[i] = fast_exp(x[i])
for dt, nbt, suffix in ((np.float32, types.float32, "ps"), (np.float64, types.float64, "pd")):
    kernel = jit(cache=False)(loop)
    sig = (nbt[::1], nbt[::1])
    kernel.compile(sig)                 # compiled only, never run: the host may lack AVX-512
    asm = kernel.inspect_asm(sig)
    print(dt.__name__, bool(re.search(rf"vscalef{suffix}\\s+%zmm", asm)))
"""


@pytest.mark.parametrize("dtype", DTYPES)
def test_scaling_is_one_vscalef(dtype):
    # On AVX-512 the 2^n scaling is llvm.ldexp, lowered to one vscalefps/pd per vector.
    # Compiled (never run) for Skylake-AVX512 in a fresh process, in memory only, so the
    # check holds on hosts without AVX-512 too.
    import os
    import subprocess
    import sys
    env = dict(os.environ, NUMBA_CPU_NAME="skylake-avx512", NUMBA_CPU_FEATURES="+avx512f",
               FASTNN_NO_CACHE="1")
    res = subprocess.run([sys.executable, "-c", _VSCALEF_CHECK], env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    found = dict(line.split(" ") for line in res.stdout.strip().splitlines())
    assert found[np.dtype(dtype).name] == "True", res.stdout


_FALLBACK_CHECK = """
import numpy as np
from fastnn.kernels._config import HAS_AVX512
from fastnn.kernels.machine.exp import exp_into
assert not HAS_AVX512
for dt, lo, hi in ((np.float32, -104.0, 89.0), (np.float64, -746.0, 710.0)):
    x = np.concatenate([np.linspace(lo, hi, 400_001, dtype=dt),
                        np.array([np.inf, -np.inf, np.nan, 0.0, 1e30, -1e30], dt)])
    out = np.empty_like(x)
    exp_into(x, out)
    print(dt.__name__, " ".join(repr(float(v)) for v in out))
"""


def test_fallback_without_avx512_matches():
    # Without AVX-512F (NUMBA_CPU_FEATURES with every avx512 feature off) fast_exp
    # scales with integer arithmetic instead of vscalef: same accuracy and special
    # values. Run in a fresh process, compiled in memory only.
    import os
    import subprocess
    import sys

    from fastnn.kernels._config import _target_features
    feats = ",".join(("-" + f[1:]) if f[1:].startswith("avx512") else f
                     for f in _target_features().split(",") if f)
    env = dict(os.environ, NUMBA_CPU_FEATURES=feats, FASTNN_NO_CACHE="1")
    res = subprocess.run([sys.executable, "-c", _FALLBACK_CHECK], env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in res.stdout.strip().splitlines())
    for dt, lo, hi in ((np.float32, -104.0, 89.0), (np.float64, -746.0, 710.0)):
        got = np.array([float(v) for v in lines[dt.__name__].split()], dt)
        x = np.linspace(lo, hi, 400_001, dtype=dt)
        ref, wide = _reference(x)
        fi = np.finfo(dt)
        g = got[:x.size]
        normal = (ref >= fi.tiny) & (ref <= fi.max)
        rel = np.abs(g[normal].astype(ref.dtype) - ref[normal]) / ref[normal]
        slack = 0.0 if wide else float(fi.eps) / 2
        assert float(rel.max()) <= EXP_MAX_REL_ERR[np.dtype(dt).name] + slack
        sub = ref < fi.tiny
        err = np.abs(g[sub].astype(ref.dtype) - ref[sub])
        assert np.all(err <= fi.smallest_subnormal + EXP_MAX_REL_ERR[np.dtype(dt).name]
                      * ref[sub])
        assert np.all(g[ref > fi.max] == np.inf)
        tail = got[x.size:]
        assert tail[0] == np.inf and tail[1] == 0.0 and np.isnan(tail[2])
        assert tail[3] == 1.0 and tail[4] == np.inf and tail[5] == 0.0
        # and the same values as this process's path wherever the result is normal
        np.testing.assert_allclose(g[normal], _fast(x)[normal],
                                   rtol=2 * EXP_MAX_REL_ERR[np.dtype(dt).name])


# --------------------------------------------------------------------------
# robustness to the caller's fastmath flags (fast_exp is inlined into callers
# and compiled with their flags).  The project's kernels use FASTMATH; the
# other sets check that nothing in fast_exp relies on a particular set, e.g.
# that "reassoc" cannot fold the Cody-Waite split n*C1 + n*C2.
# --------------------------------------------------------------------------
def _flag_sets():
    from fastnn.kernels._config import FASTMATH
    return {"project": set(FASTMATH), "no-contract": set(FASTMATH) - {"contract"},
            "plus-reassoc": set(FASTMATH) | {"reassoc"}, "none": set()}


@pytest.mark.parametrize("flags", sorted(_flag_sets()))
def test_accuracy_under_caller_flags(flags):
    fm = _flag_sets()[flags]

    def loop(x, out):
        for i in range(x.shape[0]):
            out[i] = fast_exp(x[i])

    kernel = jit(fastmath=fm, cache=False)(loop)
    for x in (np.linspace(-104.0, 89.0, 2_000_001, dtype=np.float32),
              np.linspace(-745.0, 710.0, 2_000_001)):
        got = np.empty_like(x)
        kernel(x, got)
        ref, wide = _reference(x)
        fi = np.finfo(x.dtype)
        normal = (ref >= fi.tiny) & (ref <= fi.max)
        rel = np.abs(got[normal].astype(ref.dtype) - ref[normal]) / ref[normal]
        slack = 0.0 if wide else float(fi.eps) / 2
        assert float(rel.max()) <= EXP_MAX_REL_ERR[x.dtype.name] + slack, (flags, x.dtype)
        special = np.array([np.inf, -np.inf, np.nan, 0.0], dtype=x.dtype)
        out = np.empty_like(special)
        kernel(special, out)
        assert out[0] == np.inf and out[1] == 0.0 and np.isnan(out[2]) and out[3] == 1.0
