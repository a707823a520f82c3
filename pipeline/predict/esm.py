"""ESM products of a run: the fine LULC probabilities and LAI of a run aggregated onto an ESM grid.

* :func:`lulc_esm`: ``igbp_fraction`` (the conservative, area-weighted mean of each IGBP class's
  probability over the valid part of every target cell), ``pft_fraction`` (through the IGBP → PFT
  crosswalk), the HTESSEL vegetation profile ``cvh``/``cvl`` (cover of high/low vegetation) and
  ``tvh``/``tvl`` (the high/low vegetation type with the largest area, IFS codes from
  :func:`pipeline.datasets.load_bats_table`) and ``land_area_fraction``;
* :func:`lai_esm`: monthly ``lai`` (conservative mean over the valid cells) and, given the land
  cover, ``lai_pft``, ``lai_hv``, ``lai_lv``: the LAI of each PFT / of the high and low vegetation,
  weighted by area and by that vegetation's share of each fine cell
  (``Σ lai·p·a / Σ p·a``, with the land cover of the month's year);
* :func:`write_esm`: a compressed CF-1.10 NetCDF file, written atomically with provenance.

Every area weighting is done by the kernels of :mod:`pipeline.aggregate`, bound once per call
(:class:`~pipeline.aggregate.FieldSums`) to the target cells that overlap the input unless
``global_output``: accumulators and their finishing are O(region), not O(globe), and each kept
cell equals the same cell of the whole-grid output bit for bit. The fine inputs are read in
spans of many time steps (one read per span and band of rows, near :data:`READ_VALUES` values),
and the fields built from them in memory (the cover share of every PFT and of the high/low
vegetation, through one class → group matrix, times the LAI of every month of its year) go
through the kernels as one stack per band. Batches are sized so that the accumulators stay near
:data:`BATCH_VALUES` values and the built fields of a band near :data:`FINE_VALUES`. The
fractions and types are linear sums of the class means, so ``pft_fraction`` and ``cvh`` are
exactly the crosswalked / summed class fractions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.aggregate import FieldSums, check_crosswalk, mean_of
from pipeline.datasets import BatsTable, load_bats_table, load_class_table, load_pft_crosswalk
from pipeline.errors import ConfigError, InputDataError
from pipeline.grids import Grid, parse_grid
from pipeline.io import check_output_path, output_format, write

__all__ = ["BATCH_VALUES", "TYPE_FILL", "lai_esm", "lulc_esm", "write_esm"]

#: Values per accumulator of one batch on the target cells (fields x kept target cells): 16 M
#: values, 128 MB per float64 accumulator.
BATCH_VALUES = 2**24

#: Values of one row band of the fine fields built in a batch (all its fields): 8 M values, 64 MB.
FINE_VALUES = 2**23

#: Values of the fine inputs read at once for a batch (all its time steps and classes): 32 M.
READ_VALUES = 2**25

#: ``_FillValue`` of ``tvh``/``tvl`` where the cell holds no valid land cover (0 = no vegetation of
#: that kind, the IFS convention).
TYPE_FILL = np.int16(-1)

_FRACTION = {"units": "1", "cell_methods": "area: mean"}
_LULC_DIMS = ("scenario", "time", "igbp_class")
_LAI_DIMS = ("scenario", "time")


# -- inputs ------------------------------------------------------------------------------------------


def _check_dims(da, lead: tuple[str, ...], name: str, what: str) -> xr.DataArray:
    """``da`` with dims (lead..., lat, lon), or an InputDataError naming what is missing."""
    if not isinstance(da, xr.DataArray):
        raise InputDataError(f"{name}: expected the {what} as an xarray.DataArray, got {type(da).__name__}")
    missing = [d for d in lead if d not in da.dims]
    extra = [d for d in da.dims if d not in lead]
    if missing or len(extra) != 2:
        raise InputDataError(f"{name}: {what} {da.name!r} has dims {tuple(da.dims)}; expected "
                             f"({', '.join(lead)}, lat, lon) as the run's predictions store them")
    return da.transpose(*lead, *extra)


def _bats(bats) -> BatsTable:
    if bats is None or isinstance(bats, (str, Path)):
        return load_bats_table(bats)
    if isinstance(bats, BatsTable):
        return bats
    raise ConfigError(f"bats must be a CSV path or a BatsTable (load_bats_table()), got {type(bats).__name__}")


def _crosswalk(crosswalk) -> pd.DataFrame:
    if crosswalk is None or isinstance(crosswalk, (str, Path)):
        return load_pft_crosswalk(crosswalk)
    if isinstance(crosswalk, pd.DataFrame):
        return check_crosswalk(crosswalk, "(DataFrame)")
    raise ConfigError(f"crosswalk must be a CSV path or a pandas DataFrame (class x PFT), got {type(crosswalk).__name__}")


def _classes(probability, name: str) -> list[int]:
    c = probability["igbp_class"].values if "igbp_class" in probability.coords else None
    if c is None or c.dtype.kind not in "iuf" or not np.all(np.asarray(c) == np.round(c)):
        raise InputDataError(f"{name}: {probability.name!r} needs an igbp_class coordinate of IGBP class codes (0..16)")
    return [int(v) for v in c]


def _rows(table: pd.DataFrame, classes, what: str, source) -> np.ndarray:
    missing = [c for c in classes if c not in table.index]
    if missing:
        raise InputDataError(f"{what} {source}: no row for the IGBP classes {missing} of the predictions; give every "
                             "class of the predictions a row")
    return table.loc[classes]


def _group_matrix(classes, crosswalk, bats: BatsTable) -> tuple[list[str], np.ndarray, int]:
    """Class → (PFTs..., high, low) matrix (n_class, n_pft + 2) and the number of PFTs."""
    cw = _rows(crosswalk, classes, "PFT crosswalk", "")
    veg = _rows(bats.frame, classes, "BATS table", bats.path)["vegetation"].to_numpy()
    m = np.concatenate([cw.to_numpy(np.float64), (veg == "high")[:, None], (veg == "low")[:, None]], axis=1)
    return [str(c) for c in cw.columns], m, cw.shape[1]


# -- batches -----------------------------------------------------------------------------------------


def _batch_len(fields_per_time: int, read_per_time: int, agg: FieldSums) -> int:
    """Time steps per batch: accumulators near BATCH_VALUES values, reads near READ_VALUES."""
    k = BATCH_VALUES // max(1, agg.size * fields_per_time)
    return max(1, min(k, READ_VALUES // max(1, read_per_time * agg.ny * agg.nx)))


def _time_batches(n_time: int, k: int) -> list[slice]:
    return [slice(t, min(n_time, t + k)) for t in range(0, n_time, k)]


def _isnan(a: np.ndarray) -> np.ndarray:
    """Where ``a`` is NaN (nowhere for integer data), as ``notnull`` sees missing values."""
    return np.isnan(a) if a.dtype.kind in "fc" else np.zeros(a.shape, dtype=bool)


def _lead_coords(da: xr.DataArray, dims) -> dict:
    return {d: da.coords[d] for d in dims if d in da.coords}


def _on_grid(values: np.ndarray, dims, coords, agg: FieldSums) -> xr.DataArray:
    """Results (lead..., kept cells) as a DataArray; the grid's coordinates come from the frame."""
    return xr.DataArray(values, dims=tuple(dims) + agg.dims, coords=coords)


