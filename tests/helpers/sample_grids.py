"""Tiny synthetic grids shared by the tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr


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
