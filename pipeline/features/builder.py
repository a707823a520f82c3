"""Flatten gridded fields into tables and back, and build the training table's features.

Row order (the contract between :func:`flatten`, :func:`flatten_dask`, the feature table and
:func:`unflatten`)
    One row per (outer index, valid cell). The *outer* dimensions are every dimension of the
    table's variables other than ``lat``/``lon`` (e.g. ``scenario``, ``time``), in the order
    of the target variable (or the first variable that has the most of them). Rows run through
    them in C order (the last outer dimension fastest), and within one outer index through the
    valid cells by ascending ``cell``, the flat C-order index ``i_lat * nlon + i_lon`` of the
    fine grid. The frame's index is a RangeIndex. A dask version is partitioned along the last
    outer dimension and its partitions, concatenated, give exactly the same rows in the same
    order.

Columns
    One per outer dimension (its coordinate: ``time`` as ``datetime64[ns]``, string coordinates
    such as ``scenario`` as categorical), ``cell`` (int32; int64 for grids over 2**31 cells),
    then one per variable, keeping its dtype; variables listed as categorical become a
    categorical column (pandas ``category`` / cudf ``CategoricalDtype``). ``unflatten`` uses
    only the outer-dimension columns and ``cell``, so rows can be filtered, reordered or dropped
    (missing-value policy ``drop``) and still be put back.

Backends
    CPU: numpy gathers (a numba kernel copying contiguous runs of valid cells, or the identity
    view when every cell is valid) into pandas columns without further copies. GPU
    (``backend.is_gpu``): the same code with CuPy gathers into cudf columns; the fine fields of
    the feature table are read from Zarr straight into device memory (``zarr.config.enable_gpu()``
    with KvikIO's ``GDSStore`` when installed, zarr's ``LocalStore`` otherwise), so the fine
    data never makes a host round trip. Only the small coarse (1°, 0.25°) fields are read on the
    host and copied to the device once per partition.

The feature table (:class:`FeatureBuilder`, configured by the ``features:`` section) is
described in the README section "features".
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.errors import ConfigError, InputDataError

try:  # numba is a dependency (kernels/cpu.py); the gather falls back to numpy without it
    from numba import njit as _njit
except ImportError:  # pragma: no cover - exercised only on installs without numba
    _njit = None

#: Name of the cell-index column.
CELL = "cell"
SPATIAL_DIMS = ("lat", "lon")
_FEATURE_TABLE_VERSION = 1


# ----------------------------------------------------------------------------------------------
# backend helpers


def get_backend(backend=None):
    """A :class:`pipeline.backend.Backend` from ``None`` (CPU), ``"auto"|"cpu"|"gpu"`` or a Backend."""
    from pipeline.backend import resolve_backend

    if backend is None:
        return resolve_backend("cpu")
    if isinstance(backend, str):
        return resolve_backend(backend)
    return backend


def _is_device_array(a) -> bool:
    return hasattr(a, "__cuda_array_interface__")


def _to_host(a) -> np.ndarray:
    if hasattr(a, "get") and _is_device_array(a):
        return a.get()
    return np.asarray(a)


# ----------------------------------------------------------------------------------------------
# the cell index and the gather


if _njit is not None:

    @_njit(nogil=True, cache=True)
    def _gather_runs_nb(a, starts, lens, offs, out):  # pragma: no cover - compiled
        for t in range(a.shape[0]):
            row = a[t]
            o = out[t]
            for r in range(starts.size):
                s = starts[r]
                n = lens[r]
                p = offs[r]
                o[p : p + n] = row[s : s + n]


@dataclass
class CellIndex:
    """The valid cells of a regular lat-lon grid, in row order.

    Attributes
    ----------
    lat, lon
        Cell-centre coordinates (1-D).
    mask
        Boolean (nlat, nlon), True for cells that become rows.
    cells
        Flat C-order indices of the valid cells, ascending (int64).
    """

    lat: np.ndarray
    lon: np.ndarray
    mask: np.ndarray
    cells: np.ndarray = field(init=False)
    starts: np.ndarray = field(init=False, repr=False)
    lens: np.ndarray = field(init=False, repr=False)
    offs: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        self.mask = np.asarray(self.mask, dtype=bool)
        flat = self.mask.ravel()
        self.cells = np.flatnonzero(flat).astype(np.int64)
        edges = np.diff(np.concatenate([[0], flat.view(np.int8), [0]]))
        self.starts = np.flatnonzero(edges == 1).astype(np.int64)
        self.lens = (np.flatnonzero(edges == -1) - self.starts).astype(np.int64)
        self.offs = np.concatenate([[0], np.cumsum(self.lens)[:-1]]).astype(np.int64)

    @property
    def shape(self) -> tuple[int, int]:
        return self.mask.shape

    @property
    def ncell_total(self) -> int:
        return int(self.mask.size)

    @property
    def nvalid(self) -> int:
        return int(self.cells.size)

    @property
    def all_valid(self) -> bool:
        return self.nvalid == self.ncell_total

    @property
    def cell_dtype(self):
        return np.int32 if self.ncell_total < 2**31 else np.int64

    def gather(self, block, xp=np):
        """Valid cells of a block shaped (..., nlat, nlon) → array shaped (prod(...), nvalid)."""
        lead = int(np.prod(block.shape[:-2], dtype=np.int64))
        a = block.reshape(lead, self.ncell_total)
        if self.all_valid:
            return a
        if xp is np:
            a = np.ascontiguousarray(a)
            if _njit is not None and a.dtype != object and a.dtype.kind in "biuf":
                out = np.empty((lead, self.nvalid), dtype=a.dtype)
                if lead and self.nvalid:
                    _gather_runs_nb(a, self.starts, self.lens, self.offs, out)
                return out
            return np.take(a, self.cells, axis=1)
        return xp.take(a, xp.asarray(self.cells), axis=1)

    def lat_lon(self) -> tuple[np.ndarray, np.ndarray]:
        """Centre latitude and longitude of every valid cell (float64)."""
        iy, ix = np.divmod(self.cells, self.mask.shape[1])
        return np.asarray(self.lat, np.float64)[iy], np.asarray(self.lon, np.float64)[ix]


def _grid_coords(ds, source: str = "dataset") -> tuple[np.ndarray, np.ndarray]:
    missing = [d for d in SPATIAL_DIMS if d not in ds.coords]
    if missing:
        raise InputDataError(
            f"{source} has no {' or '.join(missing)} coordinate (it has {', '.join(map(str, ds.coords)) or 'none'}); "
            "harmonise it first with `terrascale validate PATH -o OUT` (CF names lat/lon, lat ascending)"
        )
    lat = np.asarray(ds["lat"].values, np.float64)
    lon = np.asarray(ds["lon"].values, np.float64)
    for name, c in (("lat", lat), ("lon", lon)):
        if c.ndim != 1 or (c.size > 1 and not np.all(np.diff(c) > 0)):
            raise InputDataError(
                f"{source}: coordinate '{name}' must be 1-D and strictly ascending; harmonise it with "
                "`terrascale validate PATH -o OUT`"
            )
    return lat, lon


def make_cell_index(lat, lon, mask=None, *, source: str = "mask") -> CellIndex:
    """A :class:`CellIndex` from coordinates and an optional mask (True = keep; NaN/0 = drop).

    Raises :class:`InputDataError` when the mask leaves no cell or does not match the grid.
    """
    lat = np.asarray(lat, np.float64)
    lon = np.asarray(lon, np.float64)
    if mask is None:
        m = np.ones((lat.size, lon.size), bool)
    else:
        if isinstance(mask, xr.DataArray):
            if set(mask.dims) != set(SPATIAL_DIMS):
                raise InputDataError(f"{source} must have dims (lat, lon), it has {mask.dims}")
            mask = mask.transpose(*SPATIAL_DIMS).values
        m = _to_host(mask)
        if m.dtype != bool:
            m = np.nan_to_num(m.astype(np.float64), nan=0.0) != 0
        if m.shape != (lat.size, lon.size):
            raise InputDataError(f"{source} has shape {m.shape} but the grid is {(lat.size, lon.size)} (lat, lon)")
    if not m.any():
        raise InputDataError(
            f"{source} leaves no cell: all {m.size} cells of the {lat.size}x{lon.size} grid are masked out; "
            "check the mask variable and threshold (features.mask_variable / features.mask_min) and the region"
        )
    return CellIndex(lat, lon, m)


# ----------------------------------------------------------------------------------------------
# columns: time, categorical


def time_values(values) -> np.ndarray:
    """Time coordinate values as ``datetime64[ns]`` (cftime dates via their year/month/day)."""
    v = np.asarray(values)
    if np.issubdtype(v.dtype, np.datetime64):
        return v.astype("datetime64[ns]")
    if v.dtype == object and v.size and hasattr(v.flat[0], "year"):
        return np.array(
            [np.datetime64(f"{d.year:04d}-{d.month:02d}-{min(d.day, 28 if d.month == 2 else 30):02d}", "ns")
             if not _valid_date(d) else np.datetime64(f"{d.year:04d}-{d.month:02d}-{d.day:02d}", "ns")
             for d in v.ravel()]
        ).reshape(v.shape)
    if v.dtype == object and v.size == 0:
        return v.astype("datetime64[ns]")
    raise InputDataError(f"time coordinate of dtype {v.dtype} cannot be read as dates; decode it (CF units) first")


def _valid_date(d) -> bool:
    try:
        import datetime as _dt

        _dt.date(d.year, d.month, d.day)
        return True
    except ValueError:
        return False


def categories_of(values, nodata=None) -> np.ndarray:
    """Sorted distinct finite values of a host array, without ``nodata``."""
    v = _to_host(values).ravel()
    if v.dtype.kind == "f":
        v = v[np.isfinite(v)]
    u = np.unique(v)
    if nodata is not None:
        u = u[u != nodata]
    return u


def _codes(values, categories, xp=np):
    """Codes of ``values`` in sorted ``categories`` (-1 where absent), int8/int16/int32."""
    cats = xp.asarray(np.asarray(categories))
    dtype = np.int8 if len(categories) < 127 else np.int16 if len(categories) < 32767 else np.int32
    if len(categories) == 0:
        return xp.full(values.shape, -1, dtype=dtype)
    pos = xp.searchsorted(cats, values)
    pos = xp.clip(pos, 0, len(categories) - 1)
    hit = cats[pos] == values
    return xp.where(hit, pos, -1).astype(dtype)


def make_categorical(codes, categories, xdf=pd, xp=np):
    """A categorical column from codes (-1 = missing) on pandas or cudf (device codes stay on device)."""
    cats = list(np.asarray(categories).tolist()) if not isinstance(categories, list) else categories
    if xdf is pd:
        return pd.Categorical.from_codes(np.asarray(codes), dtype=pd.CategoricalDtype(cats))
    # cudf: look the category values up on the device, null the missing ones, cast; codes stay on device
    dtype = xdf.CategoricalDtype(categories=cats)
    safe = xp.where(codes < 0, 0, codes).astype(xp.int32)
    if cats and isinstance(cats[0], str):
        col = xdf.Series(cats).take(safe).reset_index(drop=True)
    else:
        col = xdf.Series(xp.asarray(np.asarray(categories))[safe])
    col = col.where(xdf.Series(codes >= 0))
    return col.astype(dtype)


def _datetime_column(t_ns, xdf, xp):
    """A datetime64[ns] column from host/device values (device: int64 view cast by cudf).

    Host: the callers pass values already expanded to one per row (``broadcast_to(...)
    .reshape(-1)``, a read-only array, like the other broadcast columns), so it is not copied
    again: a second copy of the partition's time values (4 MiB at 0.5 M rows) would otherwise
    be alive next to the first while the variables are read.
    """
    if xp is np:
        return np.asarray(t_ns).astype("datetime64[ns]", copy=False)
    return xdf.Series(t_ns.astype(xp.int64) if t_ns.dtype != xp.int64 else t_ns).astype("datetime64[ns]")


def _frame(columns: dict, xdf):
    """A DataFrame from prepared columns, without copying them (pandas: copy=False)."""
    if xdf is pd:
        return pd.DataFrame(columns, copy=False)
    return xdf.DataFrame(columns)


# ----------------------------------------------------------------------------------------------
# flatten


def _layout(ds: xr.Dataset, names: Sequence[str]) -> list[str]:
    """Outer dims of the table: those of the variable with the most of them (target first)."""
    outer: list[str] = []
    for n in names:
        da = ds[n]
        if tuple(da.dims[-2:]) != SPATIAL_DIMS and set(SPATIAL_DIMS) <= set(da.dims):
            da = da.transpose(..., *SPATIAL_DIMS)
        if not set(SPATIAL_DIMS) <= set(da.dims):
            raise InputDataError(f"variable '{n}' has dims {da.dims}; a gridded (…, lat, lon) variable is needed")
        dims = [d for d in da.dims if d not in SPATIAL_DIMS]
        if len(dims) > len(outer):
            if outer and [d for d in dims if d in outer] != outer:
                raise InputDataError(f"variable '{n}' has outer dims {dims} that do not extend {outer}")
            outer = dims
    for n in names:
        dims = [d for d in ds[n].dims if d not in SPATIAL_DIMS]
        if any(d not in outer for d in dims):
            raise InputDataError(
                f"variable '{n}' has dims {ds[n].dims}, which do not fit the table's outer dims {outer}; "
                "flatten variables with different extra dimensions separately"
            )
    return outer


def _select_names(ds: xr.Dataset, target, predictors, source: str) -> list[str]:
    available = [str(v) for v in ds.data_vars]
    names = ([target] if target else []) + list(predictors if predictors is not None else
                                                 [v for v in available if v != target])
    for n in names:
        if n not in ds.data_vars:
            raise InputDataError(
                f"predictor '{n}' is not in {source}; it holds: {', '.join(available) or 'no variables'}"
            )
    if not names:
        raise InputDataError(f"{source} has no data variable to flatten")
    return list(dict.fromkeys(names))


def flatten(
    ds: xr.Dataset,
    *,
    target: str | None = None,
    predictors: Sequence[str] | None = None,
    mask=None,
    categorical: Sequence[str] = (),
    categories: Mapping[str, Sequence] | None = None,
    latlon: bool = False,
    backend=None,
    source: str = "dataset",
):
    """Flatten gridded variables into a dataframe: one row per (outer index, valid cell).

    Parameters
    ----------
    ds
        Dataset with 1-D ascending ``lat``/``lon``; every variable ends in (lat, lon) and its
        other dims (e.g. scenario, time) are a subset of the target's.
    target, predictors
        Variables to put in columns (target first); default: every data variable.
    mask
        Boolean (lat, lon) array or DataArray; True cells become rows. Default: every cell.
    categorical
        Variables to store as categorical columns.
    categories
        Categories of categorical variables (default: the sorted distinct values in the valid
        cells); pass them to keep partitions of one table consistent.
    latlon
        Add float64 ``lat``/``lon`` columns (cell centres).
    backend
        ``None``/"cpu" (pandas), "gpu" (cudf) or a :class:`pipeline.backend.Backend`.

    Returns
    -------
    pandas.DataFrame or cudf.DataFrame
        Row order and columns as in the module docstring.
    """
    be = get_backend(backend)
    xp, xdf = be.xp, be.xdf
    lat, lon = _grid_coords(ds, source)
    names = _select_names(ds, target, predictors, source)
    unknown = [c for c in categorical if c not in names]
    if unknown:
        raise InputDataError(f"categorical variable(s) {', '.join(unknown)} not among the flattened variables {', '.join(names)}")
    index = mask if isinstance(mask, CellIndex) else make_cell_index(lat, lon, mask, source=f"mask of {source}")
    outer = _layout(ds, names)
    shape = tuple(int(ds.sizes[d]) for d in outer)
    nouter = int(np.prod(shape, dtype=np.int64))
    nv = index.nvalid
    full = shape + (nv,)
    cols: dict[str, Any] = {}

    def expand(values_outer_axes: list[str], g):
        """Broadcast a gathered (prod(present dims), nv) array to the full row layout."""
        present = [int(ds.sizes[d]) if d in values_outer_axes else 1 for d in outer]
        g = g.reshape(tuple(present) + (nv,))
        if tuple(present) == shape:
            return g.reshape(-1)
        return xp.broadcast_to(g, full).reshape(-1)

    for k, d in enumerate(outer):
        coord = ds[d].values if d in ds.coords else np.arange(shape[k])
        sel = [1] * len(outer) + [1]
        sel[k] = shape[k]
        if np.issubdtype(np.asarray(coord).dtype, np.datetime64) or d == "time":
            tv = time_values(coord)
            host = tv.view(np.int64) if xp is not np else tv
            arr = xp.broadcast_to(xp.asarray(host).reshape(sel), full).reshape(-1)
            cols[d] = _datetime_column(arr, xdf, xp)
        elif np.asarray(coord).dtype.kind in "OUS":
            cats = [str(c) for c in coord]
            codes = xp.broadcast_to(xp.arange(len(cats), dtype=xp.int16).reshape(sel), full).reshape(-1)
            cols[d] = make_categorical(codes, cats, xdf, xp)
        else:
            cols[d] = xp.broadcast_to(xp.asarray(np.asarray(coord)).reshape(sel), full).reshape(-1)
    cells = xp.asarray(index.cells.astype(index.cell_dtype))
    cols[CELL] = xp.broadcast_to(cells, full).reshape(-1) if nouter != 1 else cells
    if latlon:
        la, lo = index.lat_lon()
        cols["lat"] = xp.broadcast_to(xp.asarray(la), full).reshape(-1)
        cols["lon"] = xp.broadcast_to(xp.asarray(lo), full).reshape(-1)
    for n in names:
        da = ds[n]
        present = [d for d in outer if d in da.dims]
        da = da.transpose(*present, *SPATIAL_DIMS)
        data = da.data
        if not _is_device_array(data):
            data = np.asarray(da.values)
        data = xp.asarray(data)
        g = expand(present, index.gather(data, xp))
        if n in categorical:
            cats = categories.get(n) if categories and n in categories else categories_of(index.gather(data, xp))
            cols[n] = make_categorical(_codes(g, cats, xp), cats, xdf, xp)
        else:
            cols[n] = g
    return _frame(cols, xdf)


def flatten_dask(
    ds: xr.Dataset,
    *,
    target: str | None = None,
    predictors: Sequence[str] | None = None,
    mask=None,
    categorical: Sequence[str] = (),
    categories: Mapping[str, Sequence] | None = None,
    latlon: bool = False,
    partition_rows: int = 2_000_000,
    backend=None,
    source: str = "dataset",
):
    """:func:`flatten` as a dask DataFrame built partition by partition.

    The table is cut along the last outer dimension into blocks of
    ``max(1, partition_rows // valid cells)`` steps (one block per combination of the other
    outer dims); each partition reads only its block of the (lazy) dataset, so the whole table
    is never in memory. Concatenated, the partitions equal :func:`flatten`'s frame.
    Categories of categorical variables are computed once up front unless given.
    """
    import dask.dataframe as dd

    be = get_backend(backend)
    lat, lon = _grid_coords(ds, source)
    names = _select_names(ds, target, predictors, source)
    index = mask if isinstance(mask, CellIndex) else make_cell_index(lat, lon, mask, source=f"mask of {source}")
    outer = _layout(ds, names)
    cats = dict(categories or {})
    for n in categorical:
        if n not in cats:
            if n not in names:
                raise InputDataError(f"categorical variable '{n}' is not among the flattened variables {', '.join(names)}")
            cats[n] = _lazy_categories(ds[n], index)
    kw = dict(target=target, predictors=predictors, mask=index, categorical=tuple(categorical),
              categories=cats, latlon=latlon, backend=be, source=source)
    blocks = _blocks(ds, outer, index.nvalid, partition_rows)
    empty = {outer[-1]: slice(0, 0)} if outer else None
    meta = flatten(ds.isel(empty) if empty else ds, **kw).iloc[:0] if empty else None
    if meta is None:  # no outer dims: one partition
        return dd.from_pandas(flatten(ds, **kw), npartitions=1)
    return dd.from_map(_FlattenBlock(ds, kw), blocks, meta=meta, enforce_metadata=False)


def _lazy_categories(da: xr.DataArray, index: CellIndex) -> np.ndarray:
    """Distinct valid-cell values of a (possibly dask-backed) variable, one block at a time."""
    found: set = set()
    outer = [d for d in da.dims if d not in SPATIAL_DIMS]
    da = da.transpose(*outer, *SPATIAL_DIMS)
    step = max(1, 8_000_000 // max(index.ncell_total, 1))
    if not outer:
        return categories_of(index.gather(np.asarray(da.values)))
    first = outer[0]
    for i in range(0, da.sizes[first], step):
        block = np.asarray(da.isel({first: slice(i, i + step)}).values)
        found.update(categories_of(index.gather(block)).tolist())
    return np.array(sorted(found))


def _blocks(ds, outer: list[str], nvalid: int, partition_rows: int) -> list[dict]:
    if not outer:
        return [{}]
    last = outer[-1]
    step = max(1, int(partition_rows) // max(nvalid, 1))
    lead = [range(int(ds.sizes[d])) for d in outer[:-1]]
    out = []
    for combo in np.ndindex(*[len(r) for r in lead]) if lead else [()]:
        for t0 in range(0, int(ds.sizes[last]), step):
            sel = {d: slice(i, i + 1) for d, i in zip(outer[:-1], combo)}
            sel[last] = slice(t0, min(t0 + step, int(ds.sizes[last])))
            out.append(sel)
    return out


class _FlattenBlock:
    """Picklable partition function of :func:`flatten_dask`."""

    def __init__(self, ds, kw):
        self.ds, self.kw = ds, kw

    def __call__(self, sel: dict):
        return flatten(self.ds.isel(sel), **self.kw)


# ----------------------------------------------------------------------------------------------
# unflatten


def _column_host(col) -> np.ndarray:
    if isinstance(col, pd.Categorical):
        return np.asarray(col)
    if hasattr(col, "to_numpy"):
        return col.to_numpy()
    if hasattr(col, "values_host"):
        return col.values_host
    return _to_host(col)


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


# ----------------------------------------------------------------------------------------------
# coarse → fine broadcasting

_NEIGHBOURS = (("nw", 1, -1), ("n", 1, 0), ("ne", 1, 1), ("w", 0, -1), ("e", 0, 1),
               ("sw", -1, -1), ("s", -1, 0), ("se", -1, 1))


def _axis_edges(ds, name: str) -> np.ndarray:
    """Cell edges of a coordinate: from ``<name>_bnds``/``bounds`` when present, else midpoints."""
    c = np.asarray(ds[name].values, np.float64)
    bname = ds[name].attrs.get("bounds", f"{name}_bnds")
    if bname in ds.variables and ds[bname].ndim == 2 and ds[bname].shape[0] == c.size:
        b = np.asarray(ds[bname].values, np.float64)
        return np.concatenate([b[:, 0], b[-1:, 1]])
    if c.size == 1:
        raise InputDataError(f"coordinate '{name}' has a single value and no '{name}_bnds'; add bounds")
    mid = 0.5 * (c[1:] + c[:-1])
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def _nests(fine_edges: np.ndarray, coarse_edges: np.ndarray) -> float | None:
    """None when every coarse edge inside the fine domain is a fine edge; else the first offender."""
    tol = 1e-3 * float(np.min(np.diff(fine_edges)))
    inside = coarse_edges[(coarse_edges > fine_edges[0] + tol) & (coarse_edges < fine_edges[-1] - tol)]
    if inside.size == 0:
        return None
    j = np.clip(np.searchsorted(fine_edges, inside), 1, fine_edges.size - 1)
    d = np.minimum(np.abs(fine_edges[j] - inside), np.abs(fine_edges[j - 1] - inside))
    bad = inside[d > tol]
    return float(bad[0]) if bad.size else None


@dataclass
class Broadcast:
    """Puts fields of one coarse grid onto the valid fine cells.

    ``idx`` (k, nvalid) are flat indices into the coarse (lat, lon) field, ``ncoarse`` pointing
    at an appended NaN (outside the coarse grid); ``w`` (k, nvalid) are bilinear weights.
    """

    method: str
    idx: np.ndarray
    w: np.ndarray | None
    ncoarse: int
    labels: tuple[str, ...] = ("",)

    def apply(self, block, xp=np):
        """(nt, ny_c, nx_c) coarse block → (k, nt, nvalid) (parent/nearest: one per label)."""
        nt = block.shape[0]
        flat = block.reshape(nt, self.ncoarse)
        flat = xp.concatenate([flat, xp.full((nt, 1), xp.nan, dtype=flat.dtype)], axis=1)
        idx = xp.asarray(self.idx)
        g = flat[:, idx]  # (nt, k, nvalid)
        if self.w is None:
            return xp.moveaxis(g, 1, 0)
        w = xp.asarray(self.w)[None]
        ok = ~xp.isnan(g)
        num = xp.where(ok, g, 0).astype(xp.float64) * w
        den = (w * ok).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = num.sum(axis=1) / den
        out = xp.where(den > 0, out, xp.nan).astype(block.dtype if block.dtype.kind == "f" else xp.float32)
        return out[None]


def make_broadcast(index: CellIndex, coarse: xr.Dataset, method: str, *, var: str, store: str,
                   neighbours: bool = False) -> Broadcast:
    """Index maps from the valid fine cells of ``index`` to the grid of ``coarse``.

    ``parent`` needs the grids to nest (every coarse cell edge is a fine cell edge); otherwise an
    :class:`InputDataError` asks for a rule (``nearest`` or ``bilinear``) in ``features.broadcast``.
    """
    clat, clon = _grid_coords(coarse, store)
    ey, ex = _axis_edges(coarse, "lat"), _axis_edges(coarse, "lon")
    global_lon = abs((ex[-1] - ex[0]) - 360.0) < 1e-6
    fy, fx = index.lat_lon()
    ny, nx = clat.size, clon.size
    if method == "parent":
        fine_ds = xr.Dataset(coords={"lat": index.lat, "lon": index.lon})
        for axis, fe, ce in (("lat", _axis_edges(fine_ds, "lat"), ey), ("lon", _axis_edges(fine_ds, "lon"), ex)):
            bad = _nests(fe, ce)
            if bad is not None:
                raise InputDataError(
                    f"'{var}' in {store} is on a grid whose cells do not nest the fine grid: its cell edge at "
                    f"{axis} {bad:g} cuts through fine cells, so a fine cell has no single parent; declare a "
                    f"broadcast rule for it in the config: features.broadcast.{var}: nearest (the coarse cell "
                    f"holding the fine cell centre) or bilinear"
                )
    if method in ("parent", "nearest"):
        jy = np.searchsorted(ey, fy, side="right") - 1
        jx = np.searchsorted(ex, fx, side="right") - 1
        if global_lon:
            jx = np.mod(np.searchsorted(ex, (fx - ex[0]) % 360.0 + ex[0], side="right") - 1, nx)
        out = (jy < 0) | (jy >= ny) | (jx < 0) | (jx >= nx)
        if out.any():
            raise InputDataError(
                f"{int(out.sum())} fine cells lie outside the grid of '{var}' in {store} (lat {ey[0]:g}..{ey[-1]:g}, "
                f"lon {ex[0]:g}..{ex[-1]:g}); give {store} a domain that covers the fine grid"
            )
        offsets = [("", 0, 0)] + (list(_NEIGHBOURS) if neighbours else [])
        idx = np.empty((len(offsets), fy.size), np.int32 if ny * nx < 2**31 - 1 else np.int64)
        for k, (_, dy, dx) in enumerate(offsets):
            yy, xx = jy + dy, jx + dx
            if global_lon:
                xx = np.mod(xx, nx)
            bad = (yy < 0) | (yy >= ny) | (xx < 0) | (xx >= nx)
            idx[k] = np.where(bad, ny * nx, yy * nx + xx)
        return Broadcast(method, idx, None, ny * nx, tuple(o[0] for o in offsets))
    if method != "bilinear":
        raise ConfigError(f"unknown broadcast rule '{method}' for '{var}'; use parent, nearest or bilinear")
    if fy.min() < ey[0] - 1e-9 or fy.max() > ey[-1] + 1e-9 or (not global_lon and (fx.min() < ex[0] - 1e-9 or fx.max() > ex[-1] + 1e-9)):
        raise InputDataError(
            f"fine cells lie outside the grid of '{var}' in {store} (lat {ey[0]:g}..{ey[-1]:g}, lon {ex[0]:g}..{ex[-1]:g}); "
            f"give {store} a domain that covers the fine grid"
        )

    def axis_weights(c, x, wrap):
        if wrap:
            c_ext = np.concatenate([[c[-1] - 360.0], c, [c[0] + 360.0]])
            ids = np.concatenate([[c.size - 1], np.arange(c.size), [0]])
            xw = (x - c[0]) % 360.0 + c[0]
            xw = np.where(xw > c_ext[-1], xw - 360.0, xw)
        else:
            c_ext, ids, xw = c, np.arange(c.size), x
        if c_ext.size == 1:
            return ids[np.zeros(x.size, int)], ids[np.zeros(x.size, int)], np.zeros(x.size)
        j = np.clip(np.searchsorted(c_ext, xw, side="right") - 1, 0, c_ext.size - 2)
        t = np.clip((xw - c_ext[j]) / (c_ext[j + 1] - c_ext[j]), 0.0, 1.0)
        return ids[j], ids[j + 1], t

    y0, y1, ty = axis_weights(clat, fy, False)
    x0, x1, tx = axis_weights(clon, fx, global_lon)
    idx = np.stack([y0 * nx + x0, y0 * nx + x1, y1 * nx + x0, y1 * nx + x1]).astype(np.int32)
    w = np.stack([(1 - ty) * (1 - tx), (1 - ty) * tx, ty * (1 - tx), ty * tx]).astype(np.float32)
    return Broadcast("bilinear", idx, w, ny * nx)


# ----------------------------------------------------------------------------------------------
# the feature table

#: File names of the input stores inside ``data.root`` (or ``<run_dir>/inputs`` for the demo).
STORE_FILES = {"static": "static.zarr", "lulc": "lulc_coarse.zarr", "climate": "climate.zarr", "target": "lai.zarr"}


def find_stores(root: str | Path) -> dict[str, Path]:
    """Paths of the four input stores in ``root``; :class:`InputDataError` naming what is missing."""
    root = Path(root)
    if not root.is_dir():
        raise InputDataError(f"data.root {root} is not a directory; point data.root at the directory with the input stores")
    paths = {k: root / f for k, f in STORE_FILES.items()}
    missing = [p.name for p in paths.values() if not p.exists()]
    if missing:
        have = sorted(p.name for p in root.iterdir()) or ["nothing"]
        raise InputDataError(
            f"{root} lacks {', '.join(missing)} (it holds: {', '.join(have)}); write the stores with "
            f"data.source: demo or point data.root at prepared stores named {', '.join(STORE_FILES.values())}"
        )
    return paths


def open_stores(paths: Mapping[str, Path]) -> dict[str, xr.Dataset]:
    """Open the input stores lazily with their own on-disk chunks."""
    from pipeline.io import open_dataset

    return {k: open_dataset(p, chunks={}) for k, p in paths.items()}


def _sanitize(name: str) -> str:
    s = "".join(ch if ch.isalnum() else "_" for ch in str(name).strip().lower()).strip("_")
    return s or "group"


def _month_keys(times: np.ndarray) -> np.ndarray:
    t = pd.DatetimeIndex(times)
    return (t.year * 12 + t.month - 1).to_numpy(np.int64)


@dataclass
class _Coarse:
    column: str
    var: str
    kind: str  # value | mean | sum
    window: int
    bc: Broadcast


class FeatureBuilder:
    """Builds the training table from the input stores, one partition at a time.

    Rows: (scenario, time, valid cell) in the order of the module docstring, for the target's
    scenarios in ``scenarios`` and times within ``years``, on the cells where the static
    ``features.mask_variable`` exceeds ``features.mask_min``.

    Parameters
    ----------
    stores
        ``{"static", "lulc", "climate", "target"}`` → dataset (lazy is best). ``lulc`` and
        ``climate`` are optional when no feature needs them.
    features, splits
        The ``features:`` and ``splits:`` config sections (``splits=None``: no split columns).
    target
        Target variable in ``stores["target"]`` (``lai``; ``lai_obs`` has no scenario dim, its
        drivers then come from the first scenario).
    scenarios, years
        Scenarios (in this order) and first/last year of the rows.
    seed
        Seed of the spatial fold assignment.
    backend
        CPU (pandas) or GPU (cudf) backend.
    paths
        Store paths (for messages, and for the GPU's direct Zarr → CuPy reads).
    """

    def __init__(self, stores: Mapping[str, xr.Dataset], features, splits=None, *, target: str = "lai",
                 scenarios: Sequence[str] | None = None, years: tuple[int, int] | None = None, seed: int = 0,
                 backend=None, paths: Mapping[str, Path] | None = None):
        self.be = get_backend(backend)
        self.features, self.splits_cfg, self.seed = features, splits, seed
        self.paths = {k: Path(v) for k, v in (paths or {}).items()}
        self.names = {k: (self.paths[k].name if k in self.paths else STORE_FILES.get(k, k)) for k in STORE_FILES}
        for k in ("static", "target"):
            if k not in stores:
                raise InputDataError(f"the {STORE_FILES[k]} store is needed to build features")
        self.stores = dict(stores)
        tds = self.stores["target"]
        if target not in tds.data_vars:
            raise InputDataError(
                f"target '{target}' is not in {self.names['target']}; it holds: {', '.join(map(str, tds.data_vars))}; "
                "set data.target to one of them"
            )
        self.target = target
        self.tda = tds[target]
        lat, lon = _grid_coords(tds, self.names["target"])
        self._check_same_grid(self.stores["static"], lat, lon)
        static = self.stores["static"]
        if features.mask_variable not in static.data_vars:
            raise InputDataError(
                f"mask variable '{features.mask_variable}' is not in {self.names['static']}; it holds: "
                f"{', '.join(map(str, static.data_vars))}; set features.mask_variable"
            )
        mvals = np.asarray(static[features.mask_variable].transpose(*SPATIAL_DIMS).values, np.float64)
        self.index = make_cell_index(
            lat, lon, np.nan_to_num(mvals, nan=-np.inf) > features.mask_min,
            source=f"mask {features.mask_variable} > {features.mask_min:g} of {self.names['static']}",
        )
        self._setup_scenarios(scenarios)
        self._setup_times(years)
        self._setup_static()
        self._setup_coarse()
        self._setup_lulc()
        self._setup_splits()
        if self.be.is_gpu:  # per-cell arrays go to the device once, not per partition
            xp = self.be.xp
            self.static_cols = {n: (xp.asarray(v), c) for n, (v, c) in self.static_cols.items()}
        step = max(1, int(features.partition_rows) // self.index.nvalid)
        self.parts = [(s, a, min(a + step, self.nt)) for s in range(len(self.scenarios)) for a in range(0, self.nt, step)]

    # -- set-up ------------------------------------------------------------------------------

    def _check_same_grid(self, ds, lat, lon):
        slat, slon = _grid_coords(ds, self.names["static"])
        if slat.shape != lat.shape or slon.shape != lon.shape or not (np.allclose(slat, lat) and np.allclose(slon, lon)):
            raise InputDataError(
                f"{self.names['static']} ({slat.size}x{slon.size}) and {self.names['target']} ({lat.size}x{lon.size}) "
                "are not on the same fine grid; regrid the static predictors to the target's grid"
            )

    def _setup_scenarios(self, scenarios):
        self.has_scenario = "scenario" in self.tda.dims
        wanted = list(scenarios) if scenarios else None
        if self.has_scenario:
            have = [str(s) for s in self.tda["scenario"].values]
            wanted = wanted or have
            missing = [s for s in wanted if s not in have]
            if missing:
                raise InputDataError(
                    f"scenario(s) {', '.join(missing)} not in {self.names['target']}; it has: {', '.join(have)}; fix data.scenarios"
                )
            self.scenarios = wanted
        else:
            self.scenarios = [None]
        self.driver_scenario = wanted[0] if wanted else None

    def _setup_times(self, years):
        if "time" not in self.tda.dims:
            raise InputDataError(f"target '{self.target}' in {self.names['target']} has no time dimension (dims {self.tda.dims})")
        t = time_values(self.tda["time"].values)
        sel = np.ones(t.size, bool)
        if years is not None:
            yr = pd.DatetimeIndex(t).year.to_numpy()
            sel = (yr >= years[0]) & (yr <= years[1])
        idx = np.flatnonzero(sel)
        if idx.size == 0:
            have = pd.DatetimeIndex(t).year
            raise InputDataError(
                f"no time step of '{self.target}' in {self.names['target']} falls in data.years {years[0]}:{years[1]} "
                f"(it covers {have.min()}-{have.max()}); fix data.years"
            )
        if not np.all(np.diff(t[idx]) > np.timedelta64(0, "ns")):
            raise InputDataError(f"the time axis of {self.names['target']} is not ascending; harmonise the store")
        self.t0 = int(idx[0])
        self.nt = int(idx.size)
        self.times = t[idx]
        self.years = pd.DatetimeIndex(self.times).year.to_numpy().astype(np.int16)
        self.months = pd.DatetimeIndex(self.times).month.to_numpy().astype(np.int8)

    def _nodata(self, name, da):
        if name in self.features.nodata:
            return self.features.nodata[name]
        for key in ("missing_value", "_FillValue"):
            if key in da.attrs:
                return np.asarray(da.attrs[key]).ravel()[0]
            if key in da.encoding:
                return np.asarray(da.encoding[key]).ravel()[0]
        return None

    def _setup_static(self):
        static = self.stores["static"]
        self.static_cols: dict[str, tuple[np.ndarray, Any]] = {}
        available = [str(v) for v in static.data_vars] + ["lat", "lon"]
        la, lo = self.index.lat_lon()
        for name in self.features.static:
            if name in ("lat", "lon"):
                self.static_cols[name] = ((la if name == "lat" else lo).astype(np.float32), None)
                continue
            if name not in static.data_vars:
                raise InputDataError(
                    f"static predictor '{name}' is not in {self.names['static']}; it holds: {', '.join(available)}; "
                    "fix features.static"
                )
            da = static[name]
            if set(da.dims) != set(SPATIAL_DIMS):
                raise InputDataError(f"static predictor '{name}' in {self.names['static']} has dims {da.dims}, not (lat, lon)")
            vals = self.index.gather(np.asarray(da.transpose(*SPATIAL_DIMS).values))[0]
            if name in self.features.categorical:
                nodata = self._nodata(name, da)
                flags = da.attrs.get("flag_values")
                cats = np.asarray(flags).ravel() if flags is not None else categories_of(vals, nodata)
                cats = np.sort(cats[cats != nodata] if nodata is not None else cats)
                if cats.dtype.kind == "f" and np.all(cats == np.round(cats)):
                    cats = cats.astype(np.int64)
                v = vals.astype(np.float64) if vals.dtype.kind == "f" else vals
                self.static_cols[name] = (_codes(v, cats), cats)
            else:
                self.static_cols[name] = (vals.astype(np.float32) if vals.dtype.kind in "fiu" else vals, None)

    def _driver(self, store_key: str, var: str, what: str):
        if store_key not in self.stores:
            raise InputDataError(f"{what} '{var}' needs the {STORE_FILES[store_key]} store")
        ds = self.stores[store_key]
        if var not in ds.data_vars:
            raise InputDataError(
                f"{what} '{var}' is not in {self.names[store_key]}; it holds: {', '.join(map(str, ds.data_vars))}"
            )
        return ds[var]

    def _setup_coarse(self):
        f = self.features
        self.coarse: list[_Coarse] = []
        self._bcache: dict = {}
        wanted = [(v, "value", 0) for v in f.coarse]
        wanted += [(v, "mean", L) for v in f.lag_variables for L in f.lags]
        wanted += [(v, "sum", L) for v in f.accumulate for L in f.lags]
        self.climate_index = None
        for var, kind, L in wanted:
            da = self._driver("climate", var, "predictor" if kind == "value" else "lagged driver")
            rule = f.broadcast.get(var, f.coarse_broadcast)
            bc = self._broadcast("climate", rule, var)
            col = var if kind == "value" else f"{var}_{kind}{L}m"
            self.coarse.append(_Coarse(col, var, kind, L, bc))
            if self.climate_index is None:
                self._setup_climate_time(da)
        self.max_lag = max((c.window for c in self.coarse), default=0)

    def _setup_climate_time(self, da):
        if "time" not in da.dims:
            raise InputDataError(f"'{da.name}' in {self.names['climate']} has no time dimension")
        keys = _month_keys(time_values(da["time"].values))
        want = _month_keys(self.times)
        pos = pd.Index(keys).get_indexer(want)
        if (pos < 0).any():
            t = pd.DatetimeIndex(time_values(da["time"].values))
            miss = pd.DatetimeIndex(self.times[pos < 0])
            raise InputDataError(
                f"{self.names['climate']} covers {t.min():%Y-%m}..{t.max():%Y-%m} but the target needs "
                f"{miss.min():%Y-%m}..{miss.max():%Y-%m}; extend the climate store or narrow data.years"
            )
        if any(c.window for c in self.coarse) and keys.size > 1 and not np.all(np.diff(keys) == 1):
            raise InputDataError(f"the time axis of {self.names['climate']} is not monthly without gaps, which lagged means need")
        self.climate_index = pos.astype(np.int64)

    def _broadcast(self, store_key, rule, var, neighbours=False):
        key = (store_key, rule, neighbours)
        if key not in self._bcache:
            self._bcache[key] = make_broadcast(self.index, self.stores[store_key], rule, var=var,
                                               store=self.names[store_key], neighbours=neighbours)
        return self._bcache[key]

    def _setup_lulc(self):
        f = self.features
        self.lulc = None
        if not f.lulc_variable:
            return
        da = self._driver("lulc", f.lulc_variable, "LULC variable")
        if "group" not in da.dims:
            raise InputDataError(f"'{f.lulc_variable}' in {self.names['lulc']} has no 'group' dimension (dims {da.dims})")
        rule = f.broadcast.get(f.lulc_variable, "parent")
        if rule == "bilinear":
            raise ConfigError(f"features.broadcast.{f.lulc_variable}: use parent or nearest for LULC fractions, not bilinear")
        bc = self._broadcast("lulc", rule, f.lulc_variable, neighbours=f.lulc_neighbourhood)
        groups = [_sanitize(g) for g in (da["group"].values if "group" in da.coords else range(da.sizes["group"]))]
        years = pd.DatetimeIndex(time_values(da["time"].values)).year.to_numpy() if "time" in da.dims else None
        if years is not None:
            pos = pd.Index(years).get_indexer(self.years.astype(np.int64))
            if (pos < 0).any():
                raise InputDataError(
                    f"{self.names['lulc']} has years {years.min()}-{years.max()} but the target needs "
                    f"{int(self.years[pos < 0].min())}-{int(self.years[pos < 0].max())}; extend it or narrow data.years"
                )
        else:
            pos = None
        cols = [f"lulc_{g}" + (f"_{lab}" if lab else "") for lab in bc.labels for g in groups]
        self.lulc = dict(da=da, bc=bc, groups=groups, pos=pos, columns=cols)

    def _setup_splits(self):
        from pipeline.splits import make_cell_split

        self.cell_split = None
        s = self.splits_cfg
        if s is None:
            return
        self.cell_split = make_cell_split(
            self.index.lat, self.index.lon, self.index.mask, kind=s.kind, block_size_deg=s.block_size_deg,
            n_folds=s.n_folds, test_fold=s.test_fold, buffer_deg=s.buffer_deg,
            test_years=tuple(s.test_years) if s.test_years else None, seed=self.seed,
        )

    # -- schema ------------------------------------------------------------------------------

    @property
    def npartitions(self) -> int:
        return len(self.parts)

    @property
    def nrows(self) -> int:
        return len(self.scenarios) * self.nt * self.index.nvalid

    def categorical_columns(self) -> dict[str, list]:
        """Categorical columns and their categories."""
        out = {}
        if self.has_scenario:
            out["scenario"] = list(self.scenarios)
        for n, (_, cats) in self.static_cols.items():
            if cats is not None:
                out[n] = cats.tolist()
        if self.cell_split is not None:
            from pipeline.splits import SPLIT_LABELS

            out["split"] = list(SPLIT_LABELS)
        return out

    def meta(self):
        """An empty frame with the table's columns and dtypes (the dask ``meta``)."""
        return self.partition(0, _empty=True)

    # -- partitions --------------------------------------------------------------------------

    def _sel(self, da, scenario):
        if "scenario" in da.dims:
            name = scenario if scenario is not None else self.driver_scenario
            if name is None:
                return da.isel(scenario=0)
            have = [str(s) for s in da["scenario"].values]
            if name not in have:
                raise InputDataError(f"scenario '{name}' is not in the store of '{da.name}' (it has {', '.join(have)})")
            return da.isel(scenario=have.index(name))
        return da

    def _read_target(self, s: int, a: int, b: int):
        """Target block (nt, nlat, nlon) on the backend's device."""
        xp = self.be.xp
        da = self._sel(self.tda, self.scenarios[s]).isel(time=slice(self.t0 + a, self.t0 + b))
        da = da.transpose("time", *SPATIAL_DIMS)
        if self.be.is_gpu and "target" in self.paths and self.paths["target"].suffix == ".zarr":
            return read_zarr_block_gpu(self.paths["target"], self.tda, self._target_key(s, a, b), xp)
        return xp.asarray(np.asarray(da.values))

    def _target_key(self, s, a, b):
        key = []
        for d in self.tda.dims:
            if d == "scenario":
                have = [str(x) for x in self.tda["scenario"].values]
                key.append(slice(have.index(self.scenarios[s]), have.index(self.scenarios[s]) + 1))
            elif d == "time":
                key.append(slice(self.t0 + a, self.t0 + b))
            else:
                key.append(slice(None))
        dims = [d for d in self.tda.dims]
        return tuple(key), dims

    def _coarse_block(self, c: _Coarse, scenario, ci: np.ndarray) -> np.ndarray:
        da = self._sel(self.stores["climate"][c.var], scenario).transpose("time", *SPATIAL_DIMS)
        if c.kind == "value":
            lo, hi = int(ci.min()), int(ci.max()) + 1
            blk = np.asarray(da.isel(time=slice(lo, hi)).values)
            return blk[ci - lo]
        L = c.window
        lo, hi = max(0, int(ci.min()) - L), int(ci.max())
        blk = np.asarray(da.isel(time=slice(lo, hi)).values, np.float64)  # months lo .. max-1
        ok = np.isfinite(blk)
        cs = np.zeros((blk.shape[0] + 1,) + blk.shape[1:])
        cn = np.zeros(cs.shape, np.int64)
        np.cumsum(np.where(ok, blk, 0.0), axis=0, out=cs[1:])
        np.cumsum(ok, axis=0, out=cn[1:])
        end = ci - lo
        start = end - L
        valid = ci - L >= 0
        start_c = np.clip(start, 0, None)
        tot = cs[end] - cs[start_c]
        cnt = cn[end] - cn[start_c]
        full = (cnt == L) & valid[:, None, None]
        val = tot / L if c.kind == "mean" else tot
        return np.where(full, val, np.nan).astype(np.float32)

    def partition(self, i: int, _empty: bool = False):
        """Partition ``i`` of the table as a pandas (CPU) or cudf (GPU) frame."""
        xp, xdf = self.be.xp, self.be.xdf
        s, a, b = self.parts[i]
        if _empty:
            b = a + 1
        scen = self.scenarios[s]
        nt, nv = b - a, self.index.nvalid
        full = (nt, nv)

        def rep(v_step):  # one value per time step → rows
            return xp.broadcast_to(xp.asarray(v_step).reshape(nt, 1), full).reshape(-1)

        def tile(v_cell):  # one value per cell → rows
            return xp.broadcast_to(xp.asarray(v_cell).reshape(1, nv), full).reshape(-1)

        cols: dict[str, Any] = {}
        if self.has_scenario:
            cols["scenario"] = make_categorical(xp.full(nt * nv, s, dtype=xp.int16), list(self.scenarios), xdf, xp)
        tv = self.times[a:b]
        cols["time"] = _datetime_column(rep(tv if xp is np else tv.view(np.int64)), xdf, xp)
        cells = tile(self.index.cells.astype(self.index.cell_dtype))
        cols[CELL] = cells
        cols[self.target] = self.index.gather(self._read_target(s, a, b), xp).reshape(-1)
        for n, (vals, cats) in self.static_cols.items():
            cols[n] = make_categorical(tile(vals), cats.tolist(), xdf, xp) if cats is not None else tile(vals)
        months = self.months[a:b].astype(np.float64)
        for name in self.features.time:
            if name == "month_sin":
                cols[name] = rep(np.sin(2 * np.pi * (months - 1) / 12).astype(np.float32))
            elif name == "month_cos":
                cols[name] = rep(np.cos(2 * np.pi * (months - 1) / 12).astype(np.float32))
            elif name == "year":
                cols[name] = rep(self.years[a:b])
            elif name == "month":
                cols[name] = rep(self.months[a:b])
        if self.coarse:
            ci = self.climate_index[a:b]
            for c in self.coarse:
                blk = xp.asarray(self._coarse_block(c, scen, ci).astype(np.float32, copy=False))
                cols[c.column] = c.bc.apply(blk, xp)[0].reshape(-1)
        if self.lulc is not None:
            L = self.lulc
            da = self._sel(L["da"], scen)
            da = da.transpose(*([d for d in ("time",) if d in da.dims]), "group", *SPATIAL_DIMS)
            if L["pos"] is not None:
                pos = L["pos"][a:b]
                uniq, inv = np.unique(pos, return_inverse=True)
                blk = np.asarray(da.isel(time=xr.DataArray(uniq, dims="time")).values)[inv]
            else:
                blk = np.broadcast_to(np.asarray(da.values)[None], (nt,) + tuple(da.shape))
            blk = xp.asarray(blk.astype(np.float32, copy=False))
            ng = blk.shape[1]
            for g in range(ng):
                out = L["bc"].apply(blk[:, g], xp)  # (k, nt, nv)
                for k, lab in enumerate(L["bc"].labels):
                    cols[f"lulc_{L['groups'][g]}" + (f"_{lab}" if lab else "")] = out[k].reshape(-1)
            # keep the documented column order: all groups of one neighbour together
            order = L["columns"]
            for name in order:
                cols[name] = cols.pop(name)
        if self.cell_split is not None:
            from pipeline.splits import SPLIT_LABELS

            fold, split = self.cell_split.row_codes(cells, rep(self.years[a:b]), xp)
            cols["fold"] = fold
            cols["split"] = make_categorical(split, list(SPLIT_LABELS), xdf, xp)
        df = _frame(cols, xdf)
        return df.iloc[:0] if _empty else df

    # -- whole tables --------------------------------------------------------------------------

    def iter_partitions(self) -> Iterator:
        """Partitions in row order (one at a time; nothing else is held)."""
        for i in range(self.npartitions):
            yield self.partition(i)

    def to_frame(self):
        """The whole table in memory (small tables; use :meth:`to_dask` for large ones)."""
        parts = list(self.iter_partitions())
        if len(parts) == 1:
            return parts[0]
        return self.be.xdf.concat(parts, ignore_index=True)

    def to_dask(self):
        """The table as a dask DataFrame, one partition per :meth:`partition` call."""
        import dask.dataframe as dd

        return dd.from_map(_BuilderPartition(self), list(range(self.npartitions)), meta=self.meta(),
                           enforce_metadata=False)

    def grid_like(self) -> xr.Dataset:
        """A template for :func:`unflatten`: the fine grid and the table's outer coordinates."""
        coords = {"time": self.times, "lat": self.index.lat, "lon": self.index.lon}
        if self.has_scenario:
            coords = {"scenario": list(self.scenarios), **coords}
        return xr.Dataset(coords=coords)


class _BuilderPartition:
    """Picklable partition function of :meth:`FeatureBuilder.to_dask`."""

    def __init__(self, builder):
        self.builder = builder

    def __call__(self, i: int):
        return self.builder.partition(i)


def read_zarr_block_gpu(store_path: Path, da: xr.DataArray, key_dims, xp):
    """Read a block of a Zarr array straight into device memory (CuPy), decoded like xarray.

    Uses ``zarr.config.enable_gpu()`` so zarr returns CuPy arrays, with KvikIO's ``GDSStore``
    (GPUDirect Storage, POSIX fallback) when KvikIO is installed, else zarr's ``LocalStore``.
    The result is transposed to (time, lat, lon) on the device.
    """
    import zarr

    key, dims = key_dims
    try:
        from kvikio.zarr import GDSStore

        store = GDSStore(root=str(store_path))
    except ImportError:
        store = zarr.storage.LocalStore(str(store_path), read_only=True)
    with zarr.config.enable_gpu():
        arr = zarr.open_array(store=store, path=str(da.name), mode="r")
        block = xp.asarray(arr[key])
    enc = da.encoding
    fill = enc.get("_FillValue", da.attrs.get("_FillValue"))
    block = block.astype(xp.float32 if block.dtype.itemsize <= 4 else xp.float64, copy=False)
    if fill is not None and not (isinstance(fill, float) and math.isnan(fill)):
        block = xp.where(block == fill, xp.nan, block)
    if "scale_factor" in enc or "add_offset" in enc:
        block = block * enc.get("scale_factor", 1.0) + enc.get("add_offset", 0.0)
    order = [dims.index(d) for d in dims if d not in ("time", "lat", "lon")] + [dims.index(d) for d in ("time", "lat", "lon")]
    block = xp.transpose(block, order)
    return xp.ascontiguousarray(block.reshape(block.shape[-3:]))


# ----------------------------------------------------------------------------------------------
# missing values

#: Columns that are never filled or dropped.
_STRUCTURAL = {"scenario", "time", CELL, "fold", "split"}


def missing_policies(columns: Sequence[str], features, target: str | None = None, categorical: Iterable[str] = ()) -> dict[str, dict]:
    """The policy of every value column: ``features.missing[col]``, the target ``drop``, else the default.

    Raises :class:`ConfigError` for a policy naming a column the table does not have, or a
    ``mean`` policy on a categorical column.
    """
    cols = [c for c in columns if c not in _STRUCTURAL]
    unknown = [c for c in features.missing if c not in cols]
    if unknown:
        raise ConfigError(
            f"features.missing names column(s) {', '.join(unknown)} that the table does not have; its columns are: {', '.join(cols)}"
        )
    cats = set(categorical)
    out = {}
    for c in cols:
        if c in features.missing:
            pol = features.missing[c]
        elif c == target:
            pol = type(features.missing_default)(action="drop")
        else:
            pol = features.missing_default
        if pol.action == "mean" and c in cats:
            raise ConfigError(f"features.missing.{c}: 'mean' is not defined for the categorical column '{c}'; use drop, constant or keep")
        out[c] = {"action": pol.action, "value": pol.value}
    return out


def _frames(source) -> Iterator:
    if hasattr(source, "npartitions") and hasattr(source, "partitions"):
        for i in range(source.npartitions):
            yield source.partitions[i].compute()
    elif hasattr(source, "columns"):
        yield source
    else:
        yield from source


def fit_missing(source, policies: Mapping[str, dict]) -> dict:
    """Resolve ``mean`` policies to numbers: the mean over the training rows.

    ``source`` is a frame, a dask frame or an iterable of frames (read one at a time). Training
    rows are those with ``split == "train"`` when the table has a split column, else all rows.
    Returns the record (``{"columns": {col: {"action", "value"}}}``) that a model stores with
    itself and :func:`apply_missing` applies.
    """
    record = {"columns": {c: dict(p) for c, p in policies.items()}, "mean_over": "all rows"}
    means = [c for c, p in policies.items() if p["action"] == "mean"]
    if means:
        sums = dict.fromkeys(means, 0.0)
        counts = dict.fromkeys(means, 0)
        for df in _frames(source):
            rows = df
            if "split" in df.columns:
                rows = df[df["split"] == "train"]
                record["mean_over"] = "training rows (split == 'train')"
            for c in means:
                col = rows[c].astype("float64")  # float32 partial sums would lose digits
                sums[c] += float(col.sum())
                counts[c] += int(col.count())
        for c in means:
            if counts[c] == 0:
                raise InputDataError(f"column '{c}' has no value in the training rows, so its mean (features.missing.{c}: mean) is undefined")
            record["columns"][c]["value"] = sums[c] / counts[c]
    return record


def apply_missing(df, record: Mapping):
    """Apply a missing-value record to one frame; returns ``(frame, {col: n_missing})``.

    ``drop`` removes rows with a missing value in that column, ``constant``/``mean`` fill with
    the recorded value, ``keep`` leaves NaN (for models that accept it). The index is reset.
    """
    counts = {}
    drop = None
    fills = {}
    for c, p in record["columns"].items():
        if c not in df.columns:
            continue
        na = df[c].isna()
        n = int(na.sum())
        counts[c] = n
        if not n:
            continue
        if p["action"] == "drop":
            drop = na if drop is None else (drop | na)
        elif p["action"] in ("constant", "mean"):
            fills[c] = p["value"]
    if fills:
        df = df.copy(deep=False) if hasattr(df, "copy") else df
        for c, v in fills.items():
            col = df[c]
            if str(col.dtype) == "category" and v not in list(col.cat.categories.to_numpy() if hasattr(col.cat.categories, "to_numpy") else col.cat.categories):
                raise ConfigError(f"features.missing.{c}: value {v!r} is not a category of '{c}' ({list(col.cat.categories)})")
            df[c] = col.fillna(v)
    if drop is not None:
        df = df[~drop].reset_index(drop=True)
    return df, counts


# ----------------------------------------------------------------------------------------------
# the Parquet table on disk

META_FILE = "features.json"

#: Largest dictionary page of a Parquet column chunk before the writer falls back to plain
#: encoding (pyarrow's default is 1 MiB). See :func:`write_partition`.
PARQUET_DICTIONARY_LIMIT = 64 * 1024


def write_partition(part, path: str | Path) -> None:
    """Write one partition (pandas frame) as a Parquet file, without a second copy of it.

    The file is what ``part.to_parquet(path, index=False)`` writes (same Arrow schema with the
    pandas metadata, snappy, default row groups), except the dictionary-page limit. The Arrow
    table shares the frame's buffers (``Table.from_pandas`` copies no primitive column; NaN of
    float columns become nulls through a validity bitmap, so only the bitmaps are new). The
    transient of the write is the writer's encoding: with pyarrow's default 1 MiB dictionary
    limit every column starts dictionary-encoded and a high-cardinality column (``cell``, the
    float values) keeps its hash table and buffered pages until the dictionary overflows,
    which measured 2.2x the partition (21.6 MiB for a 9.8 MiB partition) and a larger file.
    With :data:`PARQUET_DICTIONARY_LIMIT` (64 KiB) such columns fall back to plain encoding
    early while low-cardinality ones (time, categoricals, fold, year, ...) keep their
    dictionary; the writer then holds about 2.4 MiB for the same partition, and the file is
    smaller. Readers see no difference (encodings are not part of the schema).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(part, pd.DataFrame):  # cudf and others: their own writer
        part.to_parquet(path, index=False)
        return
    table = pa.Table.from_pandas(part, preserve_index=False)
    if part.attrs:  # as pandas' to_parquet does
        meta = dict(table.schema.metadata or {})
        meta[b"PANDAS_ATTRS"] = json.dumps(part.attrs).encode()
        table = table.replace_schema_metadata(meta)
    try:
        pq.write_table(table, str(path), compression="snappy", dictionary_pagesize_limit=PARQUET_DICTIONARY_LIMIT)
    finally:
        del table


def write_feature_table(builder: FeatureBuilder, out_dir: str | Path, *, progress=None) -> dict:
    """Write the table as Parquet partitions into ``out_dir`` atomically (temp dir + rename).

    Files ``part-00000.parquet``, … hold the partitions in row order (after the missing-value
    policy); ``features.json`` holds the schema, categories, missing-value record, split
    summary, the grid and the row-order contract. Nothing is left under ``out_dir`` if writing
    fails. Returns the metadata dict.
    """
    from pipeline.splits import SplitSummary

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    meta0 = builder.meta()
    cats = builder.categorical_columns()
    policies = missing_policies(list(meta0.columns), builder.features, builder.target, cats)
    needs_fit = any(p["action"] == "mean" for p in policies.values())
    record = fit_missing(builder.iter_partitions(), policies) if needs_fit else fit_missing([], policies)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir()
    summary = SplitSummary(builder.index.lat, builder.index.lon) if builder.cell_split is not None else None
    nmiss = dict.fromkeys(policies, 0)
    rows = mem = 0
    files = []
    try:
        for i in range(builder.npartitions):
            part, counts = apply_missing(builder.partition(i), record)
            for c, n in counts.items():
                nmiss[c] += n
            if summary is not None:
                summary.add(part)
            name = f"part-{i:05d}.parquet"
            write_partition(part, tmp / name)
            files.append(name)
            rows += len(part)
            mem += int(part.memory_usage(deep=True).sum())
            if progress is not None:
                progress(i + 1, builder.npartitions)
            del part
        for c in record["columns"]:
            record["columns"][c]["n_missing"] = nmiss[c]
        meta = {
            "version": _FEATURE_TABLE_VERSION,
            "target": builder.target,
            "rows": rows,
            "rows_before_missing_policy": builder.nrows,
            "columns": {c: str(t) for c, t in meta0.dtypes.items()},
            "categories": {k: [_jsonable(x) for x in v] for k, v in cats.items()},
            "memory_bytes": mem,
            "partitions": files,
            "missing": record,
            "splits": builder.cell_split.settings if builder.cell_split is not None else None,
            "split_summary": summary.table().to_dict(orient="records") if summary is not None else None,
            "row_order": "scenario, time (C order), then cell = i_lat * nlon + i_lon ascending",
            "grid": {"lat": builder.index.lat.tolist(), "lon": builder.index.lon.tolist()},
            "times": [str(t) for t in pd.DatetimeIndex(builder.times)],
            "scenarios": [s for s in builder.scenarios if s is not None],
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1, default=_jsonable))
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def _jsonable(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x if isinstance(x, (int, float, str, bool, type(None))) else str(x)


def _replace_dir(tmp: Path, path: Path) -> None:
    if path.exists():
        old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


def read_feature_table(path: str | Path, *, backend=None, lazy: bool = False):
    """Read a table written by :func:`write_feature_table` in row order.

    ``lazy=True`` returns a dask DataFrame (one partition per file) for partition-by-partition
    training; otherwise a pandas (CPU) or cudf (GPU) frame.
    """
    path = Path(path)
    meta_path = path / META_FILE
    if not meta_path.exists():
        raise InputDataError(f"{path} is not a feature table (no {META_FILE}); run `terrascale features CONFIG` first")
    meta = json.loads(meta_path.read_text())
    files = [str(path / f) for f in meta["partitions"]]
    be = get_backend(backend)
    # Parquet keeps only the categories a file uses: restore the table's full category lists
    xdf = pd if lazy and not be.is_gpu else be.xdf
    dtypes = {c: xdf.CategoricalDtype(categories=v) for c, v in meta["categories"].items()}
    if lazy:
        import dask.dataframe as dd

        ddf = dd.read_parquet(files)
        return ddf.astype({c: d for c, d in dtypes.items() if c in ddf.columns})
    if be.is_gpu:
        df = be.xdf.read_parquet(files)
    else:
        df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()
    for c, d in dtypes.items():
        if c in df.columns:
            df[c] = df[c].astype(d)
    return df


def table_meta(path: str | Path) -> dict:
    """The ``features.json`` metadata of a written table."""
    return json.loads((Path(path) / META_FILE).read_text())


# ----------------------------------------------------------------------------------------------
# the stage


def input_stores(cfg) -> dict[str, Path]:
    """The input store paths of a run: ``data.root`` (stores) or ``<run_dir>/inputs`` (demo, written once)."""
    if cfg.data.source == "stores":
        return find_stores(cfg.data.root)
    inputs = Path(cfg.run_dir) / "inputs"
    if inputs.is_dir() and all((inputs / f).exists() for f in STORE_FILES.values()):
        return find_stores(inputs)
    try:
        from pipeline.datasets.demo import write_demo_stores
    except ImportError as err:
        raise InputDataError(
            f"data.source: demo needs pipeline.datasets.demo, which cannot be imported ({err}); "
            "use data.source: stores with data.root pointing at prepared stores"
        ) from None
    write_demo_stores(inputs, region=cfg.data.region, years=tuple(cfg.data.years),
                      scenarios=list(cfg.data.scenarios), seed=cfg.seed)
    return find_stores(inputs)


def builder_from_config(cfg, *, backend=None) -> FeatureBuilder:
    """A :class:`FeatureBuilder` for a run config (inputs found or generated, opened lazily)."""
    be = get_backend(backend if backend is not None else cfg.backend)
    paths = input_stores(cfg)
    return FeatureBuilder(open_stores(paths), cfg.features, cfg.splits, target=cfg.data.target,
                          scenarios=cfg.data.scenarios, years=tuple(cfg.data.years), seed=cfg.seed,
                          backend=be, paths=paths)


def run_features(cfg, *, backend=None, progress=None) -> dict:
    """The features stage: build the table, write it to ``<run_dir>/features`` and the resolved config."""
    from pipeline.config import write_resolved_config

    builder = builder_from_config(cfg, backend=backend)
    meta = write_feature_table(builder, Path(cfg.run_dir) / "features", progress=progress)
    write_resolved_config(cfg, cfg.run_dir)
    meta["path"] = str(Path(cfg.run_dir) / "features")
    meta["backend"] = builder.be.name
    return meta
