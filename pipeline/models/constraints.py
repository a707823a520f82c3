"""Hard conservation constraints: fine predictions that reproduce the coarse data exactly.

After Harder et al. (2023, "Hard-constrained deep learning for climate downscaling"), extended
from equal-area pixels to the true spherical cell areas (:func:`pipeline.sphere.box_areas`) and
from one quantity to class probabilities grouped like the coarse data.

LULC (:func:`balance_lulc`)
    Fine class probabilities ``q`` (rows sum to 1) are rescaled so that, in every coarse cell
    ``p`` and for every coarse group ``g`` (the classes the coarse data lumps together),
    ``Σ_{i∈p} a_i Σ_{k∈g} q_ik = F_pg Σ_{i∈p} a_i`` with ``a_i`` the fine cell's area and
    ``F_pg`` the coarse fraction. The solution has the form ``q_ik ∝ p_ik c_{p,g(k)}`` (one
    factor per coarse cell and group, renormalised per row): the model's odds between classes of
    a group and between groups of a cell are kept up to those factors. It is found by Sinkhorn
    iterations (iterative proportional fitting: row sums and block group sums alternate), and the
    few coarse cells where Sinkhorn crawls (a group needed where the model gives it almost no
    probability) are finished by Newton's method on the same fixed point (the convex dual), which
    converges quadratically. Rows sum to 1 to rounding and the group fractions are reproduced to
    ``tol`` (1e-9 by default) in every coarse cell.
LAI (:func:`correct_lai`)
    A multiplicative correction per coarse cell so that the area-weighted mean of the fine LAI
    equals the coarse LAI; exact to rounding, non-negative.

The torch variants (:func:`balance_lulc_torch`, :func:`correct_lai_torch`) are differentiable
layers for training; :func:`balance_lulc_torch` runs a fixed number of Sinkhorn iterations (an
approximation), so models apply the exact NumPy projection at inference.

Every function works on *blocks*: ``parent`` holds each row's coarse cell as an index into the
coarse arrays. A block's constraint only holds over the rows given, so predict whole coarse
cells at once (rows of a coarse cell missing from a call are not accounted for).
"""

from __future__ import annotations

import warnings

import numpy as np
from numba import njit

from pipeline.errors import InputDataError

__all__ = ["balance_lulc", "balance_lulc_torch", "block_means", "correct_lai", "correct_lai_torch"]

# coarse fractions slightly below zero (rounding in the coarse data) are clipped; below this they are an error
_NEGATIVE_SLACK = 1e-9


def _as_blocks(parent, n: int, n_parent: int) -> np.ndarray:
    parent = np.asarray(parent)
    if parent.shape != (n,):
        raise InputDataError(f"parent has shape {parent.shape}; expected ({n},), one coarse cell per row")
    if not np.issubdtype(parent.dtype, np.integer):
        raise InputDataError(f"parent must hold integer coarse cell indices, not {parent.dtype}")
    if n and (parent.min() < 0 or parent.max() >= n_parent):
        raise InputDataError(f"parent indices span [{parent.min()}, {parent.max()}] but there are {n_parent} "
                             "coarse cells; parent must index the rows of the coarse array")
    return parent.astype(np.intp, copy=False)


def _as_area(area, n: int) -> np.ndarray:
    area = np.asarray(area, dtype=np.float64)
    if area.shape != (n,):
        raise InputDataError(f"area has shape {area.shape}; expected ({n},)")
    if not np.all(np.isfinite(area)) or np.any(area < 0):
        raise InputDataError("fine cell areas must be finite and non-negative")
    return area


