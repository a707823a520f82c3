"""Device-array helpers shared by the kernels and the pipeline: the one device-array check.

A leaf module: it imports nothing from the rest of terrascale and never imports CuPy (a CuPy
array can only exist once CuPy has been imported, so its module is taken from ``sys.modules``).
"""

from __future__ import annotations

import sys

import numpy as np

__all__ = ["array_module_of", "is_device_array", "to_host"]


def is_device_array(a) -> bool:
    """True for an array in GPU memory (CuPy, or anything exposing ``__cuda_array_interface__``).

    Parameters
    ----------
    a : object
        Any array-like.

    Returns
    -------
    bool
        Whether ``a`` lives on a CUDA device.
    """
    return hasattr(a, "__cuda_array_interface__")


def array_module_of(a):
    """The array module of ``a``: CuPy for a device array, numpy otherwise.

    Parameters
    ----------
    a : object
        Any array-like.

    Returns
    -------
    module
        ``cupy`` or ``numpy``.

    Raises
    ------
    TypeError
        A device array while CuPy is not imported (e.g. a numba device array): convert it with
        ``cupy.asarray`` first.
    """
    if not is_device_array(a):
        return np
    cupy = sys.modules.get("cupy")
    if cupy is None:
        raise TypeError(f"a device array of type {type(a).__name__} that is not a CuPy array; convert it with cupy.asarray")
    return cupy


def to_host(a) -> np.ndarray:
    """A numpy array with the values of ``a``, copied from the device when ``a`` is on a GPU.

    Parameters
    ----------
    a : array_like
        A numpy, CuPy or other array.

    Returns
    -------
    numpy.ndarray
        ``a`` itself (as an ndarray, no copy) for host data; a host copy of a device array.
    """
    if is_device_array(a) and hasattr(a, "get"):
        return a.get()
    return np.asarray(a)
