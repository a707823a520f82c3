"""Static predictors on the 0.05° grid: land fraction, Köppen zone, distance to coast, IGBP class.

Distance to coast is the great-circle distance from a land cell's centre to the centre of the
nearest coastal ocean cell (an ocean cell with a land neighbour), land meaning a GLOBE land
fraction of at least 0.5; ocean cells get 0. It is computed on the region padded by the cap
distance (1000 km) so coasts just outside the region count, and it saturates at the cap
(continentality does not grow further in the generator beyond it). Near the antimeridian a
padded regional window does not wrap, so distances there can be overestimated; the global
window wraps.
"""

from __future__ import annotations

import math

import numpy as np
import xarray as xr
from scipy.spatial import cKDTree

from pipeline.datasets.classes import ClassTable
from pipeline.datasets.fractions import cwin_region
from pipeline.datasets.loaders import (
    FINE_RES,
    koppen_majority,
    land_fraction,
    load_igbp,
    window,
)
from pipeline.datasets.window import GridWindow
from pipeline.sphere import EARTH_RADIUS

COAST_CAP_KM = 1000.0
_KM_PER_DEG = EARTH_RADIUS * math.pi / 180.0 / 1000.0


def _unit_vectors(lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    la, lo = np.deg2rad(lat_deg), np.deg2rad(lon_deg)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)


def distance_to_coast(win: GridWindow, cap_km: float = COAST_CAP_KM) -> tuple[np.ndarray, np.ndarray]:
    """Distance to the sea (km, capped) and land fraction on a 0.05° window.

    Parameters
    ----------
    win : GridWindow
        A window of the 0.05° grid.
    cap_km : float
        Distances beyond this are reported as ``cap_km``.

    Returns
    -------
    distance_km : numpy.ndarray
        float32 ``(nlat, nlon)``, 0 over the sea.
    land_frac : numpy.ndarray
        float32 GLOBE land fraction on ``win`` (read together, to avoid a second pass).
    """
    pad_lat = math.ceil(cap_km / _KM_PER_DEG * win.cpd) + 1
    max_abs_lat = min(89.99, max(abs(win.lat_edges[0]), abs(win.lat_edges[-1])) + pad_lat / win.cpd)
    pad_lon = math.ceil(cap_km / (_KM_PER_DEG * math.cos(math.radians(max_abs_lat))) * win.cpd) + 1
    padded = win.pad(pad_lat, min(pad_lon, win.n_lon_global))
    wraps = padded.j0 == 0 and padded.j1 == padded.n_lon_global
    lf = land_fraction(cwin_region(padded), FINE_RES)["land_fraction"].values
    land = lf >= 0.5
    # coastal sea cells: sea with a land neighbour (4-connectivity)
    near_land = np.zeros_like(land)
    near_land[1:] |= land[:-1]
    near_land[:-1] |= land[1:]
    if wraps:
        near_land |= np.roll(land, 1, axis=1) | np.roll(land, -1, axis=1)
    else:
        near_land[:, 1:] |= land[:, :-1]
        near_land[:, :-1] |= land[:, 1:]
    coast = ~land & near_land

    oi, oj = win.i0 - padded.i0, win.j0 - padded.j0
    inner_land = land[oi : oi + win.shape[0], oj : oj + win.shape[1]]
    dist = np.zeros(win.shape, np.float32)
    ci, cj = np.nonzero(coast)
    li, lj = np.nonzero(inner_land)
    if li.size:
        if ci.size:
            tree = cKDTree(_unit_vectors(padded.lat[ci], padded.lon[cj]))
            chord_cap = 2 * math.sin(cap_km / (EARTH_RADIUS / 1000.0) / 2)
            chord, _ = tree.query(_unit_vectors(win.lat[li], win.lon[lj]), distance_upper_bound=chord_cap, workers=-1)
            km = 2 * (EARTH_RADIUS / 1000.0) * np.arcsin(np.minimum(chord, 2.0) / 2)
            dist[li, lj] = np.where(np.isfinite(chord), np.minimum(km, cap_km), cap_km)
        else:
            dist[li, lj] = cap_km
    inner_lf = lf[oi : oi + win.shape[0], oj : oj + win.shape[1]].astype(np.float32)
    return dist, inner_lf


def static_fields(region="iberia", table: ClassTable | None = None) -> xr.Dataset:
    """The static predictors of a region on the 0.05° grid.

    Parameters
    ----------
    region : str or Region
        Region name or box (snapped outward to the 0.05° grid).
    table : ClassTable, optional
        IGBP class table (names, colours).

    Returns
    -------
    xarray.Dataset
        ``land_fraction`` (float32, 1), ``koppen`` (uint8 1-5, 0 no data), ``distance_to_coast``
        (float32 km) and ``igbp`` (uint8 0-16, 255 no data), dims ``(lat, lon)``.
    """
    win = window(region, FINE_RES)
    reg = cwin_region(win)
    dist, lf = distance_to_coast(win)
    ds = load_igbp(reg, table)
    ds["koppen"] = koppen_majority(reg, FINE_RES)["koppen"]
    ds["land_fraction"] = land_fraction_var(lf)
    ds["distance_to_coast"] = xr.Variable(("lat", "lon"), dist, {
        "long_name": "great-circle distance from the cell centre to the nearest sea cell (GLOBE mask)",
        "units": "km", "valid_min": 0.0, "valid_max": COAST_CAP_KM,
        "comment": f"0 over the sea; saturates at {COAST_CAP_KM:g} km",
    })
    out = ds[["land_fraction", "koppen", "distance_to_coast", "igbp"]]
    # selecting variables drops the (lat, bnds) bounds coordinates: put them back
    return out.assign_coords(lat_bnds=ds["lat_bnds"], lon_bnds=ds["lon_bnds"])


def land_fraction_var(lf: np.ndarray) -> xr.Variable:
    """CF variable for a land fraction array on the 0.05° grid."""
    return xr.Variable(("lat", "lon"), lf.astype(np.float32), {
        "long_name": "land area fraction (GLOBE 1 km mask, area-weighted to 0.05°)",
        "standard_name": "land_area_fraction", "units": "1", "valid_min": 0.0, "valid_max": 1.0,
    })
