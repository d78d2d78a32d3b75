"""The public operations on device arrays (``impl="cuda"``): checks that read shape and
dtype from the device array (nothing is copied), outputs allocated on the device, and
the cuda kernels; results stay on the device.

A call takes this path when its first array argument is a device array (a Numba device
array, or anything with ``__cuda_array_interface__``: CuPy, PyTorch CUDA tensors). The
other arrays may be device arrays or host arrays (host ones are checked as on the host
path and copied in). ``impl`` must be ``"cuda"`` (or the current implementation must
be). Checked: dtypes (float32/float64, one per call), shapes, C-contiguity, and that an
``out`` is not an input (except where the host API allows it in place). Not checked on
the device (it would cost a reduction and a copy per call): partial overlap of device
arrays, and the value ranges of device targets (BCE targets in [0, 1], non-negative
target rows); device labels outside [0, C) are caught by the kernel itself (a
``ValueError`` after it ran, ``out`` possibly written).
"""
from __future__ import annotations

import numpy as np

from . import _validate as v
from ._impl import get_impl, kernel


def is_device(a) -> bool:
    return v.is_device_array(a)


def _cuda(op, impl):
    name = get_impl() if impl is None else impl
    if name != "cuda":
        raise TypeError(f"{op}: device arrays need impl='cuda', got impl={name!r} "
                        f"(or copy them to the host first)")
    fn = kernel(op, "cuda")
    from .kernels.cuda import kernels
    return fn, kernels()


def _arr(k, name, a, dtype=None, ndim=None, shape_hint=""):
    """A device array checked (a Numba device array view, no copy), or a host array checked
    as on the host path."""
    if not is_device(a):
        return v.floats(name, a, dtype, ndim=ndim, shape_hint=shape_hint)
    from .kernels.cuda._arrays import as_device
    d = as_device(a)
    dt = np.dtype(d.dtype)
    if dt not in (v.F32, v.F64):
        raise TypeError(f"{name}: expected a float32 or float64 array, got {dt}")
    if dtype is not None and dt != dtype:
        raise TypeError(f"{name}: dtype {dt} does not match the other arguments ({dtype}); "
                        f"mixed float32/float64 is not upcast silently")
    if ndim is not None and len(d.shape) != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array{shape_hint}, got shape {d.shape}")
    if not d.is_c_contiguous():
        raise ValueError(f"{name}: expected a C-contiguous device array")
    return d


def _out(name, out, shape, dtype, inputs=(), allowed=()):
    """``out`` checked, or a new device array."""
    from numba import cuda
    if out is None:
        return cuda.device_array(shape, dtype)
    if not is_device(out):
        return v.out_array(name, out, tuple(shape), dtype)
    d = _arr(None, name, out, dtype)
    if tuple(d.shape) != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {tuple(d.shape)}")
    for iname, x in inputs:
        if (x is out or _same_memory(d, x)) and iname not in allowed:
            raise ValueError(f"{name}: must not overlap the input {iname}")
    return out if not is_device(out) else d


def _same_memory(d, x):
    try:
        return is_device(x) and _ptr(d) == _ptr(x)
    except Exception:                          # pragma: no cover
        return False


def _ptr(a):
    from .kernels.cuda._arrays import as_device
    d = as_device(a)
    p = getattr(d, "device_ctypes_pointer", None)       # (the simulator's arrays: identity)
    return p.value if p is not None else id(d)


def _dt(a):
    return np.dtype(a.dtype)


def linear(op, X, W, b, out, impl):
    fn, k = _cuda(op, impl)
    X = _arr(k, "X", X, ndim=2, shape_hint=" (N, in_features)")
    dt = _dt(X)
    W = _arr(k, "W", W, dt, ndim=2, shape_hint=" (out_features, in_features)")
    N, D = X.shape
    K = W.shape[0]
    if W.shape[1] != D:
        raise ValueError(f"W: expected shape ({K}, {D}) to match X {tuple(X.shape)}, "
                         f"got {tuple(W.shape)}")
    if b is None:
        b = np.zeros(K, dt)
    b = _arr(k, "b", b, dt, ndim=1, shape_hint=" (out_features,)")
    if tuple(b.shape) != (K,):
        raise ValueError(f"b: expected shape ({K},) to match W {tuple(W.shape)}, got {tuple(b.shape)}")
    o = _out("out", out, (N, K), dt, (("X", X), ("W", W), ("b", b)))
    fn(X, W, b, o)
    return out if out is not None else o


