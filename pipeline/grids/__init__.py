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
degrees; :mod:`pipeline.grids.scrip`), which CDO accepts as ``cdo remapcon,grid.nc``; :meth:`Grid.cdo_griddes`
writes CDO's text grid description for rectilinear grids. Spec strings and named ESM grids
(:func:`parse_grid`, :data:`NAMED_GRIDS`) are in :mod:`pipeline.grids.specs`, the source grid of a
data array (:func:`source_axes`) in :mod:`pipeline.grids.source`.

Work that allocates per grid cell, class or weight link estimates its memory first and is refused
with the estimate and the limit when it cannot fit (:mod:`pipeline.grids.limits`, one place for
the limit; :func:`grid_shape` sizes a spec without building the grid).

Modules: ``types`` (grid classes, regular grids), ``gaussian`` (Gaussian latitudes, regular,
reduced and octahedral Gaussian grids), ``specs`` (spec strings, named grids, sizes of specs),
``scrip`` (SCRIP grid files), ``source`` (the grid of a data array), ``limits`` (the memory limit). Spherical geometry (Earth radius, exact cell
areas, edges from centres) is in :mod:`pipeline.sphere`.
"""

from __future__ import annotations

from pipeline.grids.gaussian import (
    gaussian_lat_bounds,
    gaussian_latitudes,
    octahedral,
    reduced_gaussian,
    regular_gaussian,
    shipped_point_lists,
)
from pipeline.grids.limits import check_memory, human_bytes, memory_limit
from pipeline.grids.scrip import (
    SCRIP_BYTES_PER_CELL,
    check_netcdf_suffix,
    grid_from_scrip,
    read_scrip_grid,
    write_scrip,
)
from pipeline.grids.source import SourceAxes, source_axes
from pipeline.grids.specs import NAMED_GRIDS, check_grid_memory, grid_shape, list_grids, parse_grid
from pipeline.grids.types import Grid, RectilinearGrid, ReducedGrid, regular

__all__ = [
    "Grid",
    "NAMED_GRIDS",
    "RectilinearGrid",
    "ReducedGrid",
    "SCRIP_BYTES_PER_CELL",
    "SourceAxes",
    "check_grid_memory",
    "check_memory",
    "check_netcdf_suffix",
    "gaussian_lat_bounds",
    "gaussian_latitudes",
    "grid_from_scrip",
    "grid_shape",
    "human_bytes",
    "list_grids",
    "memory_limit",
    "octahedral",
    "parse_grid",
    "read_scrip_grid",
    "reduced_gaussian",
    "regular",
    "regular_gaussian",
    "shipped_point_lists",
    "source_axes",
    "write_scrip",
]
