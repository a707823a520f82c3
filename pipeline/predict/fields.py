"""Fine predictions of a run, streamed into CF Zarr stores on the fine grid.

:func:`predict_lulc_fields`
    Every (scenario, year) of the coarse LULC fractions is downscaled by one model: class
    probabilities ``probability`` (scenario, time, igbp_class, lat, lon) and a hard class map
    ``igbp`` (scenario, time, lat, lon) that keeps each coarse cell's group areas (quota allocation)
    or takes the most probable class. One (scenario, year) is in memory at a time.
:func:`predict_lai_fields`
    The LAI of every row of the feature table (each scenario, month and land cell), partition by
    partition, into ``lai`` (scenario, time, lat, lon). For years after the satellite record the
    land-cover column is the downscaled LULC map of that year and scenario (phase 2 follows
    phase 1), when one is given.

Both stores are written into a temporary sibling and renamed when complete, so a killed run
leaves no store that a later stage would trust; every region write covers whole time steps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.errors import InputDataError
from pipeline.io import open_dataset

__all__ = ["N_IGBP_CLASSES", "hard_classes", "predict_lai_fields", "predict_lulc_fields"]

#: IGBP class codes 0..16 of the probability store (a class the model never saw has probability 0)
N_IGBP_CLASSES = 17
_NODATA = 255


def _encoding(ds: xr.Dataset, level: int = 4) -> dict:
    from zarr.codecs import BloscCodec

    codec = BloscCodec(cname="zstd", clevel=level, shuffle="bitshuffle")
    return {v: {"compressors": (codec,)} for v in ds.data_vars}


def hard_classes(probs: np.ndarray, spec, frame: pd.DataFrame, *, allocation: str = "quota") -> np.ndarray:
    """Class codes of a hard map from class probabilities.

    Parameters
    ----------
    probs : numpy.ndarray
        (n, K) probabilities, columns ``spec.classes``.
    spec : pipeline.models.TaskSpec
        The LULC task (classes, class groups, group columns, parent and area columns).
    frame : pandas.DataFrame
        The rows (``parent``, ``area`` and the group fraction columns).
    allocation : {"quota", "argmax"}
        ``quota``: inside each coarse cell, classes are assigned by descending probability until
        each group's area quota is met (:func:`pipeline.models.allocate_quotas`); ``argmax``: the
        most probable class.

    Returns
    -------
    numpy.ndarray
        (n,) uint8 class codes.
    """
    classes = np.asarray(spec.classes, np.uint8)
    if allocation == "argmax":
        return classes[np.argmax(probs, axis=1)]
    from pipeline.models.allocation import allocate_quotas

    groups = list(spec.group_columns)
    group_index = {g: i for i, g in enumerate(groups)}
    class_group = np.array([group_index[g] for g in spec.class_groups], np.intp)
    parent = frame[spec.parent].to_numpy()
    n_parent = int(parent.max()) + 1 if len(parent) else 0
    fractions = np.full((n_parent, len(groups)), np.nan)
    for i, g in enumerate(groups):
        fractions[parent, i] = frame[spec.group_columns[g]].to_numpy(np.float64)
    idx = allocate_quotas(probs, parent, frame[spec.area].to_numpy(np.float64), class_group, fractions)
    return classes[idx]


def _template_lulc(scenarios, years, lat, lon) -> xr.Dataset:
    import dask.array as da

    times = pd.to_datetime([f"{y}-01-01" for y in years])
    shape = (len(scenarios), len(times), N_IGBP_CLASSES, lat.size, lon.size)
    chunks = (1, 1, N_IGBP_CLASSES, lat.size, lon.size)
    prob = da.full(shape, np.nan, dtype=np.float32, chunks=chunks)
    hard = da.full(shape[:2] + shape[3:], _NODATA, dtype=np.uint8, chunks=(1, 1, lat.size, lon.size))
    codes = np.arange(N_IGBP_CLASSES, dtype=np.uint8)
    return xr.Dataset(
        {"probability": (("scenario", "time", "igbp_class", "lat", "lon"), prob, {
            "long_name": "probability of each IGBP land-cover class", "units": "1", "valid_min": 0.0,
            "valid_max": 1.0}),
         "igbp": (("scenario", "time", "lat", "lon"), hard, {
             "long_name": "downscaled IGBP land-cover class", "flag_values": codes,
             "_FillValue": np.uint8(_NODATA)})},
        coords={"scenario": ("scenario", np.asarray(scenarios, dtype=object)), "time": ("time", times),
                "igbp_class": ("igbp_class", codes, {"long_name": "IGBP class code"}),
                "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
                "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"})})


def predict_lulc_fields(model, spec, static: xr.Dataset, coarse: xr.Dataset, out: str | Path, *,
                        scenarios: Sequence[str], years: Sequence[int], valid: np.ndarray,
                        static_columns: Sequence[str], allocation: str = "quota", variable: str = "lulc_fraction",
                        attrs: dict | None = None, progress: Callable[[int, int], None] | None = None) -> Path:
    """Downscale every (scenario, year) of the coarse fractions and write the fine store.

    Parameters
    ----------
    model : pipeline.models.Model
        A fitted LULC model.
    spec : pipeline.models.TaskSpec
        Its task.
    static, coarse : xarray.Dataset
        ``static.zarr`` and ``lulc_coarse.zarr``.
    out : path
        The store to write (replaced atomically).
    scenarios, years : sequence
        What to downscale (each must be in ``coarse``).
    valid : numpy.ndarray
        Boolean (nlat, nlon): the cells of the LULC table (those of the training table).
    static_columns : sequence of str
        The fine predictors of the table (as in training).
    allocation : {"quota", "argmax"}
        Rule of the hard map (:func:`hard_classes`).
    variable : str
        The coarse fractions (scenario, time, group, lat, lon).
    attrs : dict, optional
        Global attributes (provenance).
    progress : callable, optional
        ``progress(done, total)`` after each (scenario, year).

    Returns
    -------
    pathlib.Path
    """
    from pipeline.features import lulc_table
    from pipeline.io import atomic_output, is_zarr_store
    from pipeline.io.integrity import mark_complete

    if variable not in coarse:
        raise InputDataError(f"lulc_coarse.zarr has no {variable!r}; it holds {', '.join(map(str, coarse.data_vars))}")
    frac = coarse[variable]
    have_years = pd.DatetimeIndex(frac["time"].values).year
    have_scen = [str(s) for s in frac["scenario"].values]
    for s in scenarios:
        if s not in have_scen:
            raise InputDataError(f"scenario {s!r} is not in lulc_coarse.zarr {variable} (it has {', '.join(have_scen)})")
    missing = sorted(set(years) - set(have_years))
    if missing:
        raise InputDataError(f"year(s) {missing} are not in lulc_coarse.zarr {variable} "
                             f"({have_years.min()}-{have_years.max()})")
    lat = np.asarray(static["lat"].values, np.float64)
    lon = np.asarray(static["lon"].values, np.float64)
    template = _template_lulc(scenarios, years, lat, lon)
    template.attrs.update(attrs or {})
    classes = np.asarray(spec.classes, np.intp)
    total, done = len(scenarios) * len(years), 0
    with atomic_output(Path(out), directory=True, kind="a LULC prediction store", replaces=is_zarr_store) as tmp:
        template.to_zarr(tmp, compute=False, encoding=_encoding(template), zarr_format=3, consolidated=False)
        for si, s in enumerate(scenarios):
            for ti, year in enumerate(years):
                f = frac.sel(scenario=s).isel(time=int(np.flatnonzero(have_years == year)[0])).load()
                table = lulc_table(static, f, target=None, valid=valid, static_columns=static_columns)
                probs = np.asarray(model.predict(table.frame), np.float32)
                full = np.full((N_IGBP_CLASSES, lat.size * lon.size), np.nan, np.float32)
                cells = table.frame[spec.cell].to_numpy()
                full[:, cells] = 0.0
                full[classes[:, None], cells[None, :]] = probs.T
                hard = np.full(lat.size * lon.size, _NODATA, np.uint8)
                hard[cells] = hard_classes(probs, spec, table.frame, allocation=allocation)
                region = {"scenario": slice(si, si + 1), "time": slice(ti, ti + 1)}
                piece = xr.Dataset({
                    "probability": (("scenario", "time", "igbp_class", "lat", "lon"),
                                    full.reshape(1, 1, N_IGBP_CLASSES, lat.size, lon.size)),
                    "igbp": (("scenario", "time", "lat", "lon"), hard.reshape(1, 1, lat.size, lon.size))})
                piece.to_zarr(tmp, consolidated=False, write_empty_chunks=True, region={**region, "igbp_class": slice(None), "lat": slice(None), "lon": slice(None)})
                done += 1
                if progress is not None:
                    progress(done, total)
        mark_complete(tmp)  # every chunk written: a later read may trust a missing one is an error
    return Path(out)


def _template_lai(scenarios, times, lat, lon) -> xr.Dataset:
    import dask.array as da

    shape = (len(scenarios), len(times), lat.size, lon.size)
    lai = da.full(shape, np.nan, dtype=np.float32, chunks=(1, 1, lat.size, lon.size))
    return xr.Dataset(
        {"lai": (("scenario", "time", "lat", "lon"), lai, {
            "long_name": "leaf area index", "standard_name": "leaf_area_index", "units": "m2 m-2"})},
        coords={"scenario": ("scenario", np.asarray(scenarios, dtype=object)), "time": ("time", times),
                "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
                "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"})})


def _land_cover_lookup(lulc_store: Path | None, column: str):
    """A function replacing ``column`` of a partition by the downscaled map of each row's year and scenario."""
    if lulc_store is None:
        return None
    ds = open_dataset(lulc_store, chunks={})
    years = pd.DatetimeIndex(ds["time"].values).year.to_numpy()
    scen = [str(s) for s in ds["scenario"].values]
    cache: dict = {}

    def lookup(part: pd.DataFrame, after_year: int) -> pd.DataFrame:
        row_years = pd.DatetimeIndex(part["time"].to_numpy()).year.to_numpy()
        late = row_years > after_year
        if not late.any() or column not in part:
            return part
        values = part[column].to_numpy(copy=True) if not isinstance(part[column].dtype, pd.CategoricalDtype) else \
            part[column].astype("float64").to_numpy(copy=True)
        cells = part["cell"].to_numpy()
        scen_col = part["scenario"].astype(str).to_numpy()
        for s, y in {(a, b) for a, b in zip(scen_col[late], row_years[late])}:
            if s not in scen or y not in years:
                continue  # not downscaled: the row keeps the map it has
            key = (s, int(y))
            if key not in cache:
                cache.clear()  # one map at a time: rows come in (scenario, time) order
                cache[key] = np.asarray(ds["igbp"].sel(scenario=s).isel(time=int(np.flatnonzero(years == y)[0])).values).ravel()
            rows = late & (scen_col == s) & (row_years == y)
            values[rows] = cache[key][cells[rows]]
        out = part.copy()
        if isinstance(part[column].dtype, pd.CategoricalDtype):
            values = np.where(values == _NODATA, np.nan, values)
            out[column] = pd.Categorical(values, categories=part[column].cat.categories)
        else:
            out[column] = values
        return out

    return lookup


