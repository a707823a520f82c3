"""Block bootstrap intervals of a metric and a paired block-bootstrap test between two models.

Neighbouring fine cells are not independent samples: their errors share weather, soils and the
coarse cell they were downscaled from. Resampling single rows would make the intervals far too
narrow, so the bootstrap resamples *spatial blocks* (the ``block`` id of every row, e.g. the
spatial cross-validation blocks of :mod:`pipeline.features.splits`): a resample draws as many
blocks as there are, uniformly with replacement, and takes all rows of a drawn block together,
once per draw.

Interval
    The percentile interval: the ``alpha/2`` and ``1 - alpha/2`` quantiles of the metric over the
    ``n`` resamples (NaN replicates, e.g. a resample without rows of a class, are left out). The
    point value is the metric on all rows.

Paired test
    Both models are scored on the *same* resamples, and the difference ``metric(a) - metric(b)``
    is recorded per resample. The two-sided p-value is
    ``min(1, 2 * min((1 + #{d* <= 0}) / (m + 1), (1 + #{d* >= 0}) / (m + 1)))`` over the ``m``
    finite replicates ``d*``: twice the bootstrap share on the far side of zero, i.e. the
    smallest ``alpha`` whose percentile interval of the difference excludes 0 (the ``+1``
    keeps it above 0 with finitely many resamples: at least ``2 / (n + 1)``). Identical models
    give ``p = 1``. Rows where either prediction is missing are dropped for both models, so they
    are compared on the same rows.

Speed
    A resample is a vector of block multiplicities (``numpy.bincount`` of the drawn blocks). The
    metrics of this package are bootstrapped from per-block sums
    (:mod:`pipeline.evaluate.sufficient`): 200 resamples of a million rows take well under a
    second. Any other ``metric_fn`` is called once per resample with the rows reweighted by
    their block's multiplicity (a weight of *k* = *k* copies of the row), which is exact for
    every weighted-mean metric but reads all rows each time.

The resamples depend only on ``seed`` and the number of blocks (block ids are sorted first), so
the same seed gives the same intervals, and metrics bootstrapped with the same seed share their
resamples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import NamedTuple

import numpy as np
import pandas as pd

from pipeline.evaluate.inputs import check_weights
from pipeline.evaluate.sufficient import decomposition


class Interval(NamedTuple):
    """A point value and its bootstrap percentile interval."""

    value: float
    lo: float
    hi: float


class PairedResult(NamedTuple):
    """Difference ``metric(a) - metric(b)``, its percentile interval and two-sided p-value."""

    diff: float
    lo: float
    hi: float
    p_value: float


def block_codes(blocks, n_rows: int) -> tuple[np.ndarray, int]:
    """Block ids as codes 0 .. B-1 in sorted id order.

    Parameters
    ----------
    blocks : array_like
        One block id per row (any sortable values).
    n_rows : int
        Number of rows.

    Returns
    -------
    codes : numpy.ndarray
        int64 code per row.
    n_blocks : int
        Number of distinct blocks B.
    """
    b = np.asarray(blocks).reshape(-1)
    if b.size != n_rows:
        raise ValueError(f"blocks has {b.size} rows, the arrays have {n_rows}")
    # sorted: the codes, and so the resamples, do not depend on the order of the rows
    codes, uniques = pd.factorize(b, sort=True)
    if np.any(codes < 0):
        raise ValueError("every row needs a block id (found missing ids)")
    return codes.astype(np.int64, copy=False), len(uniques)


#: Block multiplicities held at once (resamples × blocks): 32 MiB of float64.
_CHUNK_VALUES = 4_000_000


def _resamples(seed, n_blocks: int, n: int):
    """The ``n`` resamples as chunks of block multiplicities, ``(m, n_blocks)`` float64 each.

    A resample draws ``n_blocks`` blocks with replacement; its multiplicities are the
    ``numpy.bincount`` of the draws. Chunks keep memory bounded with many blocks; every pass with
    the same seed yields the same resamples.
    """
    rng = np.random.default_rng(seed)
    step = max(1, _CHUNK_VALUES // n_blocks)
    for start in range(0, n, step):
        m = min(step, n - start)
        chunk = np.empty((m, n_blocks))
        for i in range(m):
            chunk[i] = np.bincount(rng.integers(0, n_blocks, n_blocks), minlength=n_blocks)
        yield chunk


def _n_rows(arrays) -> int:
    if not arrays:
        raise ValueError("the metric needs at least one array")
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError(f"all arrays must have the same number of rows, got {[len(a) for a in arrays]}")
    return n


def _replicates(metrics: Mapping[str, Callable], arrays, weights, codes, n_blocks: int, n: int, seed
                ) -> dict[str, np.ndarray]:
    """``n`` bootstrap replicates of every metric, all on the same resamples."""
    out: dict[str, np.ndarray] = {}
    shared: dict[tuple, tuple[np.ndarray, object]] = {}
    base = np.ones(codes.size) if weights is None else weights
    for name, fn in metrics.items():
        dec = decomposition(fn)
        if dec is not None:
            key = dec.key()
            if key not in shared:
                # the rows are read once: every resample's sums are its multiplicities @ block sums
                sums, context = dec.stats(*arrays, weights, codes, n_blocks, **dec.kwargs)
                shared[key] = (np.concatenate([c @ sums for c in _resamples(seed, n_blocks, n)]), context)
            resampled, context = shared[key]
            out[name] = np.asarray(dec.finish(resampled, context), dtype=np.float64)
        else:
            # any other metric: a block drawn k times = its rows with k times their weight
            out[name] = np.array([fn(*arrays, weights=c[codes] * base)
                                  for chunk in _resamples(seed, n_blocks, n) for c in chunk], dtype=np.float64)
    return out


def _interval(reps: np.ndarray, alpha: float) -> tuple[float, float]:
    finite = reps[np.isfinite(reps)]
    if finite.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _check(n: int, alpha: float) -> None:
    if n < 1:
        raise ValueError(f"n (resamples) must be at least 1, got {n}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def block_bootstrap_many(metrics: Mapping[str, Callable], *arrays, blocks, weights=None, n: int = 200,
                         seed: int = 0, alpha: float = 0.05) -> dict[str, Interval]:
    """Point values and block-bootstrap percentile intervals of several metrics on the same resamples.

    Parameters
    ----------
    metrics : mapping of str to callable
        ``metric(*arrays, weights=None) -> float`` by name.
    *arrays : array_like
        The metric's row arrays (e.g. truth and prediction), same first dimension.
    blocks : array_like
        Block id of every row.
    weights : array_like, optional
        Row weights (fine cell areas), multiplied by the block multiplicities.
    n : int
        Number of resamples.
    seed : int
        Seed of :func:`numpy.random.default_rng`.
    alpha : float
        1 - the interval's coverage.

    Returns
    -------
    dict of str to Interval
        ``(value, lo, hi)`` by metric name.
    """
    _check(n, alpha)
    arrays = tuple(np.asarray(a) for a in arrays)
    n_rows = _n_rows(arrays)
    w = check_weights(weights, n_rows)
    codes, n_blocks = block_codes(blocks, n_rows)
    reps = _replicates(metrics, arrays, w, codes, n_blocks, n, seed)
    return {name: Interval(float(fn(*arrays, weights=w)), *_interval(reps[name], alpha)) for name, fn in metrics.items()}


def block_bootstrap(metric_fn: Callable, *arrays, blocks, weights=None, n: int = 200, seed: int = 0,
                    alpha: float = 0.05) -> Interval:
    """Point value and block-bootstrap percentile interval of one metric.

    Parameters
    ----------
    metric_fn : callable
        ``metric_fn(*arrays, weights=None) -> float``; it must treat a row weight of *k* as *k*
        copies of the row (all metrics of :mod:`pipeline.evaluate` do).
    *arrays : array_like
        Its row arrays (e.g. ``y_true, y_pred``), same first dimension.
    blocks : array_like
        Block id of every row; the rows of a block are resampled together.
    weights : array_like, optional
        Row weights (fine cell areas).
    n : int
        Number of resamples (default 200).
    seed : int
        Seed of :func:`numpy.random.default_rng`.
    alpha : float
        1 - the interval's coverage (default 0.05: a 95 % interval).

    Returns
    -------
    Interval
        ``(value, lo, hi)``.
    """
    return block_bootstrap_many({"metric": metric_fn}, *arrays, blocks=blocks, weights=weights, n=n, seed=seed,
                                alpha=alpha)["metric"]


def _missing(a: np.ndarray) -> np.ndarray:
    """Rows with a NaN (float arrays; integer class maps have no missing marker here)."""
    if a.dtype.kind != "f":
        return np.zeros(len(a), dtype=bool)
    m = np.isnan(a)
    return m.reshape(len(a), -1).any(axis=1)


def paired_block_bootstrap(metric_fn: Callable, y, pred_a, pred_b, blocks, weights=None, *, n: int = 200,
                           seed: int = 0, alpha: float = 0.05) -> PairedResult:
    """Paired block-bootstrap comparison of two models' predictions of the same truth.

    Parameters
    ----------
    metric_fn : callable
        ``metric_fn(y, pred, weights=None) -> float``.
    y : array_like
        Truth.
    pred_a, pred_b : array_like
        The two models' predictions.
    blocks : array_like
        Block id of every row.
    weights : array_like, optional
        Row weights (fine cell areas).
    n : int
        Number of resamples.
    seed : int
        Seed of :func:`numpy.random.default_rng`.
    alpha : float
        1 - the interval's coverage.

    Returns
    -------
    PairedResult
        ``(diff, lo, hi, p_value)`` with ``diff = metric(y, a) - metric(y, b)`` on the rows where
        both predictions exist, its percentile interval and the two-sided p-value of
        ``diff = 0`` (module docstring). For an error metric (RMSE) a negative ``diff`` means
        model a is better; for a score (KGE, F1) a positive one.
    """
    _check(n, alpha)
    y, a, b = np.asarray(y), np.asarray(pred_a), np.asarray(pred_b)
    n_rows = _n_rows((y, a, b))
    w = check_weights(weights, n_rows)
    codes, n_blocks = block_codes(blocks, n_rows)
    drop = _missing(a) | _missing(b)
    if drop.any():
        keep = ~drop
        y, a, b, codes = y[keep], a[keep], b[keep], codes[keep]
        w = None if w is None else w[keep]
    # the same seed draws the same resamples for both models: the comparison is paired
    reps_a = _replicates({"m": metric_fn}, (y, a), w, codes, n_blocks, n, seed)["m"]
    reps_b = _replicates({"m": metric_fn}, (y, b), w, codes, n_blocks, n, seed)["m"]
    diffs = reps_a - reps_b
    diff = float(metric_fn(y, a, weights=w) - metric_fn(y, b, weights=w))
    lo, hi = _interval(diffs, alpha)
    d = diffs[np.isfinite(diffs)]
    if d.size == 0:
        return PairedResult(diff, lo, hi, float("nan"))
    m = d.size
    below = (1 + np.count_nonzero(d <= 0)) / (m + 1)
    above = (1 + np.count_nonzero(d >= 0)) / (m + 1)
    return PairedResult(diff, lo, hi, float(min(1.0, 2 * min(below, above))))
