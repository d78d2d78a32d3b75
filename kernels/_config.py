"""The one place where Numba options are set.

Every jitted kernel in ``fastnn.kernels`` is decorated with one of the decorators
below; no other module passes options to ``numba.njit`` directly.

* ``jit``: serial kernels. ``cache=True`` (compiled code is reused by the next
  process), ``nogil=True`` (threads may call kernels concurrently),
  ``error_model="numpy"`` (division by zero gives inf/NaN as in NumPy, no Python
  exception check in the inner loop), and the safe fastmath subset.
* ``pjit``: ``parallel=True`` variants, cached like the rest. Numba's cache index
  is keyed by the Python function (qualified name, first line, bytecode), the
  signature and the CPU, *not* by the compile options: a serial and a parallel
  dispatcher made from one Python function (``softmax_serial = jit(_softmax_rows)``,
  ``softmax_parallel = pjit(_softmax_rows)``) share one cache entry, and the
  parallel one loads whatever the other wrote. That was measured here as "cached
  parallel code runs on one thread" (softmax (65536, 10), 2 threads: cpu/wall 1.00,
  1.1 ms, against 1.97 and 0.50 ms freshly compiled) and, with a serial function
  calling a parallel one, a segfault on reload; for a session the parallel kernels
  were therefore left uncached and compiled in every process (2-4 s each). The
  ``pjit`` decorators now compile a copy of the function under its own name
  (``<name>__parallel``, ``_parallel_copy``), so each variant has its own entry.
  Their loop bodies still call ordinary cached ``jit`` functions where they are large
  (``fast.softmax._softmax_block_T``, ...): inlined into the ``prange`` body the parfor took
  25-38 s to compile with an empty cache, 2-3 s this way.
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
import types as pytypes

import numba
from numba import types
from numba.np.ufunc import parallel as _numba_parallel
from numba.extending import intrinsic

from . import _cache

FASTMATH = frozenset({"nsz", "arcp", "contract", "afn"})

#: Set FASTNN_NO_CACHE=1 to compile in memory only. Where no folder can be written, the
#: kernels are compiled in memory too, after one warning (``_cache.probe``).
CACHE = os.environ.get("FASTNN_NO_CACHE", "") in ("", "0") and _cache.probe()

_SERIAL = dict(cache=CACHE, nogil=True, error_model="numpy", fastmath=set(FASTMATH))
#: Without "contract": no fused multiply-add, so ``w - lr * g`` rounds twice exactly
#: as NumPy's ``w -= lr * g`` does (bit-for-bit agreement of the sgd_update kernels).
_STRICT = dict(_SERIAL, fastmath=set(FASTMATH - {"contract"}))
_PARALLEL = dict(cache=CACHE, nogil=True, error_model="numpy", fastmath=set(FASTMATH),
                 parallel=True)


def _parallel_copy(fn):
    """``fn`` under the name ``<name>__parallel``: the same code, but its own entry in
    Numba's cache, which does not tell serial from parallel builds apart (module
    docstring)."""
    g = pytypes.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "__parallel",
                             fn.__defaults__, fn.__closure__)
    g.__qualname__ = fn.__qualname__ + "__parallel"
    g.__module__ = fn.__module__
    g.__doc__ = fn.__doc__
    g.__kwdefaults__ = fn.__kwdefaults__
    return g


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
    return numba.njit(**dict(_PARALLEL, fastmath=set(FASTMATH | {"reassoc"})))(
        _parallel_copy(fn))


def jit_strict(fn):
    """``jit`` without FMA contraction (see ``_STRICT``)."""
    return numba.njit(**_STRICT)(fn)


def pjit_strict(fn):
    """``pjit`` without FMA contraction (see ``_STRICT``)."""
    return numba.njit(**dict(_PARALLEL, fastmath=set(FASTMATH - {"contract"})))(
        _parallel_copy(fn))


def pjit(*args, **overrides):
    """``numba.njit(parallel=True)`` with the project's options, compiled from a renamed
    copy of the function so that its cache entry is its own (see above)."""
    opts = dict(_PARALLEL)
    opts.update(overrides)
    if args and callable(args[0]):
        return numba.njit(**opts)(_parallel_copy(args[0]))
    return lambda fn: numba.njit(*args, **opts)(_parallel_copy(fn))


def num_threads() -> int:
    """``numba.get_num_threads()`` for the Python-level dispatchers, without its per-call
    cost: that function takes Numba's initialisation locks on every call (about 1 µs
    here, against 0.13 µs for the threading layer's own getter, which it then calls).
    Falls back to it until the layer is up, or if Numba's internals differ."""
    get = getattr(_numba_parallel, "_get_num_threads", None)
    n = get() if get is not None else 0
    return n if n > 0 else numba.get_num_threads()


def _target_features():
    """The CPU features Numba compiles for (``NUMBA_CPU_FEATURES`` if set, else the
    host's, as ``numba.core.codegen.CPUCodegen`` does)."""
    from numba.core import codegen, config
    if config.CPU_FEATURES is not None:
        return config.CPU_FEATURES
    return codegen.get_host_cpu_features()


#: Whether the compile target has AVX-512F: ``fast_exp`` then scales by 2^n with one
#: ``vscalefps``/``vscalefpd`` (see machine/exp.py). Numba's cache is keyed by the CPU's name
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


@intrinsic
def always_inline(typingctx):
    """Mark the enclosing compiled function ``alwaysinline`` for LLVM; emits no code.

    Numba's own ``inline="always"`` copies a function's Numba IR into every caller, which
    then types and lowers it again: for the small row helpers and the scalar exp/log
    called from many kernels that was most of the compile time. A function marked
    here is compiled by Numba once per signature, and LLVM copies the optimised
    machine-independent code into each caller instead, so loops around it vectorise as
    before. The callers' loops take the callers' attributes: a caller whose loops should
    use 512-bit vectors calls ``wide_vectors()`` itself."""
    def codegen(context, builder, signature, args):
        builder.function.attributes.add("alwaysinline")
        return context.get_dummy_value()
    return types.none(), codegen