def _finish(ds: xr.Dataset, grid: Grid, frame: xr.Dataset, title: str) -> xr.Dataset:
    ds = frame.merge(ds, compat="override", join="override", combine_attrs="override")
    ds.attrs = {"Conventions": "CF-1.10", "title": title, "grid": grid.name,
                "grid_description": grid.describe()}
    return ds


# -- LULC --------------------------------------------------------------------------------------------


def lulc_esm(probability: xr.DataArray, grid, *, crosswalk=None, bats=None, global_output: bool = False,
             engine: str = "auto", chunk_rows: int | None = None, name: str = "predictions") -> xr.Dataset:
    """IGBP and PFT fractions and the HTESSEL vegetation profile of the LULC predictions on one grid.

    Parameters
    ----------
    probability : xarray.DataArray
        Dims (scenario, time, igbp_class, lat, lon): the probability of each IGBP class (its
        ``igbp_class`` coordinate: the class codes), NaN on cells that are not valid land; lazy
        (dask) arrays are streamed in rows.
    grid : str or Grid
        The target grid: a spec (``"1deg"``, ``"N32"``, ``"tl255"``, ``"file:grid.nc"``) or a grid object.
    crosswalk : str, Path or pandas.DataFrame, optional
        IGBP → PFT fractions (default: the shipped table, :func:`pipeline.datasets.load_pft_crosswalk`).
    bats : str, Path or BatsTable, optional
        IGBP → IFS vegetation type table (default: the shipped one, :func:`pipeline.datasets.load_bats_table`).
    global_output : bool
        Keep every cell of ``grid``; default: only the cells that overlap the predictions.
    engine : str
        Aggregation kernels: ``auto``, ``numpy``, ``numba`` or ``cupy``.
    chunk_rows : int, optional
        Fine rows per streamed chunk (default: the aggregation's budget).
    name : str
        What ``probability`` is (its store), for messages.

    Returns
    -------
    xarray.Dataset
        ``igbp_fraction`` (scenario, time, igbp_class, *grid), ``pft_fraction`` (scenario, time,
        pft, *grid), ``cvh``, ``cvl``, ``land_area_fraction`` (scenario, time, *grid), ``tvh``,
        ``tvl`` (int16 IFS type codes; 0: no vegetation of that kind; :data:`TYPE_FILL` where the
        cell has no valid land cover), lat/lon with CF bounds. Fractions are of the valid (land)
        part of each cell: they sum to 1 over the classes, and ``cvh + cvl <= 1``.

    Raises
    ------
    InputDataError
        Dims other than the above, class codes missing from the tables, a source grid that
        cannot be read, or no target cell overlapping the predictions.
    """
    probability = _check_dims(probability, _LULC_DIMS, name, "LULC probability")
    classes = _classes(probability, name)
    g = parse_grid(grid)
    table = _bats(bats)
    pfts, m, n_pft = _group_matrix(classes, _crosswalk(crosswalk), table)
    agg = FieldSums(probability, g, global_output=global_output, engine=engine, name=name)
    frame = agg.frame()
    ns, nt, nc = (probability.sizes[d] for d in _LULC_DIMS)
    frac_v = np.empty((ns, nt, nc) + agg.shape, np.float32)
    land_v = np.empty((ns, nt) + agg.shape, np.float32)
    k = _batch_len(nc + 1, nc, agg)
    for s in range(ns):
        for t in _time_batches(nt, k):
            p_da = probability.isel(scenario=s, time=t)
            kt = t.stop - t.start
            acc_p, acc_v = agg.new(kt * nc), agg.new(kt)
            for r0, r1 in agg.read_bands(p_da, chunk_rows):
                p = agg.read(p_da, r0, r1)  # (time, class, rows, lon), as stored
                agg.add(p.reshape(kt * nc, r1 - r0, agg.nx), r0, r1, acc_p)
                agg.add((~_isnan(p[:, 0])).astype(np.float32), r0, r1, acc_v)
            frac_v[s, t] = mean_of(*agg.finish(acc_p)).reshape((kt, nc) + agg.shape)
            land_v[s, t] = mean_of(*agg.finish(acc_v)).reshape((kt,) + agg.shape)
    frac = _on_grid(frac_v, _LULC_DIMS, _lead_coords(probability, _LULC_DIMS), agg)
    land = _on_grid(land_v, _LAI_DIMS, _lead_coords(probability, _LAI_DIMS), agg)
    summed = _class_sums(frac, m)
    out = xr.Dataset()
    out["igbp_fraction"] = frac.assign_attrs(
        standard_name="area_fraction", long_name="area fraction of each IGBP land-cover class in the land part of "
        "the cell", **_FRACTION)
    out["pft_fraction"] = (summed.isel(group=slice(0, n_pft)).rename(group="pft").assign_coords(pft=pfts)
                           .astype(np.float32).assign_attrs(
        standard_name="area_fraction", long_name="area fraction of each plant functional type in the land part of "
        "the cell (IGBP classes through the PFT crosswalk)", **_FRACTION))
    out["pft"].attrs["long_name"] = "plant functional type"
    for k, kind, code in ((n_pft, "high", "cvh"), (n_pft + 1, "low", "cvl")):
        out[code] = summed.isel(group=k, drop=True).astype(np.float32).assign_attrs(
            long_name=f"{kind} vegetation cover: fraction of the land part of the cell covered by {kind} vegetation "
            f"types (IFS {code})", comment=f"sum of igbp_fraction over the IGBP classes whose IFS vegetation type is "
            f"{kind} ({' '.join(map(str, table.classes(kind)))}; {table.path.name})", **_FRACTION)
    for kind, code in (("high", "tvh"), ("low", "tvl")):
        out[code] = _dominant_type(frac, table, kind)
    out["land_area_fraction"] = land.assign_attrs(
        standard_name="land_area_fraction", long_name="fraction of the cell's area (the part covered by the "
        "predictions) holding valid land-cover predictions", **_FRACTION)
    out["igbp_class"].attrs.update(_igbp_attrs(classes, out["igbp_class"].dtype))
    return _finish(out, g, frame, f"terrascale land cover on {g.name}: IGBP and PFT fractions, HTESSEL vegetation")


