"""A table (or values for its rows) → gridded variables on the grid of a template dataset."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from kernels import to_host
from pipeline.errors import InputDataError
from pipeline.features.cells import CELL, SPATIAL_DIMS, _grid_coords
from pipeline.features.columns import time_values


def _column_host(col) -> np.ndarray:
    if isinstance(col, pd.Categorical):
        return np.asarray(col)
    if hasattr(col, "to_numpy"):
        return col.to_numpy()
    if hasattr(col, "values_host"):
        return col.values_host
    return to_host(col)


def _frame_positions(df, like: xr.Dataset | xr.DataArray, outer: list[str]) -> np.ndarray:
    """Flat positions (outer C-order × ncell + cell) of the rows of a frame, host int64."""
    ncell = int(like.sizes["lat"]) * int(like.sizes["lon"])
    cell = np.asarray(_column_host(df[CELL]), np.int64)
    if cell.size and (cell.min() < 0 or cell.max() >= ncell):
        raise InputDataError(f"column '{CELL}' holds indices outside the {like.sizes['lat']}x{like.sizes['lon']} grid of 'like'")
    pos = np.zeros(cell.size, np.int64)
    for d in outer:
        coord = like[d].values if d in like.coords else np.arange(like.sizes[d])
        col = df[d]
        if str(getattr(col, "dtype", "")) == "category":
            vals = np.asarray(_column_host(col.astype(str)), dtype=object)
            ref = np.asarray([str(c) for c in coord])
        elif d == "time" or np.issubdtype(np.asarray(coord).dtype, np.datetime64):
            vals = np.asarray(_column_host(col)).astype("datetime64[ns]")
            ref = time_values(coord)
        else:
            vals, ref = np.asarray(_column_host(col)), np.asarray(coord)
        idx = pd.Index(ref).get_indexer(vals)
        if (idx < 0).any():
            bad = vals[idx < 0][0]
            raise InputDataError(f"row coordinate {d}={bad!r} is not a value of the '{d}' coordinate of 'like'")
        pos = pos * int(like.sizes[d]) + idx
    return pos * ncell + cell


def unflatten(
    values,
    like: xr.Dataset | xr.DataArray,
    *,
    index=None,
    columns: Sequence[str] | None = None,
    fill_value=None,
    name: str | None = None,
):
    """Put table values back on the grid of ``like``: NaN (or ``fill_value``) where no row.

    Parameters
    ----------
    values
        A dataframe (pandas, cudf or dask) holding ``cell``, the outer-dimension columns and
        value columns; or a 1-D array/Series of values with ``index`` the frame whose
        ``cell``/outer columns locate them (e.g. model predictions for the rows of a table).
    like
        Dataset or DataArray providing the ``lat``/``lon`` grid and the outer coordinates.
    columns
        Value columns to put back (default: every column that is not a coordinate, ``fold``
        or ``split``).
    fill_value
        Value of cells without a row. Default NaN; integer and categorical columns are then
        returned as float64 (pass a fill value to keep an integer dtype).
    name
        Name of the returned DataArray when ``values`` is an array.

    Returns
    -------
    xarray.Dataset (frame input) or xarray.DataArray (array input), dims (outer..., lat, lon),
    the outer dims being those of ``like`` that are columns of the table. Floating columns keep
    their dtype, so flatten → unflatten is exact.
    """
    lat, lon = _grid_coords(like, "like")
    if hasattr(values, "npartitions") and hasattr(values, "partitions"):
        parts = (values.partitions[i].compute() for i in range(values.npartitions))
        frame_cols = list(values.columns)
    elif index is not None:
        parts = iter([(index, values)])
        frame_cols = list(index.columns)
    else:
        parts = iter([values])
        frame_cols = list(values.columns)
    outer = [d for d in like.dims if d not in SPATIAL_DIMS and d in frame_cols]
    shape = tuple(int(like.sizes[d]) for d in outer) + (lat.size, lon.size)
    total = int(np.prod(shape, dtype=np.int64))
    skip = set(outer) | {CELL, "fold", "split"}
    if index is None:
        names = list(columns) if columns is not None else [c for c in frame_cols if c not in skip]
    else:
        names = [name or getattr(values, "name", None) or "values"]
    out: dict[str, np.ndarray] = {}
    cats: dict[str, np.ndarray] = {}

    def target_array(n, sample):
        if n in out:
            return out[n]
        dt = getattr(sample, "dtype", None)
        if isinstance(dt, pd.CategoricalDtype) or str(dt) == "category":
            c = np.asarray(sample.cat.categories.to_numpy() if hasattr(sample.cat.categories, "to_numpy")
                           else sample.cat.categories)
            cats[n] = c
            dt = c.dtype if c.dtype.kind in "biuf" else np.dtype(object)
        dt = np.dtype(dt)
        if fill_value is None and dt.kind in "biu":
            dt = np.dtype(np.float64)
        fill = fill_value if fill_value is not None else (np.nan if dt.kind in "fc" else None)
        out[n] = np.full(total, fill, dtype=dt)
        return out[n]

    for part in parts:
        if isinstance(part, tuple):
            frame, vals = part
            pos = _frame_positions(frame, like, outer)
            v = _column_host(vals) if not isinstance(vals, np.ndarray) else vals
            v = np.asarray(v).ravel()
            if v.size != pos.size:
                raise InputDataError(f"unflatten: {v.size} values for {pos.size} rows of 'index'")
            arr = target_array(names[0], np.asarray(v))
            arr[pos] = v
            continue
        pos = _frame_positions(part, like, outer)
        for n in names:
            if n not in part.columns:
                raise InputDataError(f"column '{n}' is not in the table; it has {', '.join(map(str, part.columns))}")
            col = part[n]
            arr = target_array(n, col)
            if n in cats:
                codes = np.asarray(_column_host(col.cat.codes), np.int64)
                ok = codes >= 0
                arr[pos[ok]] = cats[n][codes[ok]]
            else:
                v = _column_host(col)
                if np.asarray(v).dtype.kind == "M" and arr.dtype.kind == "f":
                    raise InputDataError(f"column '{n}' holds dates; it cannot be put on a grid")
                arr[pos] = v
    dims = tuple(outer) + SPATIAL_DIMS
    coords = {d: like[d] for d in outer if d in like.coords}
    coords["lat"] = like["lat"]
    coords["lon"] = like["lon"]
    arrays = {n: xr.DataArray(a.reshape(shape), dims=dims, coords=coords, name=n) for n, a in out.items()}
    for n in names:
        if n not in arrays:  # empty table: all missing
            arrays[n] = xr.DataArray(np.full(shape, np.nan if fill_value is None else fill_value), dims=dims, coords=coords, name=n)
    if index is not None:
        return arrays[names[0]]
    return xr.Dataset(arrays)
