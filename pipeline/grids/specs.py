"""Grid spec strings and named ESM grids: ``parse_grid("tl255")``, ``parse_grid("0.5deg:-10,35,5,45")``,
``parse_grid("file:grid.nc")`` ..., and :func:`list_grids` for ``terrascale grids``.

The grids themselves (types, constructors, areas) are in :mod:`pipeline.grids`; SCRIP grid files
in :mod:`pipeline.grids`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from pipeline.errors import ConfigError, InputDataError
from pipeline.grids.gaussian import (
    _shipped_pl,
    octahedral,
    reduced_gaussian,
    regular_gaussian,
    shipped_point_lists,
)
from pipeline.grids.limits import check_memory
from pipeline.grids.scrip import read_scrip_grid
from pipeline.grids.types import Grid, RectilinearGrid, regular, regular_shape

#: Named ESM grids: name -> (spec, description).
NAMED_GRIDS: dict[str, tuple[str, str]] = {
    "tl63": ("N32", "IFS/EC-Earth TL63 spectral truncation, classic reduced Gaussian N32"),
    "tl95": ("N48", "IFS TL95, classic reduced Gaussian N48"),
    "tl159": ("N80", "IFS/EC-Earth TL159, classic reduced Gaussian N80"),
    "tl255": ("N128", "IFS/EC-Earth TL255 (EC-Earth 3 standard), classic reduced Gaussian N128"),
    "tl319": ("N160", "IFS TL319 (ERA-Interim), classic reduced Gaussian N160"),
    "tl511": ("N256", "IFS TL511, classic reduced Gaussian N256"),
    "tl639": ("N320", "IFS TL639 (ERA5 atmosphere), classic reduced Gaussian N320"),
    "tco199": ("O200", "IFS TCo199 (EC-Earth 4), octahedral reduced Gaussian O200"),
    "tco399": ("O400", "IFS TCo399, octahedral reduced Gaussian O400"),
    "tco1279": ("O1280", "IFS TCo1279 (HRES 9 km), octahedral reduced Gaussian O1280"),
    "r360x180": ("r360x180", "CDO's global 1° grid (cell centres at 0°, 1°, ... 359°E)"),
    "1deg": ("1deg", "regular 1° lat-lon, cell edges on whole degrees, -180..180"),
    "0.5deg": ("0.5deg", "regular 0.5° lat-lon"),
    "0.25deg": ("0.25deg", "regular 0.25° lat-lon"),
}

_SPEC_RE = re.compile(r"^(?P<res>\d*\.?\d+)(?:x(?P<res2>\d*\.?\d+))?deg(?::(?P<region>[-\d.,\s]+))?$")

#: Bytes per cell that any use of a grid allocates at least (the cell boxes: four float64 bounds).
MIN_BYTES_PER_CELL = 32


def _match(s: str):
    """The kind and parameters of a spec string (checked), without building the grid.

    Returns ``("named", spec)``, ``("file", path)``, ``("regular", (res, region, res_lat))``,
    ``("cdo", (nx, ny))`` or ``("gaussian", (letter, n))``.
    """
    low = s.lower()
    if low.startswith("file:"):
        return "file", s[5:]
    if low in NAMED_GRIDS and NAMED_GRIDS[low][0].lower() != low:
        return "named", NAMED_GRIDS[low][0]
    m = _SPEC_RE.match(low)
    if m:
        res = float(m["res"])
        res_lat = float(m["res2"]) if m["res2"] else None
        if res <= 0 or (res_lat is not None and res_lat <= 0):
            raise ConfigError(f"grid spec {s!r}: the resolution must be positive degrees (e.g. 1deg, 0.25deg, 1x0.5deg)")
        region = None
        if m["region"]:
            try:
                region = tuple(float(v) for v in m["region"].split(","))
            except ValueError:
                region = ()
            if len(region) != 4:
                raise ConfigError(f"grid spec {s!r}: the region must be lon_min,lat_min,lon_max,lat_max")
        return "regular", (res, region, res_lat)
    m = re.match(r"^r(\d+)x(\d+)$", low)
    if m:  # CDO's global grids: cell centres at 0, dx, 2dx ... and -90+dy/2 ...
        nx, ny = int(m[1]), int(m[2])
        if nx < 1 or ny < 1:
            raise ConfigError(f"grid spec {s!r}: r<NX>x<NY> needs at least one longitude and one latitude (e.g. r360x180)")
        return "cdo", (nx, ny)
    m = re.match(r"^([fno])(\d+)$", low)
    if m:
        n = int(m[2])
        if n < 1:
            raise ConfigError(f"grid spec {s!r}: the Gaussian grid number N must be >= 1 (e.g. {m[1].upper()}128)")
        if m[1] == "n" and f"N{n}" not in _shipped_pl():
            raise ConfigError(f"grid spec {s!r}: no shipped point list for N{n}; shipped: "
                              f"{', '.join(shipped_point_lists())}; use O{n} (octahedral) or F{n} (regular Gaussian)")
        return "gaussian", (m[1], n)
    if Path(s).suffix in (".nc", ".nc4") and Path(s).exists():
        return "file", s
    raise ConfigError(
        f"unknown grid spec {s!r}; use e.g. 1deg, 0.25deg, 0.5deg:lon0,lat0,lon1,lat1, r360x180, F128, O96, "
        f"N128, file:grid.nc or a named grid ({', '.join(k for k in NAMED_GRIDS if k.startswith('t'))})"
    )


def parse_grid(spec: str | Grid, *, gaussian_bounds: str = "midpoints") -> Grid:
    """A grid from a spec string: ``1deg``, ``0.25deg``, ``0.5deg:-10,35,5,45`` (lon_min,lat_min,
    lon_max,lat_max), ``1x0.5deg`` (lon x lat), ``r360x180``, ``F128``, ``O96``, ``N128``, named
    ESM grids (``tl255``; see :data:`NAMED_GRIDS`) and ``file:path.nc`` (a SCRIP grid file).

    A grid whose cell boxes alone (:data:`MIN_BYTES_PER_CELL`) cannot fit in memory is refused
    before it is built (:func:`check_grid_memory`): building a huge Gaussian grid costs minutes
    of CPU before anything could fail.
    """
    if isinstance(spec, Grid):
        return spec
    s = str(spec).strip()
    kind, args = _match(s)
    if kind == "file":
        return read_scrip_grid(args)
    if kind == "named":
        g = parse_grid(args, gaussian_bounds=gaussian_bounds)
        g.name = s.lower()
        return g
    check_grid_memory(s, MIN_BYTES_PER_CELL, f"grid {s}")
    if kind == "regular":
        res, region, res_lat = args
        return regular(res, region, res_lat=res_lat)
    if kind == "cdo":
        nx, ny = args
        dx = 360.0 / nx
        return RectilinearGrid(name=s.lower(), lat_edges=np.linspace(-90, 90, ny + 1),
                               lon_edges=(np.arange(nx + 1) - 0.5) * dx)
    letter, n = args
    if letter == "f":
        return regular_gaussian(n, gaussian_bounds=gaussian_bounds)
    if letter == "o":
        return octahedral(n, gaussian_bounds=gaussian_bounds)
    return reduced_gaussian(n, gaussian_bounds=gaussian_bounds)


def grid_shape(spec: str | Grid) -> tuple[int, int]:
    """(rows, cells) of a grid spec, checked like :func:`parse_grid` does, without building the grid.

    No Gaussian latitudes are computed and no per-cell array is made, so this is instant also
    for absurd specs (``0.0001deg``, ``F100000``); a SCRIP grid file is asked only for its
    ``grid_dims`` (rows: 0 when the file does not say, a rank-1 grid).

    Parameters
    ----------
    spec : str or Grid
        A spec string as for :func:`parse_grid`, or a grid.

    Returns
    -------
    (int, int)
        Latitude rows and cells.

    Raises
    ------
    ConfigError
        An unknown or invalid spec, as :func:`parse_grid` would.
    """
    if isinstance(spec, Grid):
        return spec.nrows, spec.size
    s = str(spec).strip()
    kind, args = _match(s)
    if kind == "named":
        return grid_shape(args)
    if kind == "file":
        return _file_grid_shape(Path(args))
    if kind == "regular":
        res, region, res_lat = args
        ny, nx = regular_shape(res, region, res_lat=res_lat)
        return ny, ny * nx
    if kind == "cdo":
        nx, ny = args
        return ny, nx * ny
    letter, n = args
    if letter == "f":
        return 2 * n, 8 * n * n
    if letter == "o":
        return 2 * n, 4 * n * n + 36 * n
    pl = _shipped_pl()[f"N{n}"]["pl"]
    return len(pl), int(sum(pl))


def _file_grid_shape(path: Path) -> tuple[int, int]:
    from pipeline.io import open_netcdf

    with open_netcdf(path, "grid file") as ds:
        if "grid_dims" not in ds:
            raise InputDataError(f"grid file {path} is not a SCRIP grid file: it has no grid_dims")
        dims = [int(v) for v in np.asarray(ds["grid_dims"].values).ravel()]
    if not dims or min(dims) < 1:
        raise InputDataError(f"grid file {path}: grid_dims {dims} must be positive sizes")
    return (dims[1] if len(dims) == 2 else 0), int(np.prod(dims, dtype=np.float64))


def check_grid_memory(spec: str | Grid, bytes_per_cell: float, what: str, *, fix: str | None = None,
                      extra_bytes: float = 0.0) -> int:
    """Refuse work on grid ``spec`` that needs ``bytes_per_cell`` per cell when that cannot fit in memory.

    Parameters
    ----------
    spec : str or Grid
        The grid (sized with :func:`grid_shape`, without building it).
    bytes_per_cell : float
        Bytes the work allocates per cell of this grid.
    what : str
        The work, for the message; the cell count is added.
    fix : str, optional
        What to do instead (default: a coarser grid or a smaller region).
    extra_bytes : float
        Bytes the work allocates besides (e.g. for another grid).

    Returns
    -------
    int
        The number of cells.

    Raises
    ------
    ConfigError
        With the estimate and the limit (:func:`pipeline.grids.limits.check_memory`).
    """
    _, cells = grid_shape(spec)
    check_memory(float(cells) * bytes_per_cell + extra_bytes, f"{what} ({cells:,} cells)",
                 fix or "choose a coarser grid or a smaller region")
    return cells


def list_grids() -> list[dict]:
    """The named grids and shipped point lists with their sizes (for ``terrascale grids``)."""
    rows = []
    for name, (spec, desc) in NAMED_GRIDS.items():
        nrows, cells = grid_shape(spec)
        rows.append({"name": name, "spec": spec, "cells": cells, "rows": nrows, "description": desc})
    for key in shipped_point_lists():
        if not any(r["spec"] == key for r in rows):
            nrows, cells = grid_shape(key)
            rows.append({"name": key.lower(), "spec": key, "cells": cells, "rows": nrows,
                         "description": "classic reduced Gaussian (shipped ecCodes point list)"})
    return rows