def block_means(values, parent, area, n_parent: int) -> np.ndarray:
    """Area-weighted mean of ``values`` per block (plain mean where a block's area is 0).

    Parameters
    ----------
    values : array_like
        (n,) or (n, m) row values.
    parent : array_like of int
        (n,) block index of every row.
    area : array_like
        (n,) row weights.
    n_parent : int
        Number of blocks.

    Returns
    -------
    numpy.ndarray
        (n_parent,) or (n_parent, m); NaN for blocks without rows.
    """
    v = np.asarray(values, dtype=np.float64)
    parent = np.asarray(parent, dtype=np.intp)
    area = np.asarray(area, dtype=np.float64)
    v2 = v.reshape(v.shape[0], -1)
    wsum = np.bincount(parent, weights=area, minlength=n_parent)
    count = np.bincount(parent, minlength=n_parent).astype(np.float64)
    # zero-area blocks fall back to the unweighted mean so that their value is still defined
    use_area = wsum > 0
    w = np.where(use_area[parent], area, 1.0)
    den = np.where(use_area, wsum, count)
    out = np.empty((n_parent, v2.shape[1]))
    with np.errstate(invalid="ignore", divide="ignore"):
        for j in range(v2.shape[1]):
            out[:, j] = np.bincount(parent, weights=w * v2[:, j], minlength=n_parent) / den
    return out.reshape((n_parent,) + v.shape[1:])


def _normalise_fractions(coarse_fractions) -> tuple[np.ndarray, np.ndarray]:
    """Fractions renormalised to sum to 1 per coarse cell, and which cells are usable."""
    F = np.asarray(coarse_fractions, dtype=np.float64)
    if F.ndim != 2:
        raise InputDataError(f"coarse_fractions has shape {F.shape}; expected (coarse cells, groups)")
    finite = np.all(np.isfinite(F), axis=1)
    if np.any(F[finite] < -_NEGATIVE_SLACK):
        raise InputDataError(f"coarse group fractions must be non-negative (minimum {np.nanmin(F):g})")
    F = np.where(np.isfinite(F), np.clip(F, 0.0, None), 0.0)
    total = F.sum(axis=1)
    usable = finite & (total > 0)
    # fractions of the valid (land) area of a coarse cell need not sum to 1 in the coarse files
    # (masked classes, rounding); the constraint shares the area of the rows present, so rescale
    F = np.where(usable[:, None], F / np.where(usable, total, 1.0)[:, None], 0.0)
    return F, usable


def lulc_inputs(probs, parent, area, class_group, coarse_fractions):
    """The checked inputs of the LULC constraint and allocation: one set of rules for both.

    Returns
    -------
    tuple
        ``(P, class_group, F, usable, blocks, area)``: ``P`` a float64 copy of ``probs`` (rows,
        classes), finite; ``F`` the normalised fractions and ``usable`` the coarse cells that have
        them (:func:`_normalise_fractions`); ``blocks`` and ``area`` per row.
    """
    P = np.array(probs, dtype=np.float64)
    if P.ndim != 2:
        raise InputDataError(f"probs has shape {P.shape}; expected (rows, classes)")
    n, K = P.shape
    cg = np.asarray(class_group, dtype=np.intp)
    F, usable = _normalise_fractions(coarse_fractions)
    n_parent, G = F.shape
    if cg.shape != (K,) or (K and (cg.min() < 0 or cg.max() >= G)):
        raise InputDataError(f"class_group must give each of the {K} classes a group in [0, {G})")
    blk = _as_blocks(parent, n, n_parent)
    area = _as_area(area, n)
    if not np.all(np.isfinite(P)):
        raise InputDataError("class probabilities must be finite")
    return P, cg, F, usable, blk, area


