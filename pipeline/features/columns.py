"""Table columns from arrays: dates, categorical columns (pandas/cudf) and frames without copies."""

from __future__ import annotations

import numpy as np
import pandas as pd

from kernels import to_host
from pipeline.errors import InputDataError


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
    v = to_host(values).ravel()
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
