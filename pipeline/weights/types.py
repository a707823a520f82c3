"""The weight containers: :class:`SeparableWeights`, :class:`RowwiseWeights`, :class:`SparseWeights`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.grids import Grid


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
    """Rectilinear → reduced grid: row links, and per group of destination rows with the same
    longitude partition one set of column links. ``groups`` holds ``(dst_rows, cols)``."""

    rows: tuple[np.ndarray, np.ndarray, np.ndarray] = None
    groups: list = field(default_factory=list)

    def group_links(self):
        """Per group: ``(dst_rows, rows_sub, cols, ncols)`` where rows_sub maps into group rows."""
        rsrc, rdst, rw = self.rows
        out = []
        for dst_rows, cols in self.groups:
            pos = np.full(self.dst_grid.nrows, -1, dtype=np.int64)
            pos[dst_rows] = np.arange(dst_rows.size)
            sel = pos[rdst] >= 0
            ncols = int(self.dst_grid.pl[dst_rows[0]])
            out.append((dst_rows, (rsrc[sel], pos[rdst[sel]], rw[sel]), cols, ncols))
        return out

    @property
    def n_links(self) -> int:
        return sum(int(rows[0].size) * int(cols[0].size) for _, rows, cols, _ in self.group_links())

    def to_sparse(self):
        nx = self.src_shape[1]
        offs = self.dst_grid.offsets
        parts = []
        for dst_rows, (rs, rg, rw), (cs, cd, cw), _ in self.group_links():
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
