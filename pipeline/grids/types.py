"""Grid types: :class:`Grid` (the row interface the weights use), :class:`RectilinearGrid`
(latitude bands x longitude columns) and :class:`ReducedGrid` (Gaussian rows of different
lengths), and :func:`regular` lat-lon grids.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.errors import ConfigError, InputDataError
from pipeline.sphere import EARTH_RADIUS, box_areas


def _regular_count(lo: float, hi: float, res: float, what: str) -> int:
    """Number of ``res``° cells in ``lo..hi``; a :class:`ConfigError` unless it is a whole number."""
    n = (hi - lo) / res
    if not np.isfinite(n):  # e.g. 1e-320deg: no grid, and int(round(inf)) would raise OverflowError
        raise ConfigError(f"a {res:g}° grid has no finite number of cells in the {what} range {lo}..{hi}")
    nr = int(round(n))
    if nr < 1 or abs(n - nr) > 1e-6 * max(1.0, n):
        raise ConfigError(f"the {what} range {lo}..{hi} is not a whole number of {res}° cells")
    return nr


def _regular_edges(lo: float, hi: float, res: float, what: str) -> np.ndarray:
    return np.linspace(lo, hi, _regular_count(lo, hi, res, what) + 1)


def regular_shape(res: float, region: tuple[float, float, float, float] | None = None, *,
                  res_lat: float | None = None) -> tuple[int, int]:
    """(rows, columns) of :func:`regular` with these arguments, checked the same way, without building it."""
    res_lat = res if res_lat is None else res_lat
    if not (res > 0 and res_lat > 0):
        raise ConfigError(f"grid resolution must be positive, got {res}")
    lon_min, lat_min, lon_max, lat_max = region if region is not None else (-180.0, -90.0, 180.0, 90.0)
    if not (lon_min < lon_max and lat_min < lat_max and -90 <= lat_min and lat_max <= 90):
        raise ConfigError(f"bad region {region}: expected lon_min,lat_min,lon_max,lat_max with min < max")
    return (_regular_count(lat_min, lat_max, res_lat, "latitude"), _regular_count(lon_min, lon_max, res, "longitude"))


@dataclass(eq=False)
class Grid:
    """Common interface; see :class:`RectilinearGrid` and :class:`ReducedGrid`."""

    name: str

    # rows (latitude bands), south to north: every grid is a stack of bands, each split into
    # equal-or-not longitude intervals. This "row structure" is what the weights use.
    @property
    def lat_bounds(self) -> np.ndarray:  # (nrows + 1,)
        raise NotImplementedError

    def row_lon_bounds(self, row: int) -> np.ndarray:
        """Longitude bounds (ncols_row + 1, ascending, degrees) of the cells of one row."""
        raise NotImplementedError

    @property
    def nrows(self) -> int:
        return self.lat_bounds.size - 1

    @property
    def shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def is_global(self) -> bool:
        lb = self.lat_bounds
        if abs(lb[0] + 90) > 1e-9 or abs(lb[-1] - 90) > 1e-9:
            return False
        return all(abs(np.ptp(self.row_lon_bounds(r)) - 360.0) < 1e-9 for r in range(self.nrows))

    def boxes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Flat (size,) arrays lat0, lat1, lon0, lon1 of every cell, in the grid's flat order."""
        raise NotImplementedError

    def centers(self) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def cell_areas(self, radius: float = EARTH_RADIUS) -> np.ndarray:
        """Exact spherical areas of the cells, shaped like the grid (m² by default)."""
        return box_areas(*self.boxes(), radius=radius).reshape(self.shape)

    def corners(self) -> tuple[np.ndarray, np.ndarray]:
        """Corner lat, lon, shape (size, 4), counter-clockwise from the south-west corner."""
        lat0, lat1, lon0, lon1 = self.boxes()
        return np.stack([lat0, lat0, lat1, lat1], -1), np.stack([lon0, lon1, lon1, lon0], -1)

    def describe(self) -> str:
        if isinstance(self, ReducedGrid):
            return f"{self.name} ({self.kind}, {self.nrows} rows, {self.size} cells)"
        ny, nx = self.shape
        return f"{self.name} ({getattr(self, 'kind', 'grid')}, {ny} x {nx} = {self.size} cells)"

    def cf_coords(self) -> dict:
        """Coordinates (with CF bounds) for an xarray object on this grid."""
        raise NotImplementedError

    @property
    def dims(self) -> tuple[str, ...]:
        raise NotImplementedError