def elementwise(op, arrays, out, impl, in_place=()):
    """sigmoid (Z,), sigmoid_backward (dH, H): any shape, flattened."""
    fn, k = _cuda(op, impl)
    checked = []
    dt = None
    for name, a in arrays:
        c = _arr(k, name, a, dt)
        dt = _dt(c)
        checked.append((name, c))
    shape = tuple(checked[-1][1].shape)
    for name, c in checked:
        if tuple(c.shape) != shape:
            raise ValueError(f"{name}: expected shape {shape} to match {checked[-1][0]}, "
                             f"got {tuple(c.shape)}")
    o = _out("out", out, shape, dt, checked, allowed=in_place)
    size = int(np.prod(shape))
    fn(*[c.reshape(size) for _, c in checked], o.reshape(size))
    return out if out is not None else o


def over_rows(op, Z, out, impl):
    fn, k = _cuda(op, impl)
    Z = _arr(k, "Z", Z)
    if len(Z.shape) == 0:
        raise ValueError("Z: expected at least 1 dimension, got a 0-D array")
    dt = _dt(Z)
    shape = tuple(Z.shape)
    o = _out("out", out, shape, dt, (("Z", Z),), allowed=("Z",))
    C = shape[-1]
    R = int(np.prod(shape[:-1]))
    fn(Z.reshape(R, C), o.reshape(R, C))
    return out if out is not None else o


def _labels_or_rows(k, Z, y):
    N, C = Z.shape
    if N == 0:
        raise ValueError("Z: empty batch (N = 0): the mean loss over no samples is undefined")
    if C == 0:
        raise ValueError("Z: no classes (C = 0): expected at least one column")
    if is_device(y):
        from .kernels.cuda._arrays import as_device
        yd = as_device(y)
        ydt = np.dtype(yd.dtype)
        if ydt.kind == "f":
            return _arr(k, "y", yd, _dt(Z), ndim=2, shape_hint=" of target rows (N, C)")
        if ydt != np.intp or tuple(yd.shape) != (N,):
            raise TypeError(f"y: expected device labels of dtype {np.dtype(np.intp)} and shape "
                            f"({N},), got {ydt} {tuple(yd.shape)}")
        return yd
    if isinstance(y, np.ndarray) and y.dtype.kind == "f":
        y = v.floats("y", y, _dt(Z), ndim=2, shape_hint=" of target rows (N, C)")
        v.shape_is("y", y, (N, C), "to match Z {}", tuple(Z.shape))
        return y
    return v.labels("y", y, N, C)


def cross_entropy(op, Z, y, out, impl, grad):
    fn, k = _cuda(op, impl)
    Z = _arr(k, "Z", Z, ndim=2, shape_hint=" (N, C) of logits")
    y = _labels_or_rows(k, Z, y)
    dt = _dt(Z)
    if not grad:
        return dt.type(fn(Z, y))
    o = _out("out", out, tuple(Z.shape), dt, (("Z", Z), ("y", y)))
    loss = fn(Z, y, o)
    return dt.type(loss), (out if out is not None else o)


def sigmoid_loss(op, Z, Y, out, impl, yname):
    fn, k = _cuda(op, impl)
    Z = _arr(k, "Z", Z)
    shape = tuple(Z.shape)
    Z2 = Z.reshape(shape[0], 1) if len(shape) == 1 else Z
    if len(Z2.shape) != 2:
        raise ValueError(f"Z: expected logits of shape (N,) or (N, K), got {shape}")
    N, K = Z2.shape
    if N == 0:
        raise ValueError("Z: empty batch (N = 0): the mean loss over no samples is undefined")
    Yc = _arr(k, yname, Y, _dt(Z))
    if tuple(Yc.shape) == (N,) and K == 1:
        Yc = Yc.reshape(N, 1)
    if tuple(Yc.shape) != (N, K):
        raise ValueError(f"{yname}: expected shape {(N, K)} to match Z {shape}, got {tuple(Yc.shape)}")
    o = _out("out", out, shape, _dt(Z), (("Z", Z), (yname, Yc)))
    loss = fn(Z2, Yc, o.reshape(N, K))
    return _dt(Z).type(loss), (out if out is not None else o)


