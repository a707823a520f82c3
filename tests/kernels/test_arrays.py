"""The one device-array check shared by the kernels and the pipeline."""

from __future__ import annotations

import sys

import numpy as np
import pytest


def test_device_array_detection_without_cupy():
    from kernels import array_module_of, is_device_array

    # a device array is anything exposing the CUDA array interface (CuPy, numba, cudf columns)
    fake = type("ndarray", (), {"__cuda_array_interface__": {}})()
    assert is_device_array(fake) and not is_device_array(np.zeros(2))
    assert array_module_of(np.zeros(2)) is np
    if "cupy" not in sys.modules:  # a device array while CuPy is not imported
        with pytest.raises(TypeError, match="cupy.asarray"):
            array_module_of(fake)
