"""Continuous fields: the conservative mean and sub-grid statistics, streamed in row chunks.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from pipeline.aggregate.cf import base_attrs, cell_methods_of, wrap
from pipeline.aggregate.plan import valid_fraction
from pipeline.aggregate.stream import lead_dims, prepare, read_rows, row_chunks
from pipeline.errors import ConfigError, InputDataError
from pipeline.weights import Weights


def refuse_categorical(da: xr.DataArray, name: str) -> None:
    """Refuse a mean or statistics of a categorical map: averaging class codes gives no class.

    Categorical: CF ``flag_values`` or ``flag_masks``, or integer data with ``flag_meanings``.

    Raises
    ------
    InputDataError
        ``"VAR of FILE is categorical (flag_values ...); use --method fractions or majority"``.
    """
    a = da.attrs
    if a.get("flag_values") is not None:
        vals = np.atleast_1d(np.asarray(a["flag_values"])).ravel()
        what = f"flag_values {' '.join(str(v) for v in vals[:8])}{' ...' if vals.size > 8 else ''}"
    elif a.get("flag_masks") is not None:
        what = "flag_masks: bit flags"
    elif np.dtype(da.dtype).kind in "iu" and a.get("flag_meanings") is not None:
        what = f"integer codes with flag_meanings '{str(a['flag_meanings'])[:60]}'"
    else:
        return
    raise InputDataError(f"{da.name} of {name} is categorical ({what}); a mean of class codes is no class: use "
                         "--method fractions or majority (class_fractions or majority_class in Python)")


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
    if isinstance(da, xr.DataArray):
        refuse_categorical(da, name)
    plan, eng = prepare(da, grid, weights, engine, name)
    K, xp = eng.kernels, eng.xp
    lead, nb = lead_dims(da, plan)
    acc = plan.new_acc(nb, 2)
    for r0, r1 in row_chunks(da, plan, nb, chunk_rows):
        if plan.chunk_has_links(r0, r1):
            plan.weighted_sum(K, read_rows(da, plan, lead, r0, r1, xp), r0, r1, acc, False)
    num, den = plan.finish(acc)
    out = _finish_mean(num, den, plan, skipna, min_valid_fraction)
    return wrap(da, plan, lead, out, cell_methods_of(da, "mean"))


def _finish_mean(num, den, plan, skipna, min_valid_fraction):
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / den
    bad = den <= 0
    if min_valid_fraction > 0:
        bad |= valid_fraction(den, plan) < min_valid_fraction * (1 - 1e-12)
    if not skipna:
        cover = plan.weights.dst_cover()
        bad |= den < cover * (1 - 1e-12)
    out[bad] = np.nan
    return out


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
    if isinstance(da, xr.DataArray):
        refuse_categorical(da, name)
    plan, eng = prepare(da, grid, weights, engine, name)
    K, xp = eng.kernels, eng.xp
    lead, nb = lead_dims(da, plan)
    # the valid area (den of the weighted sums) is needed for the mask too
    want_sum = "mean" in stats or "std" in stats or min_valid_fraction > 0
    want_mm = "min" in stats or "max" in stats
    acc = plan.new_acc(nb, 3) if want_sum else None
    mm = plan.new_acc(nb, 2, fill=np.nan) if want_mm else None
    shift = None
    for r0, r1 in row_chunks(da, plan, nb, chunk_rows):
        if not plan.chunk_has_links(r0, r1):
            continue
        x = read_rows(da, plan, lead, r0, r1, xp)
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
            thin |= valid_fraction(den, plan) < min_valid_fraction * (1 - 1e-12)
        m[thin] = np.nan
        var[thin] = np.nan
        if "mean" in stats:
            out[f"{base}_mean"] = wrap(da, plan, lead, m + shift, cell_methods_of(da, "mean"))
        if "std" in stats:
            a = base_attrs(da, ("units",))
            a["long_name"] = f"sub-grid standard deviation of {da.attrs.get('long_name', base)}"
            out[f"{base}_std"] = wrap(da, plan, lead, np.sqrt(var), cell_methods_of(da, "standard_deviation"), attrs=a)
    if want_mm:
        mn, mx = plan.finish(mm)
        if thin is not None and min_valid_fraction > 0:
            mn[thin], mx[thin] = np.nan, np.nan
        for key, arr, word in (("min", mn, "minimum"), ("max", mx, "maximum")):
            if key in stats:
                a = base_attrs(da, ("units", "standard_name"))
                a["long_name"] = f"sub-grid {word} of {da.attrs.get('long_name', base)}"
                out[f"{base}_{key}"] = wrap(da, plan, lead, arr, cell_methods_of(da, word), attrs=a)
    for k, v in out.items():
        v.name = k
    return xr.Dataset(out)
