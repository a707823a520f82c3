"""Evaluation of the downscaling models: the metrics, intervals and drift checks of the report.

Modules
-------
``inputs``
    Shared row handling: flattening, weight checks, skipping of missing rows.
``continuous``
    LAI metrics: RMSE, MAE, bias, R², Pearson r, Kling-Gupta efficiency (all area-weighted, NaN
    rows skipped) and the SSIM of two maps with missing cells.
``categorical``
    LULC metrics: overall accuracy, macro-F1, mean IoU, per-class F1 and the confusion matrix,
    area-weighted over a fixed class list (classes absent from truth and prediction are left out
    of the macro means).
``fractions``
    Fine predictions aggregated to the coarse grid against the coarse input fractions: MAE and
    the conservation error (largest absolute difference).
``sufficient``
    Per-block sums from which the bootstrap recomputes the metrics of a resample cheaply.
``bootstrap``
    Spatial block bootstrap: percentile intervals and a paired two-model test with a p-value.
``breakdown``
    Metrics by Köppen zone, land-cover group and season as one tidy table.
``summary``
    One call per task (:func:`evaluate_continuous` for LAI, :func:`evaluate_categorical` for
    LULC): the test table and every model's predictions → a :class:`TaskEvaluation` holding the
    metrics table with block-bootstrap intervals, the headline (best model against best baseline,
    paired block bootstrap), the breakdown by zone, land-cover group and season, the seasonal
    cycles, the per-class F1 and the confusion matrices — everything the report shows, in the
    report's field names (without importing it: the run stage converts).
``drift``
    Scenario inputs against the training data: population stability index, share outside the
    training range, and flags.

Weights are the fine cell areas throughout, so every metric is an area mean; the arithmetic is
scikit-learn's (``sample_weight``), numpy's, scipy's and scikit-image's.
"""

from __future__ import annotations

from pipeline.evaluate.bootstrap import (
    Interval,
    PairedResult,
    block_bootstrap,
    block_bootstrap_many,
    paired_block_bootstrap,
)
from pipeline.evaluate.breakdown import SEASONS, breakdown, season_of
from pipeline.evaluate.categorical import (
    categorical_metrics,
    confusion_matrix,
    macro_f1,
    mean_iou,
    overall_accuracy,
    per_class_f1,
)
from pipeline.evaluate.continuous import (
    CONTINUOUS_METRICS,
    bias,
    kge,
    kge_components,
    mae,
    pearson_r,
    r2,
    rmse,
    ssim,
)
from pipeline.evaluate.drift import (
    N_BINS,
    OUTSIDE_THRESHOLD,
    PSI_THRESHOLD,
    drift_table,
    outside_share,
    psi,
)
from pipeline.evaluate.fractions import (
    aggregate_to_parent,
    conservation_error,
    fraction_mae,
    predicted_fractions,
)
from pipeline.evaluate.summary import (
    METRIC_DIRECTIONS,
    METRIC_LABELS,
    HeadlineResult,
    TaskEvaluation,
    evaluate_categorical,
    evaluate_continuous,
)

__all__ = [
    "CONTINUOUS_METRICS",
    "METRIC_DIRECTIONS",
    "METRIC_LABELS",
    "N_BINS",
    "OUTSIDE_THRESHOLD",
    "PSI_THRESHOLD",
    "SEASONS",
    "TaskEvaluation",
    "HeadlineResult",
    "Interval",
    "PairedResult",
    "aggregate_to_parent",
    "bias",
    "block_bootstrap",
    "block_bootstrap_many",
    "breakdown",
    "categorical_metrics",
    "confusion_matrix",
    "conservation_error",
    "drift_table",
    "evaluate_categorical",
    "evaluate_continuous",
    "fraction_mae",
    "kge",
    "kge_components",
    "macro_f1",
    "mae",
    "mean_iou",
    "outside_share",
    "overall_accuracy",
    "paired_block_bootstrap",
    "pearson_r",
    "per_class_f1",
    "predicted_fractions",
    "psi",
    "r2",
    "rmse",
    "season_of",
    "ssim",
]
