"""Metrics of class maps (LULC): overall accuracy, macro-F1, mean IoU, per-class F1, confusion matrix.

Every function takes ``(y_true, y_pred, weights=None, *, labels)``. ``labels`` is the fixed class
list of the task (e.g. the IGBP values 0..16): it sets the order of the confusion matrix and of
the per-class scores, so that tables of different models, regions and scenarios line up.

Rows
    A row whose truth is not one of ``labels`` (no data, e.g. 255) or whose prediction is NaN is
    skipped, as is a row with a non-finite weight. A prediction that is not NaN and not one of
    ``labels`` raises ``ValueError``: a model can only predict the task's classes, so such a value
    is a bug upstream, not missing data.

Weights
    ``weights`` are the fine cell areas: every count of the confusion matrix is an area, and the
    scores are area shares (scikit-learn's ``sample_weight``).

Macro means
    A class *present* in the evaluated rows is one with area in the truth or in the prediction.
    Classes absent from both are left out of the macro-F1 and the mean IoU (and are NaN in
    :func:`per_class_f1`): their F1 is 0/0, and counting it as 0 or 1 would make the score depend
    on which classes happen to be missing from a region or a season. A class predicted but absent
    from the truth (or the reverse) is present and scores 0.

The weighted confusion matrix is counted once with ``numpy.bincount`` (what scikit-learn's
``confusion_matrix`` does, without its label checks, which cost 0.4 s per million rows); the scores
are then scikit-learn's (``accuracy_score``, ``f1_score``, ``jaccard_score``) applied to the
matrix's cells as rows weighted by their areas, which gives the same values as on the original
rows in milliseconds whatever the number of rows.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, jaccard_score

from pipeline.evaluate.inputs import check_weights, flat


def label_array(labels) -> np.ndarray:
    """The fixed class list as a 1-D array of distinct values.

    Parameters
    ----------
    labels : sequence
        Class values.

    Returns
    -------
    numpy.ndarray
    """
    lab = np.asarray(labels).reshape(-1)
    if lab.size == 0:
        raise ValueError("labels must list at least one class")
    if np.unique(lab).size != lab.size:
        raise ValueError("labels must be distinct")
    return lab


def label_codes(values, labels: np.ndarray) -> np.ndarray:
    """Position of every value in ``labels`` (-1 where it is not one of them).

    Parameters
    ----------
    values : numpy.ndarray
        1-D class values.
    labels : numpy.ndarray
        The fixed class list, any order.

    Returns
    -------
    numpy.ndarray
        int64 codes, -1 for values outside ``labels`` (and NaN).
    """
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    pos = np.clip(np.searchsorted(sorted_labels, values), 0, labels.size - 1)
    hit = sorted_labels[pos] == values
    return np.where(hit, order[pos], -1)


def class_codes(y_true, y_pred, weights, labels) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """Codes (positions in ``labels``) of all rows, their weights and which rows count.

    Parameters
    ----------
    y_true, y_pred : array_like
        Class values, same number of elements.
    weights : array_like or None
        Row weights (fine cell areas).
    labels : numpy.ndarray
        The fixed class list.

    Returns
    -------
    t, p : numpy.ndarray
        int64 codes of every row (-1 outside ``labels``).
    w : numpy.ndarray or None
        The row weights.
    keep : numpy.ndarray
        bool, the rows that count (module docstring).

    Raises
    ------
    ValueError
        A prediction outside ``labels`` on a row whose truth counts.
    """
    yt = flat(y_true, "y_true")
    yp = flat(y_pred, "y_pred")
    if yt.size != yp.size:
        raise ValueError(f"y_true has {yt.size} rows, y_pred has {yp.size}")
    w = check_weights(weights, yt.size)
    t = label_codes(yt, labels)
    p = label_codes(yp, labels)
    keep = t >= 0
    if yp.dtype.kind == "f":
        keep &= ~np.isnan(yp)
    if w is not None:
        keep &= np.isfinite(w)
    bad = keep & (p < 0)
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} predictions are not among the {labels.size} labels (e.g. {yp[bad][0]!r}); "
            "a model can only predict the task's classes"
        )
    return t, p, w, keep


def confusion_matrix(y_true, y_pred, weights=None, *, labels) -> np.ndarray:
    """Area-weighted confusion matrix.

    Parameters
    ----------
    y_true, y_pred : array_like
        Class values; rows are skipped as the module docstring says.
    weights : array_like, optional
        Row weights (fine cell areas); each cell then holds an area.
    labels : sequence
        The fixed class list; sets the order of rows and columns.

    Returns
    -------
    numpy.ndarray
        float64 ``(K, K)``: entry ``[i, j]`` is the weight of rows of true class ``labels[i]``
        predicted as ``labels[j]`` (scikit-learn's orientation); it sums to the total weight of
        the kept rows.
    """
    lab = label_array(labels)
    t, p, w, keep = class_codes(y_true, y_pred, weights, lab)
    if not keep.all():
        t, p, w = t[keep], p[keep], None if w is None else w[keep]
    k = lab.size
    return np.bincount(t * k + p, weights=w, minlength=k * k).astype(np.float64).reshape(k, k)


def _cells(cm: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The non-zero cells of a confusion matrix as (truth, prediction, weight) rows."""
    i, j = np.nonzero(cm)
    return labels[i], labels[j], cm[i, j]


def _present(cm: np.ndarray) -> np.ndarray:
    """Classes with area in the truth or the prediction."""
    return (cm.sum(axis=0) + cm.sum(axis=1)) > 0


def accuracy_from_confusion(cm: np.ndarray, labels) -> float:
    """Overall accuracy of a (weighted) confusion matrix: the area share on its diagonal.

    Parameters
    ----------
    cm : numpy.ndarray
        ``(K, K)`` confusion matrix (:func:`confusion_matrix`).
    labels : sequence
        Its class list.

    Returns
    -------
    float
        NaN for an empty matrix.
    """
    lab = label_array(labels)
    if not cm.sum() > 0:
        return float("nan")
    t, p, w = _cells(cm, lab)
    return float(accuracy_score(t, p, sample_weight=w))


def per_class_f1_from_confusion(cm: np.ndarray, labels) -> np.ndarray:
    """F1 of every class of a (weighted) confusion matrix; NaN for classes absent from both sides.

    Parameters
    ----------
    cm : numpy.ndarray
        ``(K, K)`` confusion matrix.
    labels : sequence
        Its class list.

    Returns
    -------
    numpy.ndarray
        float64 ``(K,)`` in the order of ``labels``.
    """
    lab = label_array(labels)
    out = np.full(lab.size, np.nan)
    present = _present(cm)
    if present.any():
        t, p, w = _cells(cm, lab)
        out[present] = f1_score(t, p, labels=lab[present], average=None, sample_weight=w, zero_division=0.0)
    return out


def macro_f1_from_confusion(cm: np.ndarray, labels) -> float:
    """Macro-averaged F1 of a (weighted) confusion matrix over the present classes.

    Parameters
    ----------
    cm : numpy.ndarray
        ``(K, K)`` confusion matrix.
    labels : sequence
        Its class list.

    Returns
    -------
    float
        NaN for an empty matrix.
    """
    lab = label_array(labels)
    present = _present(cm)
    if not present.any():
        return float("nan")
    t, p, w = _cells(cm, lab)
    return float(f1_score(t, p, labels=lab[present], average="macro", sample_weight=w, zero_division=0.0))


def mean_iou_from_confusion(cm: np.ndarray, labels) -> float:
    """Mean intersection over union (mean Jaccard index) over the present classes.

    Parameters
    ----------
    cm : numpy.ndarray
        ``(K, K)`` confusion matrix.
    labels : sequence
        Its class list.

    Returns
    -------
    float
        NaN for an empty matrix.
    """
    lab = label_array(labels)
    present = _present(cm)
    if not present.any():
        return float("nan")
    t, p, w = _cells(cm, lab)
    return float(jaccard_score(t, p, labels=lab[present], average="macro", sample_weight=w, zero_division=0.0))


def overall_accuracy(y_true, y_pred, weights=None, *, labels) -> float:
    """Overall accuracy: the area share of rows whose class is predicted right.

    Parameters
    ----------
    y_true, y_pred : array_like
        Class values; rows are skipped as the module docstring says.
    weights : array_like, optional
        Row weights (fine cell areas).
    labels : sequence
        The fixed class list.

    Returns
    -------
    float
        NaN without rows.
    """
    return accuracy_from_confusion(confusion_matrix(y_true, y_pred, weights, labels=labels), labels)


def macro_f1(y_true, y_pred, weights=None, *, labels) -> float:
    """Macro-averaged F1 over the classes present in truth or prediction, area-weighted.

    Parameters
    ----------
    y_true, y_pred : array_like
        Class values; rows are skipped as the module docstring says.
    weights : array_like, optional
        Row weights (fine cell areas).
    labels : sequence
        The fixed class list.

    Returns
    -------
    float
        NaN without rows.
    """
    return macro_f1_from_confusion(confusion_matrix(y_true, y_pred, weights, labels=labels), labels)


def mean_iou(y_true, y_pred, weights=None, *, labels) -> float:
    """Mean IoU (mean Jaccard index) over the classes present in truth or prediction, area-weighted.

    Parameters
    ----------
    y_true, y_pred : array_like
        Class values; rows are skipped as the module docstring says.
    weights : array_like, optional
        Row weights (fine cell areas).
    labels : sequence
        The fixed class list.

    Returns
    -------
    float
        NaN without rows.
    """
    return mean_iou_from_confusion(confusion_matrix(y_true, y_pred, weights, labels=labels), labels)


def per_class_f1(y_true, y_pred, weights=None, *, labels) -> pd.Series:
    """F1 of every class, area-weighted; NaN for classes absent from both truth and prediction.

    Parameters
    ----------
    y_true, y_pred : array_like
        Class values; rows are skipped as the module docstring says.
    weights : array_like, optional
        Row weights (fine cell areas).
    labels : sequence
        The fixed class list.

    Returns
    -------
    pandas.Series
        Indexed by ``labels`` (named ``label``), in their order.
    """
    lab = label_array(labels)
    cm = confusion_matrix(y_true, y_pred, weights, labels=lab)
    return pd.Series(per_class_f1_from_confusion(cm, lab), index=pd.Index(lab, name="label"), name="f1")


def categorical_metrics(labels) -> dict:
    """The scalar metrics of a classification task, bound to its class list.

    Parameters
    ----------
    labels : sequence
        The fixed class list.

    Returns
    -------
    dict
        ``{"accuracy", "macro_f1", "miou"}`` → ``metric(y_true, y_pred, weights=None)``
        (:func:`functools.partial` objects, which :mod:`pipeline.evaluate.bootstrap` recognises).
    """
    lab = label_array(labels)
    return {
        "accuracy": partial(overall_accuracy, labels=lab),
        "macro_f1": partial(macro_f1, labels=lab),
        "miou": partial(mean_iou, labels=lab),
    }