@dataclass(eq=False)
class RectilinearGrid(Grid):
    """Latitude bands x longitude columns; bounds ascending (degrees)."""

    lat_edges: np.ndarray = field(default=None)
    lon_edges: np.ndarray = field(default=None)
    lat: np.ndarray | None = None  # centres (default: midpoints of the bounds)
    lon: np.ndarray | None = None
    kind: str = "lonlat"  # lonlat | gaussian

    def __post_init__(self):
        self.lat_edges = np.asarray(self.lat_edges, dtype=np.float64)
        self.lon_edges = np.asarray(self.lon_edges, dtype=np.float64)
        for nm, e in (("latitude", self.lat_edges), ("longitude", self.lon_edges)):
            if e.ndim != 1 or e.size < 2 or np.any(np.diff(e) <= 0):
                raise InputDataError(f"grid {self.name}: {nm} bounds must increase strictly (got {e[:4]}...)")
        if self.lat_edges[0] < -90 - 1e-9 or self.lat_edges[-1] > 90 + 1e-9:
            raise InputDataError(f"grid {self.name}: latitude bounds outside [-90, 90]")
        if np.ptp(self.lon_edges) > 360 + 1e-9:
            raise InputDataError(f"grid {self.name}: longitudes span more than 360°")
        self.lat_edges = np.clip(self.lat_edges, -90.0, 90.0)
        if self.lat is None:
            self.lat = 0.5 * (self.lat_edges[1:] + self.lat_edges[:-1])
        if self.lon is None:
            self.lon = 0.5 * (self.lon_edges[1:] + self.lon_edges[:-1])
        self.lat = np.asarray(self.lat, dtype=np.float64)
        self.lon = np.asarray(self.lon, dtype=np.float64)

    @property
    def lat_bounds(self):
        return self.lat_edges

    def row_lon_bounds(self, row):
        return self.lon_edges

    @property
    def shape(self):
        return (self.lat_edges.size - 1, self.lon_edges.size - 1)

    @property
    def dims(self):
        return ("lat", "lon")

    def boxes(self):
        ny, nx = self.shape
        lat0 = np.repeat(self.lat_edges[:-1], nx)
        lat1 = np.repeat(self.lat_edges[1:], nx)
        lon0 = np.tile(self.lon_edges[:-1], ny)
        lon1 = np.tile(self.lon_edges[1:], ny)
        return lat0, lat1, lon0, lon1

    def centers(self):
        lon, lat = np.meshgrid(self.lon, self.lat)
        return lat, lon

    def cf_coords(self):
        lat_b = np.stack([self.lat_edges[:-1], self.lat_edges[1:]], -1)
        lon_b = np.stack([self.lon_edges[:-1], self.lon_edges[1:]], -1)
        return {
            "lat": ("lat", self.lat, {"standard_name": "latitude", "units": "degrees_north",
                                      "long_name": "latitude", "axis": "Y", "bounds": "lat_bnds"}),
            "lon": ("lon", self.lon, {"standard_name": "longitude", "units": "degrees_east",
                                      "long_name": "longitude", "axis": "X", "bounds": "lon_bnds"}),
            "lat_bnds": (("lat", "bnds"), lat_b),
            "lon_bnds": (("lon", "bnds"), lon_b),
        }

    def cdo_griddes(self) -> str:
        """CDO text grid description (``cdo remapcon,grid.txt``) with explicit bounds."""
        ny, nx = self.shape
        fmt = lambda a: "\n  ".join(" ".join(f"{v:.15g}" for v in a[i:i + 6]) for i in range(0, a.size, 6))  # noqa: E731
        if self.kind == "gaussian":
            return (f"gridtype = gaussian\nxsize = {nx}\nysize = {ny}\nnp = {ny // 2}\n"
                    f"xfirst = {self.lon[0]:.15g}\nxinc = {self.lon[1] - self.lon[0]:.15g}\n"
                    f"yvals = {fmt(self.lat[::-1])}\n")
        xb = np.stack([self.lon_edges[:-1], self.lon_edges[1:]], -1).ravel()
        yb = np.stack([self.lat_edges[:-1], self.lat_edges[1:]], -1).ravel()
        return (f"gridtype = lonlat\nxsize = {nx}\nysize = {ny}\nxvals = {fmt(self.lon)}\n"
                f"xbounds = {fmt(xb)}\nyvals = {fmt(self.lat)}\nybounds = {fmt(yb)}\n")


