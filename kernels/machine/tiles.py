"""The matrix-product tiles compiled once per dtype, and called through a pointer.

``gemm.py``'s register tiles (``_column_block``: one column block of ``Z = X Wᵀ``;
``_acc_row_block``: one row block of ``Out += alpha CᵀA``) are large: unrolled 2×6 and
4×4 tiles and their edges, about 2 s of compilation each with an empty cache on the
2-core Zen 3 guest. Called as ordinary Numba functions, every compiled caller links them
into its own module, where LLVM optimises and emits their machine code again (Numba
links callees as ``linkonce_odr``): the serial product, the parallel one, the fused
update-and-forward, the training epoch and the API's entry points each paid for the same
tiles once more. Here each (tile, dtype) is compiled once, as a C callback
(``numba.cfunc``, cached like the kernels), and the products call it through its
address: an indirect call per column or row block, which does microseconds of work.

The addresses live in one process-wide table, ``fastnn_gemm_tile_slots`` (4 int64,
registered with LLVM under that name at import, so cached kernels find it when they are
loaded). A kernel reads its slot (``nt_tiles(Z)``, ``tn_tiles(Out)``: the dtype picks
the slot at compile time); while the slot is 0 it calls ``fastnn_gemm_tile_resolve(k)``,
a ctypes callback that compiles (or loads from the cache) tile k and fills its slot. The
Python entry points call ``ensure(dtype)`` first, so that a compilation happens in
Python, where the compile notice can announce it, and not inside a parallel region.

Raw interface (no validation): ``call_column_blocks(f, X, W, Z, c0, c1)`` and
``call_acc_row_blocks(f, C, A, Out, alpha, r0, r1)`` run blocks c0 .. c1 − 1 (r0 .. r1 − 1)
of gemm.py's tiles by the tile at address f; X, W, Z, A and Out must be typed C-contiguous (a compile-time
error says so otherwise); C may have any strides.
"""
from __future__ import annotations

import ctypes
import os
import sys
import threading

import numpy as np
from llvmlite import binding as _llvm
from llvmlite import ir
from numba import errors, types
from numba.core import cgutils, sigutils
from numba.core.ccallback import CFunc
from numba.extending import intrinsic

from .._config import _SERIAL, _SUM, CACHE

#: Slot k of the table: 0 nt float32, 1 nt float64, 2 tn float32, 3 tn float64.
#: The symbols carry the version of the tiles' C signatures (``_signature``): change it
#: with them, so that kernels cached against the old ones fail to link instead of calling
#: a tile with the wrong arguments (Numba's cache does not see that a callee changed).
ABI = 2
SLOT_SYMBOL = f"fastnn_gemm_tile_slots_v{ABI}"
RESOLVE_SYMBOL = f"fastnn_gemm_tile_resolve_v{ABI}"
_KINDS = (("nt", np.float32), ("nt", np.float64), ("tn", np.float32), ("tn", np.float64))

_slots = (ctypes.c_int64 * len(_KINDS))()
_cfuncs: dict = {}
_bodies: dict = {}
_lock = threading.RLock()


def register(kind: str, body) -> None:
    """The Python function compiled as the cfunc of kind "nt" (arguments x, w, z, B, K,
    N, c: pointers and sizes) or "tn" (c, cs0, cs1, a, out, n_in, n_out, D, alpha, r);
    gemm.py registers its tiles here."""
    _bodies[kind] = body


def _signature(kind, dtype):
    t = types.float32 if dtype == np.float32 else types.float64
    p, i = types.CPointer(t), types.int64
    if kind == "nt":
        return types.void(p, p, p, i, i, i, i, i)
    return types.void(p, i, i, p, p, i, i, i, t, i, i)


def _cfunc(k):
    """Tile k as a numba CFunc, not compiled yet."""
    kind, dtype = _KINDS[k]
    opts = dict(_SUM if kind == "nt" else _SERIAL)
    opts.pop("nogil", None)
    opts.pop("cache", None)
    cf = CFunc(_bodies[kind], sigutils.normalize_signature(_signature(kind, dtype)),
               locals={}, options=opts)
    if CACHE:
        cf.enable_caching()
    return cf


def is_cached(k: int) -> bool:
    """Whether tile k is compiled in this process or held by the on-disk cache."""
    if _slots[k]:
        return True
    try:
        cf = _cfunc(k)
        key = cf._cache._index_key(cf._sig, cf._targetdescr.target_context.codegen())
        return key in cf._cache._cache_file._load_index()
    except Exception:       # NullCache (no caching) or other Numba internals
        return False


