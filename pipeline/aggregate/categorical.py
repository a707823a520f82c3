"""Categorical fields: declared classes, no-data codes, class areas, class/PFT fractions, majority.

:func:`class_areas` streams class codes through the class-sum kernels with a lookup table
(class code → column; missing codes → -1; undeclared codes → an extra column, an error naming them).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from kernels import InvalidClassCodes
from pipeline.aggregate.cf import cell_methods_of, out_coords
from pipeline.aggregate.crosswalk import crosswalk_matrix
from pipeline.aggregate.plan import valid_fraction
from pipeline.aggregate.stream import lead_dims, prepare, read_rows, row_chunks
from pipeline.errors import ConfigError, InputDataError
from pipeline.grids import check_memory
from pipeline.weights import Weights


def _declared_classes(da, classes, missing=None, *, func: str = "class_fractions"):
    if classes is None:
        fv = da.attrs.get("flag_values")
        if fv is None:
            raise ConfigError(f"{func} of {da.name!r}: pass classes=[...] (--classes: the class codes), or give "
                              "the variable CF flag_values")
        # flag_values may list the no-data code as a flag of its own (e.g. IGBP 255): it is not a class
        no_data = set(_no_data_codes(da, missing))
        classes = [c for c in np.asarray(fv).ravel() if int(c) not in no_data]
    classes = [int(c) for c in np.asarray(classes).ravel()]
    if len(set(classes)) != len(classes) or not classes:
        raise ConfigError(f"classes must be distinct integer codes, got {classes}")
    if min(classes) < 0:
        raise ConfigError(f"class codes must be >= 0 (negative codes mean missing), got {min(classes)}")
    return classes


_FILL_KEYS = ("_FillValue", "missing_value")


def _integer_codes(values):
    """The finite whole numbers among ``values`` as Python ints (others can never equal a class code)."""
    v = np.atleast_1d(np.asarray(values, dtype=object)).ravel()
    out = []
    for x in v:
        try:
            f = float(x)
        except (TypeError, ValueError):
            continue
        if np.isfinite(f) and f == int(f):
            out.append(int(x) if isinstance(x, (int, np.integer)) else int(f))
    return out


def _no_data_codes(da, missing):
    """Every code meaning no data: ``missing`` if given, else the fill/missing/no-data attributes."""
    if missing is not None:
        return sorted(set(_integer_codes(missing)))
    codes = []
    for src in (da.attrs, da.encoding):
        for k in (*_FILL_KEYS, "no_data_value"):
            if src.get(k) is not None:
                codes += _integer_codes(src[k])
    return sorted(set(codes))


def _code_range(dtype) -> tuple[int, int]:
    """Range of the integer codes the class kernels see for data of ``dtype`` (float: cast to int32)."""
    dtype = np.dtype(dtype)
    info = np.iinfo(dtype if dtype.kind in "iu" else np.int32)
    return int(info.min), int(info.max)


def missing_codes(da, missing):
    """The no-data codes (>= 0) that can occur in the data of ``da``.

    For float input the fill codes (``_FillValue``, ``missing_value``) are ignored: decoding made
    them NaN already (the default NetCDF float fill 9.97e36 is no integer code). Codes outside the
    range of the data's dtype cannot occur and are dropped.
    """
    if missing is None and np.dtype(da.dtype).kind == "f":
        codes = []
        for src in (da.attrs, da.encoding):
            if src.get("no_data_value") is not None:
                codes += _integer_codes(src["no_data_value"])
    else:
        codes = _no_data_codes(da, missing)
    _, hi = _code_range(da.dtype)
    return sorted({c for c in codes if 0 <= c <= hi})


def _out_dtype(classes) -> np.dtype:
    """int32 for the class codes of an output, int64 when a code does not fit (e.g. 1e11)."""
    return np.dtype(np.int32 if max(classes) <= np.iinfo(np.int32).max else np.int64)


def _class_names(da, classes, names):
    if names is not None:
        names = list(names)
        if len(names) != len(classes):
            raise ConfigError(f"{len(names)} class names for {len(classes)} classes")
        return names
    fv, fm = da.attrs.get("flag_values"), da.attrs.get("flag_meanings")
    if fv is not None and fm is not None:
        lookup = dict(zip([int(v) for v in np.atleast_1d(fv)], str(fm).split()))
        return [lookup.get(c, f"class_{c}") for c in classes]
    return [f"class_{c}" for c in classes]


#: missing codes up to this value are entries of the class lookup table; larger ones are mapped apart
_LUT_MISSING_MAX = 2**16


def class_areas(da, grid, weights, classes, missing, engine, chunk_rows, name):
    """Per target cell and class, the area (unit sphere) of the source cells of that class."""
    nc = len(classes)
    miss = missing_codes(da, missing)
    both = sorted(set(classes) & set(miss))
    if both:
        where = "--missing / missing=" if missing is not None else "the variable's fill/no-data attributes"
        raise ConfigError(f"{name}: codes {both} of {da.name!r} are both classes and missing codes (from {where}); "
                          "a code is one or the other: drop them from the classes or from the missing codes")
    plan, eng = prepare(da, grid, weights, engine, name)
    K, xp = eng.kernels, eng.xp
    lead, nb = lead_dims(da, plan)
    if nb != 1:
        sizes = ", ".join(f"{d} ({da.sizes[d]})" for d in lead)
        raise InputDataError(f"{name}: categorical variable {da.name!r} has extra dimensions {sizes}; class maps are "
                             f"aggregated one at a time: select one {lead[0]} (on the command line --select "
                             f"{lead[0]}=VALUE or --select '{lead[0]}[0]'; in Python: da.isel({lead[0]}=0))")
    is_float = np.dtype(da.dtype).kind == "f"
    itemsize = np.dtype(da.dtype).itemsize if not is_float else 4
    # declared classes the data's dtype cannot hold (a code 1e11 in uint8 data) can never occur:
    # their fraction is 0, and they do not size the lookup table
    _, hi_code = _code_range(da.dtype)
    if is_float and max(classes) > hi_code:
        raise ConfigError(f"{name}: class codes of {da.name!r} (stored as floats, read as 32-bit integers) must be at "
                          f"most {hi_code:,}, got {max(classes):,}; number the classes with small integers")
    in_range = [(k, c) for k, c in enumerate(classes) if c <= hi_code]
    lut_len = max([c for _, c in in_range], default=0) + 1
    if not is_float and itemsize <= 2:
        lut_len = max(lut_len, 2 ** (8 * itemsize))  # every code of the dtype inside the table
    # missing codes far beyond the classes (e.g. a uint32 fill 4294967295) do not size the table:
    # they are replaced by one extra slot meaning missing
    small = [m for m in miss if m < max(lut_len, _LUT_MISSING_MAX)]
    far = [m for m in miss if m >= max(lut_len, _LUT_MISSING_MAX)]
    lut_len = max([lut_len] + [m + 1 for m in small])
    check_memory(lut_len * 16.0, f"{name}: the class lookup table of {da.name!r} (class codes up to {lut_len - 1:,})",
                 "number the classes with small integers (e.g. `cdo setvals`), or declare only the classes "
                 "present (--classes)")
    # slot nc collects codes that are not declared: an error after the pass, naming them
    lut = np.full(lut_len + (1 if far else 0), nc, dtype=np.int64)
    if in_range:
        lut[[c for _, c in in_range]] = [k for k, _ in in_range]
    lut[small] = -1
    if far:
        lut[lut_len] = -1
    lut_dev = xp.asarray(lut)
    acc = plan.new_acc(1, 1, classes=nc + 1)
    for r0, r1 in row_chunks(da, plan, 1, chunk_rows):
        if not plan.chunk_has_links(r0, r1):
            continue
        codes = read_rows(da, plan, lead, r0, r1, xp)[0]
        if is_float:
            ok = xp.isfinite(codes)
            if bool((ok & (codes != xp.floor(codes))).any()):
                raise InputDataError(f"{name}: categorical variable {da.name!r} holds non-integer values; pass class codes")
            # NaN -> -1 (missing); huge values -> int32 max, beyond the table: named as undeclared
            codes = xp.clip(xp.where(ok, codes, -1), -1, np.iinfo(np.int32).max).astype(np.int32)
        if far:
            hit = codes == far[0]
            for m in far[1:]:
                hit |= codes == m
            codes = xp.where(hit, codes.dtype.type(lut_len), codes)
        try:
            plan.class_sum(K, codes, r0, r1, acc, nc + 1, lut_dev)
        except InvalidClassCodes:  # a code beyond the lookup table: name all undeclared values
            _raise_undeclared(da, plan, lead, classes, miss, chunk_rows, name)
    (areas,) = plan.finish(acc, classes=True)
    if areas[:, nc].sum() > 0:
        _raise_undeclared(da, plan, lead, classes, miss, chunk_rows, name)
    return areas[:, :nc], plan, lead


def _raise_undeclared(da, plan, lead, classes, miss, chunk_rows, name):
    bad = _undeclared_values(da, plan, lead, classes, miss, chunk_rows)
    raise InputDataError(f"{name}: variable {da.name!r} holds class values {bad} outside the declared classes "
                         f"{classes} (missing: {miss}); add them to classes= (--classes) or mark them missing")


def _undeclared_values(da, plan, lead, classes, miss, chunk_rows):
    """Slow path, run only on error: the distinct undeclared values (first 10)."""
    bad = set()
    ok = set(classes) | set(miss)
    for r0, r1 in row_chunks(da, plan, 1, chunk_rows):
        v = read_rows(da, plan, lead, r0, r1, np)
        v = v[np.isfinite(v)] if v.dtype.kind == "f" else v
        bad |= {int(x) for x in np.unique(v)} - ok
        if len(bad) >= 10:
            break
    return sorted(bad)[:10]


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
    areas, plan, lead = class_areas(da, grid, weights, classes, missing, engine, chunk_rows, name)
    valid = areas.sum(1)
    if crosswalk is not None:
        labels, m = crosswalk_matrix(crosswalk, classes)
        areas = areas @ m
        dim, long = "pft", "plant functional type"
    else:
        labels, dim, long = _class_names(da, classes, class_names), "class", "class"
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = areas / valid[:, None]
    frac[valid <= 0] = np.nan
    coords, dims, shp = out_coords(da, plan, ())
    vf = valid_fraction(valid, plan).reshape(shp)
    coords["valid_fraction"] = (dims, vf, {"long_name": "fraction of the cell area with valid input", "units": "1"})
    if crosswalk is None:
        cdt = _out_dtype(classes)
        coords[dim] = (dim, np.asarray(classes, dtype=cdt),
                       {"long_name": "class code", "flag_values": np.asarray(classes, dtype=cdt),
                        "flag_meanings": " ".join(s.replace(" ", "_") for s in labels)})
        coords[f"{dim}_name"] = (dim, np.asarray(labels, dtype=object))
    else:
        coords[dim] = (dim, np.asarray(labels, dtype=object), {"long_name": long})
    data = np.moveaxis(frac, -1, 0).reshape((len(labels),) + tuple(shp))
    attrs = {"standard_name": "area_fraction", "units": "1", "cell_methods": cell_methods_of(da, "mean"),
             "long_name": f"area fraction of each {long} of {da.attrs.get('long_name', da.name)}"}
    name = f"{da.name}_fraction" if crosswalk is None else "pft_fraction"
    return xr.DataArray(data, dims=(dim,) + tuple(dims), coords=coords, name=name, attrs=attrs)


def majority_class(da: xr.DataArray, grid=None, *, classes=None, missing=None, class_names=None,
                   weights: Weights | None = None, engine: str = "auto", chunk_rows: int | None = None,
                   name: str = "input") -> xr.DataArray:
    """The class covering the largest area of each target cell (ties: the first declared class)."""
    classes = _declared_classes(da, classes, missing, func="majority_class")
    areas, plan, lead = class_areas(da, grid, weights, classes, missing, engine, chunk_rows, name)
    idx = np.argmax(areas, axis=1)
    cdt = _out_dtype(classes)
    out = np.asarray(classes, dtype=cdt)[idx]
    out[areas.sum(1) <= 0] = -1
    coords, dims, shp = out_coords(da, plan, ())
    names = _class_names(da, classes, class_names)
    attrs = {"long_name": f"majority class of {da.attrs.get('long_name', da.name)}",
             "flag_values": np.asarray(classes, dtype=cdt), "flag_meanings": " ".join(n.replace(" ", "_") for n in names),
             "cell_methods": cell_methods_of(da, "mode")}
    res = xr.DataArray(out.reshape(shp), dims=dims, coords=coords, name=f"{da.name}_majority", attrs=attrs)
    res.encoding["_FillValue"] = cdt.type(-1)
    return res
