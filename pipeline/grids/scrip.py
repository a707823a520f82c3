"""SCRIP grid files: write a grid (``grid_center_lat``, ``grid_corner_lat`` ..., degrees) that CDO
accepts as ``cdo remapcon,grid.nc``, and read one back as a :class:`~pipeline.grids.Grid`.

Only grids whose cells are latitude-longitude boxes in rows can be read (rectilinear, or reduced
rows of equal cells); files are opened with :func:`pipeline.io.open_netcdf`, as the weight files are.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.errors import InputDataError
from pipeline.grids.limits import check_memory
from pipeline.grids.types import Grid, RectilinearGrid, ReducedGrid
from pipeline.io import NETCDF_SUFFIXES, open_netcdf
from pipeline.sphere import EARTH_RADIUS

#: Bytes per cell :func:`write_scrip` allocates: centres, corners, the boxes they come from, areas,
#: mask, and the copy the NetCDF writer makes.
SCRIP_BYTES_PER_CELL = 160

def check_netcdf_suffix(path, what: str) -> Path:
    """Refuse an output path for a SCRIP/ESMF file that is not named as NetCDF (e.g. ``w.zarr``).

    Such files are NetCDF by definition (CDO, ESMF and :func:`read_scrip_grid` read nothing
    else); :func:`pipeline.io.write` would otherwise write a Zarr store nothing can use.
    """
    path = Path(path)
    if path.suffix.lower() not in NETCDF_SUFFIXES:
        raise InputDataError(f"output {path}: {what} are NetCDF files (what CDO and ESMF read), but "
                             f"'{path.suffix or path.name}' is not a NetCDF name; name it {path.stem}.nc")
    return path


def write_scrip(grid: Grid, path, *, radius: float = EARTH_RADIUS) -> Path:
    """Write ``grid`` as a SCRIP grid file (degrees, corners counter-clockwise) that CDO reads.

    The path must be a NetCDF name (``.nc``); a grid whose arrays cannot fit in memory
    (:data:`SCRIP_BYTES_PER_CELL` per cell) is refused before any is made.
    """
    import xarray as xr

    from pipeline.io import write

    path = check_netcdf_suffix(path, "SCRIP grid files")
    check_memory(float(grid.size) * SCRIP_BYTES_PER_CELL, f"writing grid {grid.name} ({grid.size:,} cells)",
                 "choose a coarser grid or a smaller region")
    clat, clon = grid.centers()
    klat, klon = grid.corners()
    dims = list(grid.shape[::-1])  # SCRIP/Fortran order: [nlon, nlat]
    ds = xr.Dataset(
        {
            "grid_dims": ("grid_rank", np.asarray(dims, dtype=np.int32)),
            "grid_center_lat": ("grid_size", clat.ravel(), {"units": "degrees"}),
            "grid_center_lon": ("grid_size", clon.ravel(), {"units": "degrees"}),
            "grid_imask": ("grid_size", np.ones(grid.size, dtype=np.int32)),
            "grid_corner_lat": (("grid_size", "grid_corners"), klat, {"units": "degrees"}),
            "grid_corner_lon": (("grid_size", "grid_corners"), klon, {"units": "degrees"}),
            "grid_area": ("grid_size", grid.cell_areas(1.0).ravel(), {"units": "radians^2"}),
        },
        attrs={"title": grid.name, "Conventions": "SCRIP", "source": "terrascale pipeline.grids"},
    )
    write(ds, path, history=f"terrascale grid {grid.name}")
    return path


def _as_degrees(var) -> np.ndarray:
    v = np.asarray(var.values, dtype=np.float64)
    if str(var.attrs.get("units", "degrees")).lower().startswith("rad"):
        v = np.degrees(v)
    return v


def read_scrip_grid(path) -> Grid:
    """Read a SCRIP grid file whose cells are latitude-longitude boxes (rectilinear or reduced rows).

    Rows may run north to south in the file; the returned grid runs south to north (outputs on it
    are written south to north).
    """
    path = Path(path)
    with open_netcdf(path, "grid file") as ds:
        need = ("grid_dims", "grid_center_lat", "grid_center_lon", "grid_corner_lat", "grid_corner_lon")
        missing = [v for v in need if v not in ds]
        if missing:
            raise InputDataError(f"grid file {path} is not a SCRIP grid file with corners: missing {', '.join(missing)}")
        dims = [int(v) for v in np.asarray(ds["grid_dims"].values).ravel()]
        arrays = [_as_degrees(ds[v]) for v in need[1:]]
        title = str(ds.attrs.get("title", path.stem))
    grid, _ = grid_from_scrip(dims, *arrays, name=title if title != path.stem else f"file:{path}", source=f"grid file {path}")
    return grid


def grid_from_scrip(dims, clat, clon, klat, klon, *, name: str, source: str) -> tuple[Grid, np.ndarray]:
    """Build a grid from SCRIP arrays (degrees). Returns ``(grid, perm)``: ``perm[k]`` is the file's
    flat index of the grid's cell k (the grid runs south to north, the file may not)."""
    clat, clon = np.asarray(clat, np.float64).ravel(), np.asarray(clon, np.float64).ravel()
    klat, klon = np.asarray(klat, np.float64), np.asarray(klon, np.float64)
    fix = (f"{source}: cells are not latitude-longitude boxes in rows; terrascale computes weights only for such "
           "grids; make weights with `cdo gencon,<grid> in.nc w.nc` and pass --weights w.nc")
    if klat.ndim != 2 or klat.shape[1] != 4:
        raise InputDataError(fix)
    k_sorted = np.sort(klat, axis=1)
    if not (np.allclose(k_sorted[:, 0], k_sorted[:, 1], atol=1e-7) and np.allclose(k_sorted[:, 2], k_sorted[:, 3], atol=1e-7)):
        raise InputDataError(fix)
    lat0, lat1 = k_sorted[:, 0], k_sorted[:, 3]
    kl = clon[:, None] + ((klon - clon[:, None] + 180.0) % 360.0 - 180.0)  # unwrap around the centre
    lon0, lon1 = kl.min(1), kl.max(1)
    if len(dims) == 2:
        nx, ny = dims
        if nx * ny != clat.size:
            raise InputDataError(f"{source}: grid_dims {dims} do not match grid_size {clat.size}")
        la0, la1 = lat0.reshape(ny, nx), lat1.reshape(ny, nx)
        lo0, lo1 = lon0.reshape(ny, nx), lon1.reshape(ny, nx)
        # columns may be written in [0, 360) or [-180, 180): make them one ascending run
        base = lo0[0, 0]
        shift = np.where(lo0[0] < base - 1e-9, 360.0, 0.0)
        lo0, lo1 = lo0 + shift, lo1 + shift
        if not (np.allclose(la0, la0[:, :1], atol=1e-7) and np.allclose(lo0, lo0[:1, :], atol=1e-7)
                and np.allclose(lo1, lo1[:1, :], atol=1e-7)):
            raise InputDataError(fix)
        perm = np.arange(ny * nx).reshape(ny, nx)
        if ny > 1 and la0[0, 0] > la0[-1, 0]:
            la0, la1, perm = la0[::-1], la1[::-1], perm[::-1]
        lat_edges = np.concatenate([la0[:, 0], [la1[-1, 0]]])
        lon_edges = np.concatenate([lo0[0], [lo1[0, -1]]])
        lon_edges = np.where(np.abs(lon_edges - np.round(lon_edges, 9)) < 1e-9, np.round(lon_edges, 9), lon_edges)
        grid = RectilinearGrid(name=name, lat_edges=lat_edges, lon_edges=lon_edges,
                               lat=clat[perm[:, 0]], lon=clon.reshape(ny, nx)[0] + shift)
        return grid, perm.ravel()
    # rank 1: consecutive cells sharing a latitude band form a row (reduced Gaussian-like grids)
    brk = np.flatnonzero(~np.isclose(lat0[1:], lat0[:-1], atol=1e-9)) + 1
    starts = np.concatenate([[0], brk])
    pl = np.diff(np.concatenate([starts, [lat0.size]]))
    if starts.size > 1 and lat0[starts[0]] > lat0[starts[-1]]:
        order = np.arange(starts.size)[::-1]
    else:
        order = np.arange(starts.size)
    starts, pl = starts[order], pl[order]
    perm = np.concatenate([np.arange(a, a + n) for a, n in zip(starts, pl)])
    band0, band1 = lat0[starts], lat1[starts]
    order_ok = bool(np.all(np.diff(band0) > 0)) and np.allclose(band1[:-1], band0[1:], atol=1e-7)
    first = clon[starts]
    widths_ok = np.allclose((lon1 - lon0)[perm], np.repeat(360.0 / pl, pl), atol=1e-6)
    spacing_ok = np.allclose(((clon[perm] - np.repeat(first, pl)) % 360.0),
                             (np.arange(perm.size) - np.repeat(np.concatenate([[0], np.cumsum(pl)[:-1]]), pl))
                             * np.repeat(360.0 / pl, pl), atol=1e-6)
    if not (order_ok and widths_ok and spacing_ok and np.allclose(first, first[0], atol=1e-7)):
        raise InputDataError(fix)
    lat_edges = np.concatenate([band0, [band1[-1]]])
    grid = ReducedGrid(name=name, lat_edges=lat_edges, pl=pl, lat=clat[starts], lon0=float(first[0]))
    return grid, perm
