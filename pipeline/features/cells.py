"""The cell index: the valid cells of the fine grid in row order, and the gather of their values."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from kernels import to_host
from kernels.gather import gather_runs
from pipeline.errors import InputDataError

#: Name of the cell-index column.
CELL = "cell"
SPATIAL_DIMS = ("lat", "lon")


@dataclass
class CellIndex:
    """The valid cells of a regular lat-lon grid, in row order.

    Attributes
    ----------
    lat, lon
        Cell-centre coordinates (1-D).
    mask
        Boolean (nlat, nlon), True for cells that become rows.
    cells
        Flat C-order indices of the valid cells, ascending (int64).
    """

    lat: np.ndarray
    lon: np.ndarray
    mask: np.ndarray
    cells: np.ndarray = field(init=False)
    starts: np.ndarray = field(init=False, repr=False)
    lens: np.ndarray = field(init=False, repr=False)
    offs: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        self.mask = np.asarray(self.mask, dtype=bool)
        flat = self.mask.ravel()
        self.cells = np.flatnonzero(flat).astype(np.int64, copy=False)
        # runs of valid cells from the mask's 0/1 steps, in int8 (an int64 copy of the mask cost 4x more)
        zero = np.zeros(1, np.int8)
        edges = np.diff(flat.view(np.int8), prepend=zero, append=zero)
        self.starts = np.flatnonzero(edges == 1).astype(np.int64, copy=False)
        self.lens = np.flatnonzero(edges == -1).astype(np.int64, copy=False) - self.starts
        self.offs = np.cumsum(self.lens) - self.lens

    @property
    def shape(self) -> tuple[int, int]:
        return self.mask.shape

    @property
    def ncell_total(self) -> int:
        return int(self.mask.size)

    @property
    def nvalid(self) -> int:
        return int(self.cells.size)

    @property
    def all_valid(self) -> bool:
        return self.nvalid == self.ncell_total

    @property
    def cell_dtype(self):
        return np.int32 if self.ncell_total < 2**31 else np.int64

    def gather(self, block, xp=np):
        """Valid cells of a block shaped (..., nlat, nlon) → array shaped (prod(...), nvalid)."""
        lead = int(np.prod(block.shape[:-2], dtype=np.int64))
        a = block.reshape(lead, self.ncell_total)
        if self.all_valid:
            return a
        if xp is np:
            a = np.ascontiguousarray(a)
            if a.dtype.kind in "biuf":
                return gather_runs(a, self.starts, self.lens, self.offs, np.empty((lead, self.nvalid), dtype=a.dtype))
            return np.take(a, self.cells, axis=1)
        return xp.take(a, xp.asarray(self.cells), axis=1)

    def lat_lon(self) -> tuple[np.ndarray, np.ndarray]:
        """Centre latitude and longitude of every valid cell (float64)."""
        iy, ix = np.divmod(self.cells, self.mask.shape[1])
        return np.asarray(self.lat, np.float64)[iy], np.asarray(self.lon, np.float64)[ix]


def _grid_coords(ds, source: str = "dataset") -> tuple[np.ndarray, np.ndarray]:
    missing = [d for d in SPATIAL_DIMS if d not in ds.coords]
    if missing:
        raise InputDataError(
            f"{source} has no {' or '.join(missing)} coordinate (it has {', '.join(map(str, ds.coords)) or 'none'}); "
            "harmonise it first with `terrascale validate PATH -o OUT` (CF names lat/lon, lat ascending)"
        )
    lat = np.asarray(ds["lat"].values, np.float64)
    lon = np.asarray(ds["lon"].values, np.float64)
    for name, c in (("lat", lat), ("lon", lon)):
        if c.ndim != 1 or (c.size > 1 and not np.all(np.diff(c) > 0)):
            raise InputDataError(
                f"{source}: coordinate '{name}' must be 1-D and strictly ascending; harmonise it with "
                "`terrascale validate PATH -o OUT`"
            )
    return lat, lon


def make_cell_index(lat, lon, mask=None, *, source: str = "mask") -> CellIndex:
    """A :class:`CellIndex` from coordinates and an optional mask (True = keep; NaN/0 = drop).

    Raises :class:`InputDataError` when the mask leaves no cell or does not match the grid.
    """
    lat = np.asarray(lat, np.float64)
    lon = np.asarray(lon, np.float64)
    if mask is None:
        m = np.ones((lat.size, lon.size), bool)
    else:
        if isinstance(mask, xr.DataArray):
            if set(mask.dims) != set(SPATIAL_DIMS):
                raise InputDataError(f"{source} must have dims (lat, lon), it has {mask.dims}")
            mask = mask.transpose(*SPATIAL_DIMS).values
        m = to_host(mask)
        if m.dtype != bool:
            m = np.nan_to_num(m.astype(np.float64), nan=0.0) != 0
        if m.shape != (lat.size, lon.size):
            raise InputDataError(f"{source} has shape {m.shape} but the grid is {(lat.size, lon.size)} (lat, lon)")
    if not m.any():
        raise InputDataError(
            f"{source} leaves no cell: all {m.size} cells of the {lat.size}x{lon.size} grid are masked out; "
            "check the mask variable and threshold (features.mask_variable / features.mask_min) and the region"
        )
    return CellIndex(lat, lon, m)