def balance_lulc(probs, parent, area, class_group, coarse_fractions, *, tol: float = 1e-9, max_iter: int = 50,
                 newton_iter: int = 100, eps: float = 1e-12) -> np.ndarray:
    """Project class probabilities onto the coarse group fractions, exactly.

    Parameters
    ----------
    probs : array_like
        (n, K) non-negative class scores of the fine rows (need not be normalised).
    parent : array_like of int
        (n,) coarse cell of each row, an index into ``coarse_fractions``.
    area : array_like
        (n,) area of each fine cell (any unit; only ratios within a coarse cell matter).
    class_group : array_like of int
        (K,) group index (column of ``coarse_fractions``) of each class.
    coarse_fractions : array_like
        (n_parent, G) fraction of each coarse cell's area in each group. Rows that do not sum to 1
        are renormalised (they share the area of the fine rows present). Coarse cells with a NaN
        or all-zero row are left unconstrained: their rows are only normalised.
    tol : float
        Largest accepted error of a coarse cell's group fraction (absolute, on fractions).
    max_iter : int
        Sinkhorn iterations before the coarse cells still off by more than ``tol`` are handed to
        Newton's method.
    newton_iter : int
        Most Newton iterations; a warning is issued if some coarse cell is still off then.
    eps : float
        Floor of the probability of every class of a group with a positive target, so that a
        solution exists when the model gives a needed group zero probability (the group's area
        then goes where the model sees it least unlikely, spread evenly among its classes).

    Returns
    -------
    numpy.ndarray
        (n, K) probabilities: every row sums to 1, classes of groups with zero coarse fraction get
        0, and for every usable coarse cell ``p`` and group ``g``,
        ``Σ_{i∈p} a_i Σ_{k∈g} q_ik = F_pg Σ_{i∈p} a_i`` to ``tol`` (relative to the cell's area).
    """
    P, cg, F, usable, blk, area = lulc_inputs(probs, parent, area, class_group, coarse_fractions)
    n, K = P.shape
    n_parent, G = F.shape
    if np.any(P < 0):
        raise InputDataError("class probabilities must be finite and non-negative")
    if n == 0:
        return P
    P = _row_normalise(P)
    A = np.bincount(blk, weights=area, minlength=n_parent)
    # a coarse cell whose fine rows have no area has nothing to conserve
    usable = usable & (A > 0)
    T = F * A[:, None]
    active = F > 0
    rows = usable[blk]
    act = active[blk][:, cg] & rows[:, None]
    Pc = np.where(act, np.maximum(P, eps), 0.0)
    Pc[~rows] = P[~rows]
    onehot = np.zeros((K, G))
    onehot[np.arange(K), cg] = 1.0
    S = Pc @ onehot  # (n, G) group scores: the problem only involves groups

    u = np.zeros((n_parent, G))  # log of the group scaling factors
    todo = np.flatnonzero(usable)
    todo = _sinkhorn(S, blk, area, T, A, active, u, todo, tol, max_iter)
    if todo.size:
        todo = _newton(S, blk, area, T, A, active, u, todo, tol, newton_iter)
    if todo.size:
        warnings.warn(f"balance_lulc: {todo.size} coarse cells did not reach the tolerance {tol:g} after "
                      f"{max_iter} Sinkhorn and {newton_iter} Newton iterations", RuntimeWarning, stacklevel=2)
    Q = Pc * _shifted(u, active)[0][blk][:, cg]
    Q[~rows] = P[~rows]
    return _row_normalise(Q)


def _row_normalise(P: np.ndarray) -> np.ndarray:
    s = P.sum(axis=1, keepdims=True)
    out = np.divide(P, s, out=np.zeros_like(P), where=s > 0)
    # a row with no probability at all becomes uniform rather than all zeros
    empty = s[:, 0] <= 0
    if np.any(empty) and P.shape[1]:
        out[empty] = 1.0 / P.shape[1]
    return out


def _masked_max(u: np.ndarray, active: np.ndarray) -> np.ndarray:
    m = np.where(active, u, -np.inf).max(axis=1) if u.shape[1] else np.zeros(u.shape[0])
    return np.where(np.isfinite(m), m, 0.0)


class _Subset:
    """The rows of a set of coarse cells, with the cells renumbered 0..m-1 (compact arrays)."""

    def __init__(self, blocks: np.ndarray, blk: np.ndarray, n_parent: int):
        self.blocks = blocks
        remap = np.full(n_parent, -1, dtype=np.intp)
        remap[blocks] = np.arange(blocks.size)
        local = remap[blk]
        self.rows = np.flatnonzero(local >= 0)
        self.blk = local[self.rows]


# The iterations are memory-bound: fused loops over the rows (one pass, no (n, G) temporaries)
# run them about 20 times faster than the equivalent NumPy expressions.
@njit(cache=True)
def _mass_kernel(S, blk, area, eu, mass):  # pragma: no cover - compiled
    """mass[b, g] = Σ_{i∈b} a_i π_ig with π_ig = S_ig eu_bg / Σ_h S_ih eu_bh."""
    n, G = S.shape
    mass[:] = 0.0
    for i in range(n):
        b = blk[i]
        tot = 0.0
        for g in range(G):
            tot += S[i, g] * eu[b, g]
        if tot > 0.0:
            f = area[i] / tot
            for g in range(G):
                mass[b, g] += S[i, g] * eu[b, g] * f


