"""Import-or-skip markers for optional packages (flox style).

``@requires_cupy`` skips a test when CuPy is missing; ``gpu_available()`` also needs a device.
"""

from __future__ import annotations

import importlib
import importlib.util

import pytest


def has(package: str) -> bool:
    """True when ``package`` can be imported."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def requires(package: str) -> pytest.MarkDecorator:
    """A skip marker for tests that need an optional package."""
    return pytest.mark.skipif(not has(package), reason=f"needs the optional package '{package}'")


requires_cupy = requires("cupy")
requires_cudf = requires("cudf")
requires_cuml = requires("cuml")
requires_kvikio = requires("kvikio")
requires_dask_cuda = requires("dask_cuda")
requires_mlflow = requires("mlflow")
requires_dask_jobqueue = requires("dask_jobqueue")


def gpu_available() -> bool:
    """True when CuPy is installed and sees a CUDA device."""
    from pipeline.backend import probe_gpu

    return probe_gpu().usable
