"""The source grid of a lat/lon data array: :func:`source_axes` infers an ascending
:class:`~pipeline.grids.RectilinearGrid` from its coordinates (any orientation, 0..360 or
-180..180, CF bounds when present) and how the array's rows and columns map onto it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.errors import InputDataError
from pipeline.grids.types import RectilinearGrid
from pipeline.io import LAT_NAMES, LON_NAMES, axis_gaps, check_coordinates, gap_message
from pipeline.sphere import edges_from_centres

# the one name list of pipeline.io.coords, compared without case as dimension names
_LAT = frozenset(n.lower() for n in LAT_NAMES)
_LON = frozenset(n.lower() for n in LON_NAMES)


@dataclass
class SourceAxes:
    """How a data array's lat/lon axes map onto an ascending :class:`RectilinearGrid`.

    ``row_index[k]`` is the physical row of the array holding grid row k (flipped for descending
    latitude); ``col_index`` likewise for longitudes that wrap inside the array (e.g. 0..360 data
    rotated). The weights use physical indices, so the data are never copied or reordered.
    """

    grid: RectilinearGrid
    lat_dim: str
    lon_dim: str
    row_index: np.ndarray
    col_index: np.ndarray


def _refuse_gaps(values, what: str, dim: str, bounds, name: str, var) -> None:
    # without cell bounds, edges between two tiles that do not touch would stretch over the gap
    if bounds is not None:
        return
    gaps = axis_gaps(values, "lat" if what == "latitude" else "lon")
    if gaps:
        raise InputDataError(f"{name}: variable {var!r}: " + gap_message(what, dim, gaps[0]))


def source_axes(da, *, name: str = "input") -> SourceAxes:
    """Infer the source grid of a lat/lon data array (any orientation, 0..360 or -180..180)."""
    # NaN/inf/out-of-range/empty/curvilinear coordinates: one clear message, for library callers too
    check_coordinates(da.coords.to_dataset(), f"{name}: variable {da.name!r}")
    lat_dim = lon_dim = None
    for d in da.dims:
        c = da[d] if d in da.coords else None
        attrs = c.attrs if c is not None else {}
        low = str(d).lower()
        if attrs.get("standard_name") == "latitude" or attrs.get("axis") == "Y" or low in _LAT:
            lat_dim = d
        elif attrs.get("standard_name") == "longitude" or attrs.get("axis") == "X" or low in _LON:
            lon_dim = d
    if lat_dim is None or lon_dim is None or lat_dim not in da.coords or lon_dim not in da.coords:
        raise InputDataError(f"{name}: variable {da.name!r} needs latitude and longitude dimension coordinates "
                             f"(dims are {tuple(da.dims)}); name them lat/lon or set standard_name")
    lat = np.asarray(da[lat_dim].values, dtype=np.float64)
    lon = np.asarray(da[lon_dim].values, dtype=np.float64)

    def bounds_of(dim, centres):
        bname = da[dim].attrs.get("bounds")
        if bname and bname in da.coords:
            b = np.asarray(da.coords[bname].values, dtype=np.float64)
            if b.shape == (centres.size, 2):
                return b
        return None

    # latitude: ascending order of rows
    if lat.size > 1 and np.all(np.diff(lat) < 0):
        row_index = np.arange(lat.size)[::-1]
    elif lat.size == 1 or np.all(np.diff(lat) > 0):
        row_index = np.arange(lat.size)
    else:
        raise InputDataError(f"{name}: latitudes of {da.name!r} are not monotonic; sort the input along {lat_dim} first "
                             "(`cdo invertlat IN OUT`, or `terrascale validate IN -o OUT.nc`, which writes a sorted copy)")
    lat_s = lat[row_index]
    b = bounds_of(lat_dim, lat)
    _refuse_gaps(lat_s, "latitude", lat_dim, b, name, da.name)
    if b is not None:
        b = np.sort(b[row_index], axis=1)
        lat_edges = np.concatenate([b[:, 0], b[-1:, 1]])
    else:
        lat_edges = edges_from_centres(lat_s, clip=(-90.0, 90.0))

    # longitude: unwrap a rotated axis (e.g. 180..359, 0..179) into one ascending run
    lon_u = lon.copy()
    if lon_u.size > 1 and np.any(np.diff(lon_u) <= 0):
        k = np.flatnonzero(np.diff(lon_u) < 0)
        if k.size == 1 and np.all(np.diff(lon_u[:k[0] + 1]) > 0) and np.all(np.diff(lon_u[k[0] + 1:]) > 0):
            lon_u[k[0] + 1:] += 360.0
        elif np.all(np.diff(lon_u) < 0):
            raise InputDataError(f"{name}: longitudes of {da.name!r} decrease; sort them first "
                                 "(`cdo sortlon IN OUT`, or `terrascale validate IN -o OUT.nc`, which writes a sorted copy)")
        else:
            raise InputDataError(f"{name}: longitudes of {da.name!r} are not monotonic; sort them")
    col_index = np.arange(lon.size)
    b = bounds_of(lon_dim, lon)
    _refuse_gaps(lon, "longitude", lon_dim, b, name, da.name)
    if b is not None:
        b = np.sort(b, axis=1)
        b = b + (lon_u - lon)[:, None]
        lon_edges = np.concatenate([b[:, 0], b[-1:, 1]])
    else:
        lon_edges = edges_from_centres(lon_u)
    span = lon_edges[-1] - lon_edges[0]
    if span > 360 + 1e-6:
        raise InputDataError(f"{name}: longitudes of {da.name!r} span {span:.6g}° > 360°: the axis holds the same "
                             "meridian twice (e.g. 0 and 360); `terrascale validate IN -o OUT.nc` writes a copy "
                             "without the repeated column")
    if abs(span - 360) < 1e-6 * 360:
        lon_edges[-1] = lon_edges[0] + 360.0
    grid = RectilinearGrid(name=f"{name}:{da.name}", lat_edges=lat_edges, lon_edges=lon_edges, lat=lat_s, lon=lon_u)
    return SourceAxes(grid=grid, lat_dim=lat_dim, lon_dim=lon_dim, row_index=row_index, col_index=col_index)
