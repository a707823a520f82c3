"""The one latitude/longitude finder: CF ``axis``/``standard_name``/``units`` first, then names;
and the checks of their values that every stage needs (:func:`axis_problems`, :func:`check_coordinates`).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from pipeline.errors import InputDataError

LAT_NAMES = ("lat", "latitude", "nav_lat", "y", "rlat", "LAT", "Latitude")


LON_NAMES = ("lon", "longitude", "nav_lon", "x", "rlon", "LON", "Longitude")


LAT_UNITS = {"degrees_north", "degree_north", "degrees_n", "degree_n", "degreesn", "degreen"}


LON_UNITS = {"degrees_east", "degree_east", "degrees_e", "degree_e", "degreese", "degreee"}


def _norm_units(u: object) -> str:
    return " ".join(str(u).split()).strip()


def _candidates(ds: xr.Dataset) -> list[str]:
    return [str(n) for n in list(ds.coords) + list(ds.data_vars)]


def _find_axis(ds: xr.Dataset, axis: str, standard: str, units: set[str], names: tuple[str, ...]) -> str | None:
    names_present = _candidates(ds)
    tests = (
        lambda v: v.attrs.get("standard_name") == standard,
        lambda v: _norm_units(v.attrs.get("units", "")).lower().replace(" ", "") in units,
        lambda v: v.attrs.get("axis") == axis,
    )
    for test in tests:
        found = [name for name in names_present if test(ds[name])]
        if found:  # a 1-D axis before a 2-D auxiliary field that carries the same attributes
            return next((n for n in found if ds[n].ndim == 1), found[0])
    for name in names:
        if name in ds.variables:
            return name
    return None


def find_lat_lon(ds: xr.Dataset, source: str = "dataset") -> tuple[str, str]:
    """Return the names of the latitude and longitude coordinates.

    Looks at ``standard_name``, then ``units`` (degrees_north/east), then ``axis`` (Y/X), then
    common names. Raises :class:`InputDataError` naming what was looked for.
    """
    lat = _find_axis(ds, "Y", "latitude", LAT_UNITS, LAT_NAMES)
    lon = _find_axis(ds, "X", "longitude", LON_UNITS, LON_NAMES)
    if lat is None or lon is None:
        missing = " and ".join(n for n, v in (("latitude", lat), ("longitude", lon)) if v is None)
        raise InputDataError(
            f"{source}: no {missing} found among {', '.join(_candidates(ds)) or 'no variables'}; "
            "name the coordinates lat/lon or give them standard_name latitude/longitude "
            "(e.g. `ncatted -a standard_name,y,o,c,latitude`)"
        )
    return lat, lon


def find_lat_lon_or_none(ds: xr.Dataset) -> tuple[str | None, str | None]:
    """Like :func:`find_lat_lon`, ``None`` for what is not found instead of an error."""
    return (_find_axis(ds, "Y", "latitude", LAT_UNITS, LAT_NAMES), _find_axis(ds, "X", "longitude", LON_UNITS, LON_NAMES))


def curvilinear_message(source: str | None, lat: str, lon: str, ndim: int) -> str:
    """What to say about a grid whose latitude/longitude are 2-D fields (a curvilinear grid)."""
    prefix = f"{source}: " if source else ""
    return (f"{prefix}latitude '{lat}' and longitude '{lon}' are {ndim}-D fields, so the grid is curvilinear "
            "(e.g. rotated pole, tripolar); terrascale needs a regular lat/lon grid (1-D coordinates) or a reduced "
            "Gaussian/unstructured list of cells: regrid first, e.g. `cdo remapbil,r720x360 IN.nc OUT.nc`")


def _first_index(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def axis_gaps(values, kind: str = "lat", *, factor: float = 1.5) -> list[tuple[float, float, float, float]]:
    """Gaps of a regular-looking 1-D axis: (value before, value after, the step there, the usual step).

    An axis is regular-looking when at least half of its steps are within 1% of the median step
    (regular and Gaussian grids; smoothly stretched grids are not); a gap is a step more than
    ``factor`` times the median, e.g. between two tiles that do not touch. Longitudes are taken
    on the circle (any order, 0..360 or -180..180): the step around the back of a regional axis
    (its outside) is no gap, nor the wrap of a global one.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size < 4 or not np.all(np.isfinite(v)):
        return []
    if kind == "lon":
        order = np.argsort(np.mod(v, 360.0), kind="stable")
        w = np.mod(v, 360.0)[order]
        d = np.append(np.diff(w), w[0] + 360.0 - w[-1])
        ends = np.append(v[order], v[order[0]])  # the values as stored, for the message
        outside = int(np.argmax(d))
        inner = np.delete(np.arange(d.size), outside)
        med = float(np.median(d[inner]))
        if med > 0 and d.size * med >= 360.0 * (1 - 1e-3):
            inner = np.arange(d.size)  # a global axis: the wrap is a step like the others
    else:
        w = np.sort(v)
        d, ends, inner = np.diff(w), w, np.arange(v.size - 1)
        med = float(np.median(d))
    if med <= 0 or np.mean(np.abs(d[inner] - med) <= 0.01 * med) < 0.5:
        return []
    return [(float(ends[i]), float(ends[i + 1]), float(d[i]), med) for i in inner[d[inner] > factor * med]]


