"""Shared fixtures: tiny NetCDF and Zarr stores written to a temporary directory.

The ``gpu`` marker skips a test when no CUDA device is usable; ``slow`` marks long tests.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from optional import gpu_available


def pytest_collection_modifyitems(config, items):
    if gpu_available():
        return
    skip = pytest.mark.skip(reason="needs a usable CUDA GPU (CuPy + device)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def make_grid_dataset(
    nlat: int = 6,
    nlon: int = 8,
    ntime: int = 3,
    *,
    seed: int = 0,
) -> xr.Dataset:
    """A small CF-like dataset: ``lai`` (time, lat, lon) and ``tas``, on a regional 1° grid."""
    rng = np.random.default_rng(seed)
    lat = 40.5 + np.arange(nlat, dtype=float)
    lon = -5.5 + np.arange(nlon, dtype=float)
    time = pd.date_range("2001-01-01", periods=ntime, freq="MS")
    lai = rng.uniform(0.0, 6.0, (ntime, nlat, nlon)).astype("float32")
    lai[:, 0, 0] = np.nan
    tas = rng.uniform(270.0, 300.0, (ntime, nlat, nlon))
    ds = xr.Dataset(
        {
            "lai": (("time", "lat", "lon"), lai, {"units": "m2 m-2", "long_name": "leaf area index"}),
            "tas": (("time", "lat", "lon"), tas, {"units": "K", "standard_name": "air_temperature"}),
        },
        coords={
            "time": time,
            "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
        },
    )
    return ds


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
