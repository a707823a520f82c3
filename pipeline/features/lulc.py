"""The LULC downscaling table: one row per valid fine cell, the parent's coarse group fractions
broadcast to it, the fine static predictors, and the fine class as the target.

The only fine truth is the 2019 map (``static.zarr`` ``igbp``), so training and testing use the
2019 coarse fractions (``lulc_fraction_2019``); the same builder with another year's and
scenario's fractions (``lulc_fraction``) gives the rows to downscale. Each row carries what the
constraint layers need: its coarse ``parent`` cell, its exact spherical ``area`` and the group
fraction columns ``lulc_<group>``; a row is a fine cell whose class is valid (the coarse
fractions are fractions of that valid area).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.errors import InputDataError
from pipeline.features.broadcast import make_broadcast
from pipeline.features.cells import make_cell_index
from pipeline.sphere import centre_grid_areas

__all__ = ["LulcTable", "lulc_table"]


@dataclass
class LulcTable:
    """A LULC table and the roles of its columns.

    Attributes
    ----------
    frame : pandas.DataFrame
        Columns ``cell``, ``parent``, ``area``, the static predictors, ``lulc_<group>`` and (when the
        fine map is given) the target.
    groups : tuple of str
        The coarse groups, in the order of the ``group`` coordinate.
    group_columns : dict of str to str
        Group → its fraction column.
    grid_shape : tuple of int
        The fine grid's (nlat, nlon); ``cell`` is the flat C-order index into it.
    coarse_shape : tuple of int
        The coarse grid's (nlat, nlon); ``parent`` is the flat index into it.
    lat, lon, coarse_lat, coarse_lon : numpy.ndarray
        The fine and coarse cell centres.
    """

    frame: pd.DataFrame
    groups: tuple[str, ...]
    group_columns: dict[str, str]
    grid_shape: tuple[int, int]
    coarse_shape: tuple[int, int]
    lat: np.ndarray
    lon: np.ndarray
    coarse_lat: np.ndarray
    coarse_lon: np.ndarray


def lulc_table(static: xr.Dataset, fractions: xr.DataArray, *, target: str | None = "igbp",
               static_columns=("koppen", "land_fraction", "distance_to_coast", "lat", "lon"),
               nodata: int = 255, valid: np.ndarray | None = None, source: str = "static.zarr") -> LulcTable:
    """Rows of the LULC task: valid fine cells with their parent's group fractions.

    Parameters
    ----------
    static : xarray.Dataset
        The fine static layers (``static.zarr``): ``lat``/``lon`` ascending, the target map and the
        static predictors.
    fractions : xarray.DataArray
        Coarse group fractions (``group``, ``lat``, ``lon``) of one year and scenario, on a grid that
        nests the fine one.
    target : str or None
        The fine class variable of ``static`` (``None``: no target column).
    static_columns : sequence of str
        Fine predictors (``lat``/``lon`` are the cell centres).
    nodata : int
        Class code of cells without a class (not rows).
    valid : numpy.ndarray, optional
        Boolean (nlat, nlon) of the cells that become rows; default: the target's valid cells.
    source : str
        Name of the static store in messages.

    Returns
    -------
    LulcTable
        The rows and the roles of their columns.
    """
    if "group" not in fractions.dims:
        raise InputDataError(f"the coarse LULC fractions {fractions.name!r} need a 'group' dimension, they have "
                             f"{fractions.dims}")
    lat = np.asarray(static["lat"].values, np.float64)
    lon = np.asarray(static["lon"].values, np.float64)
    if valid is None:
        if target is None or target not in static:
            raise InputDataError(f"{source} has no {target!r} variable to select the valid cells; pass valid=")
        valid = np.asarray(static[target].transpose("lat", "lon").values) != nodata
    index = make_cell_index(lat, lon, valid, source=f"valid cells of {source}")
    frac = fractions.transpose("group", "lat", "lon")
    groups = tuple(str(g) for g in frac["group"].values)
    bc = make_broadcast(index, frac.to_dataset(name="f"), "parent", var=str(fractions.name), store="lulc_coarse.zarr")
    parent = bc.idx[0].astype(np.int64)
    cols: dict[str, np.ndarray] = {"cell": index.cells.astype(np.int64), "parent": parent,
                                   "area": centre_grid_areas(lat, lon).ravel()[index.cells]}
    fy, fx = index.lat_lon()
    for name in static_columns:
        if name == "lat":
            cols["lat"] = fy.astype(np.float32)
        elif name == "lon":
            cols["lon"] = fx.astype(np.float32)
        elif name in static:
            cols[name] = np.asarray(static[name].transpose("lat", "lon").values).ravel()[index.cells]
        else:
            raise InputDataError(f"{source} has no static predictor {name!r}; its variables are "
                                 f"{', '.join(map(str, static.data_vars))}")
    values = np.asarray(frac.values, np.float64)  # (group, lat_c, lon_c)
    flat = values.reshape(len(groups), -1)
    group_columns = {}
    for g, name in enumerate(groups):
        col = f"lulc_{name}"
        cols[col] = flat[g][parent].astype(np.float32)
        group_columns[name] = col
    if target is not None:
        cols[target] = np.asarray(static[target].transpose("lat", "lon").values).ravel()[index.cells]
    frame = pd.DataFrame(cols)
    if "koppen" in frame:
        frame["koppen"] = pd.Categorical(frame["koppen"])
    return LulcTable(frame, groups, group_columns, (lat.size, lon.size), tuple(frac.shape[1:]), lat, lon,
                     np.asarray(frac["lat"].values), np.asarray(frac["lon"].values))
