"""What the report shows: typed containers that the run stage fills and :func:`render_report` reads.

The report never computes a metric, a bootstrap or an aggregation itself: every number it shows
is in a :class:`ReportContext`. That keeps the report cheap to render (seconds), testable with
fake data (``tests/helpers/report_data.py``) and honest: what is shown is what the run computed.

Structure
---------
:class:`ReportContext`
    One run: its name, the region, the :class:`TaskReport` of each task (``lulc``, ``lai``), the
    drift table, the scenario time series, the ESM-grid maps and the :class:`Provenance`.
:class:`TaskReport`
    One task: the :class:`Headline` comparison, the metrics table, timings, the data/split
    summary, conservation errors and the data of its figures (:class:`FieldMaps`,
    :class:`ObsPred`, :class:`ConfusionMatrix`, per-class F1, seasonal cycles, learning curves).

Optional parts
--------------
Everything but the run name, the tasks' names/titles/metrics and the provenance is optional:
``None`` (or an empty list/dict) means "not computed in this run" (no deep model, hence no
learning curves; no scenario run, hence no drift table) and the report leaves the section out.

Tables
------
Tables are :class:`pandas.DataFrame` objects with the columns listed for each field (more
columns are allowed and ignored). The columns are checked when the context is built, so a run
stage that fills a field wrongly fails at once with the field's name, not half-way through a
render. Such a failure is a bug of the run stage, hence a :class:`ValueError`, not a
:class:`~pipeline.errors.TerrascaleError`.

Text
----
All text (model names included) is shown as written, HTML-escaped: it may contain any
character. Text that looks like a web address (``https://...``) is shown inert, never as a link,
so that the report references nothing outside itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from pipeline.evaluate import HeadlineResult

#: Columns of :attr:`TaskReport.metrics`.
METRIC_COLUMNS = ("task", "model", "family", "split", "metric", "value", "lo", "hi")
#: Columns of :attr:`TaskReport.splits` (the output of :func:`pipeline.features.splits.split_summary` has them).
SPLIT_COLUMNS = ("split", "rows", "cells", "area_km2", "years")
#: Columns of :attr:`TaskReport.conservation`.
CONSERVATION_COLUMNS = ("model", "grid", "quantity", "max_abs_error", "max_rel_error")
#: Columns of :attr:`ReportContext.drift`.
DRIFT_COLUMNS = ("feature", "scenario", "psi", "outside_share", "flag")
#: Columns of :attr:`TaskReport.class_f1`.
CLASS_F1_COLUMNS = ("model", "class_value", "f1")
#: Columns of :attr:`TaskReport.seasonal_cycles`.
SEASONAL_COLUMNS = ("zone", "month", "model", "value")
#: Columns of :attr:`ReportContext.scenario_series`.
SERIES_COLUMNS = ("time", "scenario", "variable", "value")
#: Columns of :attr:`TaskReport.learning_curves`.
LEARNING_COLUMNS = ("model", "epoch", "train_loss", "valid_loss")
#: The ``model`` label of the observations in :attr:`TaskReport.seasonal_cycles`.
OBSERVED = "observed"


def _check_frame(frame: pd.DataFrame | None, columns: tuple[str, ...], where: str, *, optional: bool = True) -> None:
    if frame is None:
        if optional:
            return
        raise ValueError(f"{where} is required (a DataFrame with columns {', '.join(columns)})")
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"{where} must be a pandas DataFrame with columns {', '.join(columns)}, "
                         f"got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{where} lacks the column(s) {', '.join(missing)}; expected {', '.join(columns)}")


def _as_1d(values, where: str) -> np.ndarray:
    a = np.asarray(values)
    if a.ndim != 1:
        raise ValueError(f"{where} must be 1-D, got shape {a.shape}")
    return a


@dataclass
class Headline(HeadlineResult):
    """The one comparison a reader looks at first: best model against best baseline on one metric.

    The difference and its interval come from a paired block bootstrap: both models are scored on
    the same resampled spatial blocks, so the interval is that of the *difference*, which is much
    narrower than the two models' own intervals would suggest.

    Attributes
    ----------
    metric : str
        Name of the headline metric as in :attr:`TaskReport.metrics` (e.g. ``"macro_f1"``, ``"rmse"``).
    higher_is_better : bool
        Direction of the metric: ``True`` for scores (F1, R², KGE), ``False`` for errors (RMSE).
    split : str
        The split the comparison is made on (normally ``"test"``).
    best_model : str
        The non-baseline model with the best value of ``metric``.
    best_value : float
        Its value of ``metric``.
    baseline : str
        The best baseline model (family ``"baseline"``) on ``metric``.
    baseline_value : float
        Its value of ``metric``.
    difference : float
        ``best_value - baseline_value`` on the full evaluation set (signed, in the metric's units).
    lo, hi : float
        The 95 % (``1 - alpha``) percentile interval of ``difference`` over the bootstrap resamples.
    p_value : float
        Two-sided bootstrap p-value of "no difference" (share of resamples on the other side of 0,
        doubled, at most 1).
    significant : bool
        Whether the difference is significant at level ``alpha`` (``p_value < alpha``; the
        interval then excludes 0). The run stage decides; the report only states it.
    alpha : float
        Significance level; 0.05 gives the 95 % interval.
    n_resamples : int or None
        Number of bootstrap resamples, shown with the result.
    blocks : str or None
        How the blocks were drawn, in words (e.g. ``"2° × 2° spatial blocks"``).
    metric_label : str or None
        The metric's name for readers (e.g. ``"macro F1"``); defaults to ``metric``.
    """

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"Headline.alpha must lie in (0, 1), got {self.alpha}")
        if not (np.isnan(self.p_value) or 0 <= self.p_value <= 1):
            raise ValueError(f"Headline.p_value must lie in [0, 1], got {self.p_value}")

    @property
    def label(self) -> str:
        """The metric's name for readers."""
        return self.metric_label or self.metric

    @property
    def model_wins(self) -> bool:
        """Whether the best model's value is better than the baseline's (whatever the significance)."""
        if self.higher_is_better:
            return self.difference > 0
        return self.difference < 0


@dataclass
class ModelTiming:
    """Wall-clock cost of one model of one task.

    Attributes
    ----------
    model : str
        Model name, as in :attr:`TaskReport.metrics`.
    family : str
        Model family (``"baseline"``, ``"linear"``, ``"tree"``, ``"deep"``...).
    fit_s : float
        Seconds spent fitting (training), NaN when the model was loaded rather than fitted.
    predict_s : float
        Seconds spent predicting every evaluated row.
    device : str
        Where it ran, e.g. ``"cpu"``, ``"cuda:0 (NVIDIA H200)"``.
    cluster : str
        The cluster it ran on, in words (e.g. ``"local: 4 workers x 2 threads"``).
    """

    model: str
    family: str
    fit_s: float
    predict_s: float
    device: str
    cluster: str


@dataclass
class FieldMaps:
    """Truth and predictions of one task on the fine grid, for one time step (or a time mean).

    Attributes
    ----------
    kind : {"continuous", "categorical"}
        ``"continuous"`` (LAI: sequential green colour map, errors ``prediction - truth`` on a
        diverging map centred at 0) or ``"categorical"`` (IGBP class values 0..16, drawn with
        the class table's colours; errors are the cells where prediction and truth differ).
    variable : str
        Variable name for labels, e.g. ``"LAI"`` or ``"IGBP class"``.
    units : str
        Units of a continuous variable (``"m² m⁻²"``); empty for classes.
    when : str
        The time step shown, in words (``"July 2019"``, ``"2019"``, ``"2019 annual mean"``).
    lat : numpy.ndarray
        1-D cell-centre latitudes (degrees north), length ``ny``, either order.
    lon : numpy.ndarray
        1-D cell-centre longitudes (degrees east), length ``nx``, increasing.
    land_mask : numpy.ndarray
        ``(ny, nx)`` bool, ``True`` on land; the coastline drawn on every map is its 0.5 contour.
    truth : numpy.ndarray
        ``(ny, nx)`` observed values; NaN (continuous) or any value outside 0..16 (categorical,
        e.g. 255) where there is no data.
    predictions : dict of str to numpy.ndarray
        Model name → ``(ny, nx)`` prediction, same conventions as ``truth``.
    errors : dict of str to numpy.ndarray, optional
        Model name → ``(ny, nx)`` error map to show instead of the one derived from the
        prediction (``prediction - truth``, or ``prediction != truth`` for classes).
    """

    kind: Literal["continuous", "categorical"]
    variable: str
    units: str
    when: str
    lat: np.ndarray
    lon: np.ndarray
    land_mask: np.ndarray
    truth: np.ndarray
    predictions: dict[str, np.ndarray]
    errors: dict[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("continuous", "categorical"):
            raise ValueError(f"FieldMaps.kind must be 'continuous' or 'categorical', got {self.kind!r}")
        self.lat = _as_1d(self.lat, "FieldMaps.lat")
        self.lon = _as_1d(self.lon, "FieldMaps.lon")
        shape = (self.lat.size, self.lon.size)
        arrays = {"land_mask": self.land_mask, "truth": self.truth}
        arrays.update({f"predictions[{m!r}]": a for m, a in self.predictions.items()})
        arrays.update({f"errors[{m!r}]": a for m, a in (self.errors or {}).items()})
        for name, arr in arrays.items():
            if np.shape(arr) != shape:
                raise ValueError(f"FieldMaps.{name} has shape {np.shape(arr)}, expected (lat, lon) = {shape}")
        self.land_mask = np.asarray(self.land_mask, dtype=bool)

    def error(self, model: str) -> np.ndarray:
        """The error map of ``model``: given, else ``prediction - truth`` (continuous) or 1.0 where classes differ.

        Parameters
        ----------
        model : str
            A key of :attr:`predictions`.

        Returns
        -------
        numpy.ndarray
            float ``(ny, nx)``; NaN where truth or prediction has no data.
        """
        if self.errors and model in self.errors:
            return np.asarray(self.errors[model], dtype=np.float64)
        truth = np.asarray(self.truth, dtype=np.float64)
        pred = np.asarray(self.predictions[model], dtype=np.float64)
        if self.kind == "continuous":
            return pred - truth
        valid = (truth >= 0) & (truth <= 16) & (pred >= 0) & (pred <= 16)
        return np.where(valid, (pred != truth).astype(np.float64), np.nan)


@dataclass
class ObsPred:
    """Paired observed and predicted values of one model (LAI rows of the test split), for a hexbin.

    Attributes
    ----------
    obs, pred : numpy.ndarray
        1-D, same length; non-finite pairs are left out of the plot. A subsample (say 200 000
        rows) is plenty: the hexbin shows densities.
    """

    obs: np.ndarray
    pred: np.ndarray

    def __post_init__(self) -> None:
        self.obs = _as_1d(self.obs, "ObsPred.obs")
        self.pred = _as_1d(self.pred, "ObsPred.pred")
        if self.obs.size != self.pred.size:
            raise ValueError(f"ObsPred.obs has {self.obs.size} values, ObsPred.pred {self.pred.size}")


@dataclass
class ConfusionMatrix:
    """Confusion matrix of one model (rows: true class, columns: predicted class).

    Attributes
    ----------
    labels : numpy.ndarray
        1-D class values (IGBP 0..16) of the rows and columns, in order.
    matrix : numpy.ndarray
        ``(K, K)`` counts or areas (:func:`pipeline.evaluate.categorical.confusion_matrix`); the
        figure normalises each row, so it shows which share of each true class went where.
    """

    labels: np.ndarray
    matrix: np.ndarray

    def __post_init__(self) -> None:
        self.labels = _as_1d(self.labels, "ConfusionMatrix.labels")
        self.matrix = np.asarray(self.matrix, dtype=np.float64)
        k = self.labels.size
        if self.matrix.shape != (k, k):
            raise ValueError(f"ConfusionMatrix.matrix has shape {self.matrix.shape}, expected ({k}, {k}) for "
                             f"{k} labels")


@dataclass
class GridMap:
    """One field aggregated onto an ESM target grid (a PFT fraction or LAI).

    Attributes
    ----------
    grid : str
        Target grid name (``"1deg"``, ``"N32"``).
    label : str
        What the map shows, e.g. ``"C3 grass fraction, 2019"`` or ``"LAI, July 2019"``.
    kind : {"fraction", "lai"}
        Colour map: a sequential map on 0..1 for fractions, the green LAI map for LAI.
    units : str
        Units shown on the colour bar (``"1"`` for fractions, ``"m² m⁻²"`` for LAI).
    lat, lon : numpy.ndarray
        Regular grid: 1-D cell-centre coordinates of the rows and columns of ``values``.
        Unstructured grid (reduced Gaussian): 1-D coordinates of each point, same length as ``values``.
    values : numpy.ndarray
        ``(ny, nx)`` on a regular grid, or 1-D (one value per point) on an unstructured one; NaN
        for no data.
    land_mask : numpy.ndarray, optional
        ``(ny, nx)`` bool for a regular grid, to draw the coastline.
    """

    grid: str
    label: str
    kind: Literal["fraction", "lai"]
    units: str
    lat: np.ndarray
    lon: np.ndarray
    values: np.ndarray
    land_mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("fraction", "lai"):
            raise ValueError(f"GridMap.kind must be 'fraction' or 'lai', got {self.kind!r}")
        self.lat = _as_1d(self.lat, "GridMap.lat")
        self.lon = _as_1d(self.lon, "GridMap.lon")
        self.values = np.asarray(self.values, dtype=np.float64)
        if self.values.ndim == 2:
            shape = (self.lat.size, self.lon.size)
            if self.values.shape != shape:
                raise ValueError(f"GridMap.values has shape {self.values.shape}, expected (lat, lon) = {shape}")
            if self.land_mask is not None and np.shape(self.land_mask) != shape:
                raise ValueError(f"GridMap.land_mask has shape {np.shape(self.land_mask)}, expected {shape}")
        elif self.values.ndim == 1:
            if not self.lat.size == self.lon.size == self.values.size:
                raise ValueError("GridMap on an unstructured grid needs lat, lon and values of one length, got "
                                 f"{self.lat.size}, {self.lon.size}, {self.values.size}")
            if self.land_mask is not None:
                raise ValueError("GridMap.land_mask is only for regular grids (2-D values)")
        else:
            raise ValueError(f"GridMap.values must be 2-D (regular grid) or 1-D (points), got shape {self.values.shape}")

    @property
    def regular(self) -> bool:
        """Whether the grid is a regular lat/lon grid (2-D values)."""
        return self.values.ndim == 2


@dataclass
class TaskReport:
    """Everything the report shows about one task.

    Attributes
    ----------
    task : str
        Short name, ``"lulc"`` or ``"lai"`` (also the HTML anchor of its sections).
    title : str
        Heading, e.g. ``"Land use / land cover (IGBP classes)"``.
    metrics : pandas.DataFrame
        One row per (model, split, metric): columns ``task, model, family, split, metric, value,
        lo, hi``; ``lo``/``hi`` is the 95 % bootstrap interval of ``value`` (NaN when not
        computed). Shown as one table per split, model × metric, as ``0.123 [0.110, 0.137]``.
        ``family`` is ``"baseline"`` for the reference models.
    headline : Headline, optional
        The best-model-versus-best-baseline comparison (left out with fewer than two models).
    metric_directions : dict of str to {"higher", "lower"}
        Which way is better for each metric, to mark the best value of each column; metrics not
        listed (e.g. ``bias``, where 0 is best) are not marked.
    metric_labels : dict of str to str
        Column headings for metric names (``{"macro_f1": "macro F1"}``); others shown as named.
    timing : list of ModelTiming
        Fit and predict time of each model.
    splits : pandas.DataFrame, optional
        The data and split summary: one row per split with columns ``split, rows, cells,
        area_km2, years`` (``row_fraction``, ``area_fraction`` shown too when present), as
        returned by :func:`pipeline.features.splits.split_summary`.
    conservation : pandas.DataFrame, optional
        Conservation errors of the aggregation to the ESM grids: columns ``model, grid,
        quantity, max_abs_error, max_rel_error`` (``quantity`` e.g. ``"cropland fraction"`` or
        ``"area-weighted LAI"``); rows whose ``max_rel_error`` exceeds ``conservation_tolerance``
        are highlighted.
    conservation_tolerance : float, optional
        Largest acceptable relative conservation error (e.g. ``1e-6``).
    maps : FieldMaps, optional
        Truth, prediction and error maps on the fine grid.
    obs_pred : dict of str to ObsPred
        Model → observed/predicted pairs for the hexbin figure (continuous tasks).
    class_f1 : pandas.DataFrame, optional
        Per-class F1 (categorical tasks): columns ``model, class_value, f1`` (``support``, the
        true area or count of the class, optional); NaN F1 for a class absent from both sides.
    confusion : dict of str to ConfusionMatrix
        Model → confusion matrix (categorical tasks).
    seasonal_cycles : pandas.DataFrame, optional
        Mean seasonal cycle by Köppen zone (LAI): columns ``zone, month, model, value`` with
        ``month`` 1..12 and the observations under ``model == "observed"`` (:data:`OBSERVED`).
    learning_curves : pandas.DataFrame, optional
        Loss per epoch of the deep models: columns ``model, epoch, train_loss, valid_loss``.
    loss_label : str
        Name of the loss on the learning-curve axis (e.g. ``"cross-entropy"``).
    """

    task: str
    title: str
    metrics: pd.DataFrame
    headline: Headline | None = None
    metric_directions: dict[str, str] = field(default_factory=dict)
    metric_labels: dict[str, str] = field(default_factory=dict)
    timing: list[ModelTiming] = field(default_factory=list)
    splits: pd.DataFrame | None = None
    conservation: pd.DataFrame | None = None
    conservation_tolerance: float | None = None
    maps: FieldMaps | None = None
    obs_pred: dict[str, ObsPred] = field(default_factory=dict)
    class_f1: pd.DataFrame | None = None
    confusion: dict[str, ConfusionMatrix] = field(default_factory=dict)
    seasonal_cycles: pd.DataFrame | None = None
    learning_curves: pd.DataFrame | None = None
    loss_label: str = "loss"

    def __post_init__(self) -> None:
        where = f"TaskReport({self.task!r})"
        _check_frame(self.metrics, METRIC_COLUMNS, f"{where}.metrics", optional=False)
        _check_frame(self.splits, SPLIT_COLUMNS, f"{where}.splits")
        _check_frame(self.conservation, CONSERVATION_COLUMNS, f"{where}.conservation")
        _check_frame(self.class_f1, CLASS_F1_COLUMNS, f"{where}.class_f1")
        _check_frame(self.seasonal_cycles, SEASONAL_COLUMNS, f"{where}.seasonal_cycles")
        _check_frame(self.learning_curves, LEARNING_COLUMNS, f"{where}.learning_curves")
        bad = {m: d for m, d in self.metric_directions.items() if d not in ("higher", "lower")}
        if bad:
            raise ValueError(f"{where}.metric_directions must map metrics to 'higher' or 'lower', got {bad}")

    def models(self) -> list[str]:
        """Model names in the order of first appearance in :attr:`metrics`."""
        return list(dict.fromkeys(self.metrics["model"].astype(str)))


@dataclass
class DataSourceRef:
    """One data source, cited in the provenance footer (shown as text, never as a link).

    Attributes
    ----------
    title : str
        What it is (``"MODIS MCD12C1 2019 IGBP land cover"``).
    citation : str
        Reference with its DOI, e.g. ``"Friedl & Sulla-Menashe (2015), ..., doi:10.5067/MODIS/MCD12C1.006"``.
    licence : str
        Terms of use.
    """

    title: str
    citation: str
    licence: str = ""

    @classmethod
    def from_source(cls, source) -> DataSourceRef:
        """From a :class:`pipeline.datasets.DataSource` (or anything with ``title, citation, licence``)."""
        return cls(title=source.title, citation=source.citation, licence=source.licence)


@dataclass
class Provenance:
    """Where the run's results come from; the report's footer.

    Attributes
    ----------
    config_sha256 : str
        SHA-256 of the resolved configuration file.
    terrascale_version : str
        ``pipeline.__version__``.
    git_commit : str, optional
        Commit of the code (with ``"-dirty"`` when the tree had changes); None outside git.
    config_path : str, optional
        Path of the configuration file.
    data_sources : list of DataSourceRef
        The data sources used, with their citations.
    packages : dict of str to str
        Package → version (:func:`pipeline.info.package_versions`).
    backend : str
        Compute backend in words (``"gpu: cupy/cuml, torch cuda"``, ``"cpu"``).
    cluster : str
        Cluster in words (``"local: 4 workers x 2 threads, 8 GiB each"``).
    stage_wall_s : dict of str to float
        Stage name → wall time in seconds, in run order.
    created : str, optional
        When the report was made (ISO 8601).
    notes : list of str
        Anything a reader must know to interpret the results (e.g. "LAI and climate drivers are
        semi-synthetic").
    """

    config_sha256: str
    terrascale_version: str
    git_commit: str | None = None
    config_path: str | None = None
    data_sources: list[DataSourceRef] = field(default_factory=list)
    packages: dict[str, str] = field(default_factory=dict)
    backend: str = ""
    cluster: str = ""
    stage_wall_s: dict[str, float] = field(default_factory=dict)
    created: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def total_wall_s(self) -> float:
        """Sum of the stage wall times (seconds)."""
        return float(sum(self.stage_wall_s.values()))


@dataclass
class ReportContext:
    """Everything the report of one run shows; see the module docstring for the conventions.

    Attributes
    ----------
    run_name : str
        Name of the run (the report's title).
    tasks : list of TaskReport
        The tasks, in the order they are shown (normally ``lulc``, ``lai``).
    provenance : Provenance
        Footer: configuration hash, versions, data sources, backend, stage times.
    region : str
        The region and resolution in words (``"Iberia, 35-44° N, 10° W-4° E, 0.05°"``).
    period : str
        The years covered, in words (``"1950-2020, scenarios to 2100"``).
    drift : pandas.DataFrame, optional
        Covariate drift of the scenario inputs against the training data: columns ``feature,
        scenario, psi, outside_share, flag`` (``psi`` the population stability index,
        ``outside_share`` the share of rows outside the training range, ``flag`` bool: the
        predictions for that scenario rest on extrapolation in that feature). Flagged rows
        are highlighted.
    drift_rule : str
        When a row is flagged, in words (``"PSI > 0.25 or more than 5 % of rows outside the
        training range"``).
    scenario_series : pandas.DataFrame, optional
        Regional time series per scenario: columns ``time, scenario, variable, value``; ``time``
        a year (number), a datetime or a cftime date (model calendars); ``variable`` e.g. ``"LAI"`` or ``"cropland fraction"``; one
        panel per variable, one line per scenario.
    scenario_model : str, optional
        The model whose predictions the scenario series are.
    grid_maps : list of GridMap
        Fields aggregated onto the ESM target grids (PFT fractions, LAI).
    class_table : pandas.DataFrame, optional
        IGBP class table (columns ``name, short_name, colour, group``, index the class value
        0..16) for names and colours; defaults to :func:`pipeline.datasets.load_class_table`.
    title : str
        Report title prefix.
    """

    run_name: str
    tasks: list[TaskReport]
    provenance: Provenance
    region: str = ""
    period: str = ""
    drift: pd.DataFrame | None = None
    drift_rule: str = ""
    scenario_series: pd.DataFrame | None = None
    scenario_model: str | None = None
    grid_maps: list[GridMap] = field(default_factory=list)
    class_table: pd.DataFrame | None = None
    title: str = "terrascale report"

    def __post_init__(self) -> None:
        _check_frame(self.drift, DRIFT_COLUMNS, "ReportContext.drift")
        _check_frame(self.scenario_series, SERIES_COLUMNS, "ReportContext.scenario_series")
        _check_frame(self.class_table, ("name", "short_name", "colour"), "ReportContext.class_table")
        names = [t.task for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"ReportContext.tasks has repeated task names: {names}")
