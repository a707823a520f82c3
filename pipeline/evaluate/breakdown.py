"""Metrics broken down by Köppen zone, land-cover group and season, as one tidy table.

:func:`breakdown` scores one model on one split of the table: over all rows (``group_kind`` =
``"all"``) and within every group of each grouping column (e.g. the Köppen-Geiger main class,
the land-cover group of the true class) and of each meteorological season (DJF, MAM, JJA, SON
from a datetime column: December counts with the following January and February, whatever the
year). With block ids and ``n_boot > 0`` every value gets a block-bootstrap percentile interval
(:mod:`pipeline.evaluate.bootstrap`); otherwise ``lo`` and ``hi`` are NaN.

The result has one row per (group, metric) with the columns :data:`COLUMNS`, so tables of
several models, tasks and splits concatenate and pivot without reshaping. ``group`` is a string
(Köppen class 3 → ``"3"``) so that the groups of all kinds share one column; ``n_rows`` counts
the group's rows with both a truth and a prediction (not NaN). Rows whose grouping value is
missing are left out of that kind's groups (but not of ``"all"``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from pipeline.evaluate.bootstrap import block_bootstrap_many

#: Meteorological seasons, in the order of the table.
SEASONS: tuple[str, ...] = ("DJF", "MAM", "JJA", "SON")

#: Columns of the table :func:`breakdown` returns.
COLUMNS: tuple[str, ...] = ("task", "model", "split", "group_kind", "group", "metric", "value", "lo", "hi", "n_rows")


def season_of(times) -> pd.Categorical:
    """Meteorological season of every date.

    Parameters
    ----------
    times : array_like
        Dates (``datetime64`` or anything :func:`pandas.to_datetime` reads).

    Returns
    -------
    pandas.Categorical
        Categories :data:`SEASONS` in that order; missing where the date is missing.
    """
    month = pd.DatetimeIndex(pd.to_datetime(np.asarray(times).reshape(-1))).month.to_numpy(dtype=np.float64)
    ok = np.isfinite(month)
    # (month mod 12) // 3: Dec, Jan, Feb → 0; Mar-May → 1; Jun-Aug → 2; Sep-Nov → 3
    codes = np.where(ok, (np.nan_to_num(month).astype(np.int64) % 12) // 3, -1)
    return pd.Categorical.from_codes(codes, categories=list(SEASONS))


def _values(series: pd.Series) -> np.ndarray:
    """A column as a numpy array the metrics read: numeric categories and nullable ints as float with NaN."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        if pd.api.types.is_numeric_dtype(dtype.categories.dtype):
            return series.astype(np.float64).to_numpy()
        return series.astype(object).to_numpy()
    if pd.api.types.is_extension_array_dtype(dtype) and pd.api.types.is_numeric_dtype(dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    return series.to_numpy()


def _label(value) -> str:
    """Group value as a string; integral floats (a class read back as float) without ``.0``."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _missing(a: np.ndarray) -> np.ndarray:
    return pd.isna(a) if a.dtype == object else (np.isnan(a) if a.dtype.kind == "f" else np.zeros(a.shape, bool))


def breakdown(frame: pd.DataFrame, metrics: Mapping[str, Callable], *, truth: str, pred: str, task: str,
              model: str, split: str, weights: str | None = None, groups: Mapping[str, str] | None = None,
              season: str | None = None, blocks: str | None = None, n_boot: int = 200, seed: int = 0,
              alpha: float = 0.05, overall: bool = True) -> pd.DataFrame:
    """Score one model overall and per group, with block-bootstrap intervals.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per fine cell and time step, holding the columns named below.
    metrics : mapping of str to callable
        ``metric(y_true, y_pred, weights=None) -> float`` by the name the table uses, e.g.
        :data:`pipeline.evaluate.continuous.CONTINUOUS_METRICS` or
        :func:`pipeline.evaluate.categorical.categorical_metrics`.
    truth, pred : str
        Columns of the truth and of the model's prediction.
    task, model, split : str
        Written to the table's first columns (e.g. ``"lai"``, ``"xgboost"``, ``"test"``).
    weights : str, optional
        Column of row weights (fine cell areas).
    groups : mapping of str to str, optional
        ``group_kind → column``, e.g. ``{"koppen": "koppen", "land_cover": "lc_group"}``.
    season : str, optional
        Datetime column; adds ``group_kind`` ``"season"`` (:func:`season_of`).
    blocks : str, optional
        Column of spatial block ids; with ``n_boot > 0`` the values get intervals.
    n_boot : int
        Number of bootstrap resamples (0: no intervals).
    seed : int
        Seed of the resamples (the same for every group, so groups share them where they share blocks).
    alpha : float
        1 - the intervals' coverage.
    overall : bool
        Include the ``"all"`` rows.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`, one row per (group_kind, group, metric), groups in sorted order
        (seasons in :data:`SEASONS` order).
    """
    y = _values(frame[truth])
    p = _values(frame[pred])
    w = None if weights is None else frame[weights].to_numpy(dtype=np.float64)
    b = None if blocks is None else frame[blocks].to_numpy()
    valid = ~(_missing(y) | _missing(p))

    selections: list[tuple[str, str, np.ndarray | None]] = []
    if overall:
        selections.append(("all", "all", None))
    kinds: dict[str, pd.Series] = {kind: frame[col] for kind, col in (groups or {}).items()}
    if season is not None:
        kinds["season"] = pd.Series(season_of(frame[season].to_numpy()), index=frame.index)
    for kind, col in kinds.items():
        # positions of every group's rows, missing group values dropped, groups sorted
        for value, rows in col.groupby(col, observed=True, dropna=True, sort=True).indices.items():
            selections.append((kind, _label(value), rows))

    records = []
    for kind, group, rows in selections:
        take = (lambda a: a) if rows is None else (lambda a: None if a is None else a[rows])
        yt, yp, wt, bt = take(y), take(p), take(w), take(b)
        if bt is not None and n_boot > 0 and yt.size:
            scores = block_bootstrap_many(metrics, yt, yp, blocks=bt, weights=wt, n=n_boot, seed=seed, alpha=alpha)
        else:
            scores = {name: (float(fn(yt, yp, weights=wt)) if yt.size else float("nan"), float("nan"), float("nan"))
                      for name, fn in metrics.items()}
        n_rows = int(np.count_nonzero(take(valid)))
        for name, (value, lo, hi) in scores.items():
            records.append((task, model, split, kind, group, name, value, lo, hi, n_rows))
    table = pd.DataFrame.from_records(records, columns=list(COLUMNS))
    return table.astype({"value": np.float64, "lo": np.float64, "hi": np.float64, "n_rows": np.int64})
