"""Spherical geometry shared by every grid, weight, split and data set: one Earth radius, exact
cell areas ``R² Δλ (sin φ2 − sin φ1)`` computed without cancellation, and cell edges from centres.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import InputDataError

__all__ = ["EARTH_RADIUS", "box_areas", "centre_grid_areas", "edges_from_centres", "sin_lat_diff"]

#: Earth radius (m) used for cell areas in output files (CDO's default PlanetRadius).
EARTH_RADIUS = 6_371_000.0


def sin_lat_diff(lat0, lat1):
    """sin φ1 − sin φ0 (degrees in) without cancellation: 2 cos((φ0+φ1)/2) sin((φ1−φ0)/2)."""
    lat0 = np.radians(np.asarray(lat0, dtype=np.float64))
    lat1 = np.radians(np.asarray(lat1, dtype=np.float64))
    return 2.0 * np.cos(0.5 * (lat0 + lat1)) * np.sin(0.5 * (lat1 - lat0))


def box_areas(lat0, lat1, lon0, lon1, radius: float = EARTH_RADIUS) -> np.ndarray:
    """Exact areas of latitude-longitude boxes on a sphere: ``R² Δλ (sin φ1 − sin φ0)``.

    Parameters
    ----------
    lat0, lat1 : array_like
        Southern and northern bounds (degrees), broadcastable.
    lon0, lon1 : array_like
        Western and eastern bounds (degrees), broadcastable.
    radius : float
        Sphere radius; the default :data:`EARTH_RADIUS` gives m², ``1.0`` steradians.

    Returns
    -------
    numpy.ndarray
        The areas, broadcast over the inputs (float64).
    """
    dlon = np.radians(np.asarray(lon1, dtype=np.float64) - np.asarray(lon0, dtype=np.float64))
    return dlon * sin_lat_diff(lat0, lat1) * radius**2


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


def centre_grid_areas(lat, lon, radius: float = EARTH_RADIUS) -> np.ndarray:
    """Exact areas of the cells of a regular grid given by its ascending cell centres.

    Edges from :func:`edges_from_centres` (latitude clipped to ±90°; a one-cell axis is 1° wide).

    Parameters
    ----------
    lat, lon : array_like
        1-D ascending cell centres (degrees).
    radius : float
        Sphere radius (m).

    Returns
    -------
    numpy.ndarray
        (nlat, nlon) areas (m²).
    """
    ey = edges_from_centres(lat, clip=(-90.0, 90.0), single_cell_width=1.0)
    ex = edges_from_centres(lon, single_cell_width=1.0)
    return box_areas(ey[:-1, None], ey[1:, None], ex[None, :-1], ex[None, 1:], radius)
