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
    """A datetime64[ns] column from host/device values (device: int64 view cast by cudf)."""
    if xp is np:
        return np.asarray(t_ns).astype("datetime64[ns]")
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
