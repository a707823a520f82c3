"""Scenario drift: how far the inputs of a scenario run stray from the training data, per feature.

A model trained on historical inputs extrapolates when a scenario (e.g. SSP5-8.5 in 2090) feeds
it values it has never seen; :func:`drift_table` says, per feature, how different the scenario's
distribution is and how much of it lies outside the training range.

Population stability index (PSI)
    ``PSI = sum_i (s_i - t_i) ln(s_i / t_i)`` over bins, with ``t_i`` the training share and
    ``s_i`` the scenario share of bin ``i``: the symmetric Kullback-Leibler (Jeffreys) divergence,
    computed with :func:`scipy.special.rel_entr`. It is >= 0 and 0 for identical shares.

    * numeric features: :data:`N_BINS` quantile bins of the training data (edges at its deciles;
      tied edges merge, so a feature with many equal values gets fewer bins), plus one bin below
      the training minimum and one above the maximum, so that values outside the training range
      always count as drift (the training share of those bins is 0);
    * categorical features (pandas ``category``, ``object``, ``bool`` or ``string`` dtype, or named in
      ``categorical``): one bin per category seen in either data set.

    Shares are floored at :data:`PSI_FLOOR` before the logarithm (an empty bin would make the
    PSI infinite); both factors of a term use the floored shares, so every term stays >= 0.

Outside share
    The share of the scenario's values outside the training range ``[min, max]`` (numeric), or in
    categories that never occur in the training data (categorical).

Flags
    A feature is flagged when ``psi > PSI_THRESHOLD`` (0.25, the usual "significant shift" level
    of the PSI) or ``outside_share > OUTSIDE_THRESHOLD`` (5 % of the scenario extrapolates).

Missing values (NaN, NaT, None) are dropped on both sides before any of this; ``n_train`` and
``n_scenario`` count the values that remain.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy.special import rel_entr

#: Number of quantile bins of a numeric feature's training data.
N_BINS = 10
#: PSI above which a feature is flagged (0.1-0.25: moderate shift, > 0.25: significant shift).
PSI_THRESHOLD = 0.25
#: Share of scenario values outside the training range above which a feature is flagged.
OUTSIDE_THRESHOLD = 0.05
#: Smallest bin share entering the PSI's logarithm.
PSI_FLOOR = 1e-4

#: Columns of the table :func:`drift_table` returns.
COLUMNS: tuple[str, ...] = ("feature", "kind", "psi", "outside_share", "n_train", "n_scenario", "flag")


def _numeric(values) -> np.ndarray:
    a = np.asarray(values, dtype=np.float64).reshape(-1)
    return a[np.isfinite(a)]


def _categories(values) -> np.ndarray:
    s = pd.Series(np.asarray(values, dtype=object).reshape(-1))
    return s[s.notna()].to_numpy()


def _psi_from_shares(train_share: np.ndarray, scenario_share: np.ndarray) -> float:
    t = np.maximum(train_share, PSI_FLOOR)
    s = np.maximum(scenario_share, PSI_FLOOR)
    # rel_entr(s, t) + rel_entr(t, s) = (s - t) ln(s / t), each term >= 0
    return float(np.sum(rel_entr(s, t) + rel_entr(t, s)))


def numeric_bins(train) -> np.ndarray:
    """Bin edges of a numeric feature: the distinct deciles of its finite training values.

    Parameters
    ----------
    train : array_like
        Training values.

    Returns
    -------
    numpy.ndarray
        Sorted distinct edges, from the training minimum to the maximum (one value for a
        constant feature).
    """
    t = _numeric(train)
    if t.size == 0:
        raise ValueError("no finite training values to bin")
    return np.unique(np.quantile(t, np.linspace(0.0, 1.0, N_BINS + 1)))


def _numeric_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Shares of: below the training minimum, each quantile bin, above the training maximum."""
    n_inner = max(edges.size - 1, 1)
    # quantile bins 1 .. n_inner split [min, max] at the interior edges; a value equal to an edge
    # goes to the upper bin, the maximum to the last one (a constant feature has one bin)
    idx = np.searchsorted(edges[1:-1], values, side="right") + 1
    idx[values < edges[0]] = 0
    idx[values > edges[-1]] = n_inner + 1
    return np.bincount(idx, minlength=n_inner + 2) / values.size