@njit(cache=True)
def _hessian_kernel(S, blk, area, eu, mass, H):  # pragma: no cover - compiled
    """Masses and the dual's Hessian ``diag(m) − Σ_i a_i π_i π_iᵀ`` per coarse cell."""
    n, G = S.shape
    mass[:] = 0.0
    H[:] = 0.0
    pi = np.empty(G)
    for i in range(n):
        b = blk[i]
        tot = 0.0
        for g in range(G):
            pi[g] = S[i, g] * eu[b, g]
            tot += pi[g]
        if tot > 0.0:
            for g in range(G):
                pi[g] /= tot
                mass[b, g] += area[i] * pi[g]
            for g in range(G):
                for h in range(G):
                    H[b, g, h] -= area[i] * pi[g] * pi[h]
    for b in range(H.shape[0]):
        for g in range(G):
            H[b, g, g] += mass[b, g]


@njit(cache=True)
def _logsum_kernel(S, blk, area, eu, out):  # pragma: no cover - compiled
    """out[b] = Σ_{i∈b} a_i log Σ_h S_ih eu_bh (the first term of the dual)."""
    n, G = S.shape
    out[:] = 0.0
    for i in range(n):
        b = blk[i]
        tot = 0.0
        for g in range(G):
            tot += S[i, g] * eu[b, g]
        if tot > 0.0 and area[i] > 0.0:
            out[b] += area[i] * np.log(tot)