def _class_sums(frac: xr.DataArray, m: np.ndarray) -> xr.DataArray:
    """Σ_c frac_c · m[c, g] per group g (scenario, time, group, *grid); NaN where the cell has no data.

    The sums over classes are exact linear combinations of the conservative class means. They are
    added class by class, element by element (not by a BLAS/einsum kernel whose rounding depends on
    the array's shape), so a cropped output equals the same cells of the whole-grid one bit for bit.
    """
    f = frac.values.astype(np.float64)
    out = np.zeros(f.shape[:2] + (m.shape[1],) + f.shape[3:])
    for c in range(m.shape[0]):
        for g in np.flatnonzero(m[c]):
            out[:, :, g] += f[:, :, c] * m[c, g]
    out[np.broadcast_to(np.isnan(f[:, :, :1]), out.shape)] = np.nan
    dims = frac.dims[:2] + ("group",) + frac.dims[3:]
    coords = {k: v for k, v in frac.coords.items() if "igbp_class" not in v.dims}
    return xr.DataArray(out, dims=dims, coords=coords)


def _igbp_attrs(classes, dtype) -> dict:
    """CF flag attributes of the ``igbp_class`` coordinate (flag_values of the coordinate's own type)."""
    flags = load_class_table().flag_attrs()  # the class table's own words for its classes
    word = dict(zip((int(v) for v in flags["flag_values"]), flags["flag_meanings"].split()))
    words = [word.get(c, f"class_{c}") for c in classes]
    return {"long_name": "IGBP land-cover class", "flag_values": np.asarray(classes, dtype=dtype),
            "flag_meanings": " ".join(words)}