def ensure(k: int) -> int:
    """Compile (or load from the cache) tile k, fill its slot; its address. Waits for a
    helper process that is compiling it (``prefetch``) and then loads its result."""
    if _slots[k]:
        return _slots[k]
    with _lock:
        if not _slots[k]:
            helper = _helpers.pop(k, None)
            if helper is not None:
                try:
                    helper.wait(timeout=_HELPER_TIMEOUT)
                except Exception:       # hung or gone: compile here instead
                    helper.kill()
            cf = _cfunc(k)
            cf.compile()
            _cfuncs[k] = cf
            _slots[k] = cf.address
    return _slots[k]


#: Helper processes compiling a tile (``prefetch``), by slot.
_helpers: dict = {}
_HELPER_TIMEOUT = 300
_HELPER_CODE = ("import sys; sys.path.insert(0, sys.argv[1]); "
                "from fastnn.kernels.machine import tiles; tiles.ensure(int(sys.argv[2]))")


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def prefetch(dtype, kinds=("nt", "tn")) -> int:
    """Start compiling dtype's tiles (of these kinds) in helper processes, one each, while this one compiles the
    kernels that call them (the caller's compilation does not need them: they are
    called through their address). A training epoch or a linear layer compiled with an
    empty cache then loads the tiles from the cache instead of compiling them after
    itself: on 2 cores the first ``MLP([784, 30, 10]).fit`` saved ~2.5 s. Only where
    it can help: the cache is on, at least 2 CPUs, the tiles are not cached yet, and
    ``FASTNN_COMPILE_HELPER`` is not 0. Returns how many helpers were started."""
    name = np.dtype(dtype).name
    if (not CACHE or _cpus() < 2
            or os.environ.get("FASTNN_COMPILE_HELPER", "1") in ("0", "", "no")):
        return 0
    ks = [k for k, (kd, d) in enumerate(_KINDS) if np.dtype(d).name == name and kd in kinds
          and k not in _helpers and not is_cached(k)]
    if not ks:
        return 0
    import subprocess

    import fastnn
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastnn.__file__)))
    env = dict(os.environ, FASTNN_COMPILE_HELPER="0", FASTNN_COMPILE_NOTICE="0")
    for k in ks:
        try:
            _helpers[k] = subprocess.Popen(
                [sys.executable, "-c", _HELPER_CODE, root, str(k)], env=env,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL)
        except OSError:     # no fork/exec here: compile in this process when needed
            return 0
    return len(ks)


def ensure_dtype(dtype) -> None:
    """Both tiles of a dtype (what a product or a training epoch in it needs)."""
    dt = np.dtype(dtype)
    for k, (_, d) in enumerate(_KINDS):
        if np.dtype(d) == dt:
            ensure(k)


def ensure_all() -> None:
    for k in range(len(_KINDS)):
        ensure(k)


def _resolve(k):
    try:
        return ensure(k)
    except BaseException as e:      # cannot raise through compiled code: stop loudly
        sys.stderr.write(f"fastnn: cannot compile the matrix-product tiles: {e!r}\n")
        sys.stderr.flush()
        os.abort()


_RESOLVE = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(_resolve)
_llvm.add_symbol(SLOT_SYMBOL, ctypes.addressof(_slots))
_llvm.add_symbol(RESOLVE_SYMBOL, ctypes.cast(_RESOLVE, ctypes.c_void_p).value)

_I64 = ir.IntType(64)
_I32 = ir.IntType(32)


def _slot(builder, k):
    """Load slot k; resolve it first if it is 0."""
    mod = builder.module
    table = mod.globals.get(SLOT_SYMBOL)
    if table is None:
        table = ir.GlobalVariable(mod, ir.ArrayType(_I64, len(_KINDS)), SLOT_SYMBOL)
        table.linkage = "external"
    ptr = builder.gep(table, [_I32(0), _I32(k)], inbounds=True)
    out = cgutils.alloca_once_value(builder, builder.load(ptr))
    with builder.if_then(builder.icmp_unsigned("==", builder.load(out), _I64(0)),
                         likely=False):
        fn = cgutils.get_or_insert_function(mod, ir.FunctionType(_I64, [_I64]),
                                            RESOLVE_SYMBOL)
        builder.store(builder.call(fn, [_I64(k)]), out)
    return builder.load(out)


