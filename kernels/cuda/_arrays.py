"""Host and device arrays for the cuda kernels.

``dev_in`` gives a device view of an input: a Numba device array as it is, anything with
``__cuda_array_interface__`` (CuPy, PyTorch CUDA tensors) through
``cuda.as_cuda_array`` (no copy), a host array copied to the device. ``Outputs`` does
the same for arrays that are written, remembering which were host arrays so that
``copy_back`` copies each result into the caller's host array after the kernels ran;
an output that is an input (in place) shares that input's device copy.
"""
from __future__ import annotations

import numpy as np
from numba import cuda

from ._config import SIM

if SIM:
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray as _DEVICE_TYPE
else:
    from numba.cuda.cudadrv.devicearray import DeviceNDArray as _DEVICE_TYPE


def is_device(a) -> bool:
    """A Numba device array, or an object that exports ``__cuda_array_interface__``."""
    return isinstance(a, _DEVICE_TYPE) or hasattr(a, "__cuda_array_interface__")


def as_device(a):
    """``a`` (a device array) as a Numba device array of the same memory."""
    if isinstance(a, _DEVICE_TYPE):
        return a
    if SIM:
        raise TypeError(f"{type(a).__name__}: __cuda_array_interface__ objects need a real GPU "
                        "(the CUDA simulator takes Numba's own device arrays only)")
    return cuda.as_cuda_array(a)


def any_device(*arrays) -> bool:
    return any(a is not None and is_device(a) for a in arrays)


class Transfers:
    """The device views of one call's arrays: inputs (``inp``) and outputs (``out``); the
    host arrays among the outputs are copied back by :meth:`copy_back`. The same host
    array passed twice (in place: ``out`` is ``Z``) gets one device copy."""

    def __init__(self):
        self._seen = []        # (host array, device copy)
        self._back = []        # (device copy, host array) to copy back

    def _lookup(self, a):
        for h, d in self._seen:
            if h is a:
                return d
        return None

    def inp(self, a):
        if is_device(a):
            return as_device(a)
        d = self._lookup(a)
        if d is None:
            d = cuda.to_device(np.ascontiguousarray(a))
            self._seen.append((a, d))
        return d

    def out(self, a, read=False):
        """A device array for output ``a``; ``read``: its values are read too (sgd's param
        and velocity), so a host array is copied in as well."""
        if is_device(a):
            return as_device(a)
        d = self._lookup(a)
        if d is None:
            d = cuda.to_device(a) if read else cuda.device_array(a.shape, a.dtype)
            self._seen.append((a, d))
        self._back.append((d, a))
        return d

    def copy_back(self):
        for d, h in self._back:
            if h.size:
                d.copy_to_host(h)
