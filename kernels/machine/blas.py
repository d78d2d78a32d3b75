"""Direct BLAS ``?gemm`` from jit code, with ``alpha`` and ``beta``.

Numba's ``np.dot`` computes ``C = A B`` only (no ``alpha``/``beta``), checks layouts
and may copy on every call. ``gemm`` here calls BLAS ``sgemm``/``dgemm`` directly (which BLAS: see "Which
library" below):

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

Which library
-------------
NumPy's own OpenBLAS when it can be found (NumPy's wheels bundle one, with 64-bit
integers, as ``numpy.libs/libscipy_openblas64_*.so``, symbols ``scipy_sgemm_64_``):
the library ``X @ W.T`` uses, so fastnn and a bare NumPy product are the same code, and
here the faster of the two: OpenBLAS 0.3.31 against SciPy's 0.3.30, dZᵀX with
(4096, 128) and (4096, 784) operands 5.2 vs 7.5 ms at 2 threads, 5-15% at 64-256
rows. Otherwise (another platform, a NumPy built against another BLAS, or
``FASTNN_BLAS=scipy``) SciPy's OpenBLAS from ``scipy.linalg.cython_blas``, through a
small compiled shim that passes the 64-bit integers on as 32-bit ones.

Compiled code always calls one ABI (64-bit integers) under one symbol name, whatever
library stands behind it, so the on-disk cache stays valid if the library changes.

How it is called
----------------
The address of the chosen ``sgemm``/``dgemm`` (Fortran ABI: every argument a
pointer) is taken with ctypes (SciPy's from the ``__pyx_capi__`` capsule) and registered
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

BLAS on Numba's threads
-----------------------
``on_numba_threads(kernel, *args)`` runs a ``parallel=True`` kernel whose ``prange``
body calls ``gemm`` with OpenBLAS's own threading switched off for the duration of the
call (``openblas_set_num_threads(1)``, then the previous count again, also on error):
each of Numba's threads then runs its own single-threaded product, and only one thread
pool is ever active. (With OpenBLAS's threading on, the two pools would take turns on
the same cores: see ``fastnn/_blas_threads.py``.) A lock makes concurrent callers take
turns, so the count they restore is always the user's. ``THREAD_CONTROL`` is False
where the library behind ``gemm`` exposes no thread control (SciPy's, through the
shim): callers then keep OpenBLAS's threading (``kernels/linear.py``). While such a
call runs, another Python thread's NumPy product in the same process also runs on one
thread.
"""
from __future__ import annotations

import ctypes
import os
import threading

import llvmlite.binding as ll
import numpy as np
import scipy.linalg.cython_blas as _cython_blas
from llvmlite import ir
from numba import cfunc, types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import CACHE, jit

#: Symbol names: the 64-bit-integer ABI that compiled code calls, and SciPy's
#: 32-bit-integer sgemm/dgemm (called by the shim when NumPy's BLAS is not used). The
#: 32-bit names are the ones compiled code called before the switch to NumPy's BLAS,
#: so code cached then (Numba does not notice a callee's change) still finds the
#: function it was compiled for.
_SYMBOLS = {("s", 64): "fastnn_blas64_sgemm", ("d", 64): "fastnn_blas64_dgemm",
            ("s", 32): "fastnn_blas_sgemm", ("d", 32): "fastnn_blas_dgemm"}


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


def _numpy_ilp64_gemm():
    """{"s": address, "d": address} of NumPy's bundled OpenBLAS (ILP64) sgemm/dgemm, and
    the library's path; (None, None) if it is not loaded in this process (Linux only:
    loaded libraries are found in /proc/self/maps)."""
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f})
    except OSError:
        return None, None
    for path in paths:
        if not os.path.basename(path).startswith("libscipy_openblas64_") or ".so" not in path:
            continue
        try:
            lib = ctypes.CDLL(path)
            fns = {p: ctypes.cast(getattr(lib, f"scipy_{p}gemm_64_"), ctypes.c_void_p).value
                   for p in "sd"}
        except (OSError, AttributeError):
            continue
        if all(fns.values()):
            return fns, path
    return None, None


def _thread_setters(path):
    """(get, set) of the OpenBLAS thread count of the library at path, or None."""
    try:
        lib = ctypes.CDLL(path)
        get, set_ = (lib.scipy_openblas_get_num_threads64_, lib.scipy_openblas_set_num_threads64_)
    except (OSError, AttributeError):
        return None
    get.restype, get.argtypes = ctypes.c_int, []
    set_.restype, set_.argtypes = None, [ctypes.c_int]
    return get, set_


def _gemm_fnty(fty, ity):
    i8p, ip, fp = ir.IntType(8).as_pointer(), ity.as_pointer(), fty.as_pointer()
    return ir.FunctionType(ir.VoidType(), [i8p, i8p, ip, ip, ip, fp, fp, ip, fp, ip, fp, fp, ip])


