"""The weight containers: :class:`SeparableWeights`, :class:`RowwiseWeights`, :class:`SparseWeights`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.grids import Grid
from pipeline.weights.links import lon_links


@dataclass(eq=False)
class Weights:
    """Base class: source/destination grids (or shapes) and the per-destination covered area."""

    src_grid: Grid | None
    dst_grid: Grid | None

    @property
    def src_shape(self) -> tuple[int, ...]:
        return self.src_grid.shape

    @property
    def dst_shape(self) -> tuple[int, ...]:
        return self.dst_grid.shape

    @property
    def n_src(self) -> int:
        return int(np.prod(self.src_shape))

    @property
    def n_dst(self) -> int:
        return int(np.prod(self.dst_shape))

    @property
    def n_links(self) -> int:
        """Number of (source, destination) links, without making them (:meth:`to_sparse` does)."""
        raise NotImplementedError

    def to_sparse(self) -> "SparseWeights":
        raise NotImplementedError

    def dst_cover(self) -> np.ndarray:
        """Σ_src w per destination cell (flat): the area of the cell covered by the source grid."""
        sp = self.to_sparse()
        return np.bincount(sp.dst, weights=sp.w, minlength=self.n_dst)

    def src_cover(self) -> np.ndarray:
        sp = self.to_sparse()
        return np.bincount(sp.src, weights=sp.w, minlength=self.n_src)

    def dst_area(self) -> np.ndarray:
        """Destination cell areas on the unit sphere (flat)."""
        return self.dst_grid.cell_areas(1.0).ravel()

    def src_area(self) -> np.ndarray:
        return self.src_grid.cell_areas(1.0).ravel()


@dataclass(eq=False)
class SeparableWeights(Weights):
    """Rectilinear → rectilinear: weight of (i, j) → (p, q) is rw[i→p] * cw[j→q]."""

    rows: tuple[np.ndarray, np.ndarray, np.ndarray] = None
    cols: tuple[np.ndarray, np.ndarray, np.ndarray] = None

    @property
    def n_links(self) -> int:
        return int(self.rows[0].size) * int(self.cols[0].size)

    def to_sparse(self) -> "SparseWeights":
        rsrc, rdst, rw = self.rows
        csrc, cdst, cw = self.cols
        ny, nx = self.src_shape
        my, mx = self.dst_shape
        src = (rsrc[:, None] * nx + csrc[None, :]).ravel()
        dst = (rdst[:, None] * mx + cdst[None, :]).ravel()
        return SparseWeights(self.src_grid, self.dst_grid, src=src, dst=dst, w=(rw[:, None] * cw[None, :]).ravel())

    def dst_cover(self):
        _, rdst, rw = self.rows
        _, cdst, cw = self.cols
        my, mx = self.dst_shape
        r = np.bincount(rdst, weights=rw, minlength=my)
        c = np.bincount(cdst, weights=cw, minlength=mx)
        return (r[:, None] * c[None, :]).ravel()

    def src_cover(self):
        rsrc, _, rw = self.rows
        csrc, _, cw = self.cols
        ny, nx = self.src_shape
        return (np.bincount(rsrc, weights=rw, minlength=ny)[:, None] * np.bincount(csrc, weights=cw, minlength=nx)[None, :]).ravel()


@dataclass(eq=False)
class RowwiseWeights(Weights):
    """Rectilinear → reduced grid: row links, and the groups of destination rows that share one
    longitude partition (the same number of points per row). ``groups`` holds each group's rows.

    A group's column links are made when asked (:meth:`group_cols`, a few ms for a 1 km source)
    rather than held: a 1 km source onto N128 has 43 groups of 43 200 links, 42 MB that a
    streamed aggregation would otherwise keep for its whole run (it keeps their runs instead,
    :func:`pipeline.aggregate.bind_plan`).
    """

    rows: tuple[np.ndarray, np.ndarray, np.ndarray] = None
    groups: list[np.ndarray] = field(default_factory=list)

    def group_cols(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The column links ``(csrc, cdst, Δλ)`` of group ``k``: the source columns onto the
        partition of its rows (all rows of a group share it)."""
        first = int(self.groups[k][0])
        return lon_links(self.src_grid.lon_edges, self.dst_grid.row_lon_bounds(first))

    def group_rows(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The row links into group ``k``, their destination renumbered to the group's rows."""
        rsrc, rdst, rw = self.rows
        pos = np.full(self.dst_grid.nrows, -1, dtype=np.int64)
        pos[self.groups[k]] = np.arange(self.groups[k].size)
        sel = pos[rdst] >= 0
        return rsrc[sel], pos[rdst[sel]], rw[sel]

    def group_ncols(self, k: int) -> int:
        """Points per row of group ``k``."""
        return int(self.dst_grid.pl[self.groups[k][0]])

    @property
    def n_links(self) -> int:
        return sum(int(self.group_rows(k)[0].size) * int(self.group_cols(k)[0].size) for k in range(len(self.groups)))

    def to_sparse(self):
        nx = self.src_shape[1]
        offs = self.dst_grid.offsets
        parts = []
        for k, dst_rows in enumerate(self.groups):
            rs, rg, rw = self.group_rows(k)
            cs, cd, cw = self.group_cols(k)
            src = (rs[:, None] * nx + cs[None, :]).ravel()
            dst = (offs[dst_rows[rg]][:, None] + cd[None, :]).ravel()
            parts.append((src, dst, (rw[:, None] * cw[None, :]).ravel()))
        src, dst, w = (np.concatenate(p) for p in zip(*parts)) if parts else (np.zeros(0, np.int64),) * 2 + (np.zeros(0),)
        return SparseWeights(self.src_grid, self.dst_grid, src=src, dst=dst, w=w)


@dataclass(eq=False)
class SparseWeights(Weights):
    """COO links over flat cell indices (0-based), weights = overlap areas (or per-destination
    scaled versions of them, e.g. a normalised SCRIP remap_matrix)."""

    src: np.ndarray = None
    dst: np.ndarray = None
    w: np.ndarray = None
    shapes: tuple | None = None  # (src_shape, dst_shape) when there are no grid objects
    dst_area_: np.ndarray | None = None  # from a weights file
    dst_frac_: np.ndarray | None = None
    src_area_: np.ndarray | None = None
    dst_perm: np.ndarray | None = None  # dst_grid cell k is file cell dst_perm[k]
    dst_centers_: tuple | None = None  # (lat, lon) degrees, file order, from a weights file
    src_centers_: tuple | None = None  # (lat, lon) degrees of the source cells, file order, from a weights file
    source: str = "computed"

    def __post_init__(self):
        self.src = np.ascontiguousarray(self.src, dtype=np.int64)
        self.dst = np.ascontiguousarray(self.dst, dtype=np.int64)
        self.w = np.ascontiguousarray(self.w, dtype=np.float64)

    @property
    def src_shape(self):
        return self.shapes[0] if self.shapes else self.src_grid.shape

    @property
    def dst_shape(self):
        return self.shapes[1] if self.shapes else self.dst_grid.shape

    @property
    def n_links(self) -> int:
        return int(self.src.size)

    def to_sparse(self):
        return self

    def dst_area(self):
        if self.dst_area_ is not None:
            return self.dst_area_
        return super().dst_area()

    def src_area(self):
        if self.src_area_ is not None:
            return self.src_area_
        return super().src_area()
