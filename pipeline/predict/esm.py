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

Every area weighting is done by the streamed kernels of :mod:`pipeline.aggregate`
(:func:`~pipeline.aggregate.conservative_mean`); the fractions and types are linear sums of those
means, so ``pft_fraction`` and ``cvh`` are exactly the crosswalked / summed class fractions. The
fields go through the kernels a batch of time steps at a time, sized so that the accumulators on
the target grid stay near :data:`BATCH_VALUES` values, and each batch is cut at once to the target
cells that overlap the input (:func:`~pipeline.aggregate.crop_to_source`) unless
``global_output``: memory holds one batch on the whole grid and the cropped result.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.aggregate import check_crosswalk, conservative_mean, crop_to_source, source_edges
from pipeline.datasets import BatsTable, load_bats_table, load_class_table, load_pft_crosswalk
from pipeline.errors import ConfigError, InputDataError
from pipeline.grids import Grid, parse_grid
from pipeline.io import check_output_path, output_format, write

__all__ = ["BATCH_VALUES", "TYPE_FILL", "lai_esm", "lulc_esm", "write_esm"]

#: Values per accumulator of one batch on the whole target grid (fields x target cells): 16 M
#: values, 128 MB per float64 accumulator.
BATCH_VALUES = 2**24

#: Values of one row band of the fine fields built in a batch (all its fields): 8 M values, 64 MB.
FINE_VALUES = 2**23

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


def _time_batches(n_time: int, fields_per_time: int, grid: Grid) -> list[slice]:
    k = max(1, BATCH_VALUES // max(1, grid.size * fields_per_time))
    return [slice(t, min(n_time, t + k)) for t in range(0, n_time, k)]


def _cut(obj, grid, edges):
    return obj if edges is None else crop_to_source(obj, grid, *edges)


def _grid_frame(grid: Grid, edges) -> xr.Dataset:
    """The target cells' coordinates and CF bounds (cropped like the results)."""
    cf = grid.cf_coords()
    ds = xr.Dataset({k: (v[0], v[1]) for k, v in cf.items() if "bnds" in k},
                    coords={k: (v[0], v[1], v[2]) for k, v in cf.items() if "bnds" not in k})
    return _cut(ds, grid, edges)


def _mean(da, grid, edges, engine, chunk_rows, name) -> xr.DataArray:
    """Conservative mean of ``da`` on ``grid`` (valid part of each cell), cut to the source's cells."""
    return _cut(conservative_mean(da, grid, engine=engine, chunk_rows=chunk_rows, name=name), grid, edges)


def _lazy(da: xr.DataArray, fields: int) -> xr.DataArray:
    """``da`` as dask row bands of about :data:`FINE_VALUES` values over ``fields`` fields, if in memory.

    Products built from a batch (LAI x cover shares) are then made band by band as the
    aggregation streams the rows, never for the whole batch at once. Dask-backed inputs (the
    run's stores) keep their own chunks.
    """
    if da.chunks is not None:
        return da
    lat, lon = da.dims[-2:]
    rows = max(1, FINE_VALUES // max(1, fields * da.sizes[lon]))
    return da.chunk({lat: rows})


def _stream(da, fields_per_time: int, grid: Grid, fn) -> xr.Dataset:
    """``fn(batch, s, t)`` for each scenario ``s`` and batch ``t`` of time steps of ``da``, combined."""
    rows = []
    for s in range(da.sizes["scenario"]):
        row = []
        for t in _time_batches(da.sizes["time"], fields_per_time, grid):
            row.append(fn(_lazy(da.isel(scenario=[s], time=t), fields_per_time * (t.stop - t.start)), s, t))
        rows.append(row)
    return xr.combine_nested(rows, concat_dim=["scenario", "time"], combine_attrs="override")


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
    edges = source_edges(probability, name=name)
    crop = None if global_output else edges
    frame = _grid_frame(g, crop)

    def batch(p, s, t):
        frac = _mean(p, g, crop, engine, chunk_rows, name)
        valid = p.isel(igbp_class=0, drop=True).notnull().astype(np.float32)
        land = _mean(valid.rename(p.name), g, crop, engine, chunk_rows, name)
        return xr.Dataset({"igbp_fraction": frac.astype(np.float32), "land_area_fraction": land.astype(np.float32)})

    ds = _stream(probability, len(classes) + 1, g, batch)
    frac = ds["igbp_fraction"]
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
    out["land_area_fraction"] = ds["land_area_fraction"].assign_attrs(
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


def _align_land_cover(lai, land_cover, name: str) -> xr.DataArray:
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
    return lc.isel(time=_year_index(lai, lc, name)).assign_coords(time=lai["time"].values, scenario=lai["scenario"].values)


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
    edges = source_edges(lai, name=name)
    crop = None if global_output else edges
    frame = _grid_frame(g, crop)
    if land_cover is None:
        out = _stream(lai, 1, g, lambda x, s, t: _mean(x, g, crop, engine, chunk_rows, name)
                      .astype(np.float32).to_dataset(name="lai"))
        out["lai"].attrs = _lai_attrs(lai, "leaf area index")
        return _finish(out, g, frame, f"terrascale leaf area index on {g.name}")
    lc = _align_land_cover(lai, land_cover, name)
    classes = _classes(lc, name)
    pfts, m, n_pft = _group_matrix(classes, _crosswalk(crosswalk), _bats(bats))
    groups = xr.DataArray(m, dims=("igbp_class", "group"), coords={"igbp_class": lc["igbp_class"].values})

    def batch(x, s, t):
        cover = lc.isel(scenario=[s], time=t)
        if x.chunks is not None and cover.chunks is None:  # the same row bands as the LAI
            cover = cover.chunk({cover.dims[-2]: x.chunks[-2]})
        share = xr.dot(cover.astype(np.float64), groups, dim="igbp_class")
        share = share.transpose("scenario", "time", "group", *x.dims[-2:])
        # numerator and denominator side by side: one pass, and the same valid area (LAI and cover
        # valid) for both; the product is NaN where either is
        parts = xr.concat([x * share, share.where(x.notnull())], dim="part").rename("lai")
        mean = _mean(parts.transpose("scenario", "time", "part", "group", ...), g, crop, engine, chunk_rows, name)
        num, den = mean.isel(part=0, drop=True), mean.isel(part=1, drop=True)
        with np.errstate(invalid="ignore", divide="ignore"):  # no such vegetation in the cell: NaN
            per_group = (num / den).where(den > 0)
        plain = _mean(x, g, crop, engine, chunk_rows, name)
        return xr.Dataset({"lai": plain.astype(np.float32), "per_group": per_group.astype(np.float32)})

    res = _stream(lai, 2 * (n_pft + 2), g, batch)
    out = xr.Dataset({"lai": res["lai"].assign_attrs(_lai_attrs(lai, "leaf area index"))})
    pg = res["per_group"]
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