@dataclass(eq=False)
class ReducedGrid(Grid):
    """Gaussian bands (south to north) with ``pl[i]`` equal cells per band; first point at ``lon0``."""

    lat_edges: np.ndarray = field(default=None)
    pl: np.ndarray = field(default=None)
    lat: np.ndarray | None = None
    lon0: float = 0.0
    kind: str = "reduced_gaussian"  # reduced_gaussian | octahedral

    def __post_init__(self):
        self.lat_edges = np.asarray(self.lat_edges, dtype=np.float64)
        self.pl = np.asarray(self.pl, dtype=np.int64)
        if self.pl.ndim != 1 or self.pl.size != self.lat_edges.size - 1 or np.any(self.pl < 1):
            raise InputDataError(f"grid {self.name}: need one positive point count per latitude row "
                                 f"({self.lat_edges.size - 1} rows, got {self.pl.size} counts)")
        if np.any(np.diff(self.lat_edges) <= 0):
            raise InputDataError(f"grid {self.name}: latitude bounds must increase strictly")
        if self.lat is None:
            self.lat = 0.5 * (self.lat_edges[1:] + self.lat_edges[:-1])
        self.offsets = np.concatenate([[0], np.cumsum(self.pl)])

    @property
    def lat_bounds(self):
        return self.lat_edges

    def row_lon_bounds(self, row):
        n = int(self.pl[row])
        return self.lon0 + (np.arange(n + 1) - 0.5) * (360.0 / n)

    @property
    def shape(self):
        return (int(self.offsets[-1]),)

    @property
    def dims(self):
        return ("cell",)

    def boxes(self):
        rows = np.repeat(np.arange(self.nrows), self.pl)
        j = np.arange(self.size) - self.offsets[rows]
        d = 360.0 / self.pl[rows]
        lon0 = self.lon0 + (j - 0.5) * d
        return self.lat_edges[rows], self.lat_edges[rows + 1], lon0, lon0 + d

    def centers(self):
        rows = np.repeat(np.arange(self.nrows), self.pl)
        j = np.arange(self.size) - self.offsets[rows]
        return self.lat[rows], self.lon0 + j * (360.0 / self.pl[rows])

    def cf_coords(self):
        lat, lon = self.centers()
        klat, klon = self.corners()
        return {
            "lat": ("cell", lat, {"standard_name": "latitude", "units": "degrees_north",
                                  "long_name": "latitude", "bounds": "lat_bnds"}),
            "lon": ("cell", lon, {"standard_name": "longitude", "units": "degrees_east",
                                  "long_name": "longitude", "bounds": "lon_bnds"}),
            "lat_bnds": (("cell", "nv"), klat),
            "lon_bnds": (("cell", "nv"), klon),
        }


def regular(res: float, region: tuple[float, float, float, float] | None = None, *,
            res_lat: float | None = None, name: str | None = None) -> RectilinearGrid:
    """Regular lat-lon grid with cell edges on multiples of ``res`` (global: -180..180, -90..90)."""
    regular_shape(res, region, res_lat=res_lat)  # the checks, before any array
    res_lat = res if res_lat is None else res_lat
    lon_min, lat_min, lon_max, lat_max = region if region is not None else (-180.0, -90.0, 180.0, 90.0)
    return RectilinearGrid(
        name=name or (f"{res:g}deg" if region is None else f"{res:g}deg:{lon_min:g},{lat_min:g},{lon_max:g},{lat_max:g}"),
        lat_edges=_regular_edges(lat_min, lat_max, res_lat, "latitude"),
        lon_edges=_regular_edges(lon_min, lon_max, res, "longitude"),
    )
