"""Regular latitude-longitude grids addressed by global integer indices.

Every grid here is a sub-window of a global regular grid with ``cpd`` cells per degree whose
cell ``(i, j)`` covers latitude ``[-90 + i/cpd, -90 + (i+1)/cpd]`` and longitude
``[-180 + j/cpd, -180 + (j+1)/cpd]``. Working with global integer indices (instead of floating
coordinates) is what makes the 1 km, 0.05°, 0.25° and 1° windows of one region nest exactly,
so block aggregation needs no interpolation and area sums are reproducible to rounding.

Cell areas are exact on the sphere: ``A = R² Δλ (sin φ2 − sin φ1)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from pipeline.errors import ConfigError
from pipeline.sphere import box_areas


def cells_per_degree(res: float) -> float:
    """Cells per degree for a resolution in degrees, checked to tile the globe exactly.

    Parameters
    ----------
    res : float
        Cell size in degrees, e.g. 0.05, 0.25, 1, 1/120.

    Returns
    -------
    float
        ``1 / res`` (a whole number for res <= 1, or a unit fraction for res > 1).
    """
    if not (res > 0):
        raise ConfigError(f"grid resolution must be positive, got {res!r}")
    n_lon = 360.0 / res
    if abs(n_lon - round(n_lon)) > 1e-6 or abs(180.0 / res - round(180.0 / res)) > 1e-6:
        raise ConfigError(
            f"grid resolution {res}° does not tile the globe (360/res and 180/res must be whole "
            "numbers); use e.g. 0.05, 0.1, 0.25, 0.5, 1 or 2"
        )
    return 1.0 / res


def _index(value_deg: float, origin: float, cpd: float, what: str) -> int:
    x = (value_deg - origin) * cpd
    k = round(x)
    if abs(x - k) > 1e-6:
        raise ConfigError(f"{what} {value_deg}° is not on the {1 / cpd:g}° grid; snap the region to it")
    return int(k)


@dataclass(frozen=True)
class GridWindow:
    """A window ``[i0, i1) x [j0, j1)`` of the global regular grid with ``cpd`` cells per degree.

    Latitude index ``i`` counts from the South Pole, longitude index ``j`` from 180° W, so the
    window's coordinates are ascending in both.
    """

    cpd: float
    i0: int
    i1: int
    j0: int
    j1: int

    @classmethod
    def from_bounds(cls, south: float, north: float, west: float, east: float, res: float) -> "GridWindow":
        """Window covering the box exactly; the box edges must lie on the grid."""
        cpd = cells_per_degree(res)
        win = cls(
            cpd,
            _index(south, -90.0, cpd, "southern edge"),
            _index(north, -90.0, cpd, "northern edge"),
            _index(west, -180.0, cpd, "western edge"),
            _index(east, -180.0, cpd, "eastern edge"),
        )
        if not (0 <= win.i0 < win.i1 <= round(180 * cpd) and 0 <= win.j0 < win.j1 <= round(360 * cpd)):
            raise ConfigError(f"box S={south} N={north} W={west} E={east} is empty or outside the globe")
        return win

    @property
    def res(self) -> float:
        return 1.0 / self.cpd

    @property
    def shape(self) -> tuple[int, int]:
        return (self.i1 - self.i0, self.j1 - self.j0)

    @property
    def n_lat_global(self) -> int:
        return int(round(180 * self.cpd))

    @property
    def n_lon_global(self) -> int:
        return int(round(360 * self.cpd))

    @cached_property
    def lat_edges(self) -> np.ndarray:
        return np.arange(self.i0, self.i1 + 1, dtype=np.float64) / self.cpd - 90.0

    @cached_property
    def lon_edges(self) -> np.ndarray:
        return np.arange(self.j0, self.j1 + 1, dtype=np.float64) / self.cpd - 180.0

    @cached_property
    def lat(self) -> np.ndarray:
        return (np.arange(self.i0, self.i1, dtype=np.float64) + 0.5) / self.cpd - 90.0

    @cached_property
    def lon(self) -> np.ndarray:
        return (np.arange(self.j0, self.j1, dtype=np.float64) + 0.5) / self.cpd - 180.0

    @cached_property
    def row_area_m2(self) -> np.ndarray:
        """Area (m²) of one cell in each row: ``R² Δλ (sin φ2 − sin φ1)`` (all columns equal)."""
        return box_areas(self.lat_edges[:-1], self.lat_edges[1:], 0.0, 1.0 / self.cpd)

    def cell_area_m2(self) -> np.ndarray:
        """Cell areas (m²), shape ``(nlat, nlon)``."""
        return np.broadcast_to(self.row_area_m2[:, None], self.shape).copy()

    def coarsen(self, factor: int) -> "GridWindow":
        """The window on the grid ``factor`` times coarser; this window must nest in it."""
        if any(v % factor for v in (self.i0, self.i1, self.j0, self.j1)):
            raise ConfigError(f"the {self.res:g}° window does not nest in the {self.res * factor:g}° grid")
        return GridWindow(self.cpd / factor, self.i0 // factor, self.i1 // factor, self.j0 // factor, self.j1 // factor)

    def refine(self, factor: int) -> "GridWindow":
        """The same box on the grid ``factor`` times finer."""
        return GridWindow(self.cpd * factor, self.i0 * factor, self.i1 * factor, self.j0 * factor, self.j1 * factor)

    def pad(self, cells_lat: int, cells_lon: int) -> "GridWindow":
        """The window grown by the given number of cells, clipped to the globe (no wrap)."""
        return GridWindow(
            self.cpd,
            max(0, self.i0 - cells_lat),
            min(self.n_lat_global, self.i1 + cells_lat),
            max(0, self.j0 - cells_lon),
            min(self.n_lon_global, self.j1 + cells_lon),
        )

    def north_up_rows(self) -> tuple[int, int]:
        """Row range ``[r0, r1)`` of this window in a north-up global raster (row 0 at 90° N)."""
        n = self.n_lat_global
        return n - self.i1, n - self.i0

    def coords(self) -> dict:
        """CF coordinate variables (ascending lat/lon with bounds) for an xarray Dataset."""
        return {
            "lat": ("lat", self.lat, {"units": "degrees_north", "standard_name": "latitude",
                                      "long_name": "latitude", "axis": "Y", "bounds": "lat_bnds"}),
            "lon": ("lon", self.lon, {"units": "degrees_east", "standard_name": "longitude",
                                      "long_name": "longitude", "axis": "X", "bounds": "lon_bnds"}),
            "lat_bnds": (("lat", "bnds"), np.stack([self.lat_edges[:-1], self.lat_edges[1:]], axis=1)),
            "lon_bnds": (("lon", "bnds"), np.stack([self.lon_edges[:-1], self.lon_edges[1:]], axis=1)),
        }

