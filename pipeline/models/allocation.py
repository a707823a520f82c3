"""Hard LULC maps that keep the coarse quotas: one class per fine cell from class probabilities.

Taking the most probable class of every cell (argmax) loses the coarse fractions: rare groups
vanish and common ones swell. :func:`allocate_quotas` instead fills, inside every coarse cell,
each group's area quota (its coarse fraction × the area of the fine cells present) with the cells
most likely to belong to it, then picks the most probable class of the group in each cell.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pipeline.models.constraints import lulc_inputs

__all__ = ["allocate_quotas"]


@njit(cache=True)
def _allocate_kernel(S, area, quota, slack, active, order, starts, group):  # pragma: no cover - compiled
    """Greedy quota filling (phase 1) then the leftover cells to the largest deficits (phase 2).

    Phase 1 takes a coarse cell's (cell, group) pairs by descending probability and gives the cell
    to the group if the cell is still free and fits in the group's remaining quota, so no group
    exceeds its quota. A cell left over fitted in no group when its pairs came, so every group's
    deficit is then below that cell's area, and deficits only shrink. Phase 2 gives each leftover
    cell, most probable first, to the group with the largest deficit (positive, as the deficits add
    up to the leftover area): that group ends less than one cell's area over its quota. Hence every
    group ends within one fine cell's area of its quota.
    """
    n_blocks, G = quota.shape
    alloc = np.zeros(G)
    for b in range(n_blocks):
        lo, hi = starts[b], starts[b + 1]
        if hi == lo or not active[b].any():
            continue
        alloc[:] = 0.0
        # the coarse cell's pairs, enumerated by row then group; a stable sort keeps that order on ties
        m = 0
        for g in range(G):
            if active[b, g]:
                m += 1
        rows = np.empty((hi - lo) * m, dtype=np.intp)
        grps = np.empty((hi - lo) * m, dtype=np.intp)
        keys = np.empty((hi - lo) * m)
        j = 0
        for k in range(lo, hi):
            i = order[k]
            for g in range(G):
                if active[b, g]:
                    rows[j] = i
                    grps[j] = g
                    keys[j] = -S[i, g]
                    j += 1
        for j in np.argsort(keys, kind="mergesort"):
            i = rows[j]
            if group[i] >= 0:
                continue
            g = grps[j]
            if alloc[g] + area[i] <= quota[b, g] + slack[b]:
                group[i] = g
                alloc[g] += area[i]
        while True:
            best_g = -1
            best_d = -np.inf
            for g in range(G):
                if active[b, g] and quota[b, g] - alloc[g] > best_d:
                    best_d = quota[b, g] - alloc[g]
                    best_g = g
            pick = -1
            best_s = -np.inf
            for k in range(lo, hi):
                i = order[k]
                if group[i] < 0 and S[i, best_g] > best_s:
                    best_s = S[i, best_g]
                    pick = i
            if pick < 0:
                break
            group[pick] = best_g
            alloc[best_g] += area[pick]


def allocate_quotas(probs, parent, area, class_group, coarse_fractions) -> np.ndarray:
    """One class per fine cell such that every coarse cell's group areas match its fractions.

    Parameters
    ----------
    probs : array_like
        (n, K) class probabilities (or any non-negative scores) of the fine rows.
    parent : array_like of int
        (n,) coarse cell of each row, an index into ``coarse_fractions``.
    area : array_like
        (n,) fine cell areas.
    class_group : array_like of int
        (K,) group (column of ``coarse_fractions``) of each class.
    coarse_fractions : array_like
        (n_parent, G) group fractions of each coarse cell, renormalised to sum to 1 like
        :func:`~pipeline.models.constraints.balance_lulc` does. Coarse cells with a NaN or all-zero
        row get the plain argmax.

    Returns
    -------
    numpy.ndarray
        (n,) class indices (columns of ``probs``, not class codes). In every usable coarse cell the
        area of the cells given to group ``g`` is within one fine cell's area (the largest of the
        cell's rows) of ``F_pg × Σ_{i∈p} a_i``; groups with zero fraction get no cell.

    Notes
    -----
    Inside a coarse cell the (cell, group) pairs are taken in descending group probability
    (a group's probability is the sum of its classes'); ties go to the lower row, then the lower
    group. The class within the chosen group is the group's most probable class in that cell.
    """
    P, cg, F, usable, blk, area = lulc_inputs(probs, parent, area, class_group, coarse_fractions)
    n, K = P.shape
    n_parent, G = F.shape
    if n == 0:
        return np.zeros(0, dtype=np.intp)
    # the most probable class of each group in each cell (-inf where a group has no class)
    best_cls = np.zeros((n, G), dtype=np.intp)
    S = np.zeros((n, G))
    for g in range(G):
        members = np.flatnonzero(cg == g)
        if members.size:
            best_cls[:, g] = members[np.argmax(P[:, members], axis=1)]
            S[:, g] = P[:, members].sum(axis=1)
    A = np.bincount(blk, weights=area, minlength=n_parent)
    quota = F * A[:, None]
    # only groups that have classes can take area; a coarse cell whose positive fractions all lie
    # in class-less groups has no valid allocation and falls back to argmax
    has_cls = np.bincount(cg, minlength=G) > 0
    active = (F > 0) & has_cls[None, :] & usable[:, None]
    usable &= active.any(axis=1)
    order = np.argsort(blk, kind="stable")
    starts = np.searchsorted(blk[order], np.arange(n_parent + 1))
    group = np.full(n, -1, dtype=np.intp)
    group[~usable[blk]] = -2  # not allocated here
    # rounding: a group whose quota equals the area of its cells must still take the last one
    slack = 1e-12 * A
    _allocate_kernel(S, area, quota, slack, active & usable[:, None], order, starts, group)
    out = np.argmax(P, axis=1).astype(np.intp)
    done = group >= 0
    out[done] = best_cls[done, group[done]]
    return out