def _dominant_type(frac: xr.DataArray, table: BatsTable, kind: str) -> xr.DataArray:
    """The ``kind`` vegetation type with the largest area per cell; 0 where none, TYPE_FILL where no data."""
    types = list(table.types(kind))
    code = "tvh" if kind == "high" else "tvl"
    area = np.zeros(frac.shape[:2] + (len(types),) + frac.shape[3:])
    f = np.nan_to_num(frac.values.astype(np.float64))
    for j, c in enumerate(frac["igbp_class"].values):  # every class is in the table (_group_matrix checked)
        if table.frame.loc[int(c), "vegetation"] == kind:
            area[:, :, types.index(table.type_of(int(c)))] += f[:, :, j]
    if types:
        best = np.asarray(types, dtype=np.int16)[np.argmax(area, axis=2)]  # ties: the lowest code
        best[area.max(axis=2) <= 0] = 0
    else:
        best = np.zeros(area.shape[:2] + area.shape[3:], dtype=np.int16)
    best[np.isnan(frac.values[:, :, 0])] = TYPE_FILL
    dims = tuple(d for d in frac.dims if d != "igbp_class")
    coords = {k: v for k, v in frac.coords.items() if "igbp_class" not in v.dims}
    out = xr.DataArray(best, dims=dims, coords=coords, attrs={
        "long_name": f"type of {kind} vegetation: the IFS {kind} vegetation type covering most of the cell (IFS "
                     f"{code})", "cell_methods": "area: mode", **table.flag_attrs(kind),
        "comment": f"0: no {kind} vegetation in the cell; {int(TYPE_FILL)} (_FillValue): no valid land cover"})
    out.encoding.update({"_FillValue": TYPE_FILL, "dtype": "int16"})
    return out