def linear_backward(op, dZ, X, W, compute_dX, out, impl):
    fn, k = _cuda(op, impl)
    X = _arr(k, "X", X, ndim=2, shape_hint=" (N, in_features)")
    dt = _dt(X)
    dZ = _arr(k, "dZ", dZ, dt, ndim=2, shape_hint=" (N, out_features)")
    W = _arr(k, "W", W, dt, ndim=2, shape_hint=" (out_features, in_features)")
    N, D = X.shape
    K = W.shape[0]
    if W.shape[1] != D:
        raise ValueError(f"W: expected shape ({K}, {D}) to match X {tuple(X.shape)}, got {tuple(W.shape)}")
    if tuple(dZ.shape) != (N, K):
        raise ValueError(f"dZ: expected shape ({N}, {K}) to match X and W, got {tuple(dZ.shape)}")
    ins = (("dZ", dZ), ("X", X), ("W", W))
    if out is None:
        out = (None, None, None)
    elif not isinstance(out, tuple) or len(out) != 3:
        raise TypeError("out: expected a tuple (dW, db, dX)")
    dW = _out("out[0] (dW)", out[0], (K, D), dt, ins)
    db = _out("out[1] (db)", out[1], (K,), dt, ins)
    if compute_dX:
        dX = _out("out[2] (dX)", out[2], (N, D), dt, ins)
    elif out[2] is not None:
        raise ValueError("out[2] (dX): expected None when compute_dX is False")
    else:
        dX = None
    fn(dZ, X, W, dW, db, dX)
    return tuple(o if o is not None else d for o, d in zip(out, (dW, db, dX)))


def hidden_delta(op, dZ, W, H, out, impl):
    fn, k = _cuda(op, impl)
    H = _arr(k, "H", H, ndim=2, shape_hint=" (N, hidden)")
    dt = _dt(H)
    dZ = _arr(k, "dZ", dZ, dt, ndim=2, shape_hint=" (N, out_features)")
    W = _arr(k, "W", W, dt, ndim=2, shape_hint=" (out_features, hidden)")
    N, D = H.shape
    K = W.shape[0]
    if tuple(W.shape) != (K, D):
        raise ValueError(f"W: expected shape ({K}, {D}) to match H {tuple(H.shape)}, got {tuple(W.shape)}")
    if tuple(dZ.shape) != (N, K):
        raise ValueError(f"dZ: expected shape ({N}, {K}) to match H and W, got {tuple(dZ.shape)}")
    o = _out("out", out, (N, D), dt, (("dZ", dZ), ("W", W), ("H", H)))
    fn(dZ, W, H, o)
    return out if out is not None else o


def sgd_update(param, grad, lr, momentum, velocity, weight_decay, l1, nesterov, impl):
    fn, k = _cuda("sgd_update", impl)
    p = _arr(k, "param", param)
    dt = _dt(p)
    g = _arr(k, "grad", grad, dt)
    if tuple(g.shape) != tuple(p.shape):
        raise ValueError(f"grad: expected shape {tuple(p.shape)} to match param, got {tuple(g.shape)}")
    lr, momentum, weight_decay, l1 = v.sgd_hyperparameters(lr, momentum, weight_decay, l1,
                                                           nesterov, dt)
    size = int(np.prod(p.shape))
    if momentum > 0:
        if velocity is None:
            raise ValueError(f"velocity: required when momentum > 0 (momentum={momentum})")
        vel = _out("velocity", velocity, tuple(p.shape), dt, (("param", p),)).reshape(size)
    else:
        vel = np.empty(0, dt)
    fn(p.reshape(size), g.reshape(size), lr, momentum, vel, weight_decay, l1, bool(nesterov))
    return param
