"""Single-thread speed of ``fastnn.kernels.machine.exp.fast_exp`` (a measurement, not a test).

Times, over 1M contiguous elements of float32 and of float64:

* ``fast_exp``  : a jitted loop ``out[i] = fast_exp(x[i])`` (``exp_into``);
* ``numba np.exp``: the same loop calling ``np.exp(x[i])`` (scalar libm call);
* ``numpy``     : ``np.exp(x, out=out)`` (NumPy's own SIMD loops);

and prints the median throughput in G elements/s.  It also reports whether the
``fast_exp`` loop was vectorised (vector types in the LLVM IR, ``ymm``/``zmm``
registers in the machine code, and no calls left in the loop).

Run single-threaded:  ``python benches/exp_speed.py [--n 1000000] [--repeat 50]``
(the script pins NumPy/BLAS threads to 1; Numba loops here are serial).
"""
from __future__ import annotations

import argparse
import os
import re
import time

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

from fastnn.kernels._config import jit  # noqa: E402
from fastnn.kernels.machine.exp import EXP_NAME, exp_into  # noqa: E402


@jit
def _libm_exp_into(x, out):
    for i in range(x.shape[0]):
        out[i] = np.exp(x[i])


def _numpy_exp_into(x, out):
    np.exp(x, out=out)


def _median_rate(fn, x, out, repeat):
    fn(x, out)  # compile / warm up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(x, out)
        times.append(time.perf_counter() - t0)
    return x.size / np.median(times) / 1e9


def _core_body(llvm):
    """The LLVM IR of the compiled loop itself (not the Python wrapper)."""
    for block in llvm.split("\ndefine")[1:]:
        m = re.search(r"@([\w.]+)\(", block)
        name = m.group(1) if m else ""
        if "exp_into" in name and "cpython" not in name and "cfunc" not in name:
            return block[:block.index("\n}")]
    return ""


def _vector_report(dispatcher):
    lines = []
    for sig in dispatcher.signatures:
        body = _core_body(dispatcher.inspect_llvm(sig))
        asm = dispatcher.inspect_asm(sig)
        vec = sorted(set(re.findall(r"<(\d+) x (float|double)>", body)),
                     key=lambda t: (t[1], int(t[0])))
        calls = sorted(set(re.findall(r"call [^\n]*?@([\w.]+)", body)))
        lines.append(
            f"  {sig[0].dtype}: loop IR vector types {['<%s x %s>' % v for v in vec]}, "
            f"calls in loop function: {calls or 'none'}; asm uses "
            f"zmm={'zmm' in asm}, ymm={'ymm' in asm}, vfmadd={'vfmadd' in asm}")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=50)
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    print(EXP_NAME)
    print(f"n = {args.n:,}, median of {args.repeat} runs, single thread, G elements/s")
    print(f"{'dtype':8s} {'fast_exp':>10s} {'numba np.exp':>13s} {'numpy':>8s}")
    for dt in (np.float32, np.float64):
        x = rng.uniform(-20.0, 20.0, args.n).astype(dt)
        out = np.empty_like(x)
        rates = [_median_rate(f, x, out, args.repeat)
                 for f in (exp_into, _libm_exp_into, _numpy_exp_into)]
        print(f"{np.dtype(dt).name:8s} {rates[0]:10.2f} {rates[1]:13.2f} {rates[2]:8.2f}")
    # Numba cannot inspect code loaded from its on-disk cache: inspect a fresh,
    # uncached compile of the same loop (same flags).
    fresh = jit(cache=False)(exp_into.py_func)
    for dt in (np.float32, np.float64):
        x = np.ones(16, dt)
        fresh(x, np.empty_like(x))
    print("vectorisation of the fast_exp loop:")
    print(_vector_report(fresh))


if __name__ == "__main__":
    main()
