"""Exact 1-D overlaps: latitude links in ``sin φ``, longitude links in periodic radians.

Every cell of :mod:`pipeline.grids` is a latitude-longitude box, so every overlap area is the
product of one latitude and one longitude overlap (:mod:`pipeline.weights.overlaps`).
"""

from __future__ import annotations

import numpy as np

from pipeline.sphere import sin_lat_diff

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
