"""The one place where Numba options are set.

Every jitted kernel in ``fastnn.kernels`` is decorated with one of the decorators
below; no other module passes options to ``numba.njit`` directly.

* ``jit``: serial kernels. ``cache=True`` (compiled code is reused by the next
  process), ``nogil=True`` (threads may call kernels concurrently),
  ``error_model="numpy"`` (division by zero gives inf/NaN as in NumPy, no Python
  exception check in the inner loop), and the safe fastmath subset.
* ``pjit``: ``parallel=True`` variants, not cached. Numba 0.68 does cache them and
  loads them, but the loaded code runs on one thread (measured: softmax of
  (65536, 10) at 2 threads, cpu/wall 1.00 and 0.85-1.1 ms from the cache, 1.97 and
  0.50 ms freshly compiled), and a cached serial function calling a parallel one
  segfaulted when loaded. So each process compiles the parallel kernels it uses, on
  their first large input. To keep that short their loop bodies call ordinary cached
  ``jit`` functions where they are large (``softmax._softmax_block``, ...): with those
  inlined into the ``prange`` body the parfor took 25-38 s to compile, now 2-3 s.
* ``FASTMATH``: only flags that keep NaN and inf semantics. ``nnan``/``ninf``
  (what a bare ``fastmath`` switch turns on) let LLVM fold ``isnan``/``isinf`` away and are
  never used. ``reassoc`` is left out too: it lets LLVM rewrite ``(z − m) − lse``
  as ``z − (m + lse)``, which loses ``lse`` entirely when |m| is ~3e38 in float32
  (a test caught exactly that). Reductions that must vectorise use explicit
  independent partial sums instead.
* ``wide_vectors()``: called inside a kernel (every ``fast_exp`` calls it), it
  marks the LLVM function being compiled ``"prefer-vector-width"="512"``. LLVM
  prefers 256-bit vectors on AVX-512 CPUs (the ``prefer-256-bit`` tuning of
  Skylake-X and later); per function, this attribute lets the loop vectoriser and
  the backend use 512-bit ``zmm`` registers (exp: 1.5 → 2.7 G elements/s on one
  core here). It changes no other function in the process (unlike
  ``NUMBA_CPU_FEATURES=...,-prefer-256-bit``), and on CPUs without AVX-512 the
  backend ignores it.
"""
from __future__ import annotations

import os

import numba
from numba import types
from numba.extending import intrinsic

FASTMATH = frozenset({"nsz", "arcp", "contract", "afn"})

#: Set FASTNN_NO_CACHE=1 to compile in memory only (e.g. read-only installs).
CACHE = os.environ.get("FASTNN_NO_CACHE", "") in ("", "0")

_SERIAL = dict(cache=CACHE, nogil=True, error_model="numpy", fastmath=set(FASTMATH))
#: Without "contract": no fused multiply-add, so ``w - lr * g`` rounds twice exactly
#: as NumPy's ``w -= lr * g`` does (bit-for-bit agreement of the sgd_update kernels).
_STRICT = dict(_SERIAL, fastmath=set(FASTMATH - {"contract"}))
_PARALLEL = dict(cache=False, nogil=True, error_model="numpy", fastmath=set(FASTMATH),
                 parallel=True)


def jit(*args, **overrides):
    """``numba.njit`` with the project's serial options (see module docstring)."""
    opts = dict(_SERIAL)
    opts.update(overrides)
    if args and callable(args[0]):
        return numba.njit(**opts)(args[0])
    return numba.njit(*args, **opts)


#: ``reassoc`` added: only for functions whose floating-point arithmetic is sums and
#: dot products (``softmax._sum_contig``, ``_gemm``), so that LLVM may vectorise the
#: reductions; never for a function with any other arithmetic (the ``(z − m) − lse``
#: hazard in the module docstring).
_SUM = dict(_SERIAL, fastmath=set(FASTMATH | {"reassoc"}))


def jit_sum(fn):
    """``jit`` with ``reassoc``, for sums and dot products only (see ``_SUM``)."""
    return numba.njit(**_SUM)(fn)


def pjit_sum(fn):
    """``pjit`` with ``reassoc``, for sums and dot products only (see ``_SUM``)."""
    return numba.njit(**dict(_PARALLEL, fastmath=set(FASTMATH | {"reassoc"})))(fn)


def jit_strict(fn):
    """``jit`` without FMA contraction (see ``_STRICT``)."""
    return numba.njit(**_STRICT)(fn)


def pjit_strict(fn):
    """``pjit`` without FMA contraction (see ``_STRICT``)."""
    return numba.njit(**dict(_PARALLEL, fastmath=set(FASTMATH - {"contract"})))(fn)


def pjit(*args, **overrides):
    """``numba.njit(parallel=True)`` with the project's options, never cached (see above)."""
    opts = dict(_PARALLEL)
    opts.update(overrides)
    if args and callable(args[0]):
        return numba.njit(**opts)(args[0])
    return numba.njit(*args, **opts)


def _target_features():
    """The CPU features Numba compiles for (``NUMBA_CPU_FEATURES`` if set, else the
    host's, as ``numba.core.codegen.CPUCodegen`` does)."""
    from numba.core import codegen, config
    if config.CPU_FEATURES is not None:
        return config.CPU_FEATURES
    return codegen.get_host_cpu_features()


#: Whether the compile target has AVX-512F: ``fast_exp`` then scales by 2^n with one
#: ``vscalefps``/``vscalefpd`` (see _exp.py). Numba's cache is keyed by the CPU's name
#: and features, so code compiled with one choice is never loaded for the other.
HAS_AVX512 = "+avx512f" in _target_features().split(",")


#: The LLVM function attributes ``wide_vectors()`` sets (see the module docstring).
WIDE_VECTOR_ATTRS = ('"prefer-vector-width"="512"', '"min-legal-vector-width"="512"')


@intrinsic
def wide_vectors(typingctx):
    """Mark the enclosing compiled function for 512-bit vectors; emits no code.

    Must be called from the function whose loops should use them: Numba outlines
    a ``prange`` body into its own function, so call it inside the loop there."""
    def codegen(context, builder, signature, args):
        attrs = builder.function.attributes
        for attr in WIDE_VECTOR_ATTRS:
            # llvmlite's FunctionAttributes.add only accepts enum attributes;
            # string attributes are printed verbatim, in sorted order.
            set.add(attrs, attr)
        return context.get_dummy_value()
    return types.none(), codegen
