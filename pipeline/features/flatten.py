"""Gridded variables → a table (pandas/cudf frame, or a dask frame built partition by partition)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from kernels import is_device_array
from pipeline.errors import InputDataError
from pipeline.features.cells import (
    CELL,
    SPATIAL_DIMS,
    CellIndex,
    _grid_coords,
    make_cell_index,
)
from pipeline.features.columns import (
    _codes,
    _datetime_column,
    _frame,
    categories_of,
    make_categorical,
    time_values,
)
from pipeline.features.device import get_backend


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
        Row order and columns as in the :mod:`pipeline.features` docstring.
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
        if not is_device_array(data):
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
