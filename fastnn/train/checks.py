"""The argument checks of :class:`~fastnn.MLP`: its constructor's arguments, the inputs
``X`` and targets ``y`` of every method, and ``fit``'s arguments. Each raises a
TypeError or ValueError that names the argument."""
from __future__ import annotations

import reprlib
import sys
import warnings

import numpy as np

from .. import _validate as v
from .._paths import check_output_path
from ..kernels.machine.finite import all_finite
from .layout import ALIGN
from .products import (ACCURACY_LABELS, ACCURACY_NONE, ACCURACY_SIGN, LOSS_SIGMOID_BCE,
                       LOSS_SOFTMAX_CE)


def _name(kind, value, allowed):
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{kind}: expected one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def _int(name, x, lo):
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer, got {type(x).__name__}")
    x = int(x)
    if x < lo:
        raise ValueError(f"{name}: expected an integer >= {lo}, got {x}")
    return x


def _sizes(sizes):
    """The layer widths as a list of ints, or a TypeError/ValueError naming ``sizes``."""
    example = "a sequence of layer widths like [64, 32, 10]"
    if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
        raise TypeError(f"sizes: expected {example}, got {type(sizes).__name__}")
    sizes = list(sizes)
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"sizes: expected {example} (integers), got {type(s).__name__} "
                            f"{reprlib.repr(s)} in {reprlib.repr(sizes)}")
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2:
        raise ValueError(f"sizes: expected at least an input and an output width, got {sizes}")
    if min(sizes) < 1:
        raise ValueError(f"sizes: expected widths >= 1, got {reprlib.repr(sizes)}")
    n = sum(sizes[l + 1] * (sizes[l] + 1) for l in range(len(sizes) - 1))
    if n * 8 + ALIGN > sys.maxsize:
        raise ValueError(f"sizes: {reprlib.repr(sizes)} has {n:,} parameters, more than an array "
                         f"can hold")
    return sizes


def _float_dtype(dtype):
    """float32 or float64 as a NumPy dtype, or a TypeError naming ``dtype``."""
    dt = None
    if dtype is not None:              # np.dtype(None) would be float64
        try:
            with warnings.catch_warnings():    # e.g. NumPy's DeprecationWarning for "a"
                warnings.simplefilter("ignore")
                dt = np.dtype(dtype)
        except (TypeError, ValueError, SyntaxError):   # np.dtype(",") is a SyntaxError
            pass
        if dt is not None and (dt == v.F32 or dt == v.F64):
            return dt
    shown = dt if dt is not None else reprlib.repr(dtype)
    raise TypeError(f"dtype: expected float32 or float64 (np.float32, 'float32', ...), got {shown}")


def check_X(net, X, name="X"):
    """``X`` as an (N, sizes[0]) array of the network dtype, all finite."""
    D = net.sizes[0]
    if isinstance(X, (str, bytes)) or X is None:
        raise TypeError(f"{name}: expected an array of shape (N, {D}), got {type(X).__name__}")
    try:
        X = np.asarray(X)
    except Exception as exc:
        raise TypeError(f"{name}: could not convert {type(X).__name__} to an array: {exc}") from None
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected real numbers, got dtype {X.dtype}")
    if X.ndim == 1 and D == 1:
        X = X.reshape(-1, 1)
    if X.ndim != 2 or X.shape[1] != D:
        raise ValueError(f"{name}: expected shape (N, {D}) for the model's input size {D}, got "
                         f"{X.shape}" + ("; use X[None, :] for one sample" if X.ndim == 1 else ""))
    if X.shape[0] == 0:
        raise ValueError(f"{name}: no samples (N = 0)")
    X = v.convert_floats(name, X, net.dtype)    # no cast warning; out of range: named
    if not all_finite(X):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return X


