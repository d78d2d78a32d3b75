"""Host side of the cuda implementation: launch configuration, transfers, results.

Each function has its operation's raw-kernel signature (see ``fastnn.kernels``'s CPU
modules) and semantics; arrays may be host NumPy arrays (copied in; results copied
back into the given host outputs) or device arrays (used in place, no copy). Losses
come back as a scalar of the dtype (the one device-to-host copy: 8 bytes).
"""
from __future__ import annotations

import numpy as np
from numba import cuda

from ..machine.scalar import as_dtype_scalar
from . import elementwise as ew
from . import matmul as lin
from . import rows
from . import update as sg
from ._arrays import Transfers, is_device
from ._config import FLAT_BLOCK, MAX_BLOCKS, ROW_BLOCK, TILE


def check_available():
    """``RuntimeError`` saying why when numba.cuda has no usable device here."""
    if not cuda.is_available():
        raise RuntimeError("impl 'cuda': numba.cuda.is_available() is False (an NVIDIA device "
                           "file is present, but no usable GPU or driver was found)")


def _name(a) -> str:
    return np.dtype(a.dtype).name


def _flat_grid(n):
    return min(MAX_BLOCKS, (n + FLAT_BLOCK - 1) // FLAT_BLOCK)


def _rows_grid(R):
    return min(R, 65535 * 16)


def _flat(d):
    return d.reshape(d.size) if len(d.shape) != 1 else d


# --- elementwise --------------------------------------------------------------------
def sigmoid(Z, out):
    tr = Transfers()
    dZ = tr.inp(Z)
    do = tr.out(out)
    n = dZ.size
    if n:
        ew.sigmoid_kernel(_name(dZ))[_flat_grid(n), FLAT_BLOCK](_flat(dZ), _flat(do))
    tr.copy_back()
    return out


def sigmoid_backward(dH, H, out):
    tr = Transfers()
    ddH, dHh = tr.inp(dH), tr.inp(H)
    do = tr.out(out)
    n = dHh.size
    if n:
        ew.sigmoid_backward_kernel(_name(dHh))[_flat_grid(n), FLAT_BLOCK](
            _flat(ddH), _flat(dHh), _flat(do))
    tr.copy_back()
    return out


def _total(partials):
    """Σ partials (float64, on the device) -> a Python float (the one copy to the host)."""
    res = cuda.device_array(1, np.float64)
    rows.sum_f64[1, FLAT_BLOCK](partials, res)
    return float(res.copy_to_host()[0])


def _sigmoid_loss(Z, Y, dZ, mode):
    tr = Transfers()
    dz, dy = tr.inp(Z), tr.inp(Y)
    dd = tr.out(dZ)
    N = dz.shape[0]
    dt = np.dtype(dz.dtype)
    n = dz.size
    grid = max(1, _flat_grid(n))
    partials = cuda.device_array(grid, np.float64)
    ew.sigmoid_loss_kernel(dt.name, mode)[grid, FLAT_BLOCK](
        _flat(dz), _flat(dy), _flat(dd), float(N), partials)
    total = _total(partials)
    tr.copy_back()
    return as_dtype_scalar(total / N if mode == ew.BCE else total / (2 * N), dt)


def sigmoid_bce_grad(Z, Y, dZ):
    return _sigmoid_loss(Z, Y, dZ, ew.BCE)


def sigmoid_mse_grad(Z, Y, dZ):
    return _sigmoid_loss(Z, Y, dZ, ew.MSE)


def identity_mse_grad(Z, Y, dZ):
    """``E = Σ(Z − Y)²/(2N)``, ``dZ = (Z − Y)/N``: fastnn.MLP's identity output."""
    return _sigmoid_loss(Z, Y, dZ, ew.IDENTITY_MSE)


# --- rows ---------------------------------------------------------------------------
def _softmax(Z, out, log):
    tr = Transfers()
    dz = tr.inp(Z)
    do = tr.out(out)
    R, C = dz.shape
    if R and C:
        rows.softmax_kernel(_name(dz), log)[_rows_grid(R), ROW_BLOCK](dz, do)
    tr.copy_back()
    return out


def softmax(Z, out):
    return _softmax(Z, out, False)


def log_softmax(Z, out):
    return _softmax(Z, out, True)


_DUMMY = {}


def _dummy(dtype):
    d = _DUMMY.get(dtype)
    if d is None:
        d = _DUMMY[dtype] = cuda.device_array((1, 1), dtype)
    return d


def _cross_entropy(Z, y, dZ):
    tr = Transfers()
    dz = tr.inp(Z)
    labels = len(y.shape) == 1
    dy = tr.inp(y)
    if labels and np.dtype(dy.dtype) != np.intp:
        raise TypeError(f"y: expected labels of dtype {np.dtype(np.intp)}, got {dy.dtype}")
    dt = np.dtype(dz.dtype)
    dd = tr.out(dZ) if dZ is not None else _dummy(dt)
    N, C = dz.shape
    terms = cuda.device_array(N, np.float64)
    bad = cuda.to_device(np.array([N], np.int64))
    rows.cross_entropy_kernel(dt.name, labels, dZ is not None)[_rows_grid(N), ROW_BLOCK](
        dz, dy, dd, terms, float(N), bad)
    total = _total(terms)
    first_bad = int(bad.copy_to_host()[0])
    if first_bad < N:
        value = int(dy[first_bad:first_bad + 1].copy_to_host()[0])
        raise ValueError(f"y: labels must lie in [0, {C}) for {C} classes, got {value} at "
                         f"index {first_bad}")
    tr.copy_back()
    return as_dtype_scalar(total / N, dt)


def softmax_cross_entropy(Z, y):
    return _cross_entropy(Z, y, None)


def softmax_cross_entropy_grad(Z, y, dZ):
    return _cross_entropy(Z, y, dZ)


# --- matrix products ----------------------------------------------------------------
def _gemm(A, B, C, ta, tb, epi, v=None, H=None):
    M, N = C.shape
    if M == 0 or N == 0:
        return
    dt = _name(C)
    dummy = _dummy(np.dtype(dt))
    grid = ((N + TILE - 1) // TILE, (M + TILE - 1) // TILE)
    lin.gemm_kernel(dt, ta, tb, epi)[grid, (TILE, TILE)](
        A, B, C, dummy if v is None else v, dummy if H is None else H)


def _linear(X, W, b, out, epi):
    tr = Transfers()
    dx, dw, db = tr.inp(X), tr.inp(W), tr.inp(b)
    do = tr.out(out)
    _gemm(dx, dw, do, False, True, epi, v=db)
    tr.copy_back()
    return out


def linear(X, W, b, out):
    return _linear(X, W, b, out, lin.BIAS)


def linear_sigmoid(X, W, b, out):
    return _linear(X, W, b, out, lin.BIAS_SIGMOID)


def linear_backward(dZ, X, W, dW, db, dX):
    tr = Transfers()
    ddz, dx, dw = tr.inp(dZ), tr.inp(X), tr.inp(W)
    odW, odb = tr.out(dW), tr.out(db)
    _gemm(ddz, dx, odW, True, False, lin.NONE)              # dW = dZᵀ X
    K = ddz.shape[1]
    if K:
        lin.colsum_kernel(_name(ddz))[(K + FLAT_BLOCK - 1) // FLAT_BLOCK, FLAT_BLOCK](ddz, odb)
    if dX is not None:
        _gemm(ddz, dw, tr.out(dX), False, False, lin.NONE)   # dX = dZ W
    tr.copy_back()
    return dW, db, dX


def hidden_delta(dZ, W, H, out):
    tr = Transfers()
    ddz, dw, dh = tr.inp(dZ), tr.inp(W), tr.inp(H)
    do = tr.out(out)
    _gemm(ddz, dw, do, False, False, lin.SIGMOID_DERIV, H=dh)
    tr.copy_back()
    return out


# --- sgd ----------------------------------------------------------------------------
def sgd_update(param, grad, lr, momentum, velocity, weight_decay, l1, nesterov):
    tr = Transfers()
    dp = tr.out(param, read=True)
    dg = tr.inp(grad)
    dt = np.dtype(dp.dtype)
    T = dt.type
    use_wd, use_mu, use_l1 = weight_decay != 0, momentum != 0, l1 != 0   # as given
    lr_, mu, wd, l1_ = T(lr), T(momentum), T(weight_decay), T(l1)
    with np.errstate(over="ignore"):        # lr·l1 beyond the dtype: inf (documented)
        thr = lr_ * l1_
    dv = tr.out(velocity, read=True) if use_mu else (
        velocity if is_device(velocity) else _dummy(dt).reshape(1))
    n = dp.size
    if n:
        sg.sgd_kernel(dt.name)[_flat_grid(n), FLAT_BLOCK](
            _flat(dp), _flat(dg), float(lr_), float(mu), _flat(dv), float(wd), float(thr), bool(use_wd), bool(use_mu),
            bool(lr_ != 0), bool(use_l1), bool(nesterov))
    tr.copy_back()


__all__ = ["sigmoid", "sigmoid_backward", "softmax", "log_softmax", "softmax_cross_entropy",
           "softmax_cross_entropy_grad", "sigmoid_bce_grad", "sigmoid_mse_grad", "linear",
           "linear_sigmoid", "linear_backward", "hidden_delta", "sgd_update"]


# --- the training epoch (fastnn.MLP, impl="cuda") -----------------------------------
@cuda.jit
def _gather_rows(X, idx, out):
    """out[r, :] = X[idx[r], :] (a mini-batch gathered on the device)."""
    r, c = cuda.grid(2)
    if r < idx.shape[0] and c < X.shape[1]:
        out[r, c] = X[idx[r], c]


@cuda.jit
def _gather(y, idx, out):
    r = cuda.grid(1)
    if r < idx.shape[0]:
        out[r] = y[idx[r]]


def gather_rows(X, idx, out):
    """Rows ``idx`` of device X into device ``out`` (nb, D)."""
    nb, D = out.shape
    if nb and D:
        _gather_rows[((nb + TILE - 1) // TILE, (D + TILE - 1) // TILE), (TILE, TILE)](X, idx, out)


def gather(y, idx, out):
    nb = out.shape[0]
    if nb:
        _gather[(nb + FLAT_BLOCK - 1) // FLAT_BLOCK, FLAT_BLOCK](y, idx, out)


@cuda.jit
def _count_correct(Z, yb, Yb, acc_code, counter):
    """counter[0] += the rows of Z classified right: argmax vs labels (acc_code 1; the first
    maximum, as np.argmax) or z > 0 vs y > 0.5 (acc_code 2)."""
    i = cuda.grid(1)
    if i < Z.shape[0]:
        ok = False
        if acc_code == 1:
            best = 0
            for j in range(1, Z.shape[1]):
                if Z[i, j] > Z[i, best]:
                    best = j
            ok = best == yb[i]
        elif acc_code == 2:
            ok = (Z[i, 0] > 0) == (Yb[i, 0] > 0.5)
        if ok:
            cuda.atomic.add(counter, 0, 1)


def count_correct(Z, yb, Yb, acc_code, counter):
    nb = Z.shape[0]
    if nb and acc_code:
        _count_correct[(nb + FLAT_BLOCK - 1) // FLAT_BLOCK, FLAT_BLOCK](Z, yb, Yb, acc_code,
                                                                          counter)
