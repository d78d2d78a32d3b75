"""Atomic operations on int64 arrays, for threads that hand work to each other inside one
parallel region (``fastnn._train_jit``'s persistent epoch).

Numba has no atomics on the CPU, and a plain load in a spin loop may be hoisted out of
the loop by LLVM. These intrinsics emit LLVM's atomic instructions on ``a[i]`` of a
C-contiguous int64 array:

    load_acquire(a, i)             value; later loads and stores are not moved above it
    store_release(a, i, v)         earlier loads and stores are not moved below it
    compare_exchange(a, i, old, new)
                                   a[i] = new if a[i] == old (sequentially consistent);
                                   True when it did
    spin_pause()                   the x86 ``pause`` hint in a spin loop (nothing elsewhere)
    cycle_counter()                ``llvm.readcyclecounter`` (the TSC on x86; 0 where the
                                   target has no counter: callers bound their waits by a
                                   count of iterations too)

On x86 an acquire load and a release store are plain moves: the ordering they add is the
compiler's. No bounds checks: the callers index fixed slots of arrays they allocate.
"""
from __future__ import annotations

import platform

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

_I64 = ir.IntType(64)
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")


def _check(a):
    return (isinstance(a, types.Array) and a.dtype == types.int64 and a.ndim == 1
            and a.layout == "C")


def _slot(context, builder, aty, a, i, ity):
    ary = context.make_array(aty)(context, builder, a)
    i = context.cast(builder, i, ity, types.intp)
    return builder.gep(ary.data, [i])


@intrinsic
def load_acquire(typingctx, a, i):
    if not (_check(a) and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ptr = _slot(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        return builder.load_atomic(ptr, "acquire", 8)
    return types.int64(a, i), codegen


@intrinsic
def store_release(typingctx, a, i, v):
    if not (_check(a) and isinstance(i, types.Integer) and isinstance(v, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        ptr = _slot(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        val = context.cast(builder, args[2], sig.args[2], types.int64)
        builder.store_atomic(val, ptr, "release", 8)
        return context.get_dummy_value()
    return types.none(a, i, v), codegen


@intrinsic
def compare_exchange(typingctx, a, i, old, new):
    if not (_check(a) and all(isinstance(t, types.Integer) for t in (i, old, new))):
        return None

    def codegen(context, builder, sig, args):
        ptr = _slot(context, builder, sig.args[0], args[0], args[1], sig.args[1])
        o = context.cast(builder, args[2], sig.args[2], types.int64)
        n = context.cast(builder, args[3], sig.args[3], types.int64)
        res = builder.cmpxchg(ptr, o, n, "seq_cst", "seq_cst")
        return builder.extract_value(res, 1)
    return types.boolean(a, i, old, new), codegen


@intrinsic
def spin_pause(typingctx):
    def codegen(context, builder, sig, args):
        if _X86:
            fn = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")
            builder.call(fn, [])
        return context.get_dummy_value()
    return types.none(), codegen


@intrinsic
def cycle_counter(typingctx):
    def codegen(context, builder, sig, args):
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_I64, []), "llvm.readcyclecounter")
        return builder.call(fn, [])
    return types.int64(), codegen


__all__ = ["load_acquire", "store_release", "compare_exchange", "spin_pause",
           "cycle_counter"]
