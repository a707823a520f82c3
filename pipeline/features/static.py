"""Static predictors of the feature table: one value per valid cell (categorical ones as codes)."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from pipeline.errors import InputDataError
from pipeline.features.cells import SPATIAL_DIMS, CellIndex
from pipeline.features.columns import _codes, categories_of


def _nodata(features, name, da):
    if name in features.nodata:
        return features.nodata[name]
    for key in ("missing_value", "_FillValue"):
        if key in da.attrs:
            return np.asarray(da.attrs[key]).ravel()[0]
        if key in da.encoding:
            return np.asarray(da.encoding[key]).ravel()[0]
    return None


def static_columns(static: xr.Dataset, index: CellIndex, features, store: str) -> dict[str, tuple[np.ndarray, Any]]:
    """``features.static`` column → (values on the valid cells, categories or None), host arrays.

    ``lat``/``lon`` are the cell centres; categorical predictors (``features.categorical``) are
    codes into their categories (``flag_values``, else the distinct values), without no-data.
    """
    out: dict[str, tuple[np.ndarray, Any]] = {}
    available = [str(v) for v in static.data_vars] + ["lat", "lon"]
    la, lo = index.lat_lon()
    for name in features.static:
        if name in ("lat", "lon"):
            out[name] = ((la if name == "lat" else lo).astype(np.float32), None)
            continue
        if name not in static.data_vars:
            raise InputDataError(
                f"static predictor '{name}' is not in {store}; it holds: {', '.join(available)}; "
                "fix features.static"
            )
        da = static[name]
        if set(da.dims) != set(SPATIAL_DIMS):
            raise InputDataError(f"static predictor '{name}' in {store} has dims {da.dims}, not (lat, lon)")
        vals = index.gather(np.asarray(da.transpose(*SPATIAL_DIMS).values))[0]
        if name in features.categorical:
            nodata = _nodata(features, name, da)
            flags = da.attrs.get("flag_values")
            cats = np.asarray(flags).ravel() if flags is not None else categories_of(vals, nodata)
            cats = np.sort(cats[cats != nodata] if nodata is not None else cats)
            if cats.dtype.kind == "f" and np.all(cats == np.round(cats)):
                cats = cats.astype(np.int64)
            v = vals.astype(np.float64) if vals.dtype.kind == "f" else vals
            out[name] = (_codes(v, cats), cats)
        else:
            out[name] = (vals.astype(np.float32) if vals.dtype.kind in "fiu" else vals, None)
    return out