def axis_problems(values, name: str, kind: str, *, gaps: bool = True, has_bounds: bool = False) -> list[str]:
    """What is wrong with the values of a latitude or longitude coordinate (empty list: nothing).

    Parameters
    ----------
    values : array-like
        The coordinate's values (any shape; gaps are looked for on 1-D axes only).
    name : str
        The coordinate's name, used in the messages.
    kind : str
        ``"lat"`` or ``"lon"``.
    gaps : bool
        Also report gaps (:func:`axis_gaps`) of an axis without cell bounds: cell bounds
        derived from its centres would stretch the cells next to the gap over it.
    has_bounds : bool
        The coordinate has cell bounds (a gap is then described by them, not a problem).

    Returns
    -------
    list of str
        One message per problem: empty axis, NaN, infinite values, latitudes beyond ±90, gaps.
    """
    v = np.asarray(values)
    what = "latitude" if kind == "lat" else "longitude"
    if v.size == 0:
        return [f"{what} '{name}' has no values (a zero-length dimension): the file holds no grid; "
                "re-create it, or check the subsetting that produced it"]
    if v.dtype.kind not in "fiu":
        return [f"{what} '{name}' holds {v.dtype} values, not numbers in degrees; fix the coordinate"]
    v = v.astype(np.float64, copy=False)
    out = []
    nan = np.isnan(v)
    if nan.any():
        i = np.unravel_index(_first_index(nan.ravel()), v.shape)
        out.append(f"{what} '{name}' is NaN at index {_index(i)} ({int(nan.sum())} NaN value(s)); a coordinate "
                   "must be defined everywhere: fix or re-create the file")
    inf = np.isinf(v)
    if inf.any():
        i = np.unravel_index(_first_index(inf.ravel()), v.shape)
        out.append(f"{what} '{name}' is infinite at index {_index(i)} ({int(inf.sum())} infinite value(s)); "
                   "fix or re-create the file")
    finite = v[np.isfinite(v)]
    if kind == "lat" and finite.size and (finite.min() < -90 or finite.max() > 90):
        bad = np.isfinite(v) & ((v < -90) | (v > 90))
        i = np.unravel_index(_first_index(bad.ravel()), v.shape)
        out.append(f"latitude '{name}' has values outside [-90, 90] (first {v[i]:g} at index {_index(i)}; range "
                   f"{finite.min():g} to {finite.max():g}); check its units (degrees north expected; projected x/y "
                   "in metres must be reprojected to lat/lon first)")
    if kind == "lon" and finite.size and (finite.min() < -360 or finite.max() > 720):
        out.append(f"longitude '{name}' ranges over {finite.min():g} to {finite.max():g}, beyond [-360, 720]; "
                   "check its units (degrees east expected)")
    if gaps and not has_bounds and not out and v.ndim == 1:
        out += [gap_message(what, name, gap) for gap in axis_gaps(v, kind)[:3]]
    return out


def gap_message(what: str, name: str, gap: tuple[float, float, float, float]) -> str:
    """The problem of one gap of :func:`axis_gaps` (where it is and what to do).

    Parameters
    ----------
    what : str
        ``"latitude"`` or ``"longitude"``.
    name : str
        The coordinate's name.
    gap : tuple
        One item of :func:`axis_gaps`.

    Returns
    -------
    str
    """
    a, b, step, usual = gap
    return (f"{what} '{name}' has a gap between {a:g} and {b:g}: a step of {step:g} where the axis steps by "
            f"{usual:g}; cell bounds derived from the centres would stretch the cells next to it over the gap: put "
            "the data on a complete grid (missing values in the gap, e.g. `cdo remapnn,GRID`) or give the "
            "coordinate cell bounds")


def _index(i: tuple) -> str:
    return str(int(i[0])) if len(i) == 1 else str(tuple(int(k) for k in i))


def check_coordinates(ds: xr.Dataset, source: str = "dataset") -> None:
    """Raise :class:`InputDataError` for lat/lon coordinates no stage can use.

    A zero-length axis, NaN or infinite values, latitudes beyond ±90, or a curvilinear grid
    (2-D latitude and longitude). A dataset without latitude/longitude is let through (the
    stage that needs them says so); gaps are :func:`pipeline.io.validate_dataset`'s to report.
    """
    lat, lon = find_lat_lon_or_none(ds)
    if lat is None or lon is None:
        return
    if ds[lat].ndim > 1 and ds[lon].ndim > 1:
        raise InputDataError(curvilinear_message(source, lat, lon, ds[lat].ndim))
    problems = []
    for name, kind in ((lat, "lat"), (lon, "lon")):
        if ds[name].ndim == 1:
            problems += axis_problems(ds[name].values, name, kind, gaps=False)
    if problems:
        raise InputDataError(f"{source}: " + "; ".join(problems))
