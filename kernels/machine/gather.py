"""Transposing 16 short rows at a time with AVX-512 gathers.

Why
---
A row of C < 16 elements is shorter than one 512-bit vector, so a kernel that
walks the rows one at a time (max, exp(z − m), sum, scale) runs its per-row
loops scalar: about 90 cycles per row of 10 float32 here. Transposed, the same
work is vertical: with T[j, i] = Z[i, j] for 16 rows, the row maxima, the
shifted exponentials, the row sums and the scaling are plain loops over
contiguous lanes, which LLVM vectorises. LLVM's loop vectoriser will not emit
a gather for the strided loads (its cost model declines, checked in the
assembly), so the two transposes are written here as Numba intrinsics that emit
``llvm.masked.gather`` directly (``vgatherdps`` with 32-bit indices on AVX-512; LLVM
lowers it to scalar code on CPUs without gathers, so the results are the same
everywhere). Both directions gather: a scatter was slower here.

    gather_rows16(T, ldt, Z, C, i0)         T[j*ldt + i0 + l] = Z[(i0 + l)*C + j]
    gather_cols16(Z, C, T, ldt, i0, tab)    Z[(i0 + l)*C + j] = T[j*ldt + i0 + l]

for l < 16 and j < C. ``Z`` and ``T`` are 1-D C-contiguous arrays of one float
dtype. No bounds are checked: the callers guarantee (i0 + 16)·C <= Z.size,
i0 + 16 <= ldt and C·ldt <= T.size, and 16·C < 2^31.
"""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

#: Rows moved per call (lanes of one gather).
LANES = 16

_I32 = ir.IntType(32)
_I64 = ir.IntType(64)


def _vector_gep(builder, base, index_vec, vec_ptr_type):
    """``getelementptr elem, ptr base, <N x i32> index``: a vector of pointers.
    llvmlite's ``builder.gep`` only types scalar indices, so the instruction is
    built with a placeholder index and given the vector one (the IR text is what
    LLVM parses; the vector index is sign-extended, as the callers' indices are
    below 2^31)."""
    gep = builder.gep(base, [ir.Constant(_I64, 0)])
    gep.operands[1] = index_vec
    gep.indices = [index_vec]
    gep.type = vec_ptr_type
    return gep


def _splat(builder, x):
    """<16 x i32> with every lane the integer ``x`` (truncated to 32 bits)."""
    v = ir.VectorType(_I32, LANES)
    one = builder.insert_element(ir.Constant(v, ir.Undefined), builder.trunc(x, _I32),
                                 ir.Constant(_I32, 0))
    return builder.shuffle_vector(one, ir.Constant(v, ir.Undefined), ir.Constant(v, [0] * LANES))


def _lane_offsets(builder, C):
    """<16 x i32> [0, C, 2C, ..., 15C]."""
    return builder.mul(_splat(builder, C),
                       ir.Constant(ir.VectorType(_I32, LANES), list(range(LANES))))


def _typecheck(T, Z):
    if not (isinstance(T, types.Array) and isinstance(Z, types.Array)):
        return False
    return (T.ndim == 1 and Z.ndim == 1 and T.dtype == Z.dtype
            and isinstance(T.dtype, types.Float) and T.layout == "C" and Z.layout == "C")


def _common(context, builder, sig, args, t_pos, z_pos):
    tty, zty = sig.args[t_pos], sig.args[z_pos]
    tptr = context.make_array(tty)(context, builder, args[t_pos]).data
    zptr = context.make_array(zty)(context, builder, args[z_pos]).data
    fty = context.get_value_type(tty.dtype)
    vf = ir.VectorType(fty, LANES)
    vp = ir.VectorType(tptr.type, LANES)
    mask = ir.Constant(ir.VectorType(ir.IntType(1), LANES), [1] * LANES)
    align = ir.Constant(_I32, tty.dtype.bitwidth // 8)
    suffix = "v%d%s.v%dp0" % (LANES, "f32" if tty.dtype.bitwidth == 32 else "f64", LANES)
    return tptr, zptr, fty, vf, vp, mask, align, suffix


def _gather_fn(builder, vf, vp, mask, suffix):
    """The ``llvm.masked.gather`` declaration for 16 lanes of the vector type ``vf``."""
    return cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vf, [vp, _I32, mask.type, vf]),
        "llvm.masked.gather." + suffix)


