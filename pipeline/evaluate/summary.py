"""Everything the report shows about one task, from the test table and every model's predictions.

:func:`evaluate_continuous` (LAI) and :func:`evaluate_categorical` (LULC) take the evaluated rows
(the test split: one row per fine cell, and time step for LAI) and every model's predictions
aligned with them, and return a :class:`TaskEvaluation`: the metrics table with block-bootstrap
intervals, the headline comparison, the breakdown by Köppen zone / land-cover group / season,
the seasonal cycles (LAI), the per-class F1 and the confusion matrices (LULC). The run stage turns
it into :class:`pipeline.report.TaskReport` objects; the field names are the report's
(:class:`pipeline.report.Headline` extends :class:`HeadlineResult` with its checks and reader
helpers, so ``Headline(**dataclasses.asdict(result))`` converts it), but nothing here imports the report.

Metrics
    Every value is an area mean (``weight`` is the fine cell area) over the rows where truth and
    prediction exist: a model with missing (NaN) predictions is scored on its other rows. The
    intervals are percentile intervals of the spatial block bootstrap
    (:func:`pipeline.evaluate.bootstrap.block_bootstrap_many`), computed from per-block sums
    (:mod:`pipeline.evaluate.sufficient`), so that all models share the same ``n_resamples``
    resamples of the blocks (same ``seed``). Continuous metrics: :data:`CONTINUOUS_NAMES`;
    categorical ones: :data:`CATEGORICAL_NAMES` of the most probable class of every row, plus
    ``fraction_mae`` (the group fractions of the probabilities aggregated to the coarse parent
    cells against the coarse input fractions, :func:`pipeline.evaluate.fractions.fraction_mae`;
    no interval).

Headline
    The best model that is not a baseline against the best baseline (family ``"baseline"``) on the
    headline metric of the first split, by their point values; the difference (model − baseline,
    in the metric's units), its interval and p-value come from
    :func:`pipeline.evaluate.bootstrap.paired_block_bootstrap` on the rows where both models have a
    prediction (the difference can then differ slightly from ``best_value - baseline_value``, which
    are the table's values). ``None`` without a model on either side.

Breakdown
    :func:`pipeline.evaluate.breakdown.breakdown` of every model and split by Köppen zone, by the
    land-cover group of the class column (the ``group`` column of the IGBP class table, or
    ``class_groups``) and, for LAI, by meteorological season; with intervals from the same
    seed (each group resamples its own blocks) and values from the per-block sums (equal to the
    metric functions' up to rounding). The overall values are those of the metrics table and are
    not repeated.

Cost
    The rows are read a few times per model and split (the metric functions for the point
    values, one pass of per-block sums for the table, one per grouping for the breakdown); the
    resamples are small matrix products. 300 000 rows × 7 models with 200 resamples take about
    3 s per task on one CPU core (LAI with two references and the full breakdown; LULC with 17
    classes), of which the metrics table and headline alone about 1 s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import pandas as pd

from pipeline.evaluate.bootstrap import block_bootstrap_many, paired_block_bootstrap
from pipeline.evaluate.breakdown import breakdown, season_of
from pipeline.evaluate.categorical import (
    confusion_matrix,
    label_array,
    macro_f1,
    mean_iou,
    overall_accuracy,
    per_class_f1_from_confusion,
)
from pipeline.evaluate.continuous import CONTINUOUS_METRICS
from pipeline.evaluate.fractions import fraction_mae
from pipeline.evaluate.inputs import check_weights

#: Columns of :attr:`TaskEvaluation.metrics` (the report's ``METRIC_COLUMNS``).
METRICS_COLUMNS: tuple[str, ...] = ("task", "model", "family", "split", "metric", "value", "lo", "hi")
#: Columns of :attr:`TaskEvaluation.seasonal` (the report's ``SEASONAL_COLUMNS``).
SEASONAL_COLUMNS: tuple[str, ...] = ("zone", "month", "model", "value")
#: Columns of :attr:`TaskEvaluation.class_f1` (the report's ``CLASS_F1_COLUMNS`` and ``support``).
CLASS_F1_COLUMNS: tuple[str, ...] = ("model", "class_value", "f1", "support")
#: The ``model`` of the observations in :attr:`TaskEvaluation.seasonal`.
OBSERVED = "observed"
#: The family that marks a baseline model.
BASELINE = "baseline"

#: Continuous metrics, in the order of the table.
CONTINUOUS_NAMES: tuple[str, ...] = tuple(CONTINUOUS_METRICS)
#: Categorical metrics with intervals, in the order of the table (``fraction_mae`` follows them).
CATEGORICAL_NAMES: tuple[str, ...] = ("overall_accuracy", "macro_f1", "miou")

#: Which way is better for each metric; ``bias`` (best at 0) is not listed.
METRIC_DIRECTIONS: dict[str, str] = {
    "rmse": "lower", "mae": "lower", "r2": "higher", "pearson_r": "higher", "kge": "higher",
    "overall_accuracy": "higher", "macro_f1": "higher", "miou": "higher", "fraction_mae": "lower",
}
#: Metric names for readers.
METRIC_LABELS: dict[str, str] = {
    "rmse": "RMSE", "mae": "MAE", "bias": "bias", "r2": "R²", "pearson_r": "Pearson r", "kge": "KGE",
    "overall_accuracy": "overall accuracy", "macro_f1": "macro F1", "miou": "mean IoU",
    "fraction_mae": "group fraction MAE",
}


@dataclass
class HeadlineResult:
    """Best model against best baseline on the headline metric (``pipeline.report.Headline`` extends it).

    Attributes
    ----------
    metric : str
        The headline metric, as in :attr:`TaskEvaluation.metrics`.
    higher_is_better : bool
        Its direction.
    split : str
        The split compared (the first reference).
    best_model : str
        The non-baseline model with the best value.
    best_value : float
        Its value (as in the metrics table).
    baseline : str
        The best baseline.
    baseline_value : float
        Its value.
    difference : float
        ``metric(best_model) - metric(baseline)`` on the rows where both predict.
    lo, hi : float
        Percentile interval (``1 - alpha``) of the difference over the paired resamples.
    p_value : float
        Two-sided paired block-bootstrap p-value of no difference.
    significant : bool
        ``p_value < alpha``.
    alpha : float
        Significance level.
    n_resamples : int or None
        Number of bootstrap resamples.
    blocks : str or None
        How the blocks were drawn, in words.
    metric_label : str or None
        The metric's name for readers.
    """

    metric: str
    higher_is_better: bool
    split: str
    best_model: str
    best_value: float
    baseline: str
    baseline_value: float
    difference: float
    lo: float
    hi: float
    p_value: float
    significant: bool
    alpha: float = 0.05
    n_resamples: int | None = None
    blocks: str | None = None
    metric_label: str | None = None


@dataclass
class TaskEvaluation:
    """Everything the report shows about one task.

    Attributes
    ----------
    task : str
        ``"lai"`` or ``"lulc"``.
    metrics : pandas.DataFrame
        One row per (split, model, metric), columns :data:`METRICS_COLUMNS`; ``lo``/``hi`` the
        block-bootstrap interval (NaN for ``fraction_mae``).
    headline : HeadlineResult or None
        Best non-baseline model against the best baseline.
    breakdown : pandas.DataFrame or None
        Columns of :data:`pipeline.evaluate.breakdown.COLUMNS`: metrics by Köppen zone,
        land-cover group and (LAI) season; ``None`` when no grouping column was given.
    seasonal : pandas.DataFrame or None
        LAI: columns :data:`SEASONAL_COLUMNS`, area-weighted monthly means by Köppen zone of the
        truth (``model == "observed"``) and of each model.
    class_f1 : pandas.DataFrame or None
        LULC: columns :data:`CLASS_F1_COLUMNS`, ``support`` the true area of the class.
    confusion : dict of str to tuple of numpy.ndarray
        LULC: model → ``(labels, matrix)``, the area-weighted ``(K, K)`` confusion matrix.
    metric_directions : dict of str to str
        Metric → ``"higher"`` or ``"lower"`` for the metrics in the table (``bias`` left out).
    metric_labels : dict of str to str
        Metric → name for readers.
    """

    task: str
    metrics: pd.DataFrame
    headline: HeadlineResult | None = None
    breakdown: pd.DataFrame | None = None
    seasonal: pd.DataFrame | None = None
    class_f1: pd.DataFrame | None = None
    confusion: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    metric_directions: dict[str, str] = field(default_factory=dict)
    metric_labels: dict[str, str] = field(default_factory=dict)


# --- inputs -----------------------------------------------------------------------------------------


def _require(frame, columns: Mapping[str, str | None], task: str) -> None:
    """Raise a ValueError naming every required column (role → name) that the frame lacks."""
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{task}: the evaluation table must be a pandas DataFrame, got {type(frame).__name__}")
    missing = [f"{name!r} ({role})" for role, name in columns.items() if name is not None and name not in frame]
    if missing:
        raise ValueError(f"{task}: the evaluation table lacks the column(s) {', '.join(missing)}; pass the right "
                         f"column names or None for an optional part (it has {len(frame.columns)} columns: "
                         f"{', '.join(map(str, frame.columns[:20]))}{' ...' if len(frame.columns) > 20 else ''})")


def _values(series: pd.Series) -> np.ndarray:
    """A column as numpy: numeric categories and nullable numbers as float64 with NaN."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        if pd.api.types.is_numeric_dtype(dtype.categories.dtype):
            return series.astype(np.float64).to_numpy()
        return series.astype(object).to_numpy()
    if pd.api.types.is_extension_array_dtype(dtype) and pd.api.types.is_numeric_dtype(dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    return series.to_numpy()


def _floats(series: pd.Series) -> np.ndarray:
    """A numeric column as float64, missing values (NaN, NA) as NaN."""
    return np.asarray(_values(series), dtype=np.float64)


def _families(models, families: Mapping[str, str], task: str) -> dict[str, str]:
    missing = [m for m in models if m not in families]
    if missing:
        raise ValueError(f"{task}: no family for the model(s) {', '.join(map(repr, missing))}; give every model a "
                         f"family (\"{BASELINE}\" for the baselines)")
    return {m: str(families[m]) for m in models}


def _continuous_predictions(predictions: Mapping[str, object], n: int, task: str) -> dict[str, np.ndarray]:
    out = {}
    for model, pred in predictions.items():
        p = np.asarray(pred)
        if p.ndim != 1 or p.shape[0] != n:
            raise ValueError(f"{task}: the prediction of {model!r} must be 1-D with one value per row ({n}), got "
                             f"shape {p.shape}")
        out[str(model)] = p.astype(np.float64, copy=False)
    return out


def _resolve_groups(class_groups, classes: np.ndarray | None = None, task: str = "") -> Mapping:
    """``class_groups`` as class → group, by default the ``group`` column of the packaged IGBP class table.

    With ``classes``, a sequence of group names aligned with them (``TaskSpec.class_groups``) is
    accepted too; an empty one counts as not given.
    """
    if isinstance(class_groups, Mapping) and class_groups:
        return class_groups
    if class_groups is not None and not isinstance(class_groups, Mapping | str) and len(class_groups):
        names = list(class_groups)
        if classes is None or len(names) != len(classes):
            raise ValueError(f"{task}: class_groups must map class values to group names, or list one group per "
                             f"class of `classes`; got {len(names)} names for "
                             f"{'no class list' if classes is None else f'{len(classes)} classes'}")
        return {c.item() if isinstance(c, np.generic) else c: str(g) for c, g in zip(classes, names, strict=True)}
    from pipeline.datasets import load_class_table

    return {int(v): str(g) for v, g in load_class_table().frame["group"].items()}


def _group_names(values: np.ndarray, class_groups: Mapping) -> pd.Categorical:
    """Land-cover group of every class value (missing where the class has no group), groups sorted."""
    # float keys too: a class column read back as float (1.0) finds the group of class 1
    lookup = {**{float(k): g for k, g in class_groups.items() if _is_number(k)}, **class_groups}
    # the few distinct class values are looked up, not the rows
    codes, uniques = pd.factorize(np.asarray(values))
    names = [lookup.get(v.item() if isinstance(v, np.generic) else v) for v in np.asarray(uniques)]
    categories = sorted({str(g) for g in names if g is not None})
    lut = np.array([categories.index(str(g)) if g is not None else -1 for g in names] + [-1], dtype=np.int64)
    return pd.Categorical.from_codes(lut[codes], categories=categories)


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def _label(value) -> str:
    """Zone value as text, integral floats without ``.0`` (as :mod:`pipeline.evaluate.breakdown`)."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _month(times) -> np.ndarray:
    """Month 1..12 of every date as float, NaN where the date is missing."""
    return pd.DatetimeIndex(pd.to_datetime(np.asarray(times).reshape(-1))).month.to_numpy(dtype=np.float64)


# --- shared steps -----------------------------------------------------------------------------------


def _score(metrics: Mapping[str, Callable], y, preds: Mapping[str, np.ndarray], families, *, task, split, blocks,
           weights, n_resamples, seed, alpha) -> list[tuple]:
    """Rows of the metrics table for one split: every model, every metric, with intervals."""
    rows = []
    for model, p in preds.items():
        scores = block_bootstrap_many(metrics, y, p, blocks=blocks, weights=weights, n=n_resamples, seed=seed,
                                      alpha=alpha)
        rows.extend((task, model, families[model], split, name, v, lo, hi) for name, (v, lo, hi) in scores.items())
    return rows


def _metrics_frame(rows: Sequence[tuple]) -> pd.DataFrame:
    table = pd.DataFrame.from_records(list(rows), columns=list(METRICS_COLUMNS))
    return table.astype({"value": np.float64, "lo": np.float64, "hi": np.float64})


def _best(values: Mapping[str, float], higher: bool) -> str | None:
    """The model with the best finite value (the first one on ties), or None."""
    finite = [(m, v) for m, v in values.items() if np.isfinite(v)]
    if not finite:
        return None
    return (max if higher else min)(finite, key=lambda mv: mv[1])[0]


def _headline(metric: str, fn: Callable, y, preds, families, table: pd.DataFrame, *, split, blocks, weights,
              n_resamples, seed, alpha, block_label) -> HeadlineResult | None:
    higher = METRIC_DIRECTIONS[metric] == "higher"
    sel = table[(table["split"] == split) & (table["metric"] == metric)]
    values = dict(zip(sel["model"], sel["value"], strict=True))
    best = _best({m: v for m, v in values.items() if families[m] != BASELINE}, higher)
    base = _best({m: v for m, v in values.items() if families[m] == BASELINE}, higher)
    if best is None or base is None:
        return None
    res = paired_block_bootstrap(fn, y, preds[best], preds[base], blocks, weights, n=n_resamples, seed=seed,
                                 alpha=alpha)
    return HeadlineResult(metric=metric, higher_is_better=higher, split=split, best_model=best,
                          best_value=float(values[best]), baseline=base, baseline_value=float(values[base]),
                          difference=res.diff, lo=res.lo, hi=res.hi, p_value=res.p_value,
                          significant=bool(res.p_value < alpha), alpha=alpha, n_resamples=n_resamples,
                          blocks=block_label, metric_label=METRIC_LABELS.get(metric, metric))


def _breakdown(metrics, y, preds, *, groups: dict[str, object], task, split, blocks, weights, n_resamples, seed,
               alpha) -> list[pd.DataFrame]:
    """:func:`pipeline.evaluate.breakdown.breakdown` of every model on one split.

    ``groups`` holds the grouping values (kind → one value per row); the seasons come in as the
    group ``season`` (:func:`pipeline.evaluate.breakdown.season_of`, computed once), which gives
    the table of ``breakdown(..., season=...)``.
    """
    if not groups:
        return []
    cols: dict[str, object] = {"_truth": y, "_block": blocks}
    if weights is not None:
        cols["_weight"] = weights
    cols.update({f"_group_{kind}": values for kind, values in groups.items()})
    # model names are arbitrary text: the prediction columns get internal names
    cols.update({f"_pred_{i}": p for i, p in enumerate(preds.values())})
    work = pd.DataFrame(cols, copy=False)
    return [breakdown(work, metrics, truth="_truth", pred=f"_pred_{i}", task=task, model=model, split=split,
                      weights=None if weights is None else "_weight",
                      groups={kind: f"_group_{kind}" for kind in groups}, blocks="_block", n_boot=n_resamples,
                      seed=seed, alpha=alpha, overall=False)
            for i, model in enumerate(preds)]


def _seasonal(zones: pd.Series, months: np.ndarray, truth: np.ndarray, preds: Mapping[str, np.ndarray],
              weights: np.ndarray | None) -> pd.DataFrame:
    """Area-weighted monthly means by zone of the truth (``observed``) and of every model.

    The observed cycle is over the rows with a truth; a model's over the rows with a truth and a
    prediction, so that both are means over the same cells and months.
    """
    codes, uniques = pd.factorize(zones, sort=True)
    labels = [_label(v) for v in np.asarray(uniques)]
    w = np.ones(truth.size) if weights is None else weights
    base = (codes >= 0) & np.isfinite(months) & np.isfinite(w) & np.isfinite(truth)
    key = np.where(base, codes * 12 + np.nan_to_num(months).astype(np.int64) - 1, 0)
    size = len(labels) * 12
    out = []
    for model, values, keep in [(OBSERVED, truth, base),
                                *((m, p, base & np.isfinite(p)) for m, p in preds.items())]:
        k = key[keep]
        area = np.bincount(k, weights=w[keep], minlength=size)
        total = np.bincount(k, weights=w[keep] * values[keep], minlength=size)
        has = np.flatnonzero(area > 0)
        out.append(pd.DataFrame({"zone": [labels[i // 12] for i in has], "month": has % 12 + 1, "model": model,
                                 "value": total[has] / area[has]}))
    table = pd.concat(out, ignore_index=True)
    return table.astype({"month": np.int64, "value": np.float64})[list(SEASONAL_COLUMNS)]


def _common(frame, *, weight, block) -> tuple[np.ndarray | None, np.ndarray]:
    w = None if weight is None else check_weights(_floats(frame[weight]), len(frame))
    return w, frame[block].to_numpy()


def _check_options(metric: str, allowed: Sequence[str], n_resamples: int, alpha: float, task: str) -> None:
    if metric not in allowed:
        raise ValueError(f"{task}: the headline metric must be one of {', '.join(allowed)}, got {metric!r}")
    if n_resamples < 1:
        raise ValueError(f"{task}: n_resamples must be at least 1, got {n_resamples}")
    if not 0 < alpha < 1:
        raise ValueError(f"{task}: alpha must lie in (0, 1), got {alpha}")


# --- the two tasks ----------------------------------------------------------------------------------


def evaluate_continuous(frame: pd.DataFrame, predictions: Mapping[str, object], *, families: Mapping[str, str],
                        references: Mapping[str, str], task: str = "lai", weight: str | None = "area",
                        block: str = "block", koppen: str | None = "koppen", land_cover: str | None = "igbp",
                        time: str | None = "time", headline_metric: str = "rmse", n_resamples: int = 200,
                        seed: int = 0, alpha: float = 0.05, block_label: str | None = None,
                        class_groups: Mapping | None = None) -> TaskEvaluation:
    """Metrics, headline, breakdown and seasonal cycles of a continuous task (LAI).

    Parameters
    ----------
    frame : pandas.DataFrame
        The evaluated rows (test split): the truth columns of ``references`` and the columns named
        below.
    predictions : mapping of str to array_like
        Model → 1-D float prediction aligned with the rows of ``frame``; NaN rows are skipped for
        that model. The order is the order of the tables.
    families : mapping of str to str
        Model → family; ``"baseline"`` marks the baselines.
    references : mapping of str to str
        Split label → truth column, e.g. ``{"test (observed)": "lai_obs", "test (truth)": "lai"}``;
        each label is a value of the ``split`` column. The headline and the seasonal cycles use the
        first one.
    task : str
        Written to the ``task`` column.
    weight : str or None
        Column of the fine cell areas (m²); ``None``: every row counts the same.
    block : str
        Column of the spatial block ids of the bootstrap.
    koppen : str or None
        Column of the Köppen zone (category or int): breakdown and seasonal cycles by zone.
    land_cover : str or None
        Column of the IGBP class: breakdown by its land-cover group.
    time : str or None
        Column of the (monthly) dates: breakdown by season and the seasonal cycles.
    headline_metric : str
        One of ``rmse, mae, r2, pearson_r, kge``.
    n_resamples : int
        Block-bootstrap resamples for every interval and the headline test.
    seed : int
        Seed of the resamples (shared by all models, splits and groups).
    alpha : float
        1 − the intervals' coverage, and the significance level of the headline.
    block_label : str, optional
        The blocks in words (``"2° × 2° spatial blocks"``), passed to the headline.
    class_groups : mapping, optional
        IGBP class value → land-cover group name; default (also for an empty mapping): the
        ``group`` column of :func:`pipeline.datasets.load_class_table`.

    Returns
    -------
    TaskEvaluation
        With ``metrics``, ``headline``, ``breakdown`` (``None`` when ``koppen``, ``land_cover``
        and ``time`` are all ``None``) and ``seasonal`` (``None`` without ``koppen`` or ``time``).

    Raises
    ------
    ValueError
        A column missing from ``frame`` (named), a prediction of the wrong length, a model without
        a family, no reference, or a headline metric without a direction.
    """
    if not references:
        raise ValueError(f"{task}: references must name at least one truth column (split label → column)")
    _check_options(headline_metric, [m for m in CONTINUOUS_NAMES if m in METRIC_DIRECTIONS], n_resamples, alpha,
                   task)
    roles: dict[str, str | None] = {f"truth of {label!r}": col for label, col in references.items()}
    roles.update({"weight": weight, "block": block, "koppen": koppen, "land_cover": land_cover, "time": time})
    _require(frame, roles, task)
    preds = _continuous_predictions(predictions, len(frame), task)
    fams = _families(preds, families, task)
    w, b = _common(frame, weight=weight, block=block)
    opts = dict(blocks=b, weights=w, n_resamples=n_resamples, seed=seed, alpha=alpha)

    groups: dict[str, object] = {}
    if koppen is not None:
        groups["koppen"] = _values(frame[koppen])
    if land_cover is not None:
        groups["land_cover"] = _group_names(_values(frame[land_cover]), _resolve_groups(class_groups, task=task))
    times = None if time is None else frame[time].to_numpy()
    if times is not None:
        groups["season"] = season_of(times)

    rows: list[tuple] = []
    parts: list[pd.DataFrame] = []
    truths = {label: _floats(frame[col]) for label, col in references.items()}
    for label, y in truths.items():
        rows += _score(CONTINUOUS_METRICS, y, preds, fams, task=task, split=label, **opts)
        parts += _breakdown(CONTINUOUS_METRICS, y, preds, groups=groups, task=task, split=label, **opts)
    table = _metrics_frame(rows)

    first = next(iter(references))
    headline = _headline(headline_metric, CONTINUOUS_METRICS[headline_metric], truths[first], preds, fams, table,
                         split=first, block_label=block_label, **opts)
    seasonal = None
    if koppen is not None and time is not None:
        seasonal = _seasonal(frame[koppen], _month(times), truths[first], preds, w)
    return TaskEvaluation(
        task=task, metrics=table, headline=headline,
        breakdown=pd.concat(parts, ignore_index=True) if parts else None, seasonal=seasonal,
        metric_directions={m: METRIC_DIRECTIONS[m] for m in CONTINUOUS_NAMES if m in METRIC_DIRECTIONS},
        metric_labels={m: METRIC_LABELS[m] for m in CONTINUOUS_NAMES})


def _argmax_classes(prob, labels: np.ndarray, n: int, model: str, task: str) -> np.ndarray:
    """Most probable class of every row (float, NaN where a probability is missing)."""
    p = np.asarray(prob)
    if p.ndim != 2 or p.shape != (n, labels.size):
        raise ValueError(f"{task}: the probabilities of {model!r} must be (rows, classes) = ({n}, {labels.size}), "
                         f"got shape {p.shape}")
    out = labels.astype(np.float64)[p.argmax(axis=1)]
    out[~np.isfinite(p).all(axis=1)] = np.nan
    return out


def _class_group_index(labels: np.ndarray, class_groups: Mapping, group_names: Sequence[str], task: str
                       ) -> np.ndarray:
    names = np.asarray(_group_names(labels, class_groups), dtype=object)
    index = np.array([group_names.index(g) if g in group_names else -1 for g in names], dtype=np.int64)
    if not (index >= 0).any():
        raise ValueError(f"{task}: none of the classes {', '.join(map(_label, labels))} belongs to a group of "
                         f"group_columns ({', '.join(group_names)}); check class_groups")
    return index


def _coarse_fractions(frame: pd.DataFrame, parent: str, group_columns: Mapping[str, str], task: str
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Parent code of every row (-1 outside the coarse grid) and the ``(n_parent, G)`` coarse fractions."""
    par = _values(frame[parent])
    codes, uniques = pd.factorize(par)
    codes = codes.astype(np.int64)
    if pd.api.types.is_numeric_dtype(np.asarray(uniques).dtype):
        codes[(codes >= 0) & (np.asarray(par, dtype=np.float64) < 0)] = -1
    values = np.stack([_floats(frame[c]) for c in group_columns.values()], axis=1)
    n_parent = len(uniques)
    inside = np.flatnonzero(codes >= 0)
    coarse = np.full((n_parent, len(group_columns)), np.nan)
    # the first row of every coarse cell carries its fractions (they are broadcast to its fine cells)
    first = inside[np.unique(codes[inside], return_index=True)[1]]
    coarse[codes[first]] = values[first]
    spread = np.abs(values[inside] - coarse[codes[inside]])
    bad = np.nanmax(spread, axis=0, initial=0.0) > 1e-6
    if bad.any():
        cols = [c for c, b in zip(group_columns.values(), bad, strict=True) if b]
        raise ValueError(f"{task}: the coarse fraction column(s) {', '.join(cols)} differ between rows of the same "
                         f"{parent!r} cell; evaluate one year and scenario at a time")
    return codes, coarse


def evaluate_categorical(frame: pd.DataFrame, probabilities: Mapping[str, object], classes, *,
                         families: Mapping[str, str], truth: str = "igbp", task: str = "lulc",
                         weight: str | None = "area", block: str = "block", koppen: str | None = "koppen",
                         class_groups: Mapping | Sequence[str] | None = None, parent: str | None = "parent",
                         group_columns: Mapping[str, str] | None = None, headline_metric: str = "macro_f1",
                         n_resamples: int = 200, seed: int = 0, alpha: float = 0.05,
                         block_label: str | None = None, split: str = "test") -> TaskEvaluation:
    """Metrics, headline, breakdown, per-class F1 and confusion matrices of a categorical task (LULC).

    Parameters
    ----------
    frame : pandas.DataFrame
        The evaluated rows (test split), with the columns named below.
    probabilities : mapping of str to array_like
        Model → ``(n_rows, K)`` class probabilities, columns in the order of ``classes``; a row
        with a NaN is a row without prediction for that model. Each row's class is the most
        probable one.
    classes : sequence of int
        The K class values (IGBP codes) of the probability columns; truth values outside them
        (no data, 255) are skipped.
    families : mapping of str to str
        Model → family; ``"baseline"`` marks the baselines.
    truth : str
        Column of the true class.
    task : str
        Written to the ``task`` column.
    weight : str or None
        Column of the fine cell areas (m²); ``None``: every row counts the same.
    block : str
        Column of the spatial block ids of the bootstrap.
    koppen : str or None
        Column of the Köppen zone: breakdown by zone.
    class_groups : mapping or sequence of str, optional
        Class value → land-cover group name, or the group names aligned with ``classes``
        (``TaskSpec.class_groups``), for the breakdown by the true class's group and for
        ``fraction_mae``; default (also for an empty one): the ``group`` column of
        :func:`pipeline.datasets.load_class_table`.
    parent : str or None
        Column of the coarse cell of every row (negative outside the coarse grid); with
        ``group_columns``, adds ``fraction_mae``.
    group_columns : mapping of str to str, optional
        Group name → column of the parent's coarse group fraction (constant within a parent).
    headline_metric : str
        One of ``overall_accuracy, macro_f1, miou``.
    n_resamples : int
        Block-bootstrap resamples for every interval and the headline test.
    seed : int
        Seed of the resamples.
    alpha : float
        1 − the intervals' coverage, and the significance level of the headline.
    block_label : str, optional
        The blocks in words, passed to the headline.
    split : str
        The ``split`` label of the rows.

    Returns
    -------
    TaskEvaluation
        With ``metrics`` (``fraction_mae`` with NaN ``lo``/``hi``), ``headline``, ``breakdown`` by
        zone and by the true class's group, ``class_f1`` and ``confusion``; ``seasonal`` is None.

    Raises
    ------
    ValueError
        A column missing from ``frame`` (named), probabilities of the wrong shape, a model without
        a family, an unknown headline metric, classes in no group of ``group_columns``, or coarse
        fractions that differ within a parent cell.
    """
    _check_options(headline_metric, CATEGORICAL_NAMES, n_resamples, alpha, task)
    fractions = group_columns is not None and parent is not None
    roles: dict[str, str | None] = {"truth": truth, "weight": weight, "block": block, "koppen": koppen}
    if fractions:
        roles["parent"] = parent
        roles.update({f"fraction of {g!r}": c for g, c in group_columns.items()})
    _require(frame, roles, task)
    labels = label_array(classes)
    n = len(frame)
    fams = _families([str(m) for m in probabilities], families, task)
    preds = {str(m): _argmax_classes(p, labels, n, str(m), task) for m, p in probabilities.items()}
    w, b = _common(frame, weight=weight, block=block)
    y = _values(frame[truth])
    opts = dict(blocks=b, weights=w, n_resamples=n_resamples, seed=seed, alpha=alpha)
    class_groups = _resolve_groups(class_groups, labels, task)
    metrics = {"overall_accuracy": partial(overall_accuracy, labels=labels),
               "macro_f1": partial(macro_f1, labels=labels), "miou": partial(mean_iou, labels=labels)}

    rows = _score(metrics, y, preds, fams, task=task, split=split, **opts)
    if fractions:
        codes, coarse = _coarse_fractions(frame, parent, group_columns, task)
        group_of = _class_group_index(labels, class_groups, list(group_columns), task)
        area = np.ones(n) if w is None else w
        for model, p in probabilities.items():
            value = fraction_mae(codes, area, np.asarray(p), group_of, coarse)
            rows.append((task, str(model), fams[str(model)], split, "fraction_mae", value, np.nan, np.nan))
    # the table in model order, the metrics of each model together
    order = {m: i for i, m in enumerate(preds)}
    table = _metrics_frame(sorted(rows, key=lambda r: order[r[1]]))

    headline = _headline(headline_metric, metrics[headline_metric], y, preds, fams, table, split=split,
                         block_label=block_label, **opts)
    groups: dict[str, object] = {}
    if koppen is not None:
        groups["koppen"] = _values(frame[koppen])
    groups["land_cover"] = _group_names(y, class_groups)
    parts = _breakdown(metrics, y, preds, groups=groups, task=task, split=split, **opts)

    f1_parts, confusion = [], {}
    for model, p in preds.items():
        cm = confusion_matrix(y, p, w, labels=labels)
        confusion[model] = (labels.copy(), cm)
        f1_parts.append(pd.DataFrame({"model": model, "class_value": labels, "f1": per_class_f1_from_confusion(cm, labels),
                                      "support": cm.sum(axis=1)}))
    class_f1 = (pd.concat(f1_parts, ignore_index=True) if f1_parts
                else pd.DataFrame(columns=list(CLASS_F1_COLUMNS)))
    names = [*CATEGORICAL_NAMES, *(["fraction_mae"] if fractions else [])]
    return TaskEvaluation(
        task=task, metrics=table, headline=headline, breakdown=pd.concat(parts, ignore_index=True) if parts else None,
        class_f1=class_f1, confusion=confusion, metric_directions={m: METRIC_DIRECTIONS[m] for m in names},
        metric_labels={m: METRIC_LABELS[m] for m in names})