@intrinsic
def _xgemm(typingctx, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
    """Raw call: no checks. Ints are passed as 64-bit Fortran integers."""
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
        i8, i64 = ir.IntType(8), ir.IntType(64)

        def slot(llty, value):
            p = cgutils.alloca_once(builder, llty)
            builder.store(value, p)
            return p

        def char(flag, flag_ty):
            t = context.cast(builder, flag, flag_ty, types.boolean)
            return slot(i8, builder.select(t, ir.Constant(i8, ord("T")), ir.Constant(i8, ord("N"))))

        def int64(v, ty):
            return slot(i64, context.cast(builder, v, ty, types.int64))

        def scalar(v, ty):
            return slot(fty, context.cast(builder, v, ty, dt))

        def data(arr, arrty):
            ptr = context.make_array(arrty)(context, builder, arr).data
            return builder.bitcast(ptr, fty.as_pointer())

        fn = cgutils.get_or_insert_function(builder.module, _gemm_fnty(fty, i64),
                                            _SYMBOLS[(prefix, 64)])
        builder.call(fn, [char(ta, tys[0]), char(tb, tys[1]),
                          int64(m_, tys[2]), int64(n_, tys[3]), int64(k_, tys[4]),
                          scalar(al, tys[5]), data(a, tys[6]), int64(lda_, tys[7]),
                          data(b, tys[8]), int64(ldb_, tys[9]), scalar(be, tys[10]),
                          data(c, tys[11]), int64(ldc_, tys[12])])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def _lp64_call(typingctx, ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
    """From the shim: SciPy's 32-bit-integer gemm with the shim's pointers and
    (already checked) integers narrowed to 32 bits."""
    dt = C.dtype
    prefix = "s" if dt.bitwidth == 32 else "d"
    sig = types.none(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)

    def codegen(context, builder, signature, args):
        (ta_, tb_, m_, n_, k_, al, a, lda_, b, ldb_, be, c, ldc_) = args
        i32 = ir.IntType(32)

        def int32(v):
            p = cgutils.alloca_once(builder, i32)
            builder.store(builder.trunc(v, i32), p)
            return p

        fn = cgutils.get_or_insert_function(
            builder.module, _gemm_fnty(context.get_value_type(dt), i32), _SYMBOLS[(prefix, 32)])
        builder.call(fn, [ta_, tb_, int32(m_), int32(n_), int32(k_), al, a, int32(lda_), b,
                          int32(ldb_), be, c, int32(ldc_)])
        return context.get_dummy_value()

    return sig, codegen


def _lp64_shim(prefix):
    """A C-callable gemm with the 64-bit-integer ABI that calls SciPy's 32-bit one
    (``gemm`` has checked every integer against 2^31 − 1 already)."""
    ft = types.float32 if prefix == "s" else types.float64
    i8p, ip, fp = types.CPointer(types.int8), types.CPointer(types.int64), types.CPointer(ft)
    sig = types.void(i8p, i8p, ip, ip, ip, fp, fp, ip, fp, ip, fp, fp, ip)

    def shim(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        _lp64_call(ta, tb, m[0], n[0], k[0], alpha, a, lda[0], b, ldb[0], beta, c, ldc[0])

    shim.__qualname__ = f"_lp64_shim_{prefix}"
    return cfunc(sig, cache=CACHE)(shim)


for _p in "sd":
    ll.add_symbol(_SYMBOLS[(_p, 32)], _capsule_address(_cython_blas.__pyx_capi__[_p + "gemm"]))

_numpy_fns, _numpy_path = (None, None)
if os.environ.get("FASTNN_BLAS", "numpy").lower() != "scipy":
    _numpy_fns, _numpy_path = _numpy_ilp64_gemm()
_SHIMS = {}     # the shims' cfunc objects, kept alive while their addresses are registered
if _numpy_fns is not None:
    for _p in "sd":
        ll.add_symbol(_SYMBOLS[(_p, 64)], _numpy_fns[_p])
    #: Which library the jit kernels' gemm calls (``fastnn info`` reports it).
    GEMM_LIBRARY = f"NumPy's OpenBLAS ({os.path.basename(_numpy_path)}, 64-bit integers)"
else:
    for _p in "sd":
        _SHIMS[_p] = _lp64_shim(_p)
        ll.add_symbol(_SYMBOLS[(_p, 64)], _SHIMS[_p].address)
    GEMM_LIBRARY = "SciPy's OpenBLAS (scipy.linalg.cython_blas, 32-bit integers)"

_threads = _thread_setters(_numpy_path) if _numpy_path else None
#: Whether on_numba_threads can switch the gemm library's own threading off.
THREAD_CONTROL = _threads is not None
_THREAD_LOCK = threading.Lock()


def on_numba_threads(kernel, *args):
    """``kernel(*args)`` with the gemm library's threading off (see the module
    docstring); the library's thread count is restored afterwards, also on error.
    Requires THREAD_CONTROL."""
    get, set_ = _threads
    with _THREAD_LOCK:
        n = get()
        set_(1)
        try:
            return kernel(*args)
        finally:
            set_(n)


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


__all__ = ["gemm", "GEMM_LIBRARY", "THREAD_CONTROL", "on_numba_threads"]
