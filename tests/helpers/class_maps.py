"""Small class maps for the aggregation tests."""

from __future__ import annotations

import numpy as np
import xarray as xr

NC_FLOAT_FILL = np.float32(9.96921e36)  # netCDF's default _FillValue for float


def class_map(dtype, seed=0, ny=36, nx=72, fill=None, fill_rows=6):
    """A class map 1..4 on a global 5° grid whose first ``fill_rows`` rows hold ``fill`` (NaN for float)."""
    rng = np.random.default_rng(seed)
    k = rng.integers(1, 5, (ny, nx)).astype(dtype)
    if fill is not None:
        k[:fill_rows] = fill
    res = 180 / ny
    lat = -90 + res * (np.arange(ny) + 0.5)
    lon = -180 + res * (np.arange(nx) + 0.5)
    return xr.DataArray(k, dims=("lat", "lon"), coords={"lat": lat, "lon": lon}, name="lc")
