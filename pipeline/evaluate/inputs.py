"""Shared input handling of the metrics: flat float rows, weights checked, missing rows skipped.

Every metric of :mod:`pipeline.evaluate` takes one row per fine cell (and time step) and an
optional weight per row (the fine cell areas). A row is *missing* when its truth or prediction is
not finite (NaN marks no data in the feature tables) or its weight is not finite; missing rows are
skipped, never filled, so a metric is a statement about the rows that have both values.
"""

from __future__ import annotations

import numpy as np


def flat(values, name: str) -> np.ndarray:
    """``values`` as a 1-D array (a view where possible), for row-wise metrics.

    Parameters
    ----------
    values : array_like
        Any shape; it is raveled so that maps and tables are handled alike.
    name : str
        The argument's name, for the error message.

    Returns
    -------
    numpy.ndarray
        1-D array.
    """
    a = np.asarray(values)
    if a.ndim == 0:
        raise ValueError(f"{name} must be an array, got a scalar")
    return a.reshape(-1)


def check_weights(weights, n: int) -> np.ndarray | None:
    """Row weights as 1-D float64 (``None`` stays ``None``: scikit-learn is faster without weights).

    Parameters
    ----------
    weights : array_like or None
        One non-negative weight per row (fine cell area); NaN marks a missing row.
    n : int
        Number of rows.

    Returns
    -------
    numpy.ndarray or None

    Raises
    ------
    ValueError
        A weight array of another length, or a negative weight (a weight is an area or a count).
    """
    if weights is None:
        return None
    w = flat(weights, "weights").astype(np.float64, copy=False)
    if w.size != n:
        raise ValueError(f"weights has {w.size} rows, the values have {n}")
    if np.any(w < 0):
        raise ValueError("weights must be non-negative (cell areas or counts)")
    return w


def finite_rows(y_true, y_pred, weights=None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The rows of a continuous comparison where truth, prediction and weight are all finite.

    Parameters
    ----------
    y_true, y_pred : array_like
        Same number of elements, any shape (raveled).
    weights : array_like or None
        Row weights, see :func:`check_weights`.

    Returns
    -------
    y, p : numpy.ndarray
        1-D float64 arrays of the kept rows.
    w : numpy.ndarray or None
        Their weights (``None`` when none were given).
    """
    y = flat(y_true, "y_true").astype(np.float64, copy=False)
    p = flat(y_pred, "y_pred").astype(np.float64, copy=False)
    if y.size != p.size:
        raise ValueError(f"y_true has {y.size} rows, y_pred has {p.size}")
    w = check_weights(weights, y.size)
    keep = np.isfinite(y) & np.isfinite(p)
    if w is not None:
        keep &= np.isfinite(w)
    if keep.all():
        return y, p, w
    return y[keep], p[keep], None if w is None else w[keep]


def no_weight(y: np.ndarray, w: np.ndarray | None) -> bool:
    """True when there is nothing to average: no rows, or rows whose weights sum to zero."""
    return y.size == 0 or (w is not None and not w.sum() > 0)
