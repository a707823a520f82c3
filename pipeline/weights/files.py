"""SCRIP and ESMF weight files: :func:`write_weights` and :func:`read_weights`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import InputDataError
from pipeline.grids import Grid, grid_from_scrip
from pipeline.io import open_netcdf
from pipeline.weights.types import SparseWeights, Weights


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