def check_y(net, y, N, name="y"):
    """The checked targets of N samples -> (labels (N,) intp or (0,), targets (N, K) or (0, K), accuracy code)."""
    K = net.sizes[-1]
    if y is None or isinstance(y, (str, bytes)):
        raise TypeError(f"{name}: expected labels or targets for {N} samples, got {type(y).__name__}")
    y = np.asarray(y)
    no_labels = np.empty(0, np.intp)
    no_targets = np.empty((0, K), net.dtype)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected numbers, got dtype {y.dtype}")
    if y.shape[:1] != (N,):
        raise ValueError(f"{name}: expected {N} rows to match X, got shape {y.shape}")
    integral = y.dtype.kind in "biu"
    if net.loss_code == LOSS_SOFTMAX_CE or (integral and y.ndim == 1 and K > 1
                                              and net.output == "sigmoid"):
        if not integral or y.ndim != 1:
            raise TypeError(f"{name}: expected integer class labels of shape ({N},) for a "
                            f"{net.output} output, got {y.dtype} {y.shape}")
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= K:
            raise ValueError(f"{name}: labels must lie in [0, {K}) for {K} outputs, got "
                             f"{lo if lo < 0 else hi}")
        labels = np.ascontiguousarray(y, dtype=np.intp)
        if net.loss_code == LOSS_SOFTMAX_CE:
            return labels, no_targets, ACCURACY_LABELS
        Y = np.zeros((N, K), net.dtype)                  # one-hot targets (seed 004)
        Y[np.arange(N), labels] = 1
        return labels, Y, ACCURACY_LABELS
    Y = y.reshape(N, 1) if (y.ndim == 1 and K == 1) else y
    if Y.shape != (N, K):
        raise ValueError(f"{name}: expected targets of shape ({N}, {K})"
                         + (f" or ({N},)" if K == 1 else "") + f", got {y.shape}")
    Y = np.ascontiguousarray(Y, dtype=net.dtype)
    if not all_finite(Y):
        raise ValueError(f"{name}: contains NaN or infinite values")
    if net.loss_code == LOSS_SIGMOID_BCE and (Y.min() < 0 or Y.max() > 1):
        raise ValueError(f"{name}: binary cross-entropy targets must lie in [0, 1], got "
                         f"values in [{Y.min()}, {Y.max()}]")
    if net.output == "identity":
        return no_labels, Y, ACCURACY_NONE
    if K == 1:
        return no_labels, Y, ACCURACY_SIGN
    return np.ascontiguousarray(np.argmax(Y, axis=1), dtype=np.intp), Y, ACCURACY_LABELS


def fit_args(net, X, y, epochs, batch_size, lr, momentum, weight_decay, l1, shuffle,
              validation_data, progress, checkpoint):
    """``fit``'s checks, in order: (X, labels, targets, accuracy code, epochs,
    batch_size (an int or None), hyperparameters, validation data or None,
    checkpoint path or None)."""
    X = check_X(net, X)
    N = X.shape[0]
    y, Y, acc_code = check_y(net, y, N)
    epochs = _int("epochs", epochs, 1)
    if batch_size is not None:
        batch_size = _int("batch_size", batch_size, 1)
    hp = dict(lr=v.real("lr", lr, lo=0.0),
              momentum=v.real("momentum", momentum, lo=0.0, hi=1.0, hi_open=True),
              weight_decay=v.real("weight_decay", weight_decay, lo=0.0),
              l1=v.real("l1", l1, lo=0.0))
    if not isinstance(shuffle, (bool, np.bool_)):
        raise TypeError(f"shuffle: expected a bool, got {type(shuffle).__name__}")
    val = None
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise TypeError("validation_data: expected a pair (X_val, y_val)")
        Xv = check_X(net, validation_data[0], "validation_data[0]")
        val = (Xv,) + check_y(net, validation_data[1], Xv.shape[0], "validation_data[1]")
    if not (progress is None or isinstance(progress, bool) or callable(progress)):
        raise TypeError(f"progress: expected None, a bool or a callable, got {type(progress).__name__}")
    if checkpoint is not None:
        checkpoint = check_output_path(checkpoint, "checkpoint")
    return X, y, Y, acc_code, epochs, batch_size, hp, val, checkpoint
