"""Loaders for the real sample rasters, as CF-compliant xarray objects.

All loaders take a region (a name from :data:`~pipeline.datasets.regions.REGIONS`, a
``"south,north,west,east"`` box or a :class:`~pipeline.datasets.regions.Region`), snap it outward
to the output grid, read only the rows of that window (see :mod:`pipeline.datasets.readers`),
and return latitude ascending, longitude in [-180, 180), with ``lat_bnds``/``lon_bnds``.

The 1 km rasters (21600 x 43200 = 933 M cells) are never held whole: :func:`load_koppen`
returns a dask-backed array read band by band on compute, and the 0.05° aggregates
(:func:`land_fraction`, :func:`koppen_majority`) stream 600-row bands (26 MB each).
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import xarray as xr

from pipeline.datasets.classes import (
    KOPPEN_CLASSES,
    KOPPEN_NODATA,
    ClassTable,
    koppen_flag_attrs,
    load_class_table,
)
from pipeline.datasets.readers import StripTiff, iter_npz_rows
from pipeline.datasets.regions import Region, resolve_region
from pipeline.datasets.sources import SOURCES
from pipeline.datasets.window import GridWindow
from pipeline.errors import ConfigError

FINE_RES = 0.05
KM1_CPD = 120  # cells per degree of the 1 km rasters
_BAND_ROWS = 600  # 1 km rows per streamed band: a multiple of 6 (0.05°) and of 120 (1°)


def window(region: "str | Region", res: float) -> GridWindow:
    """The grid window of ``region`` on the ``res``° grid (the region snapped outward)."""
    reg = resolve_region(region).snapped(res)
    return GridWindow.from_bounds(*reg.bounds, res=res)


def _dataset(values, win: GridWindow, name: str, attrs: dict) -> xr.Dataset:
    """One-variable Dataset with CF lat/lon coordinates and their bounds."""
    var = xr.Variable(("lat", "lon"), values, attrs)
    return xr.Dataset({name: var}, coords=win.coords())


def load_igbp(region: "str | Region" = "global", table: ClassTable | None = None) -> xr.Dataset:
    """MODIS MCD12C1 2019 IGBP land-cover class at 0.05° (uint8; 0 water, 1-16, 255 no data).

    Parameters
    ----------
    region : str or Region
        Region name or box; snapped outward to the 0.05° grid.
    table : ClassTable, optional
        Class table supplying names and colours (default: the packaged one).

    Returns
    -------
    xarray.Dataset
        Dims ``(lat, lon)``, CF flag attributes (``flag_values``, ``flag_meanings``,
        ``flag_colors``), source and citation attributes.
    """
    table = table or load_class_table()
    win = window(region, FINE_RES)
    src = SOURCES["igbp"]
    r0, r1 = win.north_up_rows()
    with StripTiff(src.path()) as tif:
        data = tif.read_rows(r0, r1, win.j0, win.j1)[::-1]  # north-up → lat ascending
    return _dataset(np.ascontiguousarray(data), win, "igbp", {
        "long_name": "IGBP land-cover type (MODIS MCD12C1 2019 majority class)",
        **table.flag_attrs(),
        "source": src.title, "references": src.citation, "license": src.licence,
    })


def load_koppen(region: "str | Region" = "global", band_rows: int = _BAND_ROWS) -> xr.Dataset:
    """Köppen-Geiger main class at 1 km (uint8 1-5 = A-E, 0 = no data), lazily (dask).

    Parameters
    ----------
    region : str or Region
        Region name or box; snapped outward to the 1/120° grid.
    band_rows : int
        Rows per dask chunk; each chunk decompresses only its own TIFF strips.

    Returns
    -------
    xarray.Dataset
        Dask-backed, dims ``(lat, lon)``, CF flag attributes.
    """
    win = window(region, 1.0 / KM1_CPD)
    path = SOURCES["koppen"].path()
    r0, r1 = win.north_up_rows()

    def band(a: int, b: int) -> np.ndarray:
        with StripTiff(path) as tif:
            return tif.read_rows(a, b, win.j0, win.j1)[::-1]

    # chunks in ascending-latitude order: the southernmost file rows come first
    starts = list(range(r1, r0, -band_rows))
    blocks = [da.from_delayed(dask.delayed(band)(max(r0, s - band_rows), s),
                              shape=(s - max(r0, s - band_rows), win.shape[1]), dtype=np.uint8)
              for s in starts]
    arr = da.concatenate(blocks, axis=0)
    return _dataset(arr, win, "koppen", {
        "long_name": "Köppen-Geiger main climate class (Beck et al. 2018)",
        **koppen_flag_attrs(),
        "source": SOURCES["koppen"].title, "references": SOURCES["koppen"].citation,
        "license": SOURCES["koppen"].licence,
    })


def load_land_mask(region: "str | Region") -> xr.Dataset:
    """GLOBE 1 km land mask (True = land) for a region, read into memory.

    The whole globe is 933 MB as bool; ask for a region, or use :func:`land_fraction` which
    streams.
    """
    win = window(region, 1.0 / KM1_CPD)
    r0, r1 = win.north_up_rows()
    out = np.empty(win.shape, bool)
    for row, block in iter_npz_rows(SOURCES["landmask"].path(), "mask", r0, r1, win.j0, win.j1):
        # file rows are north-up; place them at their ascending-latitude position
        out[r1 - row - block.shape[0] : r1 - row] = ~block[::-1]
    return _dataset(out, win, "land", {
        "long_name": "land mask (GLOBE 1 km)", "flag_values": np.array([0, 1], np.uint8),
        "flag_meanings": "ocean land", "source": SOURCES["landmask"].title,
        "references": SOURCES["landmask"].citation, "license": SOURCES["landmask"].licence,
    })


def _km_weights(r_start: int, n: int, cpd_rows: int) -> np.ndarray:
    """Area weights sin φ2 − sin φ1 of north-up 1 km rows ``r_start .. r_start+n-1``."""
    top = 90.0 - np.arange(r_start, r_start + n + 1) / cpd_rows
    s = np.sin(np.deg2rad(top))
    return s[:-1] - s[1:]


def _weighted_block_share(hit: np.ndarray, w: np.ndarray, factor: int) -> np.ndarray:
    """Area share of ``hit`` cells in each ``factor x factor`` block, rows weighted by ``w``.

    Counting along each row first (small integers) and weighting the row counts afterwards is
    exact, because all cells of one row have the same area, and far cheaper than weighting
    every cell.
    """
    n, m = hit.shape
    h = hit.view(np.uint8).reshape(n, m // factor, factor)
    counts = h[:, :, 0].astype(np.uint16)
    for k in range(1, factor):  # strided adds: much faster than a reduction over a short axis
        counts += h[:, :, k]
    weighted = (counts * w[:, None]).reshape(n // factor, factor, m // factor).sum(axis=1)
    return weighted / (factor * w.reshape(n // factor, factor).sum(axis=1))[:, None]


def land_fraction(region: "str | Region" = "global", res: float = FINE_RES) -> xr.Dataset:
    """Area-weighted land fraction of the GLOBE 1 km mask on the ``res``° grid (float32).

    Each 1 km cell is weighted by its exact spherical area, so the global area-weighted mean of
    the result equals the land share of the Earth's surface in GLOBE.
    """
    factor = _factor(res)
    win = window(region, res)
    km = win.refine(factor)
    r0, r1 = km.north_up_rows()
    out = np.empty(win.shape, np.float64)
    for row, block in iter_npz_rows(SOURCES["landmask"].path(), "mask", r0, r1, km.j0, km.j1, _BAND_ROWS):
        w = _km_weights(row, block.shape[0], KM1_CPD)
        frac = _weighted_block_share(~block, w, factor)
        a = (r1 - row - block.shape[0]) // factor
        out[a : a + frac.shape[0]] = frac[::-1]
    return _dataset(out.astype(np.float32), win, "land_fraction", {
        "long_name": "land area fraction (GLOBE 1 km mask, area-weighted)",
        "standard_name": "land_area_fraction", "units": "1", "valid_min": 0.0, "valid_max": 1.0,
        "source": SOURCES["landmask"].title, "references": SOURCES["landmask"].citation,
    })


def koppen_majority(region: "str | Region" = "global", res: float = FINE_RES) -> xr.Dataset:
    """Area-majority Köppen-Geiger main class of the 1 km cells in each ``res``° cell (uint8).

    No-data 1 km cells (0, the sea) are ignored; a cell without any classed 1 km cell is 0.
    Exact ties go to the lower class number.
    """
    factor = _factor(res)
    win = window(region, res)
    km = win.refine(factor)
    r0, r1 = km.north_up_rows()
    out = np.empty(win.shape, np.uint8)
    with StripTiff(SOURCES["koppen"].path()) as tif:
        for row in range(r0, r1, _BAND_ROWS):
            n = min(_BAND_ROWS, r1 - row)
            block = tif.read_rows(row, row + n, km.j0, km.j1)
            w = _km_weights(row, n, KM1_CPD)
            area = np.stack([_weighted_block_share(block == k, w, factor) for k in KOPPEN_CLASSES])
            cls = (np.argmax(area, axis=0) + 1).astype(np.uint8)
            cls[area.max(axis=0) <= 0] = KOPPEN_NODATA
            a = (r1 - row - n) // factor
            out[a : a + cls.shape[0]] = cls[::-1]
    return _dataset(out, win, "koppen", {
        "long_name": f"Köppen-Geiger main climate class, area majority of 1 km cells per {res:g}° cell",
        **koppen_flag_attrs(),
        "source": SOURCES["koppen"].title, "references": SOURCES["koppen"].citation,
        "license": SOURCES["koppen"].licence,
    })


def _factor(res: float) -> int:
    f = res * KM1_CPD
    if abs(f - round(f)) > 1e-6 or round(f) < 1 or _BAND_ROWS % round(f):
        raise ConfigError(f"resolution {res}° must be a whole multiple of the 1 km (1/120°) grid dividing 5°, e.g. 0.05, 0.25, 1")
    return int(round(f))
