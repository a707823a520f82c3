"""Cross-validation splits of the training table: spatial blocks, temporal holdout, or both.

Spatial block cross-validation
    The globe is cut into square blocks of ``block_size_deg`` degrees anchored at (-90°, -180°),
    so a block is the same whatever region a run covers. The blocks that hold at least one valid
    cell are shuffled with ``numpy.random.default_rng(seed)`` and dealt to ``n_folds`` folds in
    turn (fold sizes differ by at most one block). The cells of fold ``test_fold`` are *test*.
    With ``buffer_deg > 0`` every other cell whose centre lies within ``buffer_deg`` degrees of
    the centre of a test cell (Chebyshev distance in degrees: ``max(|dlat|, |dlon|)``, longitude
    wrapped on global grids) is *buffer*: it is neither trained on nor tested, so no training
    cell is closer than ``buffer_deg`` to a test cell. All remaining cells are *train*.

Temporal holdout
    Rows whose year lies in ``test_years`` (inclusive) are *test*, the others *train*.

Both
    *test* = test block and test year; *train* = train block (not buffer) and not a test year;
    buffer cells are *buffer* in every year; a train-block row in a test year or a test-block
    row outside the test years is *excluded* (it would leak the held-out place or period).

The table gets two columns: ``fold`` (int8, the cell's spatial fold, -1 for ``kind: temporal``)
and ``split`` (categorical, categories :data:`SPLIT_LABELS`). Both depend only on the grid, the
split settings and the seed, so the same seed always gives the same folds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError, InputDataError
from pipeline.sphere import EARTH_RADIUS, box_areas, edges_from_centres

#: Categories of the ``split`` column, in this order (codes 0..3).
SPLIT_LABELS: tuple[str, ...] = ("train", "test", "buffer", "excluded")
TRAIN, TEST, BUFFER, EXCLUDED = range(4)
#: Earth radius (km) of the cell areas: :data:`pipeline.sphere.EARTH_RADIUS`, as grids and weights use.
EARTH_RADIUS_KM = EARTH_RADIUS / 1000.0
_TOL = 1e-9


def _edges(centres: np.ndarray, clip: tuple[float, float] | None = None) -> np.ndarray:
    """Cell edges of a 1-D axis of cell centres (:func:`pipeline.grids.edges_from_centres`); one centre: ± 0.5°."""
    return edges_from_centres(centres, clip=clip, single_cell_width=1.0)


def cell_areas_km2(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Spherical areas (km²) of the cells of a regular lat-lon grid, shape (nlat, nlon).

    Area = R² · Δλ · (sin φ₂ − sin φ₁) with edges half-way between centres.
    """
    ly = _edges(lat, clip=(-90.0, 90.0))
    lx = _edges(lon)
    return np.abs(box_areas(ly[:-1, None], ly[1:, None], lx[None, :-1], lx[None, 1:], radius=EARTH_RADIUS_KM))


def _is_global_lon(lon: np.ndarray) -> bool:
    lx = _edges(lon)
    return abs((lx[-1] - lx[0]) - 360.0) < 1e-6


def block_ids(lat: np.ndarray, lon: np.ndarray, block_size_deg: float) -> np.ndarray:
    """Global block number of every cell, shape (nlat, nlon), blocks anchored at (-90, -180)."""
    if block_size_deg <= 0:
        raise ConfigError(f"splits.block_size_deg must be positive, got {block_size_deg}")
    nbx = int(np.ceil(360.0 / block_size_deg - _TOL))
    by = np.floor((np.asarray(lat, np.float64) + 90.0) / block_size_deg + _TOL).astype(np.int64)
    bx = np.floor((np.asarray(lon, np.float64) + 180.0) / block_size_deg + _TOL).astype(np.int64) % nbx
    return by[:, None] * nbx + bx[None, :]


