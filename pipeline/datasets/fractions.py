"""Coarse land-cover fractions (LUH2-like) from the 0.05° IGBP map, with exact area weights.

For a coarse cell ``J`` made of fine cells ``i`` (all fine cells nest exactly, see
:mod:`pipeline.datasets.window`), the fraction of class ``k`` is

    f_k(J) = Σ_{i∈J} a_i [c_i = k] / Σ_{i∈J} a_i [c_i valid],     a_i = R² Δλ (sin φ2 − sin φ1)

so ``Σ_k f_k(J) = 1`` wherever ``J`` holds a valid fine cell (NaN elsewhere) and
``Σ_J f_k(J) A_valid(J) = Σ_i a_i [c_i = k]``: the coarse fractions carry exactly the fine
map's class areas. Group fractions are sums of class fractions over the classes of a group.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from pipeline.datasets.classes import IGBP_NODATA, N_IGBP, ClassTable, load_class_table
from pipeline.datasets.loaders import FINE_RES, load_igbp, window
from pipeline.datasets.window import GridWindow
from pipeline.errors import ConfigError


def coarsen_factor(fine_res: float, coarse_res: float) -> int:
    """Whole number of fine cells per coarse cell side, or a :class:`ConfigError`."""
    if not (fine_res > 0 and coarse_res > 0 and np.isfinite(fine_res) and np.isfinite(coarse_res)):
        raise ConfigError(f"grid resolutions must be positive numbers of degrees, got {fine_res!r} and {coarse_res!r}")
    f = coarse_res / fine_res
    if abs(f - round(f)) > 1e-6 or round(f) < 1:
        raise ConfigError(f"coarse resolution {coarse_res}° must be a whole multiple of {fine_res}°, e.g. 0.25, 0.5 or 1")
    return int(round(f))


def class_area_fractions(classes: np.ndarray, win: GridWindow, factor: int, n_classes: int,
                         nodata: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Area fractions of each class per coarse cell.

    Parameters
    ----------
    classes : numpy.ndarray
        Integer class map ``(nlat, nlon)`` on ``win``, latitude ascending, values ``0..n_classes-1``
        or ``nodata``.
    win : GridWindow
        The fine grid window of ``classes``; it must nest in the coarse grid.
    factor : int
        Fine cells per coarse cell side.
    n_classes : int
        Number of classes (values ``0 .. n_classes-1``).
    nodata : int, optional
        The no-data value (documentation only: any value outside ``0..n_classes-1`` is excluded
        from the valid area).

    Returns
    -------
    fractions : numpy.ndarray
        ``(n_classes, nlat/factor, nlon/factor)`` float64; NaN where a coarse cell has no valid
        fine cell.
    valid_area : numpy.ndarray
        Valid area (m²) of each coarse cell.
    """
    win.coarsen(factor)  # raises if the windows do not nest
    ny, nx = classes.shape
    w = win.row_area_m2  # all cells of a row share one area: weight row counts, not cells
    area = np.zeros((n_classes, ny // factor, nx // factor))
    for k in range(n_classes):
        counts = (classes == k).reshape(ny, nx // factor, factor).sum(axis=2)
        area[k] = (counts * w[:, None]).reshape(ny // factor, factor, nx // factor).sum(axis=1)
    # values outside 0..n_classes-1 (``nodata`` included) are counted in no class, hence not valid
    valid_area = area.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(valid_area > 0, area / valid_area, np.nan)
    return frac, valid_area


def lulc_fractions_2019(region: "str" = "iberia", res: float = 0.25, table: ClassTable | None = None,
                        igbp: xr.Dataset | None = None) -> xr.Dataset:
    """IGBP class and ESM-group fractions of the real 2019 map on the ``res``° grid.

    Parameters
    ----------
    region : str or Region
        Region name or box; snapped outward to ``res``.
    res : float
        Coarse resolution in degrees (a multiple of 0.05°: 0.25 like LUH2, or 1).
    table : ClassTable, optional
        Class table defining the groups (default: packaged).
    igbp : xarray.Dataset, optional
        An already loaded :func:`~pipeline.datasets.loaders.load_igbp` result covering the
        snapped region, to avoid reading it twice.

    Returns
    -------
    xarray.Dataset
        ``lulc_fraction_2019(group, lat, lon)``, ``igbp_fraction_2019(igbp_class, lat, lon)``
        (float32, units "1") and ``valid_area(lat, lon)`` (m²).
    """
    table = table or load_class_table()
    factor = coarsen_factor(FINE_RES, res)
    cwin = window(region, res)
    fwin = cwin.refine(factor)
    if igbp is None:
        igbp = load_igbp(cwin_region(cwin), table)
    else:
        igbp = igbp.sel(lat=slice(fwin.lat_edges[0], fwin.lat_edges[-1]),
                        lon=slice(fwin.lon_edges[0], fwin.lon_edges[-1]))
    classes = igbp["igbp"].values
    if classes.shape != fwin.shape:
        raise ConfigError(f"the IGBP map has shape {classes.shape}, expected {fwin.shape} for the {res}° window")
    frac, valid_area = class_area_fractions(classes, fwin, factor, N_IGBP, IGBP_NODATA)
    lut = table.group_index()[:N_IGBP]
    groups = np.zeros((len(table.groups),) + frac.shape[1:])
    for k in range(N_IGBP):
        groups[lut[k]] += frac[k]
    coords = cwin.coords()
    frac_attrs = {"units": "1", "valid_min": 0.0, "valid_max": 1.0, "cell_methods": "area: mean"}
    ds = xr.Dataset(
        {
            "lulc_fraction_2019": (("group", "lat", "lon"), groups.astype(np.float32), {
                **frac_attrs, "long_name": "area fraction of each land-cover group in 2019 (MODIS MCD12C1)",
                "standard_name": "area_fraction"}),
            "igbp_fraction_2019": (("igbp_class", "lat", "lon"), frac.astype(np.float32), {
                **frac_attrs, "long_name": "area fraction of each IGBP class in 2019 (MODIS MCD12C1)",
                "standard_name": "area_fraction"}),
            "valid_area": (("lat", "lon"), valid_area, {
                "units": "m2", "long_name": "area of the cell covered by valid IGBP data",
                "standard_name": "cell_area"}),
        },
        coords={**coords,
                "group": ("group", np.array(table.groups, dtype=object), {"long_name": "ESM land-cover group"}),
                "igbp_class": ("igbp_class", np.arange(N_IGBP, dtype=np.uint8),
                               {"long_name": "IGBP class value",
                                "flag_meanings": " ".join(table.frame["short_name"])})},
    )
    return ds


def cwin_region(win: GridWindow):
    """The :class:`~pipeline.datasets.regions.Region` exactly covering a grid window."""
    from pipeline.datasets.regions import Region

    return Region("window", float(win.lat_edges[0]), float(win.lat_edges[-1]),
                  float(win.lon_edges[0]), float(win.lon_edges[-1]))
