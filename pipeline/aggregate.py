"""Public aggregation API: fine fields → ESM grids, exactly conservative, streamed in row chunks.

* :func:`conservative_mean` area-weighted mean over the valid (finite) part of every target cell
  (CDO ``remapcon`` with ``fracarea`` normalisation), over any leading dimensions;
* :func:`class_fractions` area fraction of each class, or of each PFT through a class→PFT
  crosswalk, without a one-hot array; :func:`majority_class` the class with the largest area;
* :func:`subgrid_stats` area-weighted standard deviation, minimum and maximum per target cell;
* :func:`apply_weights` the same with weights from a SCRIP/ESMF file (e.g. ``cdo gencon``).

The source is read in chunks of rows (``chunk_rows``; default: ~32 M values per chunk), so memory
is one chunk plus the target accumulators, whatever the size of the input. Inputs may have
descending latitudes and 0..360 longitudes: the weights index the array as it is stored.

``engine`` picks the kernels: ``"numpy"`` (:mod:`kernels.reference`), ``"numba"``
(:mod:`kernels.cpu`), ``"cupy"`` (:mod:`kernels.gpu`); ``"auto"`` = cupy for CuPy-backed input,
numba otherwise.

Internals: :mod:`pipeline._aggregate_plan` (weights bound to a source array),
:mod:`pipeline._aggregate_stream` (engine choice, row chunks, reads), :mod:`pipeline._aggregate_classes`
(class and no-data codes, class areas, crosswalk), :mod:`pipeline._aggregate_cf` (CF output).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from pipeline._aggregate_cf import _base_attrs, _cell_methods, _out_coords, _wrap
from pipeline._aggregate_classes import _missing_codes  # noqa: F401  (re-exported: tests use agg._missing_codes)
from pipeline._aggregate_classes import _class_areas, _class_names, _declared_classes, _read_crosswalk
from pipeline._aggregate_plan import _valid_fraction
from pipeline._aggregate_stream import CHUNK_VALUES  # noqa: F401  (public constant, documented above)
from pipeline._aggregate_stream import _chunks, _lead, _prepare, _read
from pipeline.errors import ConfigError
from pipeline.grids import parse_grid
from pipeline.weights import Weights


def to_dataset(*results, grid=None) -> xr.Dataset:
    """Merge aggregation results into one CF dataset with the target grid's cell bounds.

    ``grid``: the target grid (spec or :class:`~pipeline.grids.Grid`); needed for the bounds.
    """
    parts = []
    for r in results:
        parts.append(r if isinstance(r, xr.Dataset) else r.to_dataset(name=r.name))
    ds = xr.merge(parts, combine_attrs="drop_conflicts", compat="override")
    if grid is not None:
        g = parse_grid(grid)
        cf = g.cf_coords()
        for k, (dims, vals, *rest) in cf.items():
            if "bnds" in k:
                ds[k] = (dims, vals)
            elif k in ds.coords:
                ds[k].attrs.update(rest[0] if rest else {})
    ds.attrs.setdefault("Conventions", "CF-1.10")
    return ds


def conservative_mean(da: xr.DataArray, grid=None, *, skipna: bool = True, min_valid_fraction: float = 0.0,
                      weights: Weights | None = None, engine: str = "auto", chunk_rows: int | None = None,
                      name: str = "input") -> xr.DataArray:
    """Area-weighted mean of ``da`` on ``grid`` over the valid (finite) part of each target cell.

    ``min_valid_fraction``: target cells whose valid area is a smaller fraction of the cell are NaN.
    ``skipna=False``: a target cell is NaN as soon as one overlapping source cell is missing.
    Leading dimensions (time, member, ...) are kept.
    """
    if not 0.0 <= min_valid_fraction <= 1.0:
        raise ConfigError(f"min_valid_fraction must be in [0, 1], got {min_valid_fraction}")
    plan, K, xp = _prepare(da, grid, weights, engine, name)
    lead, nb = _lead(da, plan)
    acc = plan.new_acc(nb, 2)
    for r0, r1 in _chunks(da, plan, nb, chunk_rows):
        if plan.chunk_has_links(r0, r1):
            plan.weighted_sum(K, _read(da, plan, lead, r0, r1, xp), r0, r1, acc, False)
    num, den = plan.finish(acc)
    out = _finish_mean(num, den, plan, skipna, min_valid_fraction)
    return _wrap(da, plan, lead, out, _cell_methods(da, "mean"))


def _finish_mean(num, den, plan, skipna, min_valid_fraction):
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    bad = den <= 0
    if min_valid_fraction > 0:
        bad |= _valid_fraction(den, plan) < min_valid_fraction * (1 - 1e-12)
    if not skipna:
        cover = plan.weights.dst_cover()
        bad |= den < cover * (1 - 1e-12)
    out[bad] = np.nan
    return out


def apply_weights(da: xr.DataArray, weights, *, method: str = "mean", **kwargs):
    """Aggregate with weights from a file (path or :func:`~pipeline.weights.read_weights` result).

    The weights index ``da`` as stored (flat C order over its last two dims, lat then lon), like
    CDO's. ``method``: mean, fractions, majority or std/stats (keyword arguments as in the functions).
    """
    from pipeline.weights import read_weights

    if isinstance(weights, (str, Path)):
        weights = read_weights(weights)
    fn = {"mean": conservative_mean, "fractions": class_fractions, "majority": majority_class,
          "std": subgrid_stats, "stats": subgrid_stats}.get(method)
    if fn is None:
        raise ConfigError(f"unknown method {method!r}; use mean, fractions, majority or std")
    return fn(da, None, weights=weights, **kwargs)


def class_fractions(da: xr.DataArray, grid=None, *, classes=None, crosswalk=None, missing=None,
                    class_names=None, weights: Weights | None = None, engine: str = "auto",
                    chunk_rows: int | None = None, name: str = "input") -> xr.DataArray:
    """Area fraction of each class (or PFT, via ``crosswalk``) in the valid part of every target cell.

    ``classes``: the declared class codes (default: the variable's CF ``flag_values``); values outside
    them raise an error naming them. ``missing``: codes meaning "no data" (default: ``_FillValue``
    / ``missing_value`` / ``no_data_value``; NaN in float input); a no-data code listed in
    ``flag_values`` is not a class. Fractions of a cell sum to 1 wherever it has valid data;
    the coordinate ``valid_fraction`` is the valid share of the cell's area.
    """
    classes = _declared_classes(da, classes, missing)
    areas, plan, lead = _class_areas(da, grid, weights, classes, missing, engine, chunk_rows, name)
    valid = areas.sum(1)
    if crosswalk is not None:
        labels, m = _read_crosswalk(crosswalk, classes)
        areas = areas @ m
        dim, long = "pft", "plant functional type"
    else:
        labels, dim, long = _class_names(da, classes, class_names), "class", "class"
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = areas / valid[:, None]
    frac[valid <= 0] = np.nan
    coords, dims, shp = _out_coords(da, plan, ())
    vf = _valid_fraction(valid, plan).reshape(shp)
    coords["valid_fraction"] = (dims, vf, {"long_name": "fraction of the cell area with valid input", "units": "1"})
    if crosswalk is None:
        coords[dim] = (dim, np.asarray(classes, dtype=np.int32),
                       {"long_name": "class code", "flag_values": np.asarray(classes, dtype=np.int32),
                        "flag_meanings": " ".join(s.replace(" ", "_") for s in labels)})
        coords[f"{dim}_name"] = (dim, np.asarray(labels, dtype=object))
    else:
        coords[dim] = (dim, np.asarray(labels, dtype=object), {"long_name": long})
    data = np.moveaxis(frac, -1, 0).reshape((len(labels),) + tuple(shp))
    attrs = {"standard_name": "area_fraction", "units": "1", "cell_methods": _cell_methods(da, "mean"),
             "long_name": f"area fraction of each {long} of {da.attrs.get('long_name', da.name)}"}
    name = f"{da.name}_fraction" if crosswalk is None else "pft_fraction"
    return xr.DataArray(data, dims=(dim,) + tuple(dims), coords=coords, name=name, attrs=attrs)


def majority_class(da: xr.DataArray, grid=None, *, classes=None, missing=None, class_names=None,
                   weights: Weights | None = None, engine: str = "auto", chunk_rows: int | None = None,
                   name: str = "input") -> xr.DataArray:
    """The class covering the largest area of each target cell (ties: the first declared class)."""
    classes = _declared_classes(da, classes, missing, func="majority_class")
    areas, plan, lead = _class_areas(da, grid, weights, classes, missing, engine, chunk_rows, name)
    idx = np.argmax(areas, axis=1)
    out = np.asarray(classes, dtype=np.int32)[idx]
    out[areas.sum(1) <= 0] = -1
    coords, dims, shp = _out_coords(da, plan, ())
    names = _class_names(da, classes, class_names)
    attrs = {"long_name": f"majority class of {da.attrs.get('long_name', da.name)}",
             "flag_values": np.asarray(classes, dtype=np.int32), "flag_meanings": " ".join(n.replace(" ", "_") for n in names),
             "cell_methods": _cell_methods(da, "mode")}
    res = xr.DataArray(out.reshape(shp), dims=dims, coords=coords, name=f"{da.name}_majority", attrs=attrs)
    res.encoding["_FillValue"] = np.int32(-1)
    return res


def subgrid_stats(da: xr.DataArray, grid=None, *, stats=("std", "min", "max"), min_valid_fraction: float = 0.0,
                  weights: Weights | None = None, engine: str = "auto", chunk_rows: int | None = None,
                  name: str = "input") -> xr.Dataset:
    """Sub-grid statistics per target cell: ``mean``, ``std`` (area-weighted, population), ``min``, ``max``.

    Returns a Dataset with variables ``<name>_<stat>``. The standard deviation comes from shifted
    sums of squares (shift: the mean of the first chunk), so a large constant offset costs no precision.
    ``min_valid_fraction``: every statistic is NaN in target cells whose valid (finite) area is a
    smaller fraction of the cell (as in :func:`conservative_mean`).
    """
    stats = tuple(stats)
    unknown = set(stats) - {"mean", "std", "min", "max"}
    if unknown or not stats:
        raise ConfigError(f"unknown statistics {sorted(unknown)}; choose from mean, std, min, max")
    if not 0.0 <= min_valid_fraction <= 1.0:
        raise ConfigError(f"min_valid_fraction must be in [0, 1], got {min_valid_fraction}")
    plan, K, xp = _prepare(da, grid, weights, engine, name)
    lead, nb = _lead(da, plan)
    # the valid area (den of the weighted sums) is needed for the mask too
    want_sum = "mean" in stats or "std" in stats or min_valid_fraction > 0
    want_mm = "min" in stats or "max" in stats
    acc = plan.new_acc(nb, 3) if want_sum else None
    mm = plan.new_acc(nb, 2, fill=np.nan) if want_mm else None
    shift = None
    for r0, r1 in _chunks(da, plan, nb, chunk_rows):
        if not plan.chunk_has_links(r0, r1):
            continue
        x = _read(da, plan, lead, r0, r1, xp)
        if want_mm:
            plan.min_max(K, x, r0, r1, mm)
        if want_sum:
            if shift is None:
                fin = x[xp.isfinite(x)]
                shift = float(fin.mean()) if fin.size else 0.0
            plan.weighted_sum(K, x.astype(np.float64) - shift, r0, r1, acc, True)
    out = {}
    base = da.name or "x"
    thin = None  # cells with too little valid area
    if want_sum:
        num, den, sq = plan.finish(acc)
        with np.errstate(invalid="ignore", divide="ignore"):
            m = num / den
            var = np.maximum(sq / den - m * m, 0.0)
        thin = den <= 0
        if min_valid_fraction > 0:
            thin |= _valid_fraction(den, plan) < min_valid_fraction * (1 - 1e-12)
        m[thin] = np.nan
        var[thin] = np.nan
        if "mean" in stats:
            out[f"{base}_mean"] = _wrap(da, plan, lead, m + shift, _cell_methods(da, "mean"))
        if "std" in stats:
            a = _base_attrs(da, ("units",))
            a["long_name"] = f"sub-grid standard deviation of {da.attrs.get('long_name', base)}"
            out[f"{base}_std"] = _wrap(da, plan, lead, np.sqrt(var), _cell_methods(da, "standard_deviation"), attrs=a)
    if want_mm:
        mn, mx = plan.finish(mm)
        if thin is not None and min_valid_fraction > 0:
            mn[thin], mx[thin] = np.nan, np.nan
        for key, arr, word in (("min", mn, "minimum"), ("max", mx, "maximum")):
            if key in stats:
                a = _base_attrs(da, ("units", "standard_name"))
                a["long_name"] = f"sub-grid {word} of {da.attrs.get('long_name', base)}"
                out[f"{base}_{key}"] = _wrap(da, plan, lead, arr, _cell_methods(da, word), attrs=a)
    for k, v in out.items():
        v.name = k
    return xr.Dataset(out)