def assign_folds(blocks: np.ndarray, valid: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold (0..n_folds-1) of every cell; -1 outside ``valid``.

    The distinct blocks holding valid cells are sorted, shuffled with ``default_rng(seed)`` and
    dealt round-robin to the folds.
    """
    if n_folds < 2:
        raise ConfigError(f"splits.n_folds must be at least 2, got {n_folds}")
    used = np.unique(blocks[valid])
    if used.size == 0:
        raise InputDataError("spatial splits: the mask leaves no valid cell to assign to a fold")
    order = np.random.default_rng(seed).permutation(used.size)
    fold_of_block = np.empty(used.size, dtype=np.int8)
    fold_of_block[order] = (np.arange(used.size) % n_folds).astype(np.int8)
    fold = np.full(blocks.shape, -1, dtype=np.int8)
    pos = np.searchsorted(used, blocks[valid])
    fold[valid] = fold_of_block[pos]
    return fold


def _dilate_axis(hit: np.ndarray, coord: np.ndarray, radius: float, axis: int, wrap: bool) -> np.ndarray:
    """True where some ``hit`` lies within ``radius`` along one axis (any spacing; exact)."""
    c = np.asarray(coord, dtype=np.float64)
    h = np.moveaxis(hit, axis, 0)
    if wrap:
        # three copies of the axis let a window run across the dateline
        c_ext = np.concatenate([c - 360.0, c, c + 360.0])
        h_ext = np.concatenate([h, h, h], axis=0)
    else:
        c_ext, h_ext = c, h
    cs = np.zeros((h_ext.shape[0] + 1,) + h_ext.shape[1:], dtype=np.int32)
    np.cumsum(h_ext, axis=0, out=cs[1:])
    lo = np.searchsorted(c_ext, c - radius - _TOL, side="left")
    hi = np.searchsorted(c_ext, c + radius + _TOL, side="right")
    out = (cs[hi] - cs[lo]) > 0
    return np.moveaxis(out, 0, axis)


def buffer_cells(test: np.ndarray, lat: np.ndarray, lon: np.ndarray, buffer_deg: float) -> np.ndarray:
    """Cells within ``buffer_deg`` (Chebyshev, centre to centre) of a test cell, test excluded."""
    if buffer_deg <= 0:
        return np.zeros(test.shape, dtype=bool)
    near = _dilate_axis(test, lat, buffer_deg, axis=0, wrap=False)
    near = _dilate_axis(near, lon, buffer_deg, axis=1, wrap=_is_global_lon(lon))
    return near & ~test


@dataclass
class CellSplit:
    """Per-cell spatial split on the fine grid (arrays of shape (nlat, nlon)).

    ``fold``: spatial fold, -1 outside the mask (or everywhere for ``kind: temporal``);
    ``label``: TRAIN, TEST or BUFFER code of the cell's place.
    """

    kind: str
    fold: np.ndarray
    label: np.ndarray
    test_years: tuple[int, int] | None
    settings: dict = field(default_factory=dict)

    def row_codes(self, cells, years, xp=np):
        """``fold`` and ``split`` codes for rows given their cell index and year (xp arrays)."""
        if xp is np:
            fold_all, place_all = self.fold.ravel(), self.label.ravel()
        else:  # copied to the device once, not per partition
            if getattr(self, "_device", None) is None:
                self._device = (xp.asarray(self.fold.ravel()), xp.asarray(self.label.ravel()))
            fold_all, place_all = self._device
        fold = fold_all[cells]
        place = place_all[cells]
        if self.kind == "spatial":
            return fold, place
        lo, hi = self.test_years
        in_test = (years >= lo) & (years <= hi)
        if self.kind == "temporal":
            return fold, xp.where(in_test, TEST, TRAIN).astype(xp.int8)
        split = xp.where(place == BUFFER, BUFFER,
                         xp.where((place == TEST) == in_test, xp.where(in_test, TEST, TRAIN), EXCLUDED))
        return fold, split.astype(xp.int8)


def make_cell_split(lat, lon, valid: np.ndarray, *, kind: str = "both", block_size_deg: float = 2.0,
                    n_folds: int = 5, test_fold: int = 0, buffer_deg: float = 0.0,
                    test_years: tuple[int, int] | None = None, seed: int = 0) -> CellSplit:
    """Build the per-cell split of a grid.

    Parameters
    ----------
    lat, lon
        Cell-centre coordinates (1-D, ascending).
    valid
        Boolean (nlat, nlon): the cells that become rows of the table.
    kind
        ``spatial``, ``temporal`` or ``both``.
    block_size_deg, n_folds, test_fold, buffer_deg
        Spatial blocks (see module docstring).
    test_years
        Held-out years (inclusive) for ``temporal`` and ``both``.
    seed
        Seed of the block shuffle.
    """
    lat = np.asarray(lat, np.float64)
    lon = np.asarray(lon, np.float64)
    valid = np.asarray(valid, bool)
    if kind not in ("spatial", "temporal", "both"):
        raise ConfigError(f"splits.kind '{kind}' is not one of spatial, temporal, both")
    if kind in ("temporal", "both") and test_years is None:
        raise ConfigError(f"splits.kind '{kind}' needs splits.test_years, e.g. [2016, 2020]")
    if not 0 <= test_fold < n_folds:
        raise ConfigError(f"splits.test_fold {test_fold} must be in 0..{n_folds - 1}")
    settings = dict(kind=kind, block_size_deg=block_size_deg, n_folds=n_folds, test_fold=test_fold,
                    buffer_deg=buffer_deg, test_years=list(test_years) if test_years else None, seed=seed)
    if kind == "temporal":
        fold = np.full(valid.shape, -1, np.int8)
        label = np.full(valid.shape, TRAIN, np.int8)
        return CellSplit(kind, fold, label, tuple(test_years), settings)
    fold = assign_folds(block_ids(lat, lon, block_size_deg), valid, n_folds, seed)
    test = fold == test_fold
    buf = buffer_cells(test, lat, lon, buffer_deg) & valid
    label = np.full(valid.shape, TRAIN, np.int8)
    label[test] = TEST
    label[buf] = BUFFER
    return CellSplit(kind, fold, label, tuple(test_years) if test_years else None, settings)


class SplitSummary:
    """Accumulates rows and cells per split over table partitions; :meth:`table` reports them.

    Area per split is the spherical area of the distinct cells that have at least one row in
    that split (a cell can count in several splits under ``kind: temporal``/``both``).
    """

    def __init__(self, lat, lon):
        self.lat = np.asarray(lat, np.float64)
        self.lon = np.asarray(lon, np.float64)
        ncell = self.lat.size * self.lon.size
        self.rows = np.zeros(len(SPLIT_LABELS), np.int64)
        self.seen = np.zeros((len(SPLIT_LABELS), ncell), dtype=bool)
        self.years: list[set] = [set() for _ in SPLIT_LABELS]

    def add(self, df) -> "SplitSummary":
        """Count one partition (pandas or cudf frame with ``cell`` and ``split`` columns)."""
        codes = _host(df["split"].cat.codes)
        cells = _host(df["cell"])
        self.rows += np.bincount(codes, minlength=len(SPLIT_LABELS))[: len(SPLIT_LABELS)]
        self.seen[codes, cells] = True
        if "time" in df.columns:
            years = pd.DatetimeIndex(_host(df["time"])).year.to_numpy()
            for k in range(len(SPLIT_LABELS)):
                sel = codes == k
                if sel.any():
                    self.years[k].update(np.unique(years[sel]).tolist())
        return self

    def table(self) -> pd.DataFrame:
        """One row per split: rows, row fraction, cells, area (km²), area fraction, years."""
        area = cell_areas_km2(self.lat, self.lon).ravel()
        total_rows = max(int(self.rows.sum()), 1)
        any_seen = self.seen.any(axis=0)
        total_area = float(area[any_seen].sum()) or 1.0
        out = []
        for k, name in enumerate(SPLIT_LABELS):
            a = float(area[self.seen[k]].sum())
            yrs = sorted(self.years[k])
            out.append(dict(split=name, rows=int(self.rows[k]), row_fraction=self.rows[k] / total_rows,
                            cells=int(self.seen[k].sum()), area_km2=a, area_fraction=a / total_area,
                            years=f"{yrs[0]}-{yrs[-1]}" if yrs else ""))
        return pd.DataFrame(out)


def split_summary(df, lat, lon) -> pd.DataFrame:
    """Report-ready summary of a whole table (pandas, cudf, or dask: partition by partition)."""
    acc = SplitSummary(lat, lon)
    if hasattr(df, "partitions") and hasattr(df, "npartitions"):
        for i in range(df.npartitions):
            acc.add(df.partitions[i][["cell", "split", "time"] if "time" in df.columns else ["cell", "split"]].compute())
    else:
        acc.add(df)
    return acc.table()


def _host(col) -> np.ndarray:
    """A column (pandas or cudf) as a numpy array."""
    if hasattr(col, "to_numpy"):
        try:
            return col.to_numpy()
        except (TypeError, ValueError):
            pass
    return np.asarray(col.to_pandas() if hasattr(col, "to_pandas") else col)
