""":func:`compute_weights`: exact conservative weights from the 1-D overlaps of :mod:`pipeline.weights.links`.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import InputDataError
from pipeline.grids import Grid, RectilinearGrid, ReducedGrid, check_memory
from pipeline.weights.links import lat_links, lon_links
from pipeline.weights.types import (
    RowwiseWeights,
    SeparableWeights,
    SparseWeights,
    Weights,
)

#: Bytes per link of general (sparse) weights while they are built: the per-row parts and their
#: concatenation (source, destination, weight).
SPARSE_LINK_BYTES = 48

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
    rowwise = isinstance(src, RectilinearGrid) and isinstance(dst, ReducedGrid)
    # row-wise weights make their column links when asked, so they are checked here without
    # keeping them (a 1 km source onto N128: 43 pairs of 43 200 links)
    nonempty = any((lon_links(sb[ks], db[kd]) if rowwise else cols(ks, kd))[0].size
                   for ks, kd in (divmod(int(k), nd) for k in pairs))
    if not nonempty:
        raise InputDataError(
            f"the grids do not overlap: source {src.name} covers lat {src.lat_bounds[0]:g}..{src.lat_bounds[-1]:g}, "
            f"lon {sb[0][0]:g}..{sb[0][-1]:g}; destination {dst.name} covers lat {dst.lat_bounds[0]:g}.."
            f"{dst.lat_bounds[-1]:g}; choose a destination grid (or region) inside the input's extent"
        )
    if isinstance(src, RectilinearGrid) and isinstance(dst, RectilinearGrid):
        return SeparableWeights(src, dst, rows=rows, cols=cols(0, 0))
    if rowwise:
        return RowwiseWeights(src, dst, rows=rows, groups=[np.flatnonzero(dkeys == kd) for kd in np.unique(dkeys)])
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
