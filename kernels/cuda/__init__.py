"""The ``cuda`` implementation: every operation on an NVIDIA GPU, with numba-cuda.

Registered only where it can run: numba-cuda installed (``pip install
"fastnn-kernels[cuda]"``) and either an NVIDIA device present or Numba's CUDA simulator
enabled (``NUMBA_ENABLE_CUDASIM=1``, set before Numba is imported). Elsewhere
``UNAVAILABLE["cuda"]`` says why, ``impl="cuda"`` is a ``ValueError`` that repeats it,
and ``fastnn info`` shows it.

Importing ``numba.cuda`` costs about 0.2 s, so ``import fastnn`` does not: this module
decides from cheap facts (the numba-cuda package's spec, the simulator's environment
variable, the device files of NVIDIA's driver), registers thin wrappers, and the
kernels (``_kernels`` and the modules it imports) load on the first call, which also
checks ``numba.cuda.is_available()``. ``FASTNN_CUDA=0`` keeps the implementation off.

Every wrapper has its operation's raw-kernel signature (destination passing, no
validation; see the CPU modules) and accepts host NumPy arrays (copied to the device,
the result copied back into the given host ``out``) or device arrays (Numba device
arrays, or anything with ``__cuda_array_interface__``: CuPy, PyTorch CUDA tensors),
which are read and written where they are, with no host round trip.
"""
from __future__ import annotations

import importlib.util
import os

from .._registry import UNAVAILABLE, register

#: Device files whose presence says an NVIDIA driver and device are there (Linux; WSL).
_DEVICE_FILES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg")


def simulator_requested() -> bool:
    """Whether ``NUMBA_ENABLE_CUDASIM`` asks for Numba's CUDA simulator (as Numba reads it:
    an integer, nonzero)."""
    try:
        return int(os.environ.get("NUMBA_ENABLE_CUDASIM", "0") or 0) != 0
    except ValueError:
        return False


def probe():
    """``(usable, why)``: whether the cuda implementation can be registered here, from
    facts that cost microseconds (``numba.cuda`` is not imported)."""
    if os.environ.get("FASTNN_CUDA", "").strip() == "0":
        return False, "switched off by FASTNN_CUDA=0"
    if importlib.util.find_spec("numba_cuda") is None:
        return False, ("numba-cuda is not installed (pip install \"fastnn-kernels[cuda]\"; "
                       "Numba's built-in CUDA target is deprecated and not used)")
    if simulator_requested():
        return True, "Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1): kernels run on the CPU"
    if not any(os.path.exists(p) for p in _DEVICE_FILES):
        return False, ("no NVIDIA GPU found (no /dev/nvidia* device); NUMBA_ENABLE_CUDASIM=1, "
                       "set before Numba is imported, runs the kernels on Numba's CUDA simulator")
    return True, "an NVIDIA device file is present (checked with numba.cuda.is_available() "\
        "on the first call)"


USABLE, WHY = probe()
_K = None


def kernels():
    """The kernel module, loaded (and the device checked) on first use."""
    global _K
    if _K is None:
        from . import _kernels as k
        k.check_available()
        _K = k
    return _K


if not USABLE:
    UNAVAILABLE["cuda"] = WHY
else:
    @register("sigmoid", "cuda")
    def sigmoid(Z, out):
        return kernels().sigmoid(Z, out)

    @register("sigmoid_backward", "cuda")
    def sigmoid_backward(dH, H, out):
        return kernels().sigmoid_backward(dH, H, out)

    @register("softmax", "cuda")
    def softmax(Z, out):
        return kernels().softmax(Z, out)

    @register("log_softmax", "cuda")
    def log_softmax(Z, out):
        return kernels().log_softmax(Z, out)

    @register("softmax_cross_entropy", "cuda")
    def softmax_cross_entropy(Z, y):
        return kernels().softmax_cross_entropy(Z, y)

    @register("softmax_cross_entropy_grad", "cuda")
    def softmax_cross_entropy_grad(Z, y, dZ):
        return kernels().softmax_cross_entropy_grad(Z, y, dZ)

    @register("sigmoid_bce_grad", "cuda")
    def sigmoid_bce_grad(Z, Y, dZ):
        return kernels().sigmoid_bce_grad(Z, Y, dZ)

    @register("sigmoid_mse_grad", "cuda")
    def sigmoid_mse_grad(Z, Y, dZ):
        return kernels().sigmoid_mse_grad(Z, Y, dZ)

    @register("linear", "cuda")
    def linear(X, W, b, out):
        return kernels().linear(X, W, b, out)

    @register("linear_sigmoid", "cuda")
    def linear_sigmoid(X, W, b, out):
        return kernels().linear_sigmoid(X, W, b, out)

    @register("linear_backward", "cuda")
    def linear_backward(dZ, X, W, dW, db, dX):
        return kernels().linear_backward(dZ, X, W, dW, db, dX)

    @register("hidden_delta", "cuda")
    def hidden_delta(dZ, W, H, out):
        return kernels().hidden_delta(dZ, W, H, out)

    @register("sgd_update", "cuda")
    def sgd_update(param, grad, lr, momentum, velocity, weight_decay, l1, nesterov):
        return kernels().sgd_update(param, grad, lr, momentum, velocity, weight_decay, l1,
                                    nesterov)
