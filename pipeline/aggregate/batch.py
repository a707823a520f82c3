"""Many fine fields at once onto the target cells that overlap the source: :class:`FieldSums`.

:func:`~pipeline.aggregate.conservative_mean` aggregates one variable per call onto the whole
target grid. Products built from several fine variables (LAI x the cover share of each PFT, for
every month) are better made in memory, band of rows by band of rows, and passed to the kernels
as one stack of fields per call. :class:`FieldSums` holds the plan for that, bound once:

* by default only to the target cells that overlap the source (:func:`overlap_cells`), so the
  accumulators and their finishing are O(region), not O(globe); each kept cell gets exactly (bit
  for bit) the value of the same cell on the whole grid (:func:`~pipeline.aggregate.plan.bind_plan`);
* :meth:`FieldSums.read_bands` and :meth:`FieldSums.bands` cut the source rows into bands to read
  (on the input's dask chunk boundaries) and, inside them, bands of built fields within a memory
  budget; :meth:`FieldSums.add` adds a (fields, rows, lon) stack of a band into accumulators made
  by :meth:`FieldSums.new`, :meth:`FieldSums.finish` gives the sums Σ w·x and valid areas Σ w per
  field and kept cell, and :func:`mean_of` the conservative mean (CDO ``remapcon``, ``fracarea``).

The fields must be in the source's storage order (as :meth:`FieldSums.read` gives them): the
weights index the array as stored (descending latitudes, 0..360 longitudes).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from pipeline.aggregate.crop import crop_to_source, overlap_cells, source_edges
from pipeline.aggregate.plan import bind_plan
from pipeline.aggregate.stream import CHUNK_VALUES, choose_engine, row_chunks
from pipeline.errors import ConfigError, InputDataError
from pipeline.grids import Grid, parse_grid
from pipeline.io import read_values

__all__ = ["CHUNK_VALUES", "FIELD_VALUES", "FieldSums", "grid_frame", "mean_of"]

#: Default values of one band of built fields (all its fields): 8 M values, 64 MB in float64.
FIELD_VALUES = 2**23


def grid_frame(grid: Grid) -> xr.Dataset:
    """The coordinates and CF bounds of every cell of ``grid``, as a Dataset."""
    cf = grid.cf_coords()
    return xr.Dataset({k: (v[0], v[1]) for k, v in cf.items() if "bnds" in k},
                      coords={k: (v[0], v[1], v[2]) for k, v in cf.items() if "bnds" not in k})


def mean_of(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Σ w·x / Σ w over the valid part of each cell; NaN where the cell has no valid area."""
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    out[den <= 0] = np.nan
    return out


