"""The one latitude/longitude finder: CF ``axis``/``standard_name``/``units`` first, then names.
"""

from __future__ import annotations

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
        for name in names_present:
            if test(ds[name]):
                return name
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