# -- LAI ---------------------------------------------------------------------------------------------


def _lai_attrs(lai, long_name: str) -> dict:
    return {"standard_name": "leaf_area_index", "units": str(lai.attrs.get("units", "m2 m-2")),
            "long_name": long_name, "cell_methods": "area: mean"}


def _year_index(lai, land_cover, name: str) -> np.ndarray:
    """For each LAI time, the position of the land-cover time of the same year."""
    years_lc = pd.DatetimeIndex(land_cover["time"].values).year
    years = pd.DatetimeIndex(lai["time"].values).year
    pos = {int(y): i for i, y in enumerate(years_lc)}
    missing = sorted({int(y) for y in years} - set(pos))
    if missing:
        raise InputDataError(f"{name}: the land cover has no year {missing[:5]}{' ...' if len(missing) > 5 else ''} "
                             f"of the LAI (its years: {int(years_lc.min())}..{int(years_lc.max())}); give the land cover "
                             "of every LAI year, or select those years of the LAI")
    return np.asarray([pos[int(y)] for y in years])


def _land_cover_years(lai, land_cover, name: str) -> tuple[xr.DataArray, np.ndarray]:
    """The land cover of the LAI's scenarios (in their order) and, per LAI time, its land-cover time."""
    lc = _check_dims(land_cover, _LULC_DIMS, name, "land cover (LULC probability)")
    lat, lon = lai.dims[-2:]
    if tuple(lc.dims[-2:]) != (lat, lon) or any(
            lc.sizes[d] != lai.sizes[d] or not np.allclose(lc[d].values, lai[d].values, atol=1e-9) for d in (lat, lon)):
        raise InputDataError(f"{name}: the land cover and the LAI are on different fine grids "
                             f"({dict(lc.sizes)} against {dict(lai.sizes)}); give both on the run's fine grid")
    scen = [str(s) for s in lai["scenario"].values]
    have = [str(s) for s in lc["scenario"].values]
    missing = [s for s in scen if s not in have]
    if missing:
        raise InputDataError(f"{name}: the land cover has no scenario {missing} of the LAI (it has {have}); give the "
                             "land cover of every LAI scenario")
    lc = lc.isel(scenario=[have.index(s) for s in scen])
    return lc, _year_index(lai, lc, name)


