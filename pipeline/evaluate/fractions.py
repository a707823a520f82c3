"""Class fractions at the coarse grid: does the fine prediction add up to the coarse input?

The downscaling takes coarse class fractions (per ESM cell, per group such as the PFT groups) and
predicts fine classes. Aggregating the fine prediction back to the coarse cells, area-weighted,
should give the coarse input again: :func:`fraction_mae` measures how far off it is on average
and :func:`conservation_error` the worst case.

Inputs are plain numpy arrays, one row per fine cell:

* ``parent`` — index of the coarse cell (0 .. ``n_parent - 1``) the fine cell lies in; negative
  for fine cells outside the coarse grid, which are skipped;
* ``area`` — fine cell area (the aggregation weights);
* ``pred`` — either per-row class probabilities ``(n_rows, K)`` or a hard map ``(n_rows,)`` of
  class indices 0 .. K-1 (a hard map is a probability of 1 for its class);
* ``class_group`` — ``(K,)`` group index (0 .. G-1) of each class, -1 for a class in no group
  (e.g. water when the groups are land PFTs);
* ``coarse_fractions`` — ``(n_parent, G)`` coarse input fractions; NaN marks a coarse cell or
  group without input, which is skipped.

The aggregate of a coarse cell is ``sum(area * P_group) / sum(area)`` over its fine rows with a
finite prediction, i.e. the fractions of the covered part of the cell (the normalisation of the
aggregation's ``fracarea`` mode). Coarse cells without such rows are skipped.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import mean_absolute_error

from pipeline.evaluate.inputs import check_weights, flat


def group_probabilities(pred, class_group, n_groups: int) -> np.ndarray:
    """Per-row probabilities of the groups: the sum of the probabilities of their classes.

    Parameters
    ----------
    pred : array_like
        ``(n_rows, K)`` class probabilities, or ``(n_rows,)`` class indices 0 .. K-1 (a hard
        map; a negative index marks a row without prediction).
    class_group : array_like
        ``(K,)`` group index of each class, -1 for a class in no group.
    n_groups : int
        Number of groups G.

    Returns
    -------
    numpy.ndarray
        float64 ``(n_rows, G)``; NaN rows where the prediction is missing.
    """
    cg = np.asarray(class_group).reshape(-1).astype(np.int64)
    if np.any(cg >= n_groups) or np.any(cg < -1):
        raise ValueError(f"class_group must hold group indices 0..{n_groups - 1} or -1")
    # class → group membership matrix (K, G); a class in no group has an all-zero row
    member = np.zeros((cg.size, n_groups))
    inside = cg >= 0
    member[np.flatnonzero(inside), cg[inside]] = 1.0
    p = np.asarray(pred)
    if p.ndim == 1:
        if p.dtype.kind not in "iu":
            raise ValueError(f"a hard map must hold integer class indices, got dtype {p.dtype}")
        if np.any(p >= cg.size):
            raise ValueError(f"class indices must be below the {cg.size} classes of class_group")
        out = member[np.clip(p, 0, None)]
        out[p < 0] = np.nan
        return out
    if p.ndim != 2 or p.shape[1] != cg.size:
        raise ValueError(f"probabilities must be (n_rows, {cg.size}), got {p.shape}")
    return p.astype(np.float64, copy=False) @ member


def aggregate_to_parent(parent, area, values, n_parent: int) -> np.ndarray:
    """Area-weighted mean of row values over each coarse cell.

    Parameters
    ----------
    parent : array_like
        ``(n_rows,)`` coarse cell index, negative outside the coarse grid.
    area : array_like
        ``(n_rows,)`` fine cell areas.
    values : array_like
        ``(n_rows,)`` or ``(n_rows, G)`` values; a row with any non-finite value is skipped.
    n_parent : int
        Number of coarse cells.

    Returns
    -------
    numpy.ndarray
        ``(n_parent,)`` or ``(n_parent, G)``; NaN for coarse cells without rows.
    """
    out, _ = _aggregate(parent, area, values, n_parent)
    return out


def _aggregate(parent, area, values, n_parent: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`aggregate_to_parent` and the area of the rows that entered each coarse cell."""
    par = flat(parent, "parent").astype(np.int64)
    a = check_weights(area, par.size)
    v = np.asarray(values, dtype=np.float64)
    if v.ndim not in (1, 2) or v.shape[0] != par.size:
        raise ValueError(f"values must be (n_rows,) or (n_rows, G) with n_rows={par.size}, got {v.shape}")
    one = v.ndim == 1
    v = v.reshape(par.size, -1)
    if np.any(par >= n_parent):
        raise ValueError(f"parent indices must be below n_parent={n_parent}")
    keep = (par >= 0) & np.isfinite(v).all(axis=1) & np.isfinite(a)
    par, a, v = par[keep], a[keep], v[keep]
    total = np.bincount(par, weights=a, minlength=n_parent)
    # one bincount per column: the row loop stays in C and memory stays at one (n_rows,) product
    sums = np.stack([np.bincount(par, weights=a * v[:, g], minlength=n_parent) for g in range(v.shape[1])], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(total[:, None] > 0, sums / total[:, None], np.nan)
    return (out[:, 0] if one else out), total


def predicted_fractions(parent, area, pred, class_group, n_parent: int, n_groups: int) -> np.ndarray:
    """Group fractions of each coarse cell aggregated from the fine prediction.

    Parameters
    ----------
    parent, area, pred, class_group
        See the module docstring.
    n_parent, n_groups : int
        Number of coarse cells and of groups.

    Returns
    -------
    numpy.ndarray
        ``(n_parent, G)``; NaN rows for coarse cells without fine rows.
    """
    return aggregate_to_parent(parent, area, group_probabilities(pred, class_group, n_groups), n_parent)


def _compare(parent, area, pred, class_group, coarse_fractions):
    coarse = np.asarray(coarse_fractions, dtype=np.float64)
    if coarse.ndim != 2:
        raise ValueError(f"coarse_fractions must be (n_parent, G), got shape {coarse.shape}")
    n_parent, n_groups = coarse.shape
    # the area of the rows that entered a coarse cell weights its error: a cell covered by one
    # fine row counts less than one covered by many
    agg, covered = _aggregate(parent, area, group_probabilities(pred, class_group, n_groups), n_parent)
    return agg, coarse, covered


def fraction_mae(parent, area, pred, class_group, coarse_fractions, *, per_group: bool = False):
    """Mean absolute error of the aggregated fine prediction against the coarse input fractions.

    Each coarse cell counts with the fine area it covers (scikit-learn's ``mean_absolute_error``
    with ``sample_weight``), so the error is an area mean like the other metrics; coarse cells or
    groups with a NaN input fraction or without fine rows are skipped.

    Parameters
    ----------
    parent, area, pred, class_group, coarse_fractions
        See the module docstring.
    per_group : bool
        Return one MAE per group instead of their mean.

    Returns
    -------
    float or numpy.ndarray
        The MAE averaged over the groups (``(G,)`` per group with ``per_group``); NaN without data.
    """
    agg, coarse, covered = _compare(parent, area, pred, class_group, coarse_fractions)
    out = np.full(coarse.shape[1], np.nan)
    for g in range(coarse.shape[1]):
        # the valid cells differ per group (a NaN input fraction in one group only)
        ok = np.isfinite(agg[:, g]) & np.isfinite(coarse[:, g]) & (covered > 0)
        if ok.any():
            out[g] = mean_absolute_error(coarse[ok, g], agg[ok, g], sample_weight=covered[ok])
    if per_group:
        return out
    return float(np.nanmean(out)) if np.isfinite(out).any() else float("nan")


def conservation_error(parent, area, pred, class_group, coarse_fractions) -> float:
    """Largest absolute difference between an aggregated fine fraction and the coarse input.

    Parameters
    ----------
    parent, area, pred, class_group, coarse_fractions
        See the module docstring.

    Returns
    -------
    float
        ``max |aggregate - coarse|`` over coarse cells and groups with both values; 0 for a
        prediction that conserves the coarse fractions exactly (up to rounding); NaN without data.
    """
    agg, coarse, _ = _compare(parent, area, pred, class_group, coarse_fractions)
    diff = np.abs(agg - coarse)
    return float(np.nanmax(diff)) if np.isfinite(diff).any() else float("nan")
