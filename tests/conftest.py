"""Shared fixtures: tiny NetCDF and Zarr stores written to a temporary directory.

The ``gpu`` marker skips a test when no CUDA device is usable; ``slow`` marks long tests.
"""

from __future__ import annotations

import pytest
import xarray as xr

from tests.helpers.optional import gpu_available
from tests.helpers.sample_grids import make_grid_dataset


def pytest_collection_modifyitems(config, items):
    if gpu_available():
        return
    skip = pytest.mark.skip(reason="needs a usable CUDA GPU (CuPy + device)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def grid_dataset() -> xr.Dataset:
    """A tiny in-memory dataset (see :func:`make_grid_dataset`)."""
    return make_grid_dataset()


@pytest.fixture
def netcdf_file(tmp_path, grid_dataset):
    """The tiny dataset written to a NetCDF-4 file."""
    path = tmp_path / "tiny.nc"
    grid_dataset.to_netcdf(path, engine="netcdf4")
    return path


@pytest.fixture(params=[2, 3], ids=["zarr-v2", "zarr-v3"])
def zarr_store(request, tmp_path, grid_dataset):
    """The tiny dataset written to a Zarr store, format v2 and v3."""
    path = tmp_path / f"tiny-v{request.param}.zarr"
    grid_dataset.to_zarr(path, zarr_format=request.param, mode="w", consolidated=request.param == 2)
    return path
