"""Earth-system-model grids: cell centres, bounds/corners and exact spherical cell areas.

Two grid types cover the grids ESMs use on the land side:

* :class:`RectilinearGrid`: latitude bands x longitude columns, every cell a latitude-longitude
  box. Regular lat-lon (``1deg``, ``0.25deg``, regional ``0.1deg:-10,35,5,45``, CDO's
  ``r360x180``) and regular Gaussian ``F<N>`` grids (4N x 2N, first longitude at 0).
* :class:`ReducedGrid`: Gaussian latitude bands with a different number of equally spaced cells
  per band: octahedral ``O<N>`` (20 + 4i points in the i-th row from the pole) and classic reduced
  Gaussian ``N<N>`` from a point list (shipped for N32 ... N640, derived from ecCodes' GRIB
  samples by ``grids_data/make_pl.py``). ECMWF convention: the first point of every row at 0°E,
  cells centred on their points.

Internally every grid is stored south to north; cell areas are exact for latitude-longitude
bounded cells, ``R² Δλ (sin φ2 − sin φ1)``, computed as ``2 cos((φ1+φ2)/2) sin((φ2−φ1)/2)`` so
that thin polar cells keep full relative precision. Global grids' areas sum to 4πR².

Gaussian latitudes are the roots of the Legendre polynomial P_2N
(:func:`numpy.polynomial.legendre.leggauss`). Gaussian cell latitude bounds follow CDO by default
(``gaussian_bounds="midpoints"``: midpoints between neighbouring Gaussian latitudes, ±90° at the
poles). CDO 2.1's own ``F<N>`` grids differ only in the outermost bounds, which it extrapolates
instead of putting at the poles: ``gaussian_bounds="cdo"`` reproduces that (``cdo remapcon`` onto
our SCRIP grid file matches the default exactly). ``gaussian_bounds="weights"`` instead puts the bounds where the cells' sin-latitude extents
equal the Gaussian quadrature weights (so a cell's area is exactly its quadrature weight times
2πR²/nlon, the convention of the IFS spectral transforms).

Grids are written to and read from SCRIP grid files (``grid_center_lat``, ``grid_corner_lat`` ...,
degrees; :mod:`pipeline.scrip`), which CDO accepts as ``cdo remapcon,grid.nc``; :meth:`Grid.cdo_griddes`
writes CDO's text grid description for rectilinear grids. Spec strings and named ESM grids
(:func:`parse_grid`, :data:`NAMED_GRIDS`) are in :mod:`pipeline.grid_specs`, the source grid of a
data array (:func:`source_axes`) in :mod:`pipeline.source_grid`; all are re-exported here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from pipeline.errors import ConfigError, InputDataError

#: Earth radius (m) used for cell areas in output files (CDO's default PlanetRadius).
EARTH_RADIUS = 6_371_000.0


_PL_FILE = Path(__file__).with_name("grids_data") / "reduced_gg_pl.json"


# ----------------------------------------------------------------------------------------------
# elementary geometry
# ----------------------------------------------------------------------------------------------


def sin_lat_diff(lat0, lat1):
    """sin φ1 − sin φ0 (degrees in) without cancellation: 2 cos((φ0+φ1)/2) sin((φ1−φ0)/2)."""
    lat0 = np.radians(np.asarray(lat0, dtype=np.float64))
    lat1 = np.radians(np.asarray(lat1, dtype=np.float64))
    return 2.0 * np.cos(0.5 * (lat0 + lat1)) * np.sin(0.5 * (lat1 - lat0))


@lru_cache(maxsize=32)
def _gauss_legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Roots x (ascending) and weights of the Legendre polynomial P_2n."""
    m = 2 * n
    if m <= 512:
        return np.polynomial.legendre.leggauss(m)
    # leggauss solves an O(m^3) eigenproblem (minutes for O1280); Newton on the three-term
    # recurrence from the classic asymptotic first guess converges to the same roots in O(m^2).
    k = np.arange(1, m + 1)
    x = np.cos(np.pi * (k - 0.25) / (m + 0.5))
    for _ in range(100):
        p0, p1 = np.ones_like(x), x.copy()
        for j in range(2, m + 1):
            p0, p1 = p1, ((2 * j - 1) * x * p1 - (j - 1) * p0) / j
        dp = m * (x * p1 - p0) / (x * x - 1.0)
        dx = p1 / dp
        x = x - dx
        if np.abs(dx).max() < 1e-15:
            break
    p0, p1 = np.ones_like(x), x.copy()
    for j in range(2, m + 1):
        p0, p1 = p1, ((2 * j - 1) * x * p1 - (j - 1) * p0) / j
    dp = m * (x * p1 - p0) / (x * x - 1.0)
    w = 2.0 / ((1.0 - x * x) * dp * dp)
    return x[::-1].copy(), w[::-1].copy()


