"""Validate and harmonise inputs: coordinates, bounds, units, ranges, NaN fractions.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import dask
import dask.array as da
import numpy as np
import xarray as xr

from pipeline.errors import ConfigError, InputDataError
from pipeline.io.coords import (
    _norm_units,
    axis_gaps,
    axis_problems,
    curvilinear_message,
    find_lat_lon,
    gap_message,
)
from pipeline.sphere import edges_from_centres


@dataclass(frozen=True)
class VarSpec:
    """What terrascale expects of a known variable: accepted units and a plausible range."""

    units: frozenset[str]
    valid_range: tuple[float, float]
    fix: str = ""


_FRACTION = VarSpec(frozenset({"1", "", "fraction", "0-1"}), (0.0, 1.0))


_LAI = VarSpec(frozenset({"1", "m2 m-2", "m2/m2", "m^2/m^2", "m2m-2"}), (0.0, 15.0))


KNOWN_VARIABLES: dict[str, VarSpec] = {
    "tas": VarSpec(frozenset({"K", "kelvin"}), (150.0, 350.0), "convert degC to K with `cdo addc,273.15`"),
    "pr": VarSpec(frozenset({"kg m-2 s-1", "kg/m2/s", "kg m**-2 s**-1"}), (0.0, 0.1), "convert mm/day with `cdo divc,86400`"),
    "rsds": VarSpec(frozenset({"W m-2", "W/m2", "W m**-2"}), (0.0, 1500.0)),
    "lai": _LAI,
    "lai_obs": _LAI,
    "land_fraction": _FRACTION,
    "lulc_fraction": _FRACTION,
    "lulc_fraction_2019": _FRACTION,
    "distance_to_coast": VarSpec(frozenset({"km"}), (0.0, 5000.0)),
}


def _monotonic_problem(values: np.ndarray, name: str) -> str | None:
    if values.size < 2:
        return None
    d = np.diff(values)
    if not (np.all(d > 0) or np.all(d < 0)):
        bad = int(np.argmax(~((d > 0) if d[0] > 0 else (d < 0)))) if d[0] != 0 else 0
        return (
            f"coordinate '{name}' is not strictly monotonic (first break after index {bad}: "
            f"{values[bad]} then {values[bad + 1]}); sort the file (`cdo sortlon` for longitudes, "
            "`cdo invertlat` for latitudes) or remove the duplicates"
        )
    return None


def _has_bounds(ds: xr.Dataset, name: str) -> bool:
    return ds[name].attrs.get("bounds") in ds.variables


def _coordinate_problems(ds: xr.Dataset, lat: str, lon: str, source: str, notes: list[str]) -> list[str]:
    """Problems of the lat/lon axes: curvilinear, empty, NaN, ±inf, beyond ±90°, unsorted, gaps."""
    if ds[lat].ndim > 1 or ds[lon].ndim > 1:
        return [curvilinear_message(None, lat, lon, max(ds[lat].ndim, ds[lon].ndim))]
    problems = []
    for name, kind in ((lat, "lat"), (lon, "lon")):
        values = np.asarray(ds[name].values)
        found = axis_problems(values, name, kind, gaps=False)
        if not found:  # a NaN breaks no `diff <= 0` test the right way: sortedness only of clean values
            mono = _monotonic_problem(values.astype(np.float64), name)
            found = [mono] if mono else []
        if not found:
            what = "latitude" if kind == "lat" else "longitude"
            gaps = axis_gaps(values, kind)[:3]
            if _has_bounds(ds, name):
                notes += [f"{what} '{name}' has a gap between {a:g} and {b:g} (a step of {st:g} where it steps by "
                          f"{u:g}); its cell bounds say where the cells are" for a, b, st, u in gaps]
            else:
                found = [gap_message(what, name, g) for g in gaps]
        problems += found
    return problems


def derive_bounds(centres: np.ndarray, *, clip: tuple[float, float] | None = None) -> np.ndarray:
    """Cell bounds (n, 2) from ascending centres: midpoints, the outer edges extrapolated.

    The edges of :func:`pipeline.grids.edges_from_centres` as (lower, upper) pairs; a single
    centre gets a 1° cell (centre ± 0.5°), so a one-row/column file still validates.
    """
    edges = edges_from_centres(centres, clip=clip, single_cell_width=1.0)
    return np.stack([edges[:-1], edges[1:]], axis=1)


@dataclass
class ValidationResult:
    """Outcome of :func:`validate_dataset`: the harmonised dataset, problems, notes and a summary."""

    dataset: xr.Dataset
    source: str
    lat: str
    lon: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems

    def raise_if_problems(self) -> None:
        """Raise one :class:`InputDataError` listing every problem found."""
        if self.problems:
            listed = "; ".join(f"({i}) {p}" for i, p in enumerate(self.problems, 1))
            raise InputDataError(f"{self.source}: {len(self.problems)} problem(s): {listed}")


def harmonise(ds: xr.Dataset, lat: str, lon: str, notes: list[str] | None = None) -> xr.Dataset:
    """Latitude ascending, longitude in [-180, 180) and sorted, CF attributes and bounds present."""
    notes = notes if notes is not None else []
    lat_vals = np.asarray(ds[lat].values, dtype=np.float64)
    if lat_vals.size > 1 and lat_vals[0] > lat_vals[-1]:
        ds = ds.isel({ds[lat].dims[0]: slice(None, None, -1)})
        notes.append(f"latitude '{lat}' was descending: flipped to ascending")
    lon_vals = np.asarray(ds[lon].values, dtype=np.float64)
    wrapped = ((lon_vals + 180.0) % 360.0) - 180.0
    _, first = np.unique(wrapped, return_index=True)
    if first.size < wrapped.size:
        # 0 and 360 (or -180 and 180) are one meridian: a cyclic copy of a column, which would
        # become a duplicate longitude (and a second, overlapping cell) after the wrap
        keep = np.sort(first)
        kept = {float(wrapped[i]): i for i in keep}
        pairs = ", ".join(f"{lon_vals[i]:g} repeats {lon_vals[kept[float(wrapped[i])]]:g}"
                          for i in np.setdiff1d(np.arange(wrapped.size), keep))
        ds = ds.isel({ds[lon].dims[0]: keep})
        notes.append(f"longitude '{lon}' holds the same meridian twice ({pairs}): the repeated column dropped")
        lon_vals, wrapped = lon_vals[keep], wrapped[keep]
    if not np.array_equal(wrapped, lon_vals) or (lon_vals.size > 1 and lon_vals[0] > lon_vals[-1]):
        shift = wrapped - lon_vals
        ds = ds.assign_coords({lon: (ds[lon].dims, wrapped, ds[lon].attrs)})
        bname = ds[lon].attrs.get("bounds")
        if bname in ds.variables:
            ds[bname] = ds[bname] + xr.DataArray(shift, dims=ds[lon].dims)
        ds = ds.sortby(lon)
        notes.append(f"longitude '{lon}' moved to [-180, 180) and sorted")
    for name, std, units, axis, clip in ((lat, "latitude", "degrees_north", "Y", (-90.0, 90.0)), (lon, "longitude", "degrees_east", "X", None)):
        attrs = dict(ds[name].attrs)
        attrs.update(standard_name=std, units=units, axis=axis)
        bname = attrs.get("bounds")
        if bname not in ds.variables:
            bname = f"{name}_bnds"
            bounds = derive_bounds(ds[name].values, clip=clip)
            ds = ds.assign({bname: ((ds[name].dims[0], "bnds"), bounds)})
            notes.append(f"derived cell bounds '{bname}' from the centres of '{name}'")
            attrs["bounds"] = bname
        ds[name].attrs = attrs
    return ds


def validate_dataset(
    ds: xr.Dataset,
    *,
    source: str = "dataset",
    variables: list[str] | None = None,
    max_nan_fraction: float = 1.0,
) -> ValidationResult:
    """Check a dataset and return its harmonised copy with every problem found.

    Parameters
    ----------
    ds
        The (lazy) dataset.
    source
        The file name, used in every message.
    variables
        Variables to check; default every data variable on the lat/lon grid.
    max_nan_fraction
        A variable with a larger NaN fraction is a problem.

    Returns
    -------
    ValidationResult
        Call :meth:`ValidationResult.raise_if_problems` to turn problems into one error.
    """
    from pipeline.io.stores import check_cf_attributes

    source = str(source)
    check_max_nan_fraction(max_nan_fraction)
    check_cf_attributes(ds, source)
    lat, lon = find_lat_lon(ds, source)
    problems: list[str] = []
    notes: list[str] = []
    if ds[lat].size == 0 or ds[lon].size == 0:  # nothing else can be checked on an empty grid
        empty = [p for n, k in ((lat, "lat"), (lon, "lon")) for p in axis_problems(ds[n].values, n, k)[:1]
                 if ds[n].size == 0]
        return ValidationResult(ds, source, lat, lon, empty, notes, [])
    if is_unstructured(ds, lat, lon):
        return _validate_unstructured(ds, source, lat, lon, variables, max_nan_fraction)
    problems += _coordinate_problems(ds, lat, lon, source, notes)
    if "time" in ds.coords and ds["time"].ndim == 1 and ds.sizes["time"] > 1:
        t = ds["time"].values
        if not np.all(t[1:] > t[:-1]):
            problems.append("coordinate 'time' is not strictly increasing; sort it (`cdo sorttimestamp`)")
    if not problems:  # a grid with broken coordinates is reported, not reordered
        ds = harmonise(ds, lat, lon, notes)

    grid_dims = set(ds[lat].dims) | set(ds[lon].dims)
    summary = _check_variables(ds, source, lat, lon, grid_dims, variables, max_nan_fraction, problems)
    return ValidationResult(ds, source, lat, lon, problems, notes, summary)


def check_max_nan_fraction(value: float) -> None:
    """:class:`ConfigError` unless ``value`` is a fraction in [0, 1] (``--max-nan-fraction``)."""
    if not (isinstance(value, (int, float, np.floating)) and 0.0 <= float(value) <= 1.0):
        raise ConfigError(f"--max-nan-fraction must be a fraction between 0 and 1 (e.g. 0.2 for 20%), got {value!r}")


def _fmt(x: float) -> str:
    if np.isnan(x):
        return "nan"
    return ("inf" if x > 0 else "-inf") if np.isinf(x) else f"{x:.4g}"


def _statistics(ds: xr.Dataset, names: list[str], source: str) -> dict[str, tuple[float, float, float, float]]:
    """min and max of the finite values, NaN fraction and number of ±inf of each variable, in one pass."""
    from pipeline.io.reading import DECODE_ERRORS, read_error, reading

    lazy = []
    for name in names:
        data = da.asarray(ds[name].data)
        if data.size == 0:
            lazy.append((np.nan, np.nan, 1.0, 0))
            continue
        if data.dtype.kind != "f":
            data = data.astype("float64")
        inf = da.isinf(data)
        finite = da.where(inf, np.nan, data)  # ±inf are counted apart; the range is of the finite values
        lazy.append((da.nanmin(finite), da.nanmax(finite), da.isnan(data).mean(), inf.sum()))
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices are reported as problems
            computed = dask.compute(*lazy)
    except DECODE_ERRORS as err:
        # every variable was read together: read each alone (one flag per block kept) to name it
        for name in names:
            data = da.asarray(ds[name].data)
            touched = data.map_blocks(lambda b: np.zeros((1,) * b.ndim, bool), dtype=bool,
                                      chunks=tuple((1,) * len(c) for c in data.chunks))
            with reading(ds[name].encoding.get("source", source), name):
                touched.compute()
        raise read_error(source, None, err) from None
    return {n: tuple(float(v) for v in c) for n, c in zip(names, computed)}


def is_unstructured(ds: xr.Dataset, lat: str, lon: str) -> bool:
    """True for grids listed cell by cell (reduced Gaussian, unstructured): lat and lon on one dim."""
    return ds[lat].ndim == 1 and ds[lat].dims == ds[lon].dims


def _validate_unstructured(ds, source, lat, lon, variables, max_nan_fraction) -> ValidationResult:
    # Cells of a reduced Gaussian or unstructured grid are listed in the grid's own order (e.g.
    # row by row from the north for ecCodes/CDO): there is nothing to sort, only ranges to check.
    problems: list[str] = []
    notes = [f"unstructured grid: {ds.sizes[ds[lat].dims[0]]} cells on dimension '{ds[lat].dims[0]}'"]
    for name, kind in ((lat, "lat"), (lon, "lon")):  # NaN, ±inf, beyond ±90°; cells have no order to check
        problems += axis_problems(ds[name].values, name, kind, gaps=False)
    summary = _check_variables(ds, source, lat, lon, {ds[lat].dims[0]}, variables, max_nan_fraction, problems)
    return ValidationResult(ds, source, lat, lon, problems, notes, summary)


def _check_variables(ds, source, lat, lon, grid_dims, variables, max_nan_fraction, problems) -> list[dict]:
    """Units, ranges and NaN fractions of the variables on the grid; appends to ``problems``."""
    bounds_names = {ds[n].attrs.get("bounds") for n in (lat, lon)}
    if variables:
        missing = [v for v in variables if v not in ds.data_vars]
        if missing:
            problems.append(
                f"variable(s) {', '.join(missing)} not found; the file has: {', '.join(map(str, ds.data_vars)) or 'none'}"
            )
        names = [v for v in variables if v in ds.data_vars]
    else:
        names = [str(v) for v in ds.data_vars if grid_dims <= set(ds[v].dims) and v not in bounds_names]
        if not names:
            problems.append(f"no data variable on the {lat}/{lon} grid; the file has: {', '.join(map(str, ds.data_vars)) or 'none'}")

    stats = _statistics(ds, names, source)
    summary = []
    for name in names:
        var = ds[name]
        mn, mx, nan_frac, n_inf = stats[name]
        if n_inf:
            problems.append(f"variable '{name}' holds {int(n_inf)} infinite value(s) (±inf); they are no data "
                            "terrascale can average: set them to the fill value (missing) and re-create the file")
        units = var.attrs.get("units", "")
        summary.append(dict(variable=name, dims=",".join(map(str, var.dims)), units=units or "-",
                            min=_fmt(mn), max=_fmt(mx), nan_percent=f"{100 * nan_frac:.1f}"))
        if nan_frac > max_nan_fraction:
            problems.append(f"variable '{name}' is {100 * nan_frac:.1f}% NaN, more than the allowed {100 * max_nan_fraction:.1f}%")
        if nan_frac == 1.0:
            problems.append(f"variable '{name}' holds no valid value (all NaN or fill values)")
        spec = KNOWN_VARIABLES.get(name)
        if spec is None:
            continue
        if _norm_units(units) not in spec.units:
            expected = " or ".join(sorted(u for u in spec.units if u)) or "dimensionless"
            fix = f"; {spec.fix}" if spec.fix else ""
            problems.append(f"variable '{name}' has units '{units}' but terrascale expects {expected}{fix}")
        lo, hi = spec.valid_range
        if np.isfinite(mn) and (mn < lo or mx > hi):
            problems.append(
                f"variable '{name}' ranges over [{_fmt(mn)}, {_fmt(mx)}], outside the plausible [{lo:g}, {hi:g}] "
                "for its units; check the units and the scale_factor/add_offset"
            )
    return summary
