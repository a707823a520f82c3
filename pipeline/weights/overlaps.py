"""Exact 1-D overlaps (``sin φ`` in latitude, periodic radians in longitude) and :func:`compute_weights`.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import InputDataError
from pipeline.grids import Grid, RectilinearGrid, ReducedGrid, check_memory
from pipeline.sphere import sin_lat_diff
from pipeline.weights.types import (
    RowwiseWeights,
    SeparableWeights,
    SparseWeights,
    Weights,
)

#: Bytes per link of general (sparse) weights while they are built: the per-row parts and their
#: concatenation (source, destination, weight).
SPARSE_LINK_BYTES = 48

#: Overlaps shorter than this fraction of the narrower of the two intervals are rounding slivers.
SLIVER = 1e-9


def interval_overlaps(src_lo, src_hi, dst_lo, dst_hi, *, sliver: float = SLIVER):
    """All overlapping (source, destination) pairs of two sorted sets of disjoint intervals.

    Returns ``(isrc, idst, lo, hi)``: indices and the overlap ``[lo, hi]`` of each pair.
    """
    src_lo, src_hi = np.asarray(src_lo, np.float64), np.asarray(src_hi, np.float64)
    dst_lo, dst_hi = np.asarray(dst_lo, np.float64), np.asarray(dst_hi, np.float64)
    j0 = np.searchsorted(dst_hi, src_lo, side="right")  # first destination ending after the source starts
    j1 = np.searchsorted(dst_lo, src_hi, side="left")  # destinations starting before the source ends
    cnt = np.maximum(j1 - j0, 0)
    isrc = np.repeat(np.arange(src_lo.size), cnt)
    start = np.repeat(np.cumsum(cnt) - cnt, cnt)
    idst = np.repeat(j0, cnt) + (np.arange(isrc.size) - start)
    lo = np.maximum(src_lo[isrc], dst_lo[idst])
    hi = np.minimum(src_hi[isrc], dst_hi[idst])
    width = np.minimum(src_hi[isrc] - src_lo[isrc], dst_hi[idst] - dst_lo[idst])
    keep = (hi - lo) > sliver * width
    return isrc[keep], idst[keep], lo[keep], hi[keep]


def lat_links(src_edges, dst_edges):
    """Latitude links ``(isrc, idst, Δ sin φ)`` between two ascending sets of row bounds (degrees)."""
    s, d = np.asarray(src_edges, np.float64), np.asarray(dst_edges, np.float64)
    i, j, lo, hi = interval_overlaps(s[:-1], s[1:], d[:-1], d[1:])
    return i, j, sin_lat_diff(lo, hi)


def lon_links(src_edges, dst_edges):
    """Longitude links ``(isrc, idst, Δλ radians)``, periodic in 360°, between ascending bounds."""
    s, d = np.asarray(src_edges, np.float64), np.asarray(dst_edges, np.float64)
    k = np.floor((s[0] - d[0]) / 360.0)
    base = d + 360.0 * k  # now base[0] <= s[0] < base[0] + 360
    n = d.size - 1
    dlo = np.concatenate([base[:-1], base[:-1] + 360.0])
    dhi = np.concatenate([base[1:], base[1:] + 360.0])
    i, j, lo, hi = interval_overlaps(s[:-1], s[1:], dlo, dhi)
    j = j % n
    if i.size and n:
        # the two copies cannot both overlap one source interval unless dst spans 360 and the source
        # interval straddles the seam, which gives two genuine (distinct) pieces: merge duplicates
        key = i * n + j
        uk, inv = np.unique(key, return_inverse=True)
        if uk.size != key.size:
            w = np.bincount(inv, weights=np.radians(hi - lo))
            return uk // n, uk % n, w
    return i, j, np.radians(hi - lo)


def _row_partitions(grid: Grid):
    """Per row a key of its longitude partition, and key -> bounds."""
    if isinstance(grid, RectilinearGrid):
        return np.zeros(grid.nrows, dtype=np.int64), {0: grid.lon_edges}
    if isinstance(grid, ReducedGrid):
        keys, inv = np.unique(grid.pl, return_inverse=True)
        bounds = {}
        for k, n in enumerate(keys):
            row = int(np.flatnonzero(grid.pl == n)[0])
            bounds[k] = grid.row_lon_bounds(row)
        return inv.astype(np.int64), bounds
    raise InputDataError(f"grid {grid.name}: unsupported grid type {type(grid).__name__}")


def _row_offsets(grid: Grid) -> np.ndarray:
    if isinstance(grid, RectilinearGrid):
        return np.arange(grid.nrows + 1) * grid.shape[1]
    return grid.offsets


def compute_weights(src: Grid, dst: Grid) -> Weights:
    """Exact first-order conservative weights between two grids of latitude-longitude boxes."""
    rows = lat_links(src.lat_bounds, dst.lat_bounds)
    skeys, sb = _row_partitions(src)
    dkeys, db = _row_partitions(dst)
    cols_cache = {}

    def cols(ks, kd):
        if (ks, kd) not in cols_cache:
            cols_cache[(ks, kd)] = lon_links(sb[ks], db[kd])
        return cols_cache[(ks, kd)]

    rsrc, rdst, rw = rows
    nd = int(dkeys.max()) + 1
    pairs = np.unique(skeys[rsrc] * nd + dkeys[rdst])  # the (source, target) row partitions that meet
    nonempty = any(cols(int(k // nd), int(k % nd))[0].size for k in pairs)
    if not nonempty:
        raise InputDataError(
            f"the grids do not overlap: source {src.name} covers lat {src.lat_bounds[0]:g}..{src.lat_bounds[-1]:g}, "
            f"lon {sb[0][0]:g}..{sb[0][-1]:g}; destination {dst.name} covers lat {dst.lat_bounds[0]:g}.."
            f"{dst.lat_bounds[-1]:g}; choose a destination grid (or region) inside the input's extent"
        )
    if isinstance(src, RectilinearGrid) and isinstance(dst, RectilinearGrid):
        return SeparableWeights(src, dst, rows=rows, cols=cols(0, 0))
    if isinstance(src, RectilinearGrid) and isinstance(dst, ReducedGrid):
        groups = []
        for kd in np.unique(dkeys):
            dst_rows = np.flatnonzero(dkeys == kd)
            groups.append((dst_rows, cols(0, int(kd))))
        return RowwiseWeights(src, dst, rows=rows, groups=groups)
    # general: per pair of overlapping rows, the product of their column links
    so, do = _row_offsets(src), _row_offsets(dst)
    n_links = sum(cols(int(skeys[i]), int(dkeys[j]))[0].size for i, j in zip(rsrc, rdst))
    check_memory(float(n_links) * SPARSE_LINK_BYTES, f"weights {src.name} -> {dst.name} ({n_links:,} links)",
                 "choose coarser grids or a smaller region")
    parts = []
    for i, j, w in zip(rsrc, rdst, rw):
        cs, cd, cw = cols(int(skeys[i]), int(dkeys[j]))
        parts.append((so[i] + cs, do[j] + cd, w * cw))
    s, d, w = (np.concatenate(p) for p in zip(*parts))
    return SparseWeights(src, dst, src=s, dst=d, w=w)
