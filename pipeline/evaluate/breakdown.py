"""Metrics broken down by Köppen zone, land-cover group and season, as one tidy table.

:func:`breakdown` scores one model on one split of the table: over all rows (``group_kind`` =
``"all"``) and within every group of each grouping column (e.g. the Köppen-Geiger main class,
the land-cover group of the true class) and of each meteorological season (DJF, MAM, JJA, SON
from a datetime column: December counts with the following January and February, whatever the
year). With block ids and ``n_boot > 0`` every value gets a block-bootstrap percentile interval
(:mod:`pipeline.evaluate.bootstrap`); otherwise ``lo`` and ``hi`` are NaN.

Speed: a table holds many groups, so for the metrics of this package (those with per-block sums,
:mod:`pipeline.evaluate.sufficient`) each group's rows are read once: its block sums give both the
bootstrap replicates (the same resamples as :func:`~pipeline.evaluate.bootstrap.block_bootstrap_many`
draws for the group's blocks) and the point value (equal to the metric function's up to rounding;
where the sums give NaN, e.g. the R² of a constant truth, the metric function decides), and the
resamples are drawn once per number of blocks. Other metrics go through
:func:`~pipeline.evaluate.bootstrap.block_bootstrap_many`.

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

from pipeline.evaluate.bootstrap import Interval, _interval, _resamples, block_bootstrap_many, block_codes
from pipeline.evaluate.inputs import check_weights
from pipeline.evaluate.sufficient import decomposition

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


#: Resample matrices (resamples × blocks) kept for reuse across groups, at most this many values each.
_CACHE_VALUES = 4_000_000
#: Per-(group, block) sums of one grouping computed in one pass, at most this many values (else per group).
_GROUPED_VALUES = 8_000_000


class _Scorer:
    """Point values and intervals of groups of rows from their per-block sums (module docstring).

    A group's blocks are the blocks holding at least one of its rows, in block-id order, and its
    resamples are those :func:`~pipeline.evaluate.bootstrap.block_bootstrap_many` draws for them,
    so the replicates are the same as that function's on the group's rows.
    """

    def __init__(self, metrics: Mapping[str, Callable], n: int, seed: int, alpha: float) -> None:
        self.metrics = metrics
        self.decs = {name: decomposition(fn) for name, fn in metrics.items()}
        self.fast = all(d is not None for d in self.decs.values())
        self.n, self.seed, self.alpha = n, seed, alpha
        self._counts: dict[int, np.ndarray] = {}

    def _resampled(self, sums: np.ndarray, n_blocks: int) -> np.ndarray:
        # a group's confusion matrices are mostly zero (few true classes): only the other columns
        # need the product
        used = np.flatnonzero(sums.any(axis=0))
        out = np.zeros((self.n, sums.shape[1]))
        if n_blocks * self.n > _CACHE_VALUES:
            out[:, used] = np.concatenate([c @ sums[:, used] for c in _resamples(self.seed, n_blocks, self.n)])
            return out
        if n_blocks not in self._counts:
            self._counts[n_blocks] = np.concatenate(list(_resamples(self.seed, n_blocks, self.n)))
        out[:, used] = self._counts[n_blocks] @ sums[:, used]
        return out

    def _finish(self, block_sums: Mapping[tuple, tuple[np.ndarray, object]], rows: Callable) -> dict[str, Interval]:
        """Scores from ``dec.key() → ((n_blocks, S) sums, context)``; ``rows()`` gives ``(y, p, w)`` if needed."""
        done: dict[tuple, tuple[np.ndarray, np.ndarray, object]] = {}
        values, reps = {}, []
        for name, dec in self.decs.items():
            key = dec.key()
            if key not in done:
                sums, context = block_sums[key]
                done[key] = (sums.sum(axis=0), self._resampled(sums, sums.shape[0]), context)
            total, resampled, context = done[key]
            value = float(dec.finish(total, context))
            if not np.isfinite(value):
                # the metric function decides the corners (e.g. scikit-learn's R² of a constant truth)
                y, p, w = rows()
                value = float(self.metrics[name](y, p, weights=w))
            values[name] = value
            reps.append(np.asarray(dec.finish(resampled, context), np.float64))
        stacked = np.stack(reps)
        if np.isfinite(stacked).all():
            # one quantile call for all metrics (the usual case: no undefined replicate)
            lo, hi = np.quantile(stacked, [self.alpha / 2, 1 - self.alpha / 2], axis=1)
            bounds = list(zip(lo.tolist(), hi.tolist(), strict=True))
        else:
            bounds = [_interval(r, self.alpha) for r in reps]
        return {name: Interval(v, *b) for (name, v), b in zip(values.items(), bounds, strict=True)}

    def __call__(self, y, p, w, b) -> dict[str, Interval]:
        """Scores of one set of rows."""
        if not self.fast:
            return block_bootstrap_many(self.metrics, y, p, blocks=b, weights=w, n=self.n, seed=self.seed,
                                        alpha=self.alpha)
        w = check_weights(w, y.shape[0])
        codes, n_blocks = block_codes(b, y.shape[0])
        block_sums = {}
        for dec in self.decs.values():
            if dec.key() not in block_sums:
                block_sums[dec.key()] = dec.stats(y, p, w, codes, n_blocks, **dec.kwargs)
        return self._finish(block_sums, lambda: (y, p, w))

    def grouped(self, y, p, w, codes: np.ndarray, n_blocks: int, groups: np.ndarray, n_groups: int
                ) -> list[dict[str, Interval]] | None:
        """Scores of every group of one grouping, reading the rows once per kind of sums.

        ``codes`` are the block codes of all rows (:func:`~pipeline.evaluate.bootstrap.block_codes`),
        ``groups`` the group code of every row (-1: in no group). Returns ``None`` when the sums
        of all (group, block) pairs would not fit :data:`_GROUPED_VALUES`.
        """
        if not self.fast:
            return None
        w = check_weights(w, y.shape[0])
        n_bins = n_groups * n_blocks + 1
        decs = {dec.key(): dec for dec in self.decs.values()}
        # the width of each kind of sums, from an empty call
        width = sum(dec.stats(y[:0], p[:0], None if w is None else w[:0], codes[:0], 1, **dec.kwargs)[0].shape[1]
                    for dec in decs.values())
        if n_bins * width > _GROUPED_VALUES:
            return None
        # rows in no group go to one extra bin, left out below
        key = np.where(groups >= 0, groups * n_blocks + codes, n_bins - 1)
        present = (np.bincount(key, minlength=n_bins)[:-1] > 0).reshape(n_groups, n_blocks)
        sums = {}
        for k, dec in decs.items():
            s, context = dec.stats(y, p, w, key, n_bins, **dec.kwargs)
            sums[k] = (s[:-1].reshape(n_groups, n_blocks, -1), context)
        out = []
        for g in range(n_groups):
            used = np.flatnonzero(present[g])

            def rows(g=g):
                r = np.flatnonzero(groups == g)
                return y[r], p[r], None if w is None else w[r]

            out.append(self._finish({k: (s[g, used], context) for k, (s, context) in sums.items()}, rows))
        return out


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

    kinds: dict[str, pd.Series] = {kind: frame[col] for kind, col in (groups or {}).items()}
    if season is not None:
        kinds["season"] = pd.Series(season_of(frame[season].to_numpy()), index=frame.index)
    scorer = _Scorer(metrics, n_boot, seed, alpha) if b is not None and n_boot > 0 else None
    codes = n_blocks = None
    if scorer is not None and scorer.fast and kinds:
        codes, n_blocks = block_codes(b, y.shape[0])

    def score(rows: np.ndarray | None) -> dict:
        """Scores of the rows at ``rows`` (all rows for ``None``)."""
        take = (lambda a: a) if rows is None else (lambda a: None if a is None else a[rows])
        yt, yp, wt, bt = take(y), take(p), take(w), take(b)
        if scorer is not None and yt.size:
            return scorer(yt, yp, wt, bt)
        return {name: (float(fn(yt, yp, weights=wt)) if yt.size else float("nan"), float("nan"), float("nan"))
                for name, fn in metrics.items()}

    records = []
    if overall:
        scores = score(None)
        records += [(task, model, split, "all", "all", name, *s, int(np.count_nonzero(valid)))
                    for name, s in scores.items()]
    for kind, col in kinds.items():
        # group codes: missing group values -1, groups sorted (categories in their order)
        gcodes, uniques = pd.factorize(col, sort=True)
        gcodes = np.asarray(gcodes, dtype=np.int64)
        n_groups = len(uniques)
        n_rows = np.bincount(gcodes[valid & (gcodes >= 0)], minlength=n_groups)
        per_group = None
        if codes is not None and n_groups:
            per_group = scorer.grouped(y, p, w, codes, n_blocks, gcodes, n_groups)
        if per_group is None:
            # the rows of each group, in row order
            order = np.argsort(gcodes, kind="stable")
            bounds = np.searchsorted(gcodes[order], np.arange(n_groups + 1))
            per_group = [score(order[bounds[g]:bounds[g + 1]]) for g in range(n_groups)]
        for value, scores, count in zip(uniques, per_group, n_rows.tolist(), strict=True):
            records += [(task, model, split, kind, _label(value), name, *s, count) for name, s in scores.items()]
    table = pd.DataFrame.from_records(records, columns=list(COLUMNS))
    return table.astype({"value": np.float64, "lo": np.float64, "hi": np.float64, "n_rows": np.int64})