def _shifted(u: np.ndarray, active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """exp(u − max) over the active groups (no overflow) and the max taken out."""
    top = _masked_max(u, active)
    return np.exp(np.minimum(u - top[:, None], 0.0)), top


def _sinkhorn(S, blk, area, T, A, active, u, todo, tol, iters) -> np.ndarray:
    """Sinkhorn updates of ``u`` on the coarse cells ``todo``; return those not converged."""
    it = 0
    while todo.size and it < iters:
        sub = _Subset(todo, blk, u.shape[0])
        s, b, a = np.ascontiguousarray(S[sub.rows]), sub.blk, area[sub.rows]
        ub, Tb, Ab, actb = u[todo], T[todo], A[todo], active[todo]
        logT = np.log(np.where(actb, Tb, 1.0))
        mass = np.empty_like(ub)
        # work on a compacted copy for a few iterations: converged cells drop out and stop costing time
        for _ in range(min(16, iters - it)):
            it += 1
            _mass_kernel(s, b, a, _shifted(ub, actb)[0], mass)
            err = np.max(np.abs(mass - Tb), axis=1) / Ab
            if np.all(err < tol):
                break
            with np.errstate(divide="ignore"):
                ub = ub + np.where(actb, logT - np.log(np.where(actb, mass, 1.0)), 0.0)
        u[todo] = ub
        _mass_kernel(s, b, a, _shifted(ub, actb)[0], mass)
        err = np.max(np.abs(mass - Tb), axis=1) / Ab
        todo = todo[err >= tol]
    return todo


def _newton(S, blk, area, T, A, active, u, todo, tol, iters) -> np.ndarray:
    """Damped Newton on the dual ``f(u) = Σ_i a_i log Σ_h S_ih e^{u_h} − Σ_g T_g u_g`` per coarse cell.

    Its gradient is the group mass minus the target, so its minimum is the fixed point Sinkhorn
    approaches; the Hessian ``diag(m) − Σ_i a_i π_i π_iᵀ`` is singular along the all-ones vector
    (a common factor of all groups changes nothing), which is fixed by adding that direction.
    """
    G = u.shape[1]
    sub = _Subset(todo, blk, u.shape[0])
    s, b, a = np.ascontiguousarray(S[sub.rows]), sub.blk, area[sub.rows]
    ub, Tb, Ab, actb = u[todo].copy(), T[todo], A[todo], active[todo]
    actf = actb.astype(np.float64)
    m = todo.size
    mass = np.empty((m, G))
    H = np.empty((m, G, G))
    logsum = np.empty(m)
    diag = np.arange(G)

    def objective(uu):
        eu, top = _shifted(uu, actb)
        _logsum_kernel(s, b, a, eu, logsum)
        return logsum + Ab * top - np.sum(Tb * np.where(actb, uu, 0.0), axis=1)

    left = np.ones(m, dtype=bool)
    for _ in range(iters):
        _hessian_kernel(s, b, a, _shifted(ub, actb)[0], mass, H)
        grad = (mass - Tb) * actf
        left = np.max(np.abs(grad), axis=1) / Ab >= tol
        if not np.any(left):
            break
        # the all-ones direction over the active groups, and the inactive groups' rows, made regular
        H += Ab[:, None, None] * actf[:, :, None] * actf[:, None, :] / G
        H[:, diag, diag] += (1.0 - actf) * Ab[:, None]
        d = -np.linalg.solve(H, grad[..., None])[..., 0] * actf
        f0 = objective(ub)
        slope = np.sum(grad * d, axis=1)
        t = np.ones(m)
        accepted = ~left
        for _ in range(40):  # backtracking (Armijo) per coarse cell
            cand = ub + t[:, None] * d
            ok = objective(cand) <= f0 + 1e-4 * t * slope + 1e-12 * np.abs(f0)
            ok &= ~accepted
            ub[ok] = cand[ok]
            accepted |= ok
            if accepted.all():
                break
            t = np.where(accepted, t, 0.5 * t)
        ub = ub - _masked_max(ub, actb)[:, None]
    u[todo] = ub
    return todo[left]


def correct_lai(values, parent, area, coarse) -> np.ndarray:
    """Scale fine LAI so that every coarse cell's area-weighted mean equals its coarse LAI.

    Parameters
    ----------
    values : array_like
        (n,) fine LAI predictions; negative values are set to 0 first (LAI is non-negative).
    parent : array_like of int
        (n,) coarse cell of each row, an index into ``coarse``.
    area : array_like
        (n,) fine cell areas.
    coarse : array_like
        (n_parent,) coarse LAI. A NaN leaves that cell's rows uncorrected.

    Returns
    -------
    numpy.ndarray
        (n,) non-negative values with ``Σ_{i∈p} a_i v_i = coarse_p Σ_{i∈p} a_i`` to rounding for
        every coarse cell with rows of positive area; where the fine values of a coarse cell are all
        0 and its coarse LAI is positive, the coarse value is spread uniformly.
    """
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, None)
    n = v.shape[0]
    if v.shape != (n,):
        raise InputDataError(f"values has shape {v.shape}; expected one value per row")
    c = np.asarray(coarse, dtype=np.float64)
    if c.ndim != 1:
        raise InputDataError(f"coarse has shape {c.shape}; expected one value per coarse cell")
    if np.any(c[np.isfinite(c)] < 0):
        raise InputDataError(f"coarse LAI must be non-negative (minimum {np.nanmin(c):g})")
    blk = _as_blocks(parent, n, c.shape[0])
    area = _as_area(area, n)
    if not np.all(np.isfinite(v)):
        raise InputDataError("fine LAI values must be finite")
    A = np.bincount(blk, weights=area, minlength=c.size)
    S = np.bincount(blk, weights=area * v, minlength=c.size)
    ok = np.isfinite(c) & (A > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        factor = np.where(ok & (S > 0), c * A / np.where(S > 0, S, 1.0), 1.0)
    out = v * factor[blk]
    flat = (ok & (S <= 0))[blk]
    out[flat] = c[blk][flat]
    return out


def correct_lai_torch(values, parent, area, coarse):
    """Differentiable :func:`correct_lai` (PyTorch tensors, any device).

    Parameters
    ----------
    values : torch.Tensor
        (n,) non-negative fine LAI (e.g. after a softplus).
    parent : torch.Tensor
        (n,) long: block of each row.
    area : torch.Tensor
        (n,) fine cell areas.
    coarse : torch.Tensor
        (n_parent,) coarse LAI of each block.

    Returns
    -------
    torch.Tensor
        (n,) corrected values; the area-weighted mean of every block is ``coarse``.
    """
    import torch

    n_parent = coarse.shape[0]
    zeros = torch.zeros(n_parent, dtype=values.dtype, device=values.device)
    A = zeros.index_add(0, parent, area)
    S = zeros.index_add(0, parent, area * values)
    ok = torch.isfinite(coarse) & (A > 0)
    c = torch.where(ok, coarse, torch.zeros_like(coarse))
    factor = torch.where(ok & (S > 0), c * A / torch.where(S > 0, S, torch.ones_like(S)), torch.ones_like(S))
    out = values * factor[parent]
    flat = (ok & (S <= 0))[parent]
    return torch.where(flat, c[parent], out)


def balance_lulc_torch(probs, parent, area, class_group, coarse_fractions, *, n_iter: int = 10, eps: float = 1e-6):
    """Differentiable :func:`balance_lulc` with a fixed number of Sinkhorn iterations (training).

    Parameters
    ----------
    probs : torch.Tensor
        (n, K) class probabilities (e.g. a softmax).
    parent : torch.Tensor
        (n,) long: block of each row.
    area : torch.Tensor
        (n,) fine cell areas.
    class_group : torch.Tensor
        (K,) long: group of each class.
    coarse_fractions : torch.Tensor
        (n_parent, G) coarse group fractions (renormalised per block; NaN or all-zero rows leave
        that block unconstrained).
    n_iter : int
        Sinkhorn iterations; the result ends with a row normalisation, so rows sum to 1 and the
        group fractions are approximate (use :func:`balance_lulc` for the exact projection).
    eps : float
        Floor of the probabilities of classes whose group has a positive target.

    Returns
    -------
    torch.Tensor
        (n, K) probabilities.
    """
    import torch

    n_parent, G = coarse_fractions.shape
    K = probs.shape[1]
    F = torch.nan_to_num(coarse_fractions.clamp_min(0), nan=0.0)
    valid_rows = torch.isfinite(coarse_fractions).all(dim=1)
    total = F.sum(dim=1, keepdim=True)
    A = torch.zeros(n_parent, dtype=probs.dtype, device=probs.device).index_add(0, parent, area)
    usable = valid_rows & (total[:, 0] > 0) & (A > 0)
    F = torch.where(usable[:, None], F / total.clamp_min(1e-300), torch.zeros_like(F))
    T = F * A[:, None]
    active = F > 0
    rows = usable[parent]
    act = active[parent][:, class_group] & rows[:, None]
    P = torch.where(act, probs.clamp_min(eps), torch.zeros_like(probs))
    onehot = torch.zeros(K, G, dtype=probs.dtype, device=probs.device)
    onehot[torch.arange(K, device=probs.device), class_group] = 1.0
    # rows of unconstrained blocks are replaced at the end; a dummy 1 keeps their (unused) branch
    # free of 0/0, whose NaN gradient would otherwise leak through torch.where
    S = torch.where(rows[:, None], P @ onehot, torch.ones((), dtype=probs.dtype, device=probs.device))
    idx = (parent[:, None] * G + torch.arange(G, device=probs.device)).reshape(-1)
    u = torch.zeros(n_parent, G, dtype=probs.dtype, device=probs.device)
    tiny = torch.finfo(probs.dtype).tiny
    logT = torch.log(T.clamp_min(tiny))
    for _ in range(n_iter):
        W = S * torch.exp(u)[parent]
        pi = W / W.sum(dim=1, keepdim=True).clamp_min(tiny)
        mass = torch.zeros(n_parent * G, dtype=probs.dtype, device=probs.device)
        mass = mass.index_add(0, idx, (area[:, None] * pi).reshape(-1)).view(n_parent, G)
        u = u + torch.where(active, logT - torch.log(mass.clamp_min(tiny)), torch.zeros_like(u))
        # a common shift of a block's factors changes nothing; keep them near 0 against overflow
        top = torch.where(active, u, torch.full_like(u, -torch.inf)).amax(dim=1, keepdim=True).detach()
        u = u - torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    Q = P * torch.exp(u)[parent][:, class_group]
    Q = torch.where(rows[:, None], Q, probs)
    return Q / Q.sum(dim=1, keepdim=True).clamp_min(tiny)