def predict_lai_fields(model, table_path: str | Path, out: str | Path, *, lat: np.ndarray, lon: np.ndarray,
                       scenarios: Sequence[str], times: Sequence, lulc_store: Path | None = None,
                       land_cover: str = "igbp", observed_until: int | None = None, attrs: dict | None = None,
                       progress: Callable[[int, int], None] | None = None) -> Path:
    """Predict the LAI of every row of the feature table, partition by partition, into a fine store.

    Parameters
    ----------
    model : pipeline.models.Model
        A fitted LAI model.
    table_path : path
        The feature table (``<run_dir>/features``).
    out : path
        The store to write (replaced atomically).
    lat, lon : numpy.ndarray
        The fine grid (``cell`` indexes it in C order).
    scenarios, times : sequence
        The table's scenarios and time stamps (``features.json``).
    lulc_store : path, optional
        The downscaled LULC store; its hard map replaces ``land_cover`` in rows after ``observed_until``.
    land_cover : str
        The land-cover column of the table.
    observed_until : int, optional
        Last year of the observed land cover (the fine map's year); later rows take the downscaled map.
    attrs : dict, optional
        Global attributes (provenance).
    progress : callable, optional
        ``progress(done, total)`` after each partition.

    Returns
    -------
    pathlib.Path
    """
    from pipeline.features import read_feature_table
    from pipeline.io import atomic_output, is_zarr_store
    from pipeline.io.integrity import mark_complete

    times = pd.DatetimeIndex(pd.to_datetime(list(times)))
    template = _template_lai(scenarios, times, lat, lon)
    template.attrs.update(attrs or {})
    ddf = read_feature_table(table_path, lazy=True)
    lookup = _land_cover_lookup(lulc_store, land_cover) if observed_until is not None else None
    scen_index = {str(s): i for i, s in enumerate(scenarios)}
    ncell = lat.size * lon.size
    with atomic_output(Path(out), directory=True, kind="a LAI prediction store", replaces=is_zarr_store) as tmp:
        template.to_zarr(tmp, compute=False, encoding=_encoding(template), zarr_format=3, consolidated=False)
        n = ddf.npartitions
        for i in range(n):
            part = ddf.get_partition(i).compute()
            if part.empty:
                continue
            if lookup is not None:
                part = lookup(part, observed_until)
            pred = np.asarray(model.predict(part), np.float32)
            t_idx = times.get_indexer(pd.DatetimeIndex(part["time"].to_numpy()))
            s_idx = np.array([scen_index[str(s)] for s in part["scenario"].astype(str).to_numpy()])
            for s in np.unique(s_idx):
                rows = s_idx == s
                t0, t1 = int(t_idx[rows].min()), int(t_idx[rows].max()) + 1
                block = np.full((t1 - t0, ncell), np.nan, np.float32)
                block[t_idx[rows] - t0, part["cell"].to_numpy()[rows]] = pred[rows]
                piece = xr.Dataset({"lai": (("scenario", "time", "lat", "lon"),
                                            block.reshape(1, t1 - t0, lat.size, lon.size))})
                piece.to_zarr(tmp, consolidated=False, write_empty_chunks=True, region={"scenario": slice(int(s), int(s) + 1), "time": slice(t0, t1),
                                           "lat": slice(None), "lon": slice(None)})
            if progress is not None:
                progress(i + 1, n)
        mark_complete(tmp)
    return Path(out)