def gaussian_latitudes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The 2N Gaussian latitudes (degrees, ascending) and quadrature weights (summing to 2).

    Roots of P_2N from :func:`numpy.polynomial.legendre.leggauss` (Newton iteration for N > 256).
    """
    if n < 1:
        raise ConfigError(f"Gaussian grid number N must be >= 1, got {n}")
    x, w = _gauss_legendre(int(n))
    return np.degrees(np.arcsin(x)), w.copy()


def gaussian_lat_bounds(n: int, convention: str = "midpoints") -> np.ndarray:
    """2N+1 latitude bounds (degrees, ascending) of Gaussian cells.

    ``midpoints``: halfway between neighbouring Gaussian latitudes, ±90° at the ends (areas sum
    to the sphere's).
    ``weights``: sin-latitude bounds at the cumulative sums of the Gaussian weights.
    ``cdo``: what CDO 2.1 uses for its own ``F<N>`` grids: interior midpoints, but the two outer
    bounds extrapolated (``2 φ_1 − mid``, clipped to ±90°), so polar caps stay uncovered (checked
    against ``cdo gencon,F8``: its first-row area is Δλ (sin 87.0586° − sin 76.2426°)).
    """
    lat, w = gaussian_latitudes(n)
    if convention == "midpoints":
        edges = np.empty(2 * n + 1)
        edges[0], edges[-1] = -90.0, 90.0
        edges[1:-1] = 0.5 * (lat[1:] + lat[:-1])
        return edges
    if convention == "cdo":
        edges = np.empty(2 * n + 1)
        edges[1:-1] = 0.5 * (lat[1:] + lat[:-1])
        edges[0] = max(-90.0, 2 * lat[0] - edges[1])
        edges[-1] = min(90.0, 2 * lat[-1] - edges[-2])
        return edges
    if convention == "weights":
        half = np.cumsum(w[:n])  # symmetric: build the southern half and mirror it
        s = np.concatenate([[-1.0], -1.0 + half[:-1], [0.0]])
        south = np.degrees(np.arcsin(np.clip(s, -1.0, 1.0)))
        return np.concatenate([south, -south[-2::-1]])
    raise ConfigError(f"unknown Gaussian bounds convention {convention!r}; use 'midpoints', 'weights' or 'cdo'")


def _regular_edges(lo: float, hi: float, res: float, what: str) -> np.ndarray:
    n = (hi - lo) / res
    nr = int(round(n))
    if nr < 1 or abs(n - nr) > 1e-6 * max(1.0, n):
        raise ConfigError(f"the {what} range {lo}..{hi} is not a whole number of {res}° cells")
    return np.linspace(lo, hi, nr + 1)


# ----------------------------------------------------------------------------------------------
# grid types
# ----------------------------------------------------------------------------------------------


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
        lat0, lat1, lon0, lon1 = self.boxes()
        a = np.radians(lon1 - lon0) * sin_lat_diff(lat0, lat1) * radius**2
        return a.reshape(self.shape)

    def corners(self) -> tuple[np.ndarray, np.ndarray]:
        """Corner lat, lon, shape (size, 4), counter-clockwise from the south-west corner."""
        lat0, lat1, lon0, lon1 = self.boxes()
        return np.stack([lat0, lat0, lat1, lat1], -1), np.stack([lon0, lon1, lon1, lon0], -1)

    def describe(self) -> str:
        if isinstance(self, ReducedGrid):
            return f"{self.name} ({self.kind}, {self.nrows} rows, {self.size} cells)"
        ny, nx = self.shape
        return f"{self.name} ({getattr(self, 'kind', 'grid')}, {ny} x {nx} = {self.size} cells)"

    # ------------------------------------------------------------------ files
    def to_scrip(self, path, *, radius: float = EARTH_RADIUS) -> Path:
        """Write a SCRIP grid file (degrees, corners counter-clockwise) that CDO reads."""
        from pipeline.scrip import write_scrip

        return write_scrip(self, path, radius=radius)

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


# ----------------------------------------------------------------------------------------------
# constructors
# ----------------------------------------------------------------------------------------------


def regular(res: float, region: tuple[float, float, float, float] | None = None, *,
            res_lat: float | None = None, name: str | None = None) -> RectilinearGrid:
    """Regular lat-lon grid with cell edges on multiples of ``res`` (global: -180..180, -90..90)."""
    res_lat = res if res_lat is None else res_lat
    if res <= 0 or res_lat <= 0:
        raise ConfigError(f"grid resolution must be positive, got {res}")
    lon_min, lat_min, lon_max, lat_max = region if region is not None else (-180.0, -90.0, 180.0, 90.0)
    if not (lon_min < lon_max and lat_min < lat_max and -90 <= lat_min and lat_max <= 90):
        raise ConfigError(f"bad region {region}: expected lon_min,lat_min,lon_max,lat_max with min < max")
    return RectilinearGrid(
        name=name or (f"{res:g}deg" if region is None else f"{res:g}deg:{lon_min:g},{lat_min:g},{lon_max:g},{lat_max:g}"),
        lat_edges=_regular_edges(lat_min, lat_max, res_lat, "latitude"),
        lon_edges=_regular_edges(lon_min, lon_max, res, "longitude"),
    )


def regular_gaussian(n: int, *, gaussian_bounds: str = "midpoints") -> RectilinearGrid:
    """Regular Gaussian grid F<N>: 4N longitudes from 0°E, 2N Gaussian latitudes."""
    lat, _ = gaussian_latitudes(n)
    nx = 4 * n
    d = 360.0 / nx
    return RectilinearGrid(name=f"F{n}", lat_edges=gaussian_lat_bounds(n, gaussian_bounds),
                           lon_edges=(np.arange(nx + 1) - 0.5) * d, lat=lat, lon=np.arange(nx) * d,
                           kind="gaussian")


@lru_cache(maxsize=None)
def _shipped_pl() -> dict:
    return json.loads(_PL_FILE.read_text())


def shipped_point_lists() -> list[str]:
    return sorted(_shipped_pl(), key=lambda k: int(k[1:]))


def reduced_gaussian(n: int | None = None, pl=None, *, gaussian_bounds: str = "midpoints",
                     name: str | None = None) -> ReducedGrid:
    """Classic reduced Gaussian grid N<N> from a shipped point list, or from ``pl`` (2N counts, N→S)."""
    if pl is None:
        key = f"N{n}"
        if key not in _shipped_pl():
            raise ConfigError(f"no shipped point list for {key}; shipped: {', '.join(shipped_point_lists())}; "
                              "pass the 2N points per row (north to south) as pl=")
        pl = _shipped_pl()[key]["pl"]
    pl = np.asarray(pl, dtype=np.int64)
    if pl.size % 2:
        raise ConfigError(f"a reduced Gaussian point list needs 2N rows, got {pl.size}")
    n = pl.size // 2
    lat, _ = gaussian_latitudes(n)
    return ReducedGrid(name=name or f"N{n}", lat_edges=gaussian_lat_bounds(n, gaussian_bounds),
                       pl=pl[::-1].copy(), lat=lat)


def octahedral(n: int, *, gaussian_bounds: str = "midpoints") -> ReducedGrid:
    """Octahedral reduced Gaussian grid O<N>: 20 + 4i points in row i (i = 0 at the pole)."""
    half = 20 + 4 * np.arange(n)
    pl = np.concatenate([half, half[::-1]])
    lat, _ = gaussian_latitudes(n)
    return ReducedGrid(name=f"O{n}", lat_edges=gaussian_lat_bounds(n, gaussian_bounds), pl=pl, lat=lat,
                       kind="octahedral")


# ----------------------------------------------------------------------------------------------
# axes of cell centres
# ----------------------------------------------------------------------------------------------


def edges_from_centres(
    centres: np.ndarray,
    *,
    clip: tuple[float, float] | None = None,
    single_cell_width: float | None = None,
) -> np.ndarray:
    """Cell edges of a 1-D axis from its ascending cell centres.

    The inner edges are the midpoints between neighbouring centres; the two outer edges are
    mirrored about the outermost centres (``c[0] - (mid[0] - c[0])``, likewise at the end).

    Parameters
    ----------
    centres : array_like
        1-D cell centres, ascending, n >= 1 values (converted to float64).
    clip : (float, float), optional
        Clip the edges to ``[lo, hi]``, e.g. ``(-90.0, 90.0)`` for latitude. ``None`` (default)
        leaves them as computed.
    single_cell_width : float, optional
        Width of the cell when the axis has a single centre ``c``: the edges are then
        ``c ± single_cell_width / 2`` (before clipping). ``None`` (default) makes a single-centre
        axis an :class:`~pipeline.errors.InputDataError`, its bounds not being inferable.

    Returns
    -------
    numpy.ndarray
        The n + 1 edges, float64.

    Raises
    ------
    InputDataError
        A single centre and ``single_cell_width`` is ``None``.
    ValueError
        No centres at all.
    """
    c = np.asarray(centres, dtype=np.float64)
    if c.size == 0:
        raise ValueError("edges_from_centres needs at least one cell centre")
    if c.size == 1:
        if single_cell_width is None:
            raise InputDataError("a single cell along an axis has no inferable bounds; add CF bounds")
        half = 0.5 * single_cell_width
        edges = np.array([c[0] - half, c[0] + half])
    else:
        mid = 0.5 * (c[1:] + c[:-1])
        edges = np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])
    if clip is not None:
        edges = np.clip(edges, *clip)
    return edges


# names that moved to their own modules, importable from here as before (resolved on first use:
# those modules import the grid types from this one)
_MOVED = {
    "NAMED_GRIDS": "pipeline.grid_specs",
    "parse_grid": "pipeline.grid_specs",
    "list_grids": "pipeline.grid_specs",
    "SourceAxes": "pipeline.source_grid",
    "source_axes": "pipeline.source_grid",
    "open_netcdf": "pipeline.scrip",
    "read_scrip_grid": "pipeline.scrip",
    "grid_from_scrip": "pipeline.scrip",
}


def __getattr__(name: str):
    if name in _MOVED:
        import importlib

        value = getattr(importlib.import_module(_MOVED[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_MOVED))