class FieldSums:
    """Area-weighted sums of stacks of fine fields on the target cells that overlap the source.

    Parameters
    ----------
    da : xarray.DataArray
        A source variable: its lat/lon coordinates (and bounds) define the source grid, its
        backing array the engine for ``auto``.
    grid : str or Grid
        The target grid (spec or grid object).
    global_output : bool
        Keep every cell of ``grid``; default: only the cells that overlap the source (an
        :class:`~pipeline.errors.InputDataError` when there are none).
    engine : str
        Aggregation kernels: ``auto``, ``numpy``, ``numba`` or ``cupy``.
    name : str
        What ``da`` is, for messages.

    Attributes
    ----------
    grid : Grid
        The target grid.
    cells : dict or None
        The kept cells per grid dimension (:func:`overlap_cells`), None when every cell is kept.
    shape : tuple
        The output's grid shape (kept rows x columns, or kept points).
    size : int
        Number of output cells.
    """

    def __init__(self, da: xr.DataArray, grid, *, global_output: bool = False, engine: str = "auto",
                 name: str = "input"):
        self.grid = g = parse_grid(grid)
        self.name = name
        self._edges = source_edges(da, name=name)
        cells = None
        if not global_output:
            cells = overlap_cells(g, *self._edges)
            if any(ix.size == 0 for ix in cells.values()):
                crop_to_source(grid_frame(g), g, *self._edges)  # raises the message naming both extents
            if all(ix.size == n and np.array_equal(ix, np.arange(n)) for ix, n in zip(cells.values(), g.shape)):
                cells = None
        self.cells = cells
        self.engine = choose_engine(engine, da)
        self.plan = bind_plan(da, None, g, name=name, xp=self.engine.xp, cells=cells)
        self.shape = tuple(int(ix.size) for ix in cells.values()) if cells is not None else tuple(g.shape)
        self.size = int(np.prod(self.shape))

    @property
    def lat_dim(self) -> str:
        return self.plan.lat_dim

    @property
    def lon_dim(self) -> str:
        return self.plan.lon_dim

    @property
    def dims(self) -> tuple[str, ...]:
        """The output's grid dimensions."""
        return tuple(self.grid.dims)

    @property
    def ny(self) -> int:
        return self.plan.ny

    @property
    def nx(self) -> int:
        return self.plan.nx

    def frame(self) -> xr.Dataset:
        """The kept cells' coordinates and CF bounds (as :func:`crop_to_source` cuts them)."""
        frame = grid_frame(self.grid)
        return frame if self.cells is None else crop_to_source(frame, self.grid, *self._edges)

    # -- bands of rows ---------------------------------------------------------------------------

    def read_bands(self, da: xr.DataArray, chunk_rows: int | None = None, *,
                   fields: int | None = None) -> list[tuple[int, int]]:
        """Row ranges [r0, r1) to read of ``da``: ``chunk_rows`` rows, or about
        :data:`~pipeline.aggregate.CHUNK_VALUES` values of ``fields`` fields (default: those of
        ``da``) on the input's dask chunk boundaries; ranges that contribute to no kept cell are
        left out."""
        nb = fields or int(np.prod([da.sizes[d] for d in da.dims if d not in (self.lat_dim, self.lon_dim)]))
        return [(a, b) for a, b in row_chunks(da, self.plan, max(1, nb), chunk_rows)
                if self.plan.chunk_has_links(a, b)]

    def bands(self, r0: int, r1: int, fields: int, *, budget: int = FIELD_VALUES) -> list[tuple[int, int]]:
        """Rows [r0, r1) cut into bands of at most ``budget`` values of ``fields`` fields (>= 1 row),
        without the bands that contribute to no kept cell."""
        if fields < 1:
            raise ConfigError(f"fields must be >= 1, got {fields}")
        rows = max(1, int(budget) // max(1, fields * self.nx))
        out = []
        for a in range(r0, r1, rows):
            b = min(r1, a + rows)
            if self.plan.chunk_has_links(a, b):
                out.append((a, b))
        return out

    def read(self, da: xr.DataArray, r0: int, r1: int) -> np.ndarray:
        """Rows [r0, r1) of ``da`` in memory as stored: (other dims..., rows, lon), NumPy."""
        lead = tuple(d for d in da.dims if d not in (self.lat_dim, self.lon_dim))
        sub = da.isel({self.lat_dim: slice(r0, r1)}).transpose(*lead, self.lat_dim, self.lon_dim)
        a = read_values(sub, region={self.lat_dim: (r0, r1)})
        if not isinstance(a, np.ndarray):
            from kernels import to_host

            a = to_host(a)
        return np.asarray(a)

    # -- sums ------------------------------------------------------------------------------------

    def new(self, nb: int) -> list:
        """Accumulators of Σ w·x and Σ w for ``nb`` fields on the kept cells."""
        return self.plan.new_acc(nb, 2)

    def add(self, x, r0: int, r1: int, acc) -> None:
        """Add the fields ``x`` (nb, r1 - r0, lon; storage order; NaN/inf: not valid) of rows [r0, r1)."""
        xp = self.engine.xp
        if x.ndim != 3 or x.shape[1:] != (r1 - r0, self.nx):
            raise InputDataError(f"{self.name}: fields of shape {tuple(x.shape)} for rows {r0}..{r1}; expected "
                                 f"(fields, {r1 - r0}, {self.nx})")
        if xp is not np:
            x = xp.asarray(x)
        if self.plan.chunk_has_links(r0, r1):
            self.plan.weighted_sum(self.engine.kernels, x, r0, r1, acc, False)

    def finish(self, acc) -> tuple[np.ndarray, np.ndarray]:
        """Σ w·x and Σ w (valid area, unit sphere) per field and kept cell: two (nb, *shape) arrays."""
        num, den = self.plan.finish(acc)
        return num.reshape((-1,) + self.shape), den.reshape((-1,) + self.shape)


