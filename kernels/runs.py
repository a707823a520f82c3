"""Column runs: the compact form of the column links of a separable (or row-wise) aggregation.

A run is a stretch of consecutive source columns ``start .. start + length - 1`` that all go to
one target column ``dst`` with (nearly, :data:`RUN_RTOL`) the same weight ``w``. A 1 km source
row onto 1° is 43 560 column links but ~720 runs; onto a reduced Gaussian grid, with one set of
column links per distinct row length, the runs keep the weights small (N128: 43 sets of 43 200
links, 42 MB as links, ~0.5 MB as runs).

Every separable kernel takes ``cols`` either as links ``(csrc, cdst, cw)`` or as a
:class:`ColumnRuns`: the numba kernels work on runs (:func:`col_runs` once per call when given
links), the reference and CUDA kernels expand runs to links (:func:`run_links`). A caller that
makes many calls with the same columns (a streamed aggregation) computes the runs once.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from .arrays import array_module_of

__all__ = ["RUN_RTOL", "ColumnRuns", "check_runs", "col_runs", "run_links"]

#: Column links into one target column whose weights agree to this relative tolerance form one run
#: and use the run's mean weight. The run's total weight is kept (so conservation holds to
#: rounding); each class or value gets ``mean * count`` instead of its own per-column sum, a relative
#: change of at most 2 * RUN_RTOL. Overlaps computed as differences of absolute coordinates carry
#: cancellation noise of ~1e-11 relative for 1 km cells (more for finer ones), which would otherwise
#: split every run into single columns and make the class kernel several times slower.
RUN_RTOL = 1e-9


class ColumnRuns(NamedTuple):
    """Runs of column links: source columns ``start[r] .. start[r] + length[r] - 1`` go to target
    column ``dst[r]``, each with weight ``w[r]`` (int64, int64, int64, float64 arrays)."""

    start: np.ndarray
    length: np.ndarray
    dst: np.ndarray
    w: np.ndarray


@njit(cache=True)
def _is_sorted_pairs(a, b):
    for k in range(1, a.size):
        if a[k] < a[k - 1] or (a[k] == a[k - 1] and b[k] < b[k - 1]):
            return False
    return True


@njit(cache=True)
def _runs_sorted(cs, cd, w, rtol):
    n = cs.size
    j0 = np.empty(n, np.int64)
    ln = np.empty(n, np.int64)
    q = np.empty(n, np.int64)
    wt = np.empty(n, np.float64)
    r = -1
    w0 = 0.0
    wsum = 0.0
    for k in range(n):
        new = True
        if r >= 0 and cs[k] == cs[k - 1] + 1 and cd[k] == cd[k - 1] and abs(w[k] - w0) <= rtol * abs(w0):
            new = False
        if new:
            if r >= 0:
                wt[r] = wsum / ln[r]
            r += 1
            j0[r] = cs[k]
            ln[r] = 0
            q[r] = cd[k]
            w0 = w[k]
            wsum = 0.0
        ln[r] += 1
        wsum += w[k]
    if r >= 0:
        wt[r] = wsum / ln[r]
    return j0[: r + 1], ln[: r + 1], q[: r + 1], wt[: r + 1]


def col_runs(csrc, cdst, cw, rtol: float = RUN_RTOL) -> ColumnRuns:
    """Compress column links into runs of consecutive source columns into one target column.

    Parameters
    ----------
    csrc, cdst : numpy.ndarray
        Source and target column of each link (integers, any order).
    cw : numpy.ndarray
        The links' weights.
    rtol : float
        Links whose weights agree with the run's first to this relative tolerance join it.

    Returns
    -------
    ColumnRuns
        Sorted by source column (then target column); 43 200 links of a 1 km -> 1° grid become
        ~360 runs of 120 columns plus the partial boundary columns.
    """
    csrc = np.ascontiguousarray(csrc, dtype=np.int64)
    cdst = np.ascontiguousarray(cdst, dtype=np.int64)
    cw = np.ascontiguousarray(cw, dtype=np.float64)
    if not _is_sorted_pairs(csrc, cdst):
        order = np.lexsort((cdst, csrc))
        csrc, cdst, cw = csrc[order], cdst[order], cw[order]
    return ColumnRuns(*_runs_sorted(csrc, cdst, cw, rtol))


def check_runs(runs: ColumnRuns, nx: int, n_dst_cols: int) -> ColumnRuns:
    """Return ``runs`` with contiguous int64/float64 arrays of one length, every run inside the
    ``nx`` source columns and every target column in [0, n_dst_cols); ``ValueError`` otherwise."""
    xp = array_module_of(runs.start)
    start, length, dst = (xp.ascontiguousarray(xp.asarray(a), dtype=np.int64) for a in runs[:3])
    w = xp.ascontiguousarray(xp.asarray(runs.w), dtype=np.float64)
    if not (start.ndim == length.ndim == dst.ndim == w.ndim == 1) or len({start.size, length.size, dst.size,
                                                                           w.size}) != 1:
        raise ValueError("column runs must be four 1-D arrays of one length (start, length, dst, w)")
    if start.size:
        if int(length.min()) < 1:
            raise ValueError("column runs must have length >= 1")
        lo, hi = int(start.min()), int((start + length).max())
        if lo < 0 or hi > nx:
            raise ValueError(f"column runs cover source columns [{lo}, {hi}), outside the valid range [0, {nx})")
        dlo, dhi = int(dst.min()), int(dst.max())
        if dlo < 0 or dhi >= n_dst_cols:
            raise ValueError(f"column runs hold target columns in [{dlo}, {dhi}], outside [0, {n_dst_cols})")
    return ColumnRuns(start, length, dst, w)


def run_links(runs: ColumnRuns):
    """The column links ``(csrc, cdst, cw)`` of ``runs``, one per source column of each run
    (on the runs' array module: numpy or CuPy)."""
    xp = array_module_of(runs.start)
    length = runs.length
    n = int(length.sum()) if length.size else 0
    ends = xp.cumsum(length)
    k = xp.arange(n, dtype=np.int64)
    r = xp.searchsorted(ends, k, side="right")  # the run of each link
    first = ends - length
    return runs.start[r] + (k - first[r]), runs.dst[r], runs.w[r]
