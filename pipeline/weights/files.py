"""SCRIP and ESMF weight files: :func:`write_weights` and :func:`read_weights`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import InputDataError
from pipeline.grids import Grid, check_memory, check_netcdf_suffix, grid_from_scrip
from pipeline.io import open_netcdf
from pipeline.weights.types import SparseWeights, Weights

#: Bytes per link :func:`write_weights` allocates: the links, their sort order, the sorted copies,
#: the normalised weights, the 1-based addresses and the NetCDF writer's copy.
LINK_BYTES = 160
#: Bytes per source and destination cell: centres and corners (degrees and radians), the cell
#: boxes, areas, fractions and coverage.
WEIGHTS_BYTES_PER_CELL = 256


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

    path = check_netcdf_suffix(path, "SCRIP and ESMF weight files")
    if weights.src_grid is None or weights.dst_grid is None:
        raise InputDataError("these weights carry no grid description (read from a file without one); cannot write them")
    check_memory(float(weights.n_links) * LINK_BYTES
                 + float(weights.n_src + weights.n_dst) * WEIGHTS_BYTES_PER_CELL,
                 f"writing weights {weights.src_grid.name} -> {weights.dst_grid.name} ({weights.n_links:,} links, "
                 f"{weights.n_src:,} + {weights.n_dst:,} cells)",
                 "choose coarser grids or a smaller region")
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
    return write(ds, path, history=history or title)


def _deg(var, default: str = "radians") -> np.ndarray:
    v = np.asarray(var.values, dtype=np.float64)
    return np.degrees(v) if str(var.attrs.get("units", default)).lower().startswith("rad") else v


def _file_grid(dims, clat, clon, klat, klon, name, source):
    """A grid for the destination of a weights file, or None when it is not made of boxes."""
    try:
        return grid_from_scrip(dims, clat, clon, klat, klon, name=name, source=source)
    except InputDataError:
        return None, None
    except ValueError:  # corner arrays of another shape than the centres: no grid, the links still apply
        return None, None


_FIX = "re-create it with `terrascale weights` or `cdo gencon,<grid> INPUT w.nc`"


class _Checker:
    """Structure checks of one weights file; every message names the file and what is wrong."""

    def __init__(self, ds, path: Path, fmt: str):
        self.ds, self.path, self.fmt = ds, path, fmt

    def fail(self, what: str, fix: str = _FIX):
        raise InputDataError(f"weights file {self.path} ({self.fmt}): {what}; {fix}")

    def need(self, *names: str) -> None:
        missing = [n for n in names if n not in self.ds.variables]
        if missing:
            self.fail(f"the variable(s) {', '.join(missing)} are missing, so the file is incomplete")

    def values(self, name: str, ndim: tuple[int, ...] = (1,)) -> np.ndarray:
        v = np.asarray(self.ds[name].values)
        if v.ndim not in ndim:
            self.fail(f"'{name}' has {v.ndim} dimensions {tuple(self.ds[name].dims)}, expected "
                      f"{' or '.join(map(str, ndim))}")
        return v

    def integers(self, name: str) -> np.ndarray:
        """A 1-D variable of whole numbers (addresses, grid sizes) as int64."""
        v = self.values(name)
        if v.dtype.kind not in "iu":
            f = v.astype(np.float64)
            bad = ~np.isfinite(f) | (f != np.round(f))
            if bad.any():
                k = int(np.flatnonzero(bad)[0])
                self.fail(f"'{name}' holds {int(bad.sum())} value(s) that are not whole numbers (first: {f[k]!r} at "
                          f"index {k}); it must hold cell numbers")
        return v.astype(np.int64)

    def grid_dims(self, name: str, size_dim: str | None) -> list[int]:
        """``src_grid_dims``/``dst_grid_dims`` (positive), checked against the grid size dimension."""
        dims = [int(v) for v in self.integers(name)]
        if not dims or min(dims) < 1:
            self.fail(f"'{name}' is {dims}; grid sizes must be positive")
        n = int(np.prod(dims, dtype=np.float64))
        size = self.ds.sizes.get(size_dim) if size_dim else None
        if size is not None and size != n:
            self.fail(f"'{name}' is {dims} (product {n:,} cells) but the file's dimension '{size_dim}' has {size:,} "
                      "cells; the file is inconsistent")
        return dims

    def same_length(self, n_links: int, **arrays) -> None:
        for name, a in arrays.items():
            if a.shape[0] != n_links:
                self.fail(f"'{name}' has {a.shape[0]:,} entries but there are {n_links:,} links; the link "
                          "variables must have one entry per link")

    def per_cell(self, name: str, n: int, side: str) -> np.ndarray | None:
        """An optional per-cell variable (areas, fractions, centres) as float64; wrong length is an error."""
        if name not in self.ds.variables:
            return None
        v = np.asarray(self.ds[name].values, dtype=np.float64).ravel()
        if v.size != n:
            self.fail(f"'{name}' has {v.size:,} values but the {side} grid has {n:,} cells")
        return v

    def addresses(self, a: np.ndarray, n: int, name: str, side: str) -> None:
        bad = (a < 0) | (a >= n)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            self.fail(f"{int(bad.sum()):,} of the {a.size:,} links have {side} addresses outside 1..{n:,} (the {side} "
                      f"grid size): first '{name}' = {int(a[k]) + 1} at link {k + 1}")

    def weights(self, w: np.ndarray, name: str) -> None:
        bad = ~np.isfinite(w) | (w < 0)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            self.fail(f"{int(bad.sum()):,} of the {w.size:,} weights in '{name}' are NaN, infinite or negative "
                      f"(first: {float(w[k]):g} at link {k + 1}); conservative weights are overlap areas >= 0")


def _centres(ds, names, default_units: str, n: int, chk: _Checker, side: str):
    """(lat, lon) in degrees of a grid of the file, flat, or None when the file does not carry them."""
    if not all(v in ds.variables for v in names):
        return None
    out = []
    for v in names:
        c = _deg(ds[v], default_units).ravel()
        if c.size != n:
            chk.fail(f"'{v}' has {c.size:,} values but the {side} grid has {n:,} cells")
        out.append(c)
    return tuple(out)


def read_weights(path) -> SparseWeights:
    """Read a SCRIP (CDO ``gen*``, SCRIP, ours) or ESMF (ESMF_RegridWeightGen, xESMF) weight file.

    The structure is checked before anything is used: the variables of the format, grid sizes
    that agree with each other (``src_grid_dims``/``dst_grid_dims`` against the grid size
    dimensions and the per-cell variables), one entry per link, addresses inside the grids,
    weights finite and >= 0. Source cell centres (SCRIP ``src_grid_center_lat/lon``, ESMF
    ``yc_a/xc_a``) are kept, so that :func:`pipeline.aggregate.apply_weights` can refuse an input
    on another grid with the same number of cells.

    Raises
    ------
    InputDataError
        Naming the file and what is wrong with it.
    """
    path = Path(path)
    with open_netcdf(path, "weights file") as ds:
        norm = str(ds.attrs.get("normalization", "")).lower()
        if "remap_matrix" in ds.variables or "src_address" in ds.variables:
            fmt = "SCRIP"
            chk = _Checker(ds, path, fmt)
            chk.need("remap_matrix", "src_address", "dst_address", "src_grid_dims", "dst_grid_dims")
            m = chk.values("remap_matrix", (1, 2)).astype(np.float64)
            src = chk.integers("src_address") - 1
            dst = chk.integers("dst_address") - 1
            chk.same_length(src.size, remap_matrix=m, dst_address=dst)
            if m.ndim == 2 and m.shape[1] < 1:
                chk.fail("'remap_matrix' has no weight column (num_wgts = 0)")
            w = m[:, 0] if m.ndim == 2 else m
            sdims = chk.grid_dims("src_grid_dims", "src_grid_size")
            ddims = chk.grid_dims("dst_grid_dims", "dst_grid_size")
            areas = ("dst_grid_area", "dst_grid_frac", "src_grid_area")
            gvars = [f"dst_grid_{k}" for k in ("center_lat", "center_lon", "corner_lat", "corner_lon")]
            svars, units = ("src_grid_center_lat", "src_grid_center_lon"), "radians"
            wname, sname, dname = "remap_matrix", "src_address", "dst_address"
        elif {"S", "row", "col"} & set(ds.variables):
            fmt = "ESMF"
            chk = _Checker(ds, path, fmt)
            chk.need("S", "row", "col")
            w = chk.values("S").astype(np.float64)
            src = chk.integers("col") - 1
            dst = chk.integers("row") - 1
            chk.same_length(src.size, S=w, row=dst)
            if "src_grid_dims" in ds.variables:
                sdims = chk.grid_dims("src_grid_dims", "n_a")
            elif "n_a" in ds.sizes:
                sdims = [int(ds.sizes["n_a"])]
            else:
                chk.fail("the source grid size is missing (neither 'src_grid_dims' nor a dimension 'n_a')")
            if "dst_grid_dims" in ds.variables:
                ddims = chk.grid_dims("dst_grid_dims", "n_b")
            elif "n_b" in ds.sizes:
                ddims = [int(ds.sizes["n_b"])]
            else:
                chk.fail("the destination grid size is missing (neither 'dst_grid_dims' nor a dimension 'n_b')")
            areas = ("area_b", "frac_b", "area_a")
            gvars = ["yc_b", "xc_b", "yv_b", "xv_b"]
            svars, units = ("yc_a", "xc_a"), "degrees"
            wname, sname, dname = "S", "col", "row"
            if not norm:
                norm = "destarea"  # ESMF's default for conservative weights
        else:
            raise InputDataError(f"weights file {path} is neither SCRIP (remap_matrix, src_address, dst_address) "
                                 "nor ESMF (S, row, col); make it with `terrascale weights` or `cdo gencon`")
        n_src, n_dst = int(np.prod(sdims)), int(np.prod(ddims))
        if src.size == 0:
            chk.fail("it has no links (num_links = 0), so every output cell would be empty",
                     "make weights for grids that overlap")
        chk.addresses(src, n_src, sname, "source")
        chk.addresses(dst, n_dst, dname, "destination")
        chk.weights(w, wname)
        dst_area = chk.per_cell(areas[0], n_dst, "destination")
        dst_frac = chk.per_cell(areas[1], n_dst, "destination")
        src_area = chk.per_cell(areas[2], n_src, "source")
        src_centers = _centres(ds, svars, units, n_src, chk, "source")
        centers = _centres(ds, gvars[:2], units, n_dst, chk, "destination")
        garr = None
        if centers is not None and all(v in ds.variables for v in gvars[2:]):
            garr = [*centers, *(_deg(ds[v], units) for v in gvars[2:])]
        title = str(ds.attrs.get("dest_grid", ds.attrs.get("title", "weights destination")))
    # undo the normalisation, so that w are overlap areas again (the mean does not need it, the
    # valid-area fraction does)
    if dst_area is not None:
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
                         dst_centers_=centers, src_centers_=src_centers, source=f"{fmt} weights file {path}")