def _float_array(name, ty, contiguous=True):
    if not isinstance(ty, types.Array) or ty.ndim != 2 or \
            ty.dtype not in (types.float32, types.float64):
        raise errors.TypingError(f"{name}: expected a 2-d float32/float64 array, got {ty}")
    if contiguous and ty.layout != "C":
        raise errors.TypingError(f"{name}: the tiles need a C-contiguous array, got {ty}")


def _slot_intrinsic(kind):
    def typer(typingctx, arr):
        _float_array("array", arr, contiguous=False)
        k = [i for i, (kd, d) in enumerate(_KINDS)
             if kd == kind and np.dtype(d) == np.dtype(str(arr.dtype))][0]

        def codegen(context, builder, sig, args):
            return _slot(builder, k)
        return types.int64(arr), codegen
    return typer


nt_tiles = intrinsic(_slot_intrinsic("nt"))
nt_tiles.__doc__ = "The address of Z's dtype's column-block tile (int64)."
tn_tiles = intrinsic(_slot_intrinsic("tn"))
tn_tiles.__doc__ = "The address of Out's dtype's row-block tile (int64)."


def _parts(context, builder, ty, val):
    a = context.make_array(ty)(context, builder, val)
    return (builder.bitcast(a.data, ir.PointerType(context.get_data_type(ty.dtype))),
            cgutils.unpack_tuple(builder, a.shape, ty.ndim),
            cgutils.unpack_tuple(builder, a.strides, ty.ndim))


def _call(builder, addr, values):
    fnty = ir.FunctionType(ir.VoidType(), [v.type for v in values])
    fn = builder.inttoptr(addr, ir.PointerType(fnty))
    builder.call(fn, values)


@intrinsic
def call_column_blocks(typingctx, addr, X, W, Z, c0, c1):
    """Column blocks c0 .. c1 − 1 of ``Z = X Wᵀ`` (gemm.py ``_column_block``) by the
    tile at addr."""
    for name, ty in (("X", X), ("W", W), ("Z", Z)):
        _float_array(name, ty)
    if not (X.dtype == W.dtype == Z.dtype):
        raise errors.TypingError(f"X, W, Z: one dtype expected, got {X.dtype}, "
                                 f"{W.dtype}, {Z.dtype}")

    def codegen(context, builder, sig, args):
        f, x, w, z = args[:4]
        xp, (B, K), _ = _parts(context, builder, X, x)
        wp, (N, _k), _ = _parts(context, builder, W, w)
        zp, _, _ = _parts(context, builder, Z, z)
        cs = [context.cast(builder, v, t, types.int64) for v, t in zip(args[4:], sig.args[4:])]
        _call(builder, f, [xp, wp, zp, B, K, N] + cs)
        return context.get_dummy_value()
    return types.none(addr, X, W, Z, c0, c1), codegen


@intrinsic
def call_acc_row_blocks(typingctx, addr, C, A, Out, alpha, r0, r1):
    """Row blocks r0 .. r1 − 1 of ``Out += alpha CᵀA`` (gemm.py ``_acc_row_block``) by
    the tile at addr; alpha is converted to Out's dtype."""
    _float_array("C", C, contiguous=False)
    for name, ty in (("A", A), ("Out", Out)):
        _float_array(name, ty)
    if not (C.dtype == A.dtype == Out.dtype):
        raise errors.TypingError(f"C, A, Out: one dtype expected, got {C.dtype}, "
                                 f"{A.dtype}, {Out.dtype}")

    def codegen(context, builder, sig, args):
        f, c, a, out, al = args[:5]
        cp, (n_in, n_out), (s0, s1) = _parts(context, builder, C, c)
        ap, (_n, D), _ = _parts(context, builder, A, a)
        op, _, _ = _parts(context, builder, Out, out)
        al = context.cast(builder, al, sig.args[4], Out.dtype)
        rs = [context.cast(builder, v, t, types.int64) for v, t in zip(args[5:], sig.args[5:])]
        _call(builder, f, [cp, s0, s1, ap, op, n_in, n_out, D, al] + rs)
        return context.get_dummy_value()
    return types.none(addr, C, A, Out, alpha, r0, r1), codegen


__all__ = ["nt_tiles", "tn_tiles", "call_column_blocks", "call_acc_row_blocks", "ensure",
           "ensure_dtype", "ensure_all"]
