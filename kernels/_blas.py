"""Direct BLAS ``?gemm`` from jit code, with ``alpha`` and ``beta``.

Numba's ``np.dot`` computes ``C = A B`` only (no ``alpha``/``beta``), checks layouts
and may copy on every call. ``gemm`` here calls SciPy's OpenBLAS ``sgemm``/``dgemm``
(``scipy.linalg.cython_blas``) directly:

    gemm(transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)
        C ← alpha · op(A) op(B) + beta · C          (BLAS semantics, COLUMN-major)

``transa``/``transb`` are booleans (True: op(X) = Xᵀ). A, B, C are C-contiguous
arrays of one float dtype (float32 → sgemm, float64 → dgemm), of any rank; only
their data pointers and sizes are used. ``alpha``/``beta`` are rounded to that dtype.
With ``beta == 0`` C is not read (it may hold NaN).

Row-major vs column-major
-------------------------
BLAS sees memory column-major; NumPy's C order is row-major. A C-order (R, S)
array, read column-major with leading dimension S, IS its transpose: an (S, R)
matrix. So, for C-order arrays, compute the transposed product
``Cᵀ = op(B)ᵀ op(A)ᵀ`` and swap the operands. For example, with X (N, D),
W (K, D), Z (N, K), dZ (N, K) in C order:

    Z = X Wᵀ        (Zᵀ = W Xᵀ):      gemm(True,  False, K, N, D, 1, W, D, X, D, 0, Z, K)
    dX = dZ W       (dXᵀ = Wᵀ dZᵀ):   gemm(False, False, D, N, K, 1, W, D, dZ, K, 0, dX, D)
    W -= lr dZᵀ X   (Wᵀ += −lr Xᵀ dZ): gemm(False, True, D, K, N, -lr, X, D, dZ, K, 1, W, D)

(``m, n`` are the rows and columns of the column-major result, i.e. the columns
and rows of the row-major C.)

How it is called
----------------
The address of SciPy's ``sgemm``/``dgemm`` (Fortran ABI: every argument a
pointer) is taken from the ``__pyx_capi__`` capsule with ctypes and registered
with LLVM under a fixed symbol name (``llvmlite.binding.add_symbol``); an
``intrinsic`` declares that symbol as an external function and passes pointers to
stack slots for the scalars. Compiled code refers to the symbol by NAME, not by
address, so functions calling ``gemm`` are cached (``cache=True``) like any other:
the symbol is re-registered when this module is imported, before a cached
function can be loaded. (Calling a ctypes function object from jit code would
freeze its address into the code, and Numba refuses to cache such functions.)

The wrapper checks the leading dimensions and that every operand lies inside
its array (a few integer comparisons; raises ValueError), then calls BLAS,
which runs without the GIL. BLAS threading is OpenBLAS's own (single-threaded
for small products).
"""
from __future__ import annotations

import ctypes

import llvmlite.binding as ll
import numpy as np
import scipy.linalg.cython_blas as _cython_blas
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._config import jit

_SYMBOLS = {"s": "fastnn_blas_sgemm", "d": "fastnn_blas_dgemm"}


def _capsule_address(capsule):
    """The pointer held by a PyCapsule (looked up under the capsule's own name)."""
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype = ctypes.c_char_p
    get_name.argtypes = [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype = ctypes.c_void_p
    get_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
    addr = get_pointer(capsule, get_name(capsule))
    if not addr:
        raise ImportError("scipy.linalg.cython_blas: null function pointer")
    return addr


#: Python-level ctypes handles (the same functions), for tests and debugging.
_INT_P = ctypes.POINTER(ctypes.c_int)
CTYPES_GEMM = {}
for _p, _ct in (("s", ctypes.c_float), ("d", ctypes.c_double)):
    _addr = _capsule_address(_cython_blas.__pyx_capi__[_p + "gemm"])
    ll.add_symbol(_SYMBOLS[_p], _addr)
    _fp = ctypes.POINTER(_ct)
    CTYPES_GEMM[_p] = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, _INT_P, _INT_P,
                                       _INT_P, _fp, _fp, _INT_P, _fp, _INT_P, _fp, _fp,
                                       _INT_P)(_addr)


@intrinsic
def _xgemm(typingctx, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
    """Raw call: no checks. Ints are passed as 32-bit Fortran integers."""
    arrs = (A, B, C)
    if not all(isinstance(a, types.Array) for a in arrs):
        return None
    dt = C.dtype
    if not isinstance(dt, types.Float) or any(a.dtype != dt for a in arrs):
        return None
    prefix = "s" if dt.bitwidth == 32 else "d"
    sig = types.none(transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)

    def codegen(context, builder, signature, args):
        (ta, tb, m_, n_, k_, al, a, lda_, b, ldb_, be, c, ldc_) = args
        tys = signature.args
        fty = context.get_value_type(dt)
        i8, i32 = ir.IntType(8), ir.IntType(32)

        def slot(llty, value):
            p = cgutils.alloca_once(builder, llty)
            builder.store(value, p)
            return p

        def char(flag, flag_ty):
            t = context.cast(builder, flag, flag_ty, types.boolean)
            return slot(i8, builder.select(t, ir.Constant(i8, ord("T")), ir.Constant(i8, ord("N"))))

        def int32(v, ty):
            return slot(i32, context.cast(builder, v, ty, types.int32))

        def scalar(v, ty):
            return slot(fty, context.cast(builder, v, ty, dt))

        def data(arr, arrty):
            ptr = context.make_array(arrty)(context, builder, arr).data
            return builder.bitcast(ptr, fty.as_pointer())

        fnty = ir.FunctionType(ir.VoidType(), [i8.as_pointer(), i8.as_pointer()]
                               + [i32.as_pointer()] * 3
                               + [fty.as_pointer(), fty.as_pointer(), i32.as_pointer(),
                                  fty.as_pointer(), i32.as_pointer(), fty.as_pointer(),
                                  fty.as_pointer(), i32.as_pointer()])
        fn = cgutils.get_or_insert_function(builder.module, fnty, _SYMBOLS[prefix])
        builder.call(fn, [char(ta, tys[0]), char(tb, tys[1]),
                          int32(m_, tys[2]), int32(n_, tys[3]), int32(k_, tys[4]),
                          scalar(al, tys[5]), data(a, tys[6]), int32(lda_, tys[7]),
                          data(b, tys[8]), int32(ldb_, tys[9]), scalar(be, tys[10]),
                          data(c, tys[11]), int32(ldc_, tys[12])])
        return context.get_dummy_value()

    return sig, codegen


@jit
def _fits(trans, rows, cols, ld, size):
    """op(X) is rows × cols, X stored column-major with leading dimension ld."""
    r, c = (cols, rows) if trans else (rows, cols)
    if ld < max(1, r):
        return False
    return r == 0 or c == 0 or (c - 1) * ld + r <= size


_INT_MAX = 2**31 - 1


@jit
def gemm(transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
    """``C ← alpha op(A) op(B) + beta C`` column-major (see the module docstring)."""
    if m < 0 or n < 0 or k < 0 or max(m, n, k, lda, ldb, ldc) > _INT_MAX:
        raise ValueError("gemm: bad dimensions")
    if not (_fits(transa, m, k, lda, A.size) and _fits(transb, k, n, ldb, B.size)
            and _fits(False, m, n, ldc, C.size)):
        raise ValueError("gemm: leading dimension too small or operand out of bounds")
    if m == 0 or n == 0:
        return
    _xgemm(transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)


__all__ = ["gemm", "CTYPES_GEMM"]
