"""First-order conservative remapping weights, and SCRIP / ESMF weight files.

A weight is the **overlap area** (unit sphere, steradians) of a source cell with a destination
cell; nothing is normalised here. A conservative mean is ``Σ w x / Σ w`` over the valid sources
of a destination cell (CDO's ``fracarea`` normalisation), so any per-destination scaling of the
weights, such as the normalised ``remap_matrix`` of a SCRIP file, gives the same result.

Every grid of :mod:`pipeline.grids` is a stack of latitude rows, each split into longitude
intervals, and every cell is a latitude-longitude box. The overlap of two boxes is therefore the
product of a latitude overlap, measured in ``sin φ`` (exact on the sphere), and a longitude
overlap in radians (periodic). That gives three shapes of exact weights:

* :class:`SeparableWeights` (rectilinear → rectilinear): row links ``(rsrc, rdst, Δsin φ)`` and
  column links ``(csrc, cdst, Δλ)``; a 1 km → 1° global pair needs 21 720 + 43 560 links instead of
  933 million.
* :class:`RowwiseWeights` (rectilinear → reduced Gaussian): the row links, and one set of column
  links per distinct number of points per row.
* :class:`SparseWeights` (anything else, and weights read from files): COO links
  ``(src, dst, w)`` over the flat cell indices.

Weight files: :func:`write_weights` writes SCRIP (``src_address``/``dst_address`` 1-based,
``remap_matrix`` normalised with ``fracarea``, grid centres, corners, areas, fractions), which
``cdo remap,<grid>,weights.nc`` applies, or ESMF (``row``/``col``/``S``/``frac_a``/``frac_b`` ...);
:func:`read_weights` reads both, e.g. weights from ``cdo gencon`` or ESMF_RegridWeightGen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.errors import InputDataError
from pipeline.grids import Grid, RectilinearGrid, ReducedGrid, grid_from_scrip, open_netcdf, sin_lat_diff

#: Overlaps shorter than this fraction of the narrower of the two intervals are rounding slivers.
SLIVER = 1e-9


# ----------------------------------------------------------------------------------------------
# 1-D overlaps
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# weight containers
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# computing weights
# ----------------------------------------------------------------------------------------------


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
    nonempty = rsrc.size and any(cols(int(a), int(b))[0].size for a, b in {(skeys[i], dkeys[j]) for i, j in zip(rsrc, rdst)})
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
    parts = []
    for i, j, w in zip(rsrc, rdst, rw):
        cs, cd, cw = cols(int(skeys[i]), int(dkeys[j]))
        parts.append((so[i] + cs, do[j] + cd, w * cw))
    s, d, w = (np.concatenate(p) for p in zip(*parts))
    return SparseWeights(src, dst, src=s, dst=d, w=w)


# ----------------------------------------------------------------------------------------------
# weight files
# ----------------------------------------------------------------------------------------------


def _grid_vars(grid: Grid, prefix: str, dim: str, corner_dim: str, area, frac) -> dict:
    clat, clon = grid.centers()
    klat, klon = grid.corners()
    return {
        f"{prefix}_grid_dims": (f"{prefix}_grid_rank", np.asarray(grid.shape[::-1], dtype=np.int32)),
        f"{prefix}_grid_center_lat": (dim, np.radians(clat.ravel()), {"units": "radians"}),
        f"{prefix}_grid_center_lon": (dim, np.radians(clon.ravel()), {"units": "radians"}),
        f"{prefix}_grid_corner_lat": ((dim, corner_dim), np.radians(klat), {"units": "radians"}),
        f"{prefix}_grid_corner_lon": ((dim, corner_dim), np.radians(klon), {"units": "radians"}),
        f"{prefix}_grid_imask": (dim, np.ones(grid.size, dtype=np.int32), {"units": "unitless"}),
        f"{prefix}_grid_area": (dim, area, {"units": "square radians"}),
        f"{prefix}_grid_frac": (dim, frac, {"units": "unitless"}),
    }


def write_weights(weights: Weights, path, *, format: str = "scrip", history: str | None = None) -> Path:  # noqa: A002
    """Write weights as a SCRIP (default; CDO ``remap``) or ESMF weight file (fracarea-normalised)."""
    import xarray as xr

    from pipeline.io import write

    if weights.src_grid is None or weights.dst_grid is None:
        raise InputDataError("these weights carry no grid description (read from a file without one); cannot write them")
    sp = weights.to_sparse()
    src_area, dst_area = weights.src_area(), weights.dst_area()
    cover_d = np.bincount(sp.dst, weights=sp.w, minlength=weights.n_dst)
    cover_s = np.bincount(sp.src, weights=sp.w, minlength=weights.n_src)
    dst_frac = np.divide(cover_d, dst_area, out=np.zeros_like(cover_d), where=dst_area > 0)
    src_frac = np.divide(cover_s, src_area, out=np.zeros_like(cover_s), where=src_area > 0)
    order = np.lexsort((sp.src, sp.dst))  # sorted by destination, as SCRIP tools expect
    src, dst, w = sp.src[order], sp.dst[order], sp.w[order]
    norm = w / cover_d[dst]  # fracarea: weights of a destination sum to 1
    title = f"terrascale conservative weights {weights.src_grid.name} -> {weights.dst_grid.name}"
    if format == "scrip":
        data = {
            **_grid_vars(weights.src_grid, "src", "src_grid_size", "src_grid_corners", src_area, src_frac),
            **_grid_vars(weights.dst_grid, "dst", "dst_grid_size", "dst_grid_corners", dst_area, dst_frac),
            "src_address": ("num_links", (src + 1).astype(np.int32)),
            "dst_address": ("num_links", (dst + 1).astype(np.int32)),
            "remap_matrix": (("num_links", "num_wgts"), norm[:, None]),
        }
        attrs = {"title": title, "normalization": "fracarea", "map_method": "Conservative remapping",
                 "conventions": "SCRIP", "source_grid": weights.src_grid.name, "dest_grid": weights.dst_grid.name}
    elif format == "esmf":
        data = {"col": ("n_s", (src + 1).astype(np.int32)), "row": ("n_s", (dst + 1).astype(np.int32)), "S": ("n_s", norm),
                "frac_a": ("n_a", src_frac), "frac_b": ("n_b", dst_frac), "area_a": ("n_a", src_area), "area_b": ("n_b", dst_area)}
        for grid, ab in ((weights.src_grid, "a"), (weights.dst_grid, "b")):
            clat, clon = grid.centers()
            klat, klon = grid.corners()
            data.update({f"yc_{ab}": (f"n_{ab}", clat.ravel(), {"units": "degrees"}),
                         f"xc_{ab}": (f"n_{ab}", clon.ravel(), {"units": "degrees"}),
                         f"yv_{ab}": ((f"n_{ab}", f"nv_{ab}"), klat, {"units": "degrees"}),
                         f"xv_{ab}": ((f"n_{ab}", f"nv_{ab}"), klon, {"units": "degrees"}),
                         f"mask_{ab}": (f"n_{ab}", np.ones(grid.size, dtype=np.int32))})
        data["src_grid_dims"] = ("src_grid_rank", np.asarray(weights.src_grid.shape[::-1], dtype=np.int32))
        data["dst_grid_dims"] = ("dst_grid_rank", np.asarray(weights.dst_grid.shape[::-1], dtype=np.int32))
        attrs = {"title": title, "normalization": "fracarea", "map_method": "Conservative remapping",
                 "conventions": "NCAR-CSM", "ESMF_regrid_method": "First-order Conservative"}
    else:
        raise InputDataError(f"unknown weight file format {format!r}; use 'scrip' or 'esmf'")
    ds = xr.Dataset(data, attrs=attrs)
    return write(ds, Path(path), history=history or title)


def _deg(var) -> np.ndarray:
    v = np.asarray(var.values, dtype=np.float64)
    return np.degrees(v) if str(var.attrs.get("units", "radians")).lower().startswith("rad") else v


def _file_grid(dims, clat, clon, klat, klon, name, source):
    """A grid for the destination of a weights file, or None when it is not made of boxes."""
    try:
        return grid_from_scrip(dims, clat, clon, klat, klon, name=name, source=source)
    except InputDataError:
        return None, None


def read_weights(path) -> SparseWeights:
    """Read a SCRIP (CDO ``gen*``, SCRIP, ours) or ESMF (ESMF_RegridWeightGen, xESMF) weight file."""
    path = Path(path)
    with open_netcdf(path, "weights file") as ds:
        norm = str(ds.attrs.get("normalization", "")).lower()
        if "remap_matrix" in ds:
            m = np.asarray(ds["remap_matrix"].values, dtype=np.float64)
            w = m[:, 0] if m.ndim == 2 else m
            src = np.asarray(ds["src_address"].values, dtype=np.int64) - 1
            dst = np.asarray(ds["dst_address"].values, dtype=np.int64) - 1
            sdims = [int(v) for v in ds["src_grid_dims"].values]
            ddims = [int(v) for v in ds["dst_grid_dims"].values]
            get = lambda v: ds[v] if v in ds else None  # noqa: E731
            dst_area, dst_frac, src_area = get("dst_grid_area"), get("dst_grid_frac"), get("src_grid_area")
            gvars = [f"dst_grid_{k}" for k in ("center_lat", "center_lon", "corner_lat", "corner_lon")]
            fmt = "SCRIP"
        elif "S" in ds and "row" in ds and "col" in ds:
            w = np.asarray(ds["S"].values, dtype=np.float64)
            src = np.asarray(ds["col"].values, dtype=np.int64) - 1
            dst = np.asarray(ds["row"].values, dtype=np.int64) - 1
            n_a, n_b = ds.sizes.get("n_a"), ds.sizes.get("n_b")
            sdims = [int(v) for v in ds["src_grid_dims"].values] if "src_grid_dims" in ds else [n_a]
            ddims = [int(v) for v in ds["dst_grid_dims"].values] if "dst_grid_dims" in ds else [n_b]
            dst_area = ds["area_b"] if "area_b" in ds else None
            dst_frac = ds["frac_b"] if "frac_b" in ds else None
            src_area = ds["area_a"] if "area_a" in ds else None
            gvars = ["yc_b", "xc_b", "yv_b", "xv_b"]
            fmt = "ESMF"
            if not norm:
                norm = "destarea"  # ESMF's default for conservative weights
        else:
            raise InputDataError(f"weights file {path} is neither SCRIP (remap_matrix, src_address, dst_address) "
                                 "nor ESMF (S, row, col); make it with `terrascale weights` or `cdo gencon`")
        dst_area = None if dst_area is None else np.asarray(dst_area.values, dtype=np.float64)
        dst_frac = None if dst_frac is None else np.asarray(dst_frac.values, dtype=np.float64)
        src_area = None if src_area is None else np.asarray(src_area.values, dtype=np.float64)
        garr = [_deg(ds[v]) if fmt == "SCRIP" else np.asarray(ds[v].values, np.float64) for v in gvars] if all(v in ds for v in gvars) else None
        centers = tuple(_deg(ds[v]) if fmt == "SCRIP" else np.asarray(ds[v].values, np.float64) for v in gvars[:2]) if all(v in ds for v in gvars[:2]) else None
        title = str(ds.attrs.get("dest_grid", ds.attrs.get("title", "weights destination")))
    n_src, n_dst = int(np.prod(sdims)), int(np.prod(ddims))
    if src.size and (src.min() < 0 or src.max() >= n_src or dst.min() < 0 or dst.max() >= n_dst):
        raise InputDataError(f"weights file {path}: addresses outside the grid sizes ({n_src} source, {n_dst} destination cells)")
    # undo the normalisation, so that w are overlap areas again (the mean does not need it, the
    # valid-area fraction does)
    if dst_area is not None and dst_area.size == n_dst:
        if norm == "fracarea" and dst_frac is not None:
            w = w * (dst_area * dst_frac)[dst]
        elif norm in ("destarea", "fracarea"):
            w = w * dst_area[dst]
    grid, perm = (None, None)
    if garr is not None:
        grid, perm = _file_grid(ddims, *garr, name=title, source=f"weights file {path}")
    shp = lambda d: tuple(int(v) for v in d[::-1])  # noqa: E731  (SCRIP dims are Fortran order)
    return SparseWeights(None, grid, src=src, dst=dst, w=w, shapes=(shp(sdims), shp(ddims)),
                         dst_area_=dst_area, dst_frac_=dst_frac, src_area_=src_area, dst_perm=perm,
                         dst_centers_=centers, source=f"{fmt} weights file {path}")
