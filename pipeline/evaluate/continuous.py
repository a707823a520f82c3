"""Metrics of continuous fields (LAI): errors, correlation, Kling-Gupta efficiency, map structure.

All row metrics take ``(y_true, y_pred, weights=None)``: arrays of any shape (raveled), optional
non-negative row weights (the fine cell areas, so a metric is an area mean and not a mean over
cells that shrink towards the poles), and skip rows where the truth, the prediction or the weight
is not finite. With no rows left, or weights that sum to zero, they return NaN. A weight of *k*
is the same as *k* copies of the row (the weights enter as frequency weights), which is what
the block bootstrap (:mod:`pipeline.evaluate.bootstrap`) relies on.

The arithmetic is scikit-learn's (``root_mean_squared_error``, ``mean_absolute_error``,
``r2_score``, each with ``sample_weight``) and numpy's (``average``, ``cov`` with ``aweights``);
the SSIM is scikit-image's (:func:`skimage.metrics.structural_similarity`).

Sign convention: ``bias`` = mean(prediction − truth), positive when the model overestimates.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

from pipeline.evaluate.inputs import finite_rows, no_weight


def rmse(y_true, y_pred, weights=None) -> float:
    """Root-mean-square error, area-weighted.

    Parameters
    ----------
    y_true, y_pred : array_like
        Truth and prediction, same number of elements; non-finite rows are skipped.
    weights : array_like, optional
        Non-negative row weights (fine cell areas).

    Returns
    -------
    float
        ``sqrt(sum(w (p - y)^2) / sum(w))``; NaN without rows.
    """
    y, p, w = finite_rows(y_true, y_pred, weights)
    if no_weight(y, w):
        return float("nan")
    return float(root_mean_squared_error(y, p, sample_weight=w))


def mae(y_true, y_pred, weights=None) -> float:
    """Mean absolute error, area-weighted.

    Parameters
    ----------
    y_true, y_pred : array_like
        Truth and prediction; non-finite rows are skipped.
    weights : array_like, optional
        Non-negative row weights (fine cell areas).

    Returns
    -------
    float
        ``sum(w |p - y|) / sum(w)``; NaN without rows.
    """
    y, p, w = finite_rows(y_true, y_pred, weights)
    if no_weight(y, w):
        return float("nan")
    return float(mean_absolute_error(y, p, sample_weight=w))


def bias(y_true, y_pred, weights=None) -> float:
    """Mean error (prediction − truth), area-weighted; positive when the model overestimates.

    Parameters
    ----------
    y_true, y_pred : array_like
        Truth and prediction; non-finite rows are skipped.
    weights : array_like, optional
        Non-negative row weights (fine cell areas).

    Returns
    -------
    float
        ``sum(w (p - y)) / sum(w)``; NaN without rows.
    """
    y, p, w = finite_rows(y_true, y_pred, weights)
    if no_weight(y, w):
        return float("nan")
    return float(np.average(p - y, weights=w))


def r2(y_true, y_pred, weights=None) -> float:
    """Coefficient of determination R² (scikit-learn's ``r2_score``), area-weighted.

    Parameters
    ----------
    y_true, y_pred : array_like
        Truth and prediction; non-finite rows are skipped.
    weights : array_like, optional
        Non-negative row weights (fine cell areas).

    Returns
    -------
    float
        ``1 - sum(w (p - y)^2) / sum(w (y - mean_w(y))^2)``; NaN with fewer than two rows. A constant
        truth gives 1.0 for a perfect prediction and 0.0 otherwise (scikit-learn's ``force_finite``).
    """
    y, p, w = finite_rows(y_true, y_pred, weights)
    # R² of one row is undefined; scikit-learn would warn and return NaN
    if y.size < 2 or no_weight(y, w):
        return float("nan")
    return float(r2_score(y, p, sample_weight=w))


def _moments(y: np.ndarray, p: np.ndarray, w: np.ndarray | None) -> tuple[float, float, float, float, float]:
    """Weighted means and (co)variances: ``(mean_y, mean_p, var_y, var_p, cov_yp)``.

    ``numpy.cov`` with ``aweights`` applies a small-sample correction; the metrics built on these
    moments (r, the KGE's alpha) are ratios in which that factor cancels.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.cov(y, p, aweights=w)
    return float(np.average(y, weights=w)), float(np.average(p, weights=w)), c[0, 0], c[1, 1], c[0, 1]


def pearson_r(y_true, y_pred, weights=None) -> float:
    """Pearson correlation coefficient, area-weighted.

    Parameters
    ----------
    y_true, y_pred : array_like
        Truth and prediction; non-finite rows are skipped.
    weights : array_like, optional
        Non-negative row weights (fine cell areas).

    Returns
    -------
    float
        ``cov_w(y, p) / sqrt(var_w(y) var_w(p))``; NaN with fewer than two rows or a constant field.
    """
    y, p, w = finite_rows(y_true, y_pred, weights)
    if y.size < 2 or no_weight(y, w):
        return float("nan")
    _, _, vy, vp, cyp = _moments(y, p, w)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(cyp / np.sqrt(vy * vp))


def kge_components(y_true, y_pred, weights=None) -> tuple[float, float, float]:
    """The three components of the Kling-Gupta efficiency, area-weighted.

    Parameters
    ----------
    y_true, y_pred : array_like
        Truth and prediction; non-finite rows are skipped.
    weights : array_like, optional
        Non-negative row weights (fine cell areas).

    Returns
    -------
    r : float
        Pearson correlation (:func:`pearson_r`).
    alpha : float
        Variability ratio ``std_w(p) / std_w(y)``.
    beta : float
        Bias ratio ``mean_w(p) / mean_w(y)``.
    """
    y, p, w = finite_rows(y_true, y_pred, weights)
    if y.size < 2 or no_weight(y, w):
        return float("nan"), float("nan"), float("nan")
    my, mp, vy, vp, cyp = _moments(y, p, w)
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(cyp / np.sqrt(vy * vp)), float(np.sqrt(vp / vy)), float(mp / my)


def kge(y_true, y_pred, weights=None) -> float:
    """Kling-Gupta efficiency (Gupta et al. 2009), area-weighted.

    ``KGE = 1 - sqrt((r - 1)^2 + (alpha - 1)^2 + (beta - 1)^2)`` with the components of
    :func:`kge_components`; 1 for a perfect prediction, -0.41 for predicting the mean of the truth
    (Knoben et al. 2019), unbounded below.

    Parameters
    ----------
    y_true, y_pred : array_like
        Truth and prediction; non-finite rows are skipped.
    weights : array_like, optional
        Non-negative row weights (fine cell areas).

    Returns
    -------
    float
        NaN with fewer than two rows, a constant field or a zero mean truth.
    """
    r, alpha, beta = kge_components(y_true, y_pred, weights)
    return float(1.0 - np.sqrt((r - 1.0) ** 2 + (alpha - 1.0) ** 2 + (beta - 1.0) ** 2))


def ssim(truth, pred, *, weights=None, win_size: int = 7, data_range: float | None = None) -> float:
    """Structural similarity index (SSIM) of two 2-D maps with missing cells.

    SSIM is computed by :func:`skimage.metrics.structural_similarity` (uniform ``win_size`` ×
    ``win_size`` windows, ``full=True``) on copies of the maps whose missing cells (non-finite in
    either map) are filled with the mean of the valid truth. The local SSIM is then averaged only
    over the pixels whose whole window is valid, so the fill value never enters the result: a
    window touching a missing cell (sea, no data) is left out rather than scored against made-up
    values. As in scikit-image, the ``(win_size - 1) // 2`` pixels next to the map edges are left
    out too.

    Parameters
    ----------
    truth, pred : array_like
        2-D maps (lat, lon) of the same shape, at least ``win_size`` in each dimension.
    weights : array_like, optional
        2-D cell weights (areas) for the mean of the local SSIM; uniform by default.
    win_size : int
        Odd window side in pixels (scikit-image's default 7).
    data_range : float, optional
        Range of the values, for SSIM's stabilising constants; default: max − min over the valid
        cells of both maps (1 if both are constant).

    Returns
    -------
    float
        Mean local SSIM over fully valid windows, 1 for identical maps; NaN when no window is
        fully valid.
    """
    from scipy.ndimage import uniform_filter
    from skimage.metrics import structural_similarity

    t = np.asarray(truth, dtype=np.float64)
    p = np.asarray(pred, dtype=np.float64)
    if t.ndim != 2 or t.shape != p.shape:
        raise ValueError(f"ssim needs two 2-D maps of the same shape, got {t.shape} and {p.shape}")
    valid = np.isfinite(t) & np.isfinite(p)
    if not valid.any():
        return float("nan")
    fill = float(t[valid].mean())
    t0 = np.where(valid, t, fill)
    p0 = np.where(valid, p, fill)
    if data_range is None:
        both = np.concatenate([t[valid], p[valid]])
        data_range = float(both.max() - both.min()) or 1.0
    _, local = structural_similarity(t0, p0, win_size=win_size, data_range=data_range, full=True)
    # share of valid cells in each window: 1 only where the window holds no missing cell
    # (the filter's running sums round, so compare with a tolerance far below 1/win_size²)
    share = uniform_filter(valid.astype(np.float64), size=win_size, mode="reflect")
    pad = (win_size - 1) // 2
    inner = (slice(pad, t.shape[0] - pad), slice(pad, t.shape[1] - pad))
    full = share[inner] > 1.0 - 1e-6
    if not full.any():
        return float("nan")
    w = None if weights is None else np.broadcast_to(np.asarray(weights, dtype=np.float64), t.shape)[inner][full]
    return float(np.average(local[inner][full], weights=w))


#: The row metrics of a continuous task, by the name the report uses.
CONTINUOUS_METRICS = {"rmse": rmse, "mae": mae, "bias": bias, "r2": r2, "pearson_r": pearson_r, "kge": kge}