def psi(train, scenario, *, categorical: bool = False) -> float:
    """Population stability index of the scenario's values against the training values.

    Parameters
    ----------
    train, scenario : array_like
        Values of one feature; missing values are dropped.
    categorical : bool
        Bin by category instead of by training quantiles.

    Returns
    -------
    float
        >= 0; 0 for identical distributions; NaN when either side has no values.
    """
    if categorical:
        t, s = _categories(train), _categories(scenario)
        if t.size == 0 or s.size == 0:
            return float("nan")
        cats = pd.unique(np.concatenate([t, s]))
        ts = pd.Series(t).value_counts(normalize=True).reindex(cats, fill_value=0.0).to_numpy()
        ss = pd.Series(s).value_counts(normalize=True).reindex(cats, fill_value=0.0).to_numpy()
        return _psi_from_shares(ts, ss)
    t, s = _numeric(train), _numeric(scenario)
    if t.size == 0 or s.size == 0:
        return float("nan")
    edges = numeric_bins(t)
    return _psi_from_shares(_numeric_shares(t, edges), _numeric_shares(s, edges))


def outside_share(train, scenario, *, categorical: bool = False) -> float:
    """Share of the scenario's values outside the training range (or its categories).

    Parameters
    ----------
    train, scenario : array_like
        Values of one feature; missing values are dropped.
    categorical : bool
        Count values in categories absent from the training data instead.

    Returns
    -------
    float
        In [0, 1]; NaN when either side has no values.
    """
    if categorical:
        t, s = _categories(train), _categories(scenario)
        if t.size == 0 or s.size == 0:
            return float("nan")
        return float(np.mean(~pd.Series(s).isin(set(t)).to_numpy()))
    t, s = _numeric(train), _numeric(scenario)
    if t.size == 0 or s.size == 0:
        return float("nan")
    return float(np.mean((s < t.min()) | (s > t.max())))


def _as_float(series: pd.Series) -> np.ndarray:
    """A numeric column as float64 with NaN for missing values; dates as nanoseconds since 1970."""
    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        ns = series.to_numpy(dtype="datetime64[ns]")
        return np.where(np.isnat(ns), np.nan, ns.astype(np.int64).astype(np.float64))
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def _is_categorical(series: pd.Series) -> bool:
    dtype = series.dtype
    return (isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype)
            or pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype))


def drift_table(train: pd.DataFrame, scenario: pd.DataFrame, *, columns: Iterable[str] | None = None,
                categorical: Iterable[str] = ()) -> pd.DataFrame:
    """Drift of every feature of a scenario table against the training table.

    Parameters
    ----------
    train, scenario : pandas.DataFrame
        Feature tables (the scenario's rows need not match the training rows).
    columns : iterable of str, optional
        Features to check; default: the columns both tables have, in the training order, except
        date columns (a scenario covers another period by design; named explicitly, dates are
        compared as numbers).
    categorical : iterable of str
        Features to treat as categorical although their dtype is numeric (e.g. class codes).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS`: ``kind`` is ``"numeric"`` or ``"categorical"``; ``flag`` is True
        when ``psi > PSI_THRESHOLD`` or ``outside_share > OUTSIDE_THRESHOLD``.
    """
    cats = set(categorical)
    if columns is None:
        # dates are where a scenario differs by design (it is another period): not a drift of inputs
        names = [c for c in train.columns
                 if c in scenario.columns and not pd.api.types.is_datetime64_any_dtype(train[c].dtype)]
    else:
        names = list(columns)
    missing = [c for c in names if c not in train.columns or c not in scenario.columns]
    if missing:
        raise ValueError(f"features missing from the training or the scenario table: {missing}")
    records = []
    for name in names:
        is_cat = name in cats or _is_categorical(train[name]) or _is_categorical(scenario[name])
        t = train[name].astype(object) if is_cat else _numeric(_as_float(train[name]))
        s = scenario[name].astype(object) if is_cat else _numeric(_as_float(scenario[name]))
        value = psi(t, s, categorical=is_cat)
        out = outside_share(t, s, categorical=is_cat)
        n_t = int(t.notna().sum()) if is_cat else t.size
        n_s = int(s.notna().sum()) if is_cat else s.size
        flag = bool(value > PSI_THRESHOLD or out > OUTSIDE_THRESHOLD)
        records.append((name, "categorical" if is_cat else "numeric", value, out, n_t, n_s, flag))
    return pd.DataFrame.from_records(records, columns=list(COLUMNS))