def _shares(cover: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Σ_c cover_c · m[c, g] per group g: (classes, rows, lon) → (groups, rows, lon), float64.

    Added class by class, element by element (no BLAS, whose rounding depends on the array's
    shape), so every fine cell gets the same value whatever the band; NaN where a class is NaN.
    """
    out = np.zeros((m.shape[1],) + cover.shape[1:])
    for c in range(m.shape[0]):
        groups = np.flatnonzero(m[c])
        if groups.size:
            p = cover[c].astype(np.float64)
            for g in groups:
                out[g] += p * m[c, g]
    out[:, _isnan(cover).any(axis=0)] = np.nan
    return out


def _lai_means(lai: xr.DataArray, agg: FieldSums, chunk_rows) -> np.ndarray:
    """The conservative mean of every LAI map: (scenario, time, *cells), float32."""
    ns, nt = (lai.sizes[d] for d in _LAI_DIMS)
    out = np.empty((ns, nt) + agg.shape, np.float32)
    k = _batch_len(1, 1, agg)
    for s in range(ns):
        for t in _time_batches(nt, k):
            x_da = lai.isel(scenario=s, time=t)
            acc = agg.new(t.stop - t.start)
            for r0, r1 in agg.read_bands(x_da, chunk_rows):
                agg.add(agg.read(x_da, r0, r1), r0, r1, acc)
            out[s, t] = mean_of(*agg.finish(acc))
    return out


def _year_batches(year: np.ndarray, k: int) -> list[tuple[slice, int]]:
    """Runs of consecutive LAI times with the same land-cover time, at most ``k`` long."""
    out, t0 = [], 0
    for t in range(1, year.size + 1):
        if t == year.size or year[t] != year[t0] or t - t0 == k:
            out.append((slice(t0, t), int(year[t0])))
            t0 = t
    return out


def _distinct_masks(valid: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Time steps with distinct validity masks (representatives) and, per time step, its representative."""
    reps: list[int] = []
    owner = np.empty(valid.shape[0], dtype=np.int64)
    for t in range(valid.shape[0]):
        for k, r in enumerate(reps):
            if np.array_equal(valid[t], valid[r]):
                owner[t] = k
                break
        else:
            owner[t] = len(reps)
            reps.append(t)
    return reps, owner


def _spans(batches: list[tuple[slice, int]], fields_per_time: int, nc: int, agg: FieldSums) -> list[list]:
    """Consecutive batches grouped into spans read at once: the accumulators of a span near
    BATCH_VALUES values, its LAI and land-cover maps near READ_VALUES (at least one batch)."""
    spans, cur, months, years = [], [], 0, set()
    for t, y in batches:
        kt = t.stop - t.start
        new_years = years | {y}
        fits = ((months + kt) * fields_per_time * agg.size <= BATCH_VALUES
                and (months + kt + len(new_years) * nc) * agg.ny * agg.nx <= READ_VALUES)
        if cur and not fits:
            spans.append(cur)
            cur, months, new_years = [], 0, {y}
        cur.append((t, y))
        months, years = months + kt, new_years
    if cur:
        spans.append(cur)
    return spans


def _lai_group_means(lai, lc, year, m, agg: FieldSums, chunk_rows) -> tuple[np.ndarray, np.ndarray]:
    """The plain LAI mean and the LAI of every group (PFTs, high, low): (scenario, time[, group], *cells).

    Per group g with cover share q_g = Σ_c p_c m[c, g] of each fine cell: the mean of lai·q_g
    over the cell divided by the mean of q_g where the LAI is valid (Σ lai·q·a / Σ q·a). The LAI
    and land cover of a span of years are read at once; per batch (time steps of one year) the
    fields of a band go through the kernels as one stack: lai·q_g for every time step and group,
    then q_g masked where the LAI is missing, once per distinct mask of the batch's time steps
    (the same fields, so the same sums, as one per time step: months share the land mask).
    """
    ns, nt = (lai.sizes[d] for d in _LAI_DIMS)
    nc, ng = m.shape
    plain = np.empty((ns, nt) + agg.shape, np.float32)
    per_group = np.empty((ns, nt, ng) + agg.shape, np.float32)
    spans = _spans(_year_batches(year, _batch_len(1 + 2 * ng, 1 + nc, agg)), 1 + 2 * ng, nc, agg)
    buf = np.empty(0)
    for s in range(ns):
        for span in spans:
            t0, t1 = span[0][0].start, span[-1][0].stop
            ys = sorted({y for _, y in span})
            x_da, c_da = lai.isel(scenario=s, time=slice(t0, t1)), lc.isel(scenario=s, time=ys)
            reads = agg.read_bands(x_da, chunk_rows, fields=(t1 - t0) + len(ys) * nc)
            # the LAI masks of a batch are known before its fields are built only when the span is
            # read at once; else one masked share per time step
            state = [[list(range(t.stop - t.start)), np.arange(t.stop - t.start),
                      agg.new(2 * (t.stop - t.start) * ng) if len(reads) != 1 else None] for t, _ in span]
            acc_x = agg.new(t1 - t0)
            for r0, r1 in reads:
                x_all = agg.read(x_da, r0, r1)  # (time, rows, lon), as stored
                cover_all = agg.read(c_da, r0, r1)  # (year, class, rows, lon)
                agg.add(x_all, r0, r1, acc_x)
                for (t, y), st in zip(span, state):
                    x, cover = x_all[t.start - t0:t.stop - t0], cover_all[ys.index(y)]
                    kt = x.shape[0]
                    if st[2] is None:
                        st[0], st[1] = _distinct_masks(_isnan(x))
                        st[2] = agg.new((kt + len(st[0])) * ng)
                    reps, acc = st[0], st[2]
                    nf = (kt + len(reps)) * ng
                    for b0, b1 in agg.bands(r0, r1, nf, budget=FINE_VALUES):
                        q = _shares(cover[:, b0 - r0:b1 - r0], m)  # (group, rows, lon)
                        xb = x[:, b0 - r0:b1 - r0]
                        size = nf * q[0].size
                        if buf.size < size:
                            buf = np.empty(size)
                        fields = buf[:size].reshape((kt + len(reps), ng) + q.shape[1:])
                        # numerator and denominator over the same valid area (LAI and cover valid):
                        # the product is NaN where either is
                        np.multiply(xb.astype(np.float64)[:, None], q[None], out=fields[:kt])
                        den = fields[kt:]
                        den[...] = q[None]
                        np.copyto(den, np.nan, where=_isnan(xb[reps])[:, None])
                        agg.add(fields.reshape((nf,) + q.shape[1:]), b0, b1, acc)
            plain[s, t0:t1] = mean_of(*agg.finish(acc_x))
            for (t, _), (_, owner, acc) in zip(span, state):
                kt = t.stop - t.start
                means = mean_of(*agg.finish(acc)).reshape((-1, ng) + agg.shape)
                num, den = means[:kt], means[kt:][owner]
                with np.errstate(invalid="ignore", divide="ignore"):  # no such vegetation in the cell: NaN
                    per_group[s, t] = np.where(den > 0, num / den, np.nan)
    return plain, per_group


def lai_esm(lai: xr.DataArray, grid, *, land_cover: xr.DataArray | None = None, crosswalk=None, bats=None,
            global_output: bool = False, engine: str = "auto", chunk_rows: int | None = None,
            name: str = "predictions") -> xr.Dataset:
    """Monthly LAI of the predictions on one grid, and per PFT and high/low vegetation given the land cover.

    Parameters
    ----------
    lai : xarray.DataArray
        Dims (scenario, time, lat, lon), monthly, NaN off land.
    grid : str or Grid
        The target grid (spec or grid object).
    land_cover : xarray.DataArray, optional
        The LULC ``probability`` (scenario, time, igbp_class, lat, lon) on the same fine grid, one
        time per year (``YYYY-01-01``); each month uses its year's land cover.
    crosswalk, bats
        IGBP → PFT and IGBP → IFS vegetation type tables (defaults: the shipped ones).
    global_output : bool
        Keep every cell of ``grid``; default: only the cells that overlap the predictions.
    engine : str
        Aggregation kernels: ``auto``, ``numpy``, ``numba`` or ``cupy``.
    chunk_rows : int, optional
        Fine rows per streamed chunk.
    name : str
        What the inputs are, for messages.

    Returns
    -------
    xarray.Dataset
        ``lai`` (scenario, time, *grid): the area-weighted mean over the valid fine cells; with
        ``land_cover`` also ``lai_pft`` (scenario, time, pft, *grid), ``lai_hv`` and ``lai_lv``:
        ``Σ lai·p·a / Σ p·a`` over the fine cells valid in both, ``p`` the PFT's (or the
        high/low vegetation's) share of the fine cell, ``a`` its area; NaN where the cell has none.
    """
    lai = _check_dims(lai, _LAI_DIMS, name, "LAI")
    g = parse_grid(grid)
    agg = FieldSums(lai, g, global_output=global_output, engine=engine, name=name)
    frame = agg.frame()
    if land_cover is None:
        values = _lai_means(lai, agg, chunk_rows)
        out = xr.Dataset({"lai": _on_grid(values, _LAI_DIMS, _lead_coords(lai, _LAI_DIMS), agg)
                          .assign_attrs(_lai_attrs(lai, "leaf area index"))})
        return _finish(out, g, frame, f"terrascale leaf area index on {g.name}")
    lc, year = _land_cover_years(lai, land_cover, name)
    classes = _classes(lc, name)
    pfts, m, n_pft = _group_matrix(classes, _crosswalk(crosswalk), _bats(bats))
    plain, per_group = _lai_group_means(lai, lc, year, m, agg, chunk_rows)
    coords = _lead_coords(lai, _LAI_DIMS)
    out = xr.Dataset({"lai": _on_grid(plain, _LAI_DIMS, coords, agg).assign_attrs(_lai_attrs(lai, "leaf area index"))})
    pg = _on_grid(per_group, (*_LAI_DIMS, "group"), coords, agg)
    out["lai_pft"] = (pg.isel(group=slice(0, n_pft)).rename(group="pft").assign_coords(pft=pfts)
                      .assign_attrs(_lai_attrs(lai, "leaf area index of each plant functional type (area- and "
                                                    "PFT-weighted mean over the fine cells)")))
    out["pft"].attrs["long_name"] = "plant functional type"
    for k, kind, code in ((n_pft, "high", "lai_hv"), (n_pft + 1, "low", "lai_lv")):
        out[code] = pg.isel(group=k, drop=True).assign_attrs(_lai_attrs(
            lai, f"leaf area index of the {kind} vegetation (IFS {code}; area- and cover-weighted mean)"))
    return _finish(out, g, frame, f"terrascale leaf area index on {g.name}: total, per PFT, high and low vegetation")


# -- writing -----------------------------------------------------------------------------------------


def write_esm(ds: xr.Dataset, path, *, compression_level: int = 4, history: str = "") -> Path:
    """Write an ESM product as a compressed CF-1.10 NetCDF file, atomically, with provenance.

    Parameters
    ----------
    ds : xarray.Dataset
        A result of :func:`lulc_esm` or :func:`lai_esm` (or both merged).
    path : str or Path
        The output ``.nc`` file; an existing file is replaced only when the write finished.
    compression_level : int
        zlib level 0..9 (0: uncompressed), with the shuffle filter and chunks of whole maps.
    history : str
        The history line (default: the command line).

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    InputDataError
        ``path`` is not a NetCDF name, or exists and is not a file.
    ConfigError
        A compression level outside 0..9.
    """
    path = Path(path)
    try:
        fmt = output_format(path)
    except InputDataError:
        fmt = None
    if fmt != "netcdf":
        raise InputDataError(f"ESM output {path}: ESM input files are CF NetCDF; name it {path.stem}.nc")
    check_output_path(path)
    return write(ds, path, history=history or None, compression_level=compression_level)