@intrinsic
def gather_rows16(typingctx, T, ldt, Z, C, i0):
    """T[j*ldt + i0 + l] = Z[(i0 + l)*C + j] for l < 16, j < C (see module docstring)."""
    if not _typecheck(T, Z):
        return None

    def codegen(context, builder, sig, args):
        _, ldt_v, _, c_v, i0_v = args
        tptr, zptr, fty, vf, vp, mask, align, suffix = _common(context, builder, sig, args, 0, 2)
        gfn = _gather_fn(builder, vf, vp, mask, suffix)
        ldt_v = context.cast(builder, ldt_v, sig.args[1], types.intp)
        c_v = context.cast(builder, c_v, sig.args[3], types.intp)
        i0_v = context.cast(builder, i0_v, sig.args[4], types.intp)
        offs = _lane_offsets(builder, c_v)
        zrow = builder.gep(zptr, [builder.mul(i0_v, c_v)])      # &Z[i0*C]
        tcol = builder.gep(tptr, [i0_v])                          # &T[i0]
        undef = ir.Constant(vf, ir.Undefined)
        with cgutils.for_range(builder, c_v) as loop:
            j = loop.index
            ptrs = _vector_gep(builder, zrow, builder.add(offs, _splat(builder, j)), vp)
            val = builder.call(gfn, [ptrs, align, mask, undef])
            dst = builder.gep(tcol, [builder.mul(j, ldt_v)])
            builder.store(val, builder.bitcast(dst, vf.as_pointer()), align=align.constant)
        return context.get_dummy_value()

    return types.none(T, ldt, Z, C, i0), codegen


@intrinsic
def gather_cols16(typingctx, Z, C, T, ldt, i0, tab):
    """Z[(i0 + l)*C + j] = T[j*ldt + i0 + l] for l < 16, j < C, as C contiguous
    16-element stores, each from one gather of T (``tab``: int32, 16·C entries,
    tab[k] = (k % C)·ldt + k // C; a gather is cheaper than a scatter here)."""
    if not (_typecheck(T, Z) and isinstance(tab, types.Array) and tab.dtype == types.int32
            and tab.ndim == 1 and tab.layout == "C"):
        return None

    def codegen(context, builder, sig, args):
        _, c_v, _, ldt_v, i0_v, tab_v = args
        tptr, zptr, fty, vf, vp, mask, align, suffix = _common(context, builder, sig, args, 2, 0)
        tabptr = context.make_array(sig.args[5])(context, builder, tab_v).data
        gfn = _gather_fn(builder, vf, vp, mask, suffix)
        c_v = context.cast(builder, c_v, sig.args[1], types.intp)
        i0_v = context.cast(builder, i0_v, sig.args[4], types.intp)
        vi = ir.VectorType(_I32, LANES)
        si = _splat(builder, i0_v)
        zrow = builder.gep(zptr, [builder.mul(i0_v, c_v)])
        undef = ir.Constant(vf, ir.Undefined)
        with cgutils.for_range(builder, c_v) as loop:
            k0 = builder.mul(loop.index, ir.Constant(_I64, LANES))
            idx = builder.load(builder.bitcast(builder.gep(tabptr, [k0]), vi.as_pointer()), align=4)
            ptrs = _vector_gep(builder, tptr, builder.add(idx, si), vp)
            val = builder.call(gfn, [ptrs, align, mask, undef])
            builder.store(val, builder.bitcast(builder.gep(zrow, [k0]), vf.as_pointer()),
                          align=align.constant)
        return context.get_dummy_value()

    return types.none(Z, C, T, ldt, i0, tab), codegen
