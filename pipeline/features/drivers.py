"""Coarse climate drivers of the feature table: their columns, month alignment, lagged means and sums."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.errors import InputDataError
from pipeline.features.broadcast import Broadcast
from pipeline.features.columns import time_values


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


def climate_month_index(da: xr.DataArray, times: np.ndarray, *, lagged: bool, store: str) -> np.ndarray:
    """Position on the time axis of climate variable ``da`` of the month of each of ``times`` (int64).

    Raises :class:`InputDataError` when a month is not covered, or (``lagged``) when the climate
    time axis is not monthly without gaps.
    """
    if "time" not in da.dims:
        raise InputDataError(f"'{da.name}' in {store} has no time dimension")
    keys = _month_keys(time_values(da["time"].values))
    want = _month_keys(times)
    pos = pd.Index(keys).get_indexer(want)
    if (pos < 0).any():
        t = pd.DatetimeIndex(time_values(da["time"].values))
        miss = pd.DatetimeIndex(times[pos < 0])
        raise InputDataError(
            f"{store} covers {t.min():%Y-%m}..{t.max():%Y-%m} but the target needs "
            f"{miss.min():%Y-%m}..{miss.max():%Y-%m}; extend the climate store or narrow data.years"
        )
    if lagged and keys.size > 1 and not np.all(np.diff(keys) == 1):
        raise InputDataError(f"the time axis of {store} is not monthly without gaps, which lagged means need")
    return pos.astype(np.int64)


def coarse_block(da: xr.DataArray, kind: str, window: int, ci: np.ndarray) -> np.ndarray:
    """Coarse block (len(ci), ny, nx) of ``da`` (time, lat, lon) at climate months ``ci``.

    ``kind`` ``value``: the month's values; ``mean``/``sum``: over the ``window`` months before
    each month (float32, NaN unless all ``window`` months are there and finite).
    """
    if kind == "value":
        lo, hi = int(ci.min()), int(ci.max()) + 1
        blk = np.asarray(da.isel(time=slice(lo, hi)).values)
        return blk[ci - lo]
    L = window
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
    val = tot / L if kind == "mean" else tot
    return np.where(full, val, np.nan).astype(np.float32)
