"""Grid spec strings and named ESM grids: ``parse_grid("tl255")``, ``parse_grid("0.5deg:-10,35,5,45")``,
``parse_grid("file:grid.nc")`` ..., and :func:`list_grids` for ``terrascale grids``.

The grids themselves (types, constructors, areas) are in :mod:`pipeline.grids`; SCRIP grid files
in :mod:`pipeline.grids`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from pipeline.errors import ConfigError
from pipeline.grids.gaussian import (
    _shipped_pl,
    octahedral,
    reduced_gaussian,
    regular_gaussian,
    shipped_point_lists,
)
from pipeline.grids.scrip import read_scrip_grid
from pipeline.grids.types import Grid, RectilinearGrid, regular

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


def parse_grid(spec: str | Grid, *, gaussian_bounds: str = "midpoints") -> Grid:
    """A grid from a spec string: ``1deg``, ``0.25deg``, ``0.5deg:-10,35,5,45`` (lon_min,lat_min,
    lon_max,lat_max), ``1x0.5deg`` (lon x lat), ``r360x180``, ``F128``, ``O96``, ``N128``, named
    ESM grids (``tl255``; see :data:`NAMED_GRIDS`) and ``file:path.nc`` (a SCRIP grid file)."""
    if isinstance(spec, Grid):
        return spec
    s = str(spec).strip()
    if s.lower().startswith("file:"):
        return read_scrip_grid(s[5:])
    low = s.lower()
    if low in NAMED_GRIDS and NAMED_GRIDS[low][0].lower() != low:
        g = parse_grid(NAMED_GRIDS[low][0], gaussian_bounds=gaussian_bounds)
        g.name = low
        return g
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
        return regular(res, region, res_lat=res_lat)
    m = re.match(r"^r(\d+)x(\d+)$", low)
    if m:  # CDO's global grids: cell centres at 0, dx, 2dx ... and -90+dy/2 ...
        nx, ny = int(m[1]), int(m[2])
        if nx < 1 or ny < 1:
            raise ConfigError(f"grid spec {s!r}: r<NX>x<NY> needs at least one longitude and one latitude (e.g. r360x180)")
        dx = 360.0 / nx
        return RectilinearGrid(name=low, lat_edges=np.linspace(-90, 90, ny + 1),
                               lon_edges=(np.arange(nx + 1) - 0.5) * dx)
    m = re.match(r"^([fno])(\d+)$", low)
    if m:
        n = int(m[2])
        if n < 1:
            raise ConfigError(f"grid spec {s!r}: the Gaussian grid number N must be >= 1 (e.g. {m[1].upper()}128)")
        if m[1] == "f":
            return regular_gaussian(n, gaussian_bounds=gaussian_bounds)
        if m[1] == "o":
            return octahedral(n, gaussian_bounds=gaussian_bounds)
        return reduced_gaussian(n, gaussian_bounds=gaussian_bounds)
    if Path(s).suffix in (".nc", ".nc4") and Path(s).exists():
        return read_scrip_grid(s)
    raise ConfigError(
        f"unknown grid spec {s!r}; use e.g. 1deg, 0.25deg, 0.5deg:lon0,lat0,lon1,lat1, r360x180, F128, O96, "
        f"N128, file:grid.nc or a named grid ({', '.join(k for k in NAMED_GRIDS if k.startswith('t'))})"
    )


def _spec_size(spec: str) -> tuple[int, int]:
    """(rows, cells) of a spec without building the grid (no Gaussian latitudes needed)."""
    low = spec.lower()
    if low[0] == "n" and low[1:].isdigit():
        pl = _shipped_pl()[f"N{int(low[1:])}"]["pl"]
        return len(pl), int(sum(pl))
    if low[0] == "o" and low[1:].isdigit():
        n = int(low[1:])
        return 2 * n, 4 * n * n + 36 * n
    g = parse_grid(spec)
    return g.nrows, g.size


def list_grids() -> list[dict]:
    """The named grids and shipped point lists with their sizes (for ``terrascale grids``)."""
    rows = []
    for name, (spec, desc) in NAMED_GRIDS.items():
        nrows, cells = _spec_size(spec)
        rows.append({"name": name, "spec": spec, "cells": cells, "rows": nrows, "description": desc})
    for key in shipped_point_lists():
        if not any(r["spec"] == key for r in rows):
            nrows, cells = _spec_size(key)
            rows.append({"name": key.lower(), "spec": key, "cells": cells, "rows": nrows,
                         "description": "classic reduced Gaussian (shipped ecCodes point list)"})
    return rows
