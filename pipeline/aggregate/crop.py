"""Regional outputs: the target cells that overlap a regional input, cut out of a result on the whole grid.

An aggregation always runs on the whole target grid (the weights, plans and kernels know no
regions), so a 0.05° Iberian input aggregated onto ``1deg`` gives 180 x 360 cells of which 8 x 14
hold data. :func:`crop_to_source` keeps only the target cells that overlap the input's cells (the
box of its cell edges): a regular or Gaussian lat-lon target is cut to the overlapping latitude
rows and longitude columns, a reduced Gaussian (1-D ``cell``) target to the overlapping points.
The values are the global result's, selected, never recomputed: a cropped cell equals the same
cell of the whole-grid output exactly.

Bounds variables on the grid dimensions (``lat_bnds``, ``lon_bnds``, or the corner bounds of a
reduced grid) are cut with their cells. A reduced grid's output gets a ``cell_index`` coordinate
(the position of each kept point in the whole grid), so it can be put back. When the kept columns
of a lat-lon target run across the grid's longitude seam (an input around 0° on a 0..360 grid),
they are put in order from west to east and their longitudes (and bounds) shifted by 360° where
needed, so that the coordinate stays monotonic as CF wants.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from pipeline.errors import InputDataError
from pipeline.grids import Grid, RectilinearGrid, parse_grid, source_axes

#: Overlaps shorter than this fraction of the narrower interval are rounding slivers, as for the
#: weights (:data:`pipeline.weights.overlaps.SLIVER`): a target cell that merely touches the input's
#: edge is not kept.
SLIVER = 1e-9


def source_edges(da: xr.DataArray, *, name: str = "input") -> tuple[np.ndarray, np.ndarray]:
    """The latitude and longitude cell edges of a source field, ascending (degrees).

    Parameters
    ----------
    da : xarray.DataArray
        A field on a lat/lon grid (any orientation, 0..360 or -180..180, CF bounds if present).
    name : str
        What ``da`` is, for messages.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Latitude edges (ny + 1) and longitude edges (nx + 1; one ascending run, possibly beyond
        180° for an input across the antimeridian), as the aggregation sees them.
    """
    grid = source_axes(da, name=name).grid
    return grid.lat_edges, grid.lon_edges


def _interval_overlap(lo, hi, s0: float, s1: float, min_width: float) -> np.ndarray:
    """Whether each interval [lo, hi] overlaps [s0, s1] by more than a rounding sliver."""
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    width = np.minimum(hi - lo, min_width)
    return np.minimum(hi, s1) - np.maximum(lo, s0) > SLIVER * width


def _lon_overlap(lo, hi, s0: float, s1: float, min_width: float) -> np.ndarray:
    """As :func:`_interval_overlap`, periodic in 360°: each cell is tried at its copies around [s0, s1]."""
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    base = lo + 360.0 * np.floor((s0 - lo) / 360.0)  # base <= s0 < base + 360
    shift = base - lo
    hit = np.zeros(lo.shape, dtype=bool)
    for k in (-1.0, 0.0, 1.0):
        hit |= _interval_overlap(lo + shift + 360.0 * k, hi + shift + 360.0 * k, s0, s1, min_width)
    return hit


def _source_box(lat_edges, lon_edges):
    la = np.asarray(lat_edges, np.float64).ravel()
    lo = np.asarray(lon_edges, np.float64).ravel()
    if la.size < 2 or lo.size < 2 or np.any(np.diff(la) <= 0) or np.any(np.diff(lo) <= 0):
        raise InputDataError("crop_to_source: the source cell edges must be ascending arrays of at least two "
                             "values (use source_edges(da) to get them from the input)")
    return la, lo


def _selection(grid: Grid, lat_edges, lon_edges):
    """Index per grid dimension of the overlapping cells, and the longitude shift of each kept column."""
    la, lo = _source_box(lat_edges, lon_edges)
    s_lat0, s_lat1 = float(la[0]), float(la[-1])
    s_lon0, s_lon1 = float(lo[0]), float(lo[-1])
    lat_w, lon_w = float(np.diff(la).min()), float(np.diff(lo).min())
    whole_lon = s_lon1 - s_lon0 >= 360.0 - 1e-9
    if isinstance(grid, RectilinearGrid):
        le = grid.lat_edges
        rows = np.flatnonzero(_interval_overlap(le[:-1], le[1:], s_lat0, s_lat1, lat_w))
        ce = grid.lon_edges
        nx = ce.size - 1
        if whole_lon:
            return {"lat": rows, "lon": np.arange(nx)}, None
        hit = _lon_overlap(ce[:-1], ce[1:], s_lon0, s_lon1, lon_w)
        cols = np.flatnonzero(hit)
        shift = None
        if cols.size and cols.size < nx and hit[0] and hit[-1] and np.ptp(ce) >= 360.0 - 1e-9:
            # the kept columns run across the grid's seam: order them west to east around the
            # source and shift their longitudes by 360° where needed, so they stay monotonic
            mid = 0.5 * (s_lon0 + s_lon1)
            centre = 0.5 * (ce[:-1] + ce[1:])[cols]
            k = np.round((mid - centre) / 360.0)
            order = np.argsort(centre + 360.0 * k, kind="stable")
            cols, shift = cols[order], (360.0 * k)[order]
            if not np.any(shift):
                shift = None
        return {"lat": rows, "lon": cols}, shift
    lat0, lat1, lon0, lon1 = grid.boxes()
    keep = _interval_overlap(lat0, lat1, s_lat0, s_lat1, lat_w)
    if not whole_lon:
        keep &= _lon_overlap(lon0, lon1, s_lon0, s_lon1, lon_w)
    return {grid.dims[0]: np.flatnonzero(keep)}, None


def overlap_cells(grid, source_lat_edges, source_lon_edges) -> dict[str, np.ndarray]:
    """The cells of ``grid`` that overlap the box of the source's cell edges, per grid dimension.

    Parameters
    ----------
    grid : str or Grid
        The target grid (a spec such as ``"1deg"``, ``"N32"``, or a grid object).
    source_lat_edges, source_lon_edges : array_like
        The source's cell edges, ascending (:func:`source_edges`).

    Returns
    -------
    dict
        Grid dimension → indices of the kept cells (``{"lat": rows, "lon": cols}`` for a lat-lon
        grid, ``{"cell": points}`` for a reduced one); empty arrays when nothing overlaps.
    """
    index, _ = _selection(parse_grid(grid), source_lat_edges, source_lon_edges)
    return index


def crop_to_source(obj, grid, source_lat_edges, source_lon_edges):
    """Keep the cells of a result on ``grid`` that overlap the source's cells (see the module docstring).

    Parameters
    ----------
    obj : xarray.DataArray or xarray.Dataset
        An aggregation result on the whole of ``grid`` (its grid dimensions and sizes), with or
        without bounds variables.
    grid : str or Grid
        The target grid of ``obj``.
    source_lat_edges, source_lon_edges : array_like
        The source's cell edges, ascending (:func:`source_edges` of the input field).

    Returns
    -------
    xarray.DataArray or xarray.Dataset
        ``obj`` itself when every cell overlaps (a global input), else the selected cells with
        their coordinates and bounds (and ``cell_index`` for a reduced grid).

    Raises
    ------
    InputDataError
        ``obj`` is not on ``grid``, or the source overlaps no cell of ``grid``.
    """
    g = parse_grid(grid)
    what = obj.name if isinstance(obj, xr.DataArray) and obj.name is not None else type(obj).__name__
    for dim, n in zip(g.dims, g.shape):
        if obj.sizes.get(dim) != n:
            have = ", ".join(f"{d}={s}" for d, s in obj.sizes.items())
            raise InputDataError(f"crop_to_source: {what} is not on grid {g.name} (needs {dim}={n}, has {have}); "
                                 "crop a result on the whole target grid")
    index, shift = _selection(g, source_lat_edges, source_lon_edges)
    if any(ix.size == 0 for ix in index.values()):
        la, lo = _source_box(source_lat_edges, source_lon_edges)
        raise InputDataError(f"the input's cells (lat {la[0]:g}..{la[-1]:g}, lon {lo[0]:g}..{lo[-1]:g}) overlap no cell "
                             f"of grid {g.describe()}; choose a target grid that covers the input's region")
    if all(ix.size == n and np.array_equal(ix, np.arange(n)) for ix, n in zip(index.values(), g.shape)):
        return obj
    out = obj.isel(index)
    if not isinstance(g, RectilinearGrid):
        dim = g.dims[0]
        out = out.assign_coords(cell_index=(dim, index[dim].astype(np.int64),
                                            {"long_name": f"position of the cell in the whole grid {g.name} (from 0)"}))
    elif shift is not None:
        out = _shift_longitudes(out, shift)
    return out


def _shift_longitudes(out, shift: np.ndarray):
    """Add ``shift`` (degrees, one per kept column) to the longitudes and their bounds."""
    if "lon" not in out.coords:
        return out
    lon = out["lon"]
    out = out.assign_coords(lon=("lon", lon.values + shift, lon.attrs))
    bname = lon.attrs.get("bounds", "lon_bnds")
    if isinstance(out, xr.Dataset) and bname in out.variables and out[bname].dims[0] == "lon":
        b = out[bname]
        out[bname] = (b.dims, b.values + shift[:, None], b.attrs)
    return out
