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
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

import kernels
from kernels.gpu import is_device_array as _is_cupy
from pipeline.errors import BackendError, ConfigError, InputDataError
from pipeline.grids import Grid, RectilinearGrid, parse_grid, source_axes
from pipeline.weights import RowwiseWeights, SeparableWeights, SparseWeights, Weights, compute_weights

#: default number of source values per streamed chunk
CHUNK_VALUES = 32 * 2**20


def _kernels(engine: str, sample):
    """The kernel module for ``engine`` (see :func:`kernels.get_engine`) and the engine's name."""
    if engine == "auto":
        engine = "cupy" if _is_cupy(sample) else "numba"
    if engine not in kernels.ENGINES:
        raise ConfigError(f"unknown aggregation engine {engine!r}; use auto, {', '.join(kernels.ENGINES)}")
    try:
        return kernels.get_engine(engine), engine
    except ImportError as err:
        raise ConfigError(f"aggregation engine {engine!r} is not usable here ({err}); use engine='numpy' or 'numba'") from None


# ----------------------------------------------------------------------------------------------
# a weights object bound to the storage layout of one data array
# ----------------------------------------------------------------------------------------------


@dataclass
class _Plan:
    weights: Weights
    lat_dim: str
    lon_dim: str
    ny: int
    nx: int
    out_grid: Grid | None
    kind: str  # separable | rowwise | sparse
    links: object = None
    xp: object = np

    @property
    def n_dst(self) -> int:
        return self.weights.n_dst

    # --- link subsets per chunk of physical rows
    def _sel(self, key_sorted, r0, r1):
        a, b = np.searchsorted(key_sorted, [r0, r1])
        return slice(int(a), int(b))

    def chunk_has_links(self, r0, r1) -> bool:
        if self.kind == "separable":
            return self._sel(self.links[0], r0, r1).stop > self._sel(self.links[0], r0, r1).start
        if self.kind == "rowwise":
            return any(self._sel(g[1][0], r0, r1).stop > self._sel(g[1][0], r0, r1).start for g in self.links)
        s = self._sel(self.links[0], r0 * self.nx, r1 * self.nx)
        return s.stop > s.start

    def _to(self, *arrays):
        return tuple(self.xp.asarray(a) for a in arrays)

    # --- accumulators
    def new_acc(self, nb: int, n: int, *, classes: int | None = None, fill=0.0):
        xp = self.xp

        def mk(shape):
            return tuple(xp.full(shape, fill, dtype=np.float64) for _ in range(n))

        if self.kind == "separable":
            my, mx = self.weights.dst_shape
            return [mk((my, mx, classes) if classes else (nb, my, mx))]
        if self.kind == "rowwise":
            return [mk((g[0].size, g[3], classes) if classes else (nb, g[0].size, g[3])) for g in self.links]
        return [mk((self.n_dst, classes) if classes else (nb, self.n_dst))]

    def finish(self, acc, *, classes: bool = False):
        """Accumulators → tuple of host arrays (nb, n_dst) (or (n_dst, nc)) in the grid's flat order."""
        host = lambda a: a.get() if _is_cupy(a) else np.asarray(a)  # noqa: E731
        n = len(acc[0])
        if self.kind == "separable":
            res = [host(a) for a in acc[0]]
            return tuple(r.reshape(self.n_dst, r.shape[-1]) if classes else r.reshape(r.shape[0], self.n_dst) for r in res)
        if self.kind == "rowwise":
            offs = self.weights.dst_grid.offsets
            out = []
            for k in range(n):
                parts = [host(a[k]) for a in acc]
                if classes:
                    o = np.zeros((self.n_dst, parts[0].shape[-1]))
                else:
                    o = np.zeros((parts[0].shape[0], self.n_dst))
                for (dst_rows, _, _, ncols), p in zip(self.links, parts):
                    for g, r in enumerate(dst_rows):
                        sl = slice(int(offs[r]), int(offs[r]) + ncols)
                        if classes:
                            o[sl] = p[g]
                        else:
                            o[:, sl] = p[:, g]
                out.append(o)
            return tuple(out)
        res = [host(a) for a in acc[0]]
        perm = getattr(self.weights, "dst_perm", None)
        if perm is not None:
            res = [r[perm] if classes else r[:, perm] for r in res]
        return tuple(res)

    # --- kernel calls on one chunk of rows [r0, r1)
    def weighted_sum(self, K, x, r0, r1, acc, squares):
        if self.kind == "separable":
            rs, rd, rw = self.links
            s = self._sel(rs, r0, r1)
            if s.stop > s.start:
                rows = self._to(rs[s] - r0, rd[s], rw[s])
                K.separable_weighted_sum(x, rows, self.cols_dev, *self.weights.dst_shape, squares=squares, out=acc[0])
        elif self.kind == "rowwise":
            for (dst_rows, (rs, rg, rw), cols, ncols), a, cdev in zip(self.links, acc, self.cols_dev):
                s = self._sel(rs, r0, r1)
                if s.stop > s.start:
                    K.separable_weighted_sum(x, self._to(rs[s] - r0, rg[s], rw[s]), cdev, dst_rows.size, ncols,
                                             squares=squares, out=a)
        else:
            src, dst, w = self.links
            s = self._sel(src, r0 * self.nx, r1 * self.nx)
            if s.stop > s.start:
                K.sparse_weighted_sum(x.reshape(x.shape[0], -1), *self._to(src[s] - r0 * self.nx, dst[s], w[s]),
                                      self.n_dst, squares=squares, out=acc[0])

    def min_max(self, K, x, r0, r1, acc):
        if self.kind == "separable":
            rs, rd, rw = self.links
            s = self._sel(rs, r0, r1)
            if s.stop > s.start:
                K.separable_min_max(x, self._to(rs[s] - r0, rd[s], rw[s]), self.cols_dev, *self.weights.dst_shape, out=acc[0])
        elif self.kind == "rowwise":
            for (dst_rows, (rs, rg, rw), cols, ncols), a, cdev in zip(self.links, acc, self.cols_dev):
                s = self._sel(rs, r0, r1)
                if s.stop > s.start:
                    K.separable_min_max(x, self._to(rs[s] - r0, rg[s], rw[s]), cdev, dst_rows.size, ncols, out=a)
        else:
            src, dst, w = self.links
            s = self._sel(src, r0 * self.nx, r1 * self.nx)
            if s.stop > s.start:
                K.sparse_min_max(x.reshape(x.shape[0], -1), *self._to(src[s] - r0 * self.nx, dst[s]), self.n_dst, out=acc[0])

    def class_sum(self, K, codes, r0, r1, acc, n_classes, lut):
        if self.kind == "separable":
            rs, rd, rw = self.links
            s = self._sel(rs, r0, r1)
            if s.stop > s.start:
                K.separable_class_sum(codes, self._to(rs[s] - r0, rd[s], rw[s]), self.cols_dev, *self.weights.dst_shape,
                                      n_classes, lut=lut, out=acc[0][0])
        elif self.kind == "rowwise":
            for (dst_rows, (rs, rg, rw), cols, ncols), a, cdev in zip(self.links, acc, self.cols_dev):
                s = self._sel(rs, r0, r1)
                if s.stop > s.start:
                    K.separable_class_sum(codes, self._to(rs[s] - r0, rg[s], rw[s]), cdev, dst_rows.size, ncols,
                                          n_classes, lut=lut, out=a[0])
        else:
            src, dst, w = self.links
            s = self._sel(src, r0 * self.nx, r1 * self.nx)
            if s.stop > s.start:
                K.sparse_class_sum(codes.reshape(-1), *self._to(src[s] - r0 * self.nx, dst[s], w[s]), self.n_dst,
                                   n_classes, lut=lut, out=acc[0][0])


def _sorted_rows(rows, row_index):
    rs, rd, rw = rows
    rs = np.asarray(row_index)[rs]  # grid row → physical row of the array
    o = np.argsort(rs, kind="stable")
    return rs[o], rd[o], rw[o]


def _bind(da: xr.DataArray, weights: Weights | None, grid, *, name: str, from_file: bool, xp) -> _Plan:
    """Bind weights (computed for ``grid`` if not given) to the storage layout of ``da``."""
    if from_file:
        sp = weights.to_sparse()
        lat_dim, lon_dim = _lat_lon_dims(da, name)
        ny, nx = da.sizes[lat_dim], da.sizes[lon_dim]
        if tuple(sp.src_shape) not in ((ny, nx),) and int(np.prod(sp.src_shape)) != ny * nx:
            raise InputDataError(
                f"{sp.source} is for a source grid of {' x '.join(map(str, sp.src_shape))} = {sp.n_src} cells, but {name} "
                f"variable {da.name!r} has {ny} x {nx} = {ny * nx} cells ({lat_dim} x {lon_dim}); make weights for this "
                "input (`cdo gencon,<grid> INPUT w.nc` or `terrascale weights`)")
        o = np.argsort(sp.src, kind="stable")
        plan = _Plan(weights=sp, lat_dim=lat_dim, lon_dim=lon_dim, ny=ny, nx=nx, out_grid=sp.dst_grid, kind="sparse",
                     links=(sp.src[o], sp.dst[o], sp.w[o]), xp=xp)
        return plan
    axes = source_axes(da, name=name)
    if weights is None:
        weights = compute_weights(axes.grid, parse_grid(grid))
    elif not (isinstance(weights, (SeparableWeights, RowwiseWeights)) and weights.src_grid.shape == axes.grid.shape
              and np.allclose(weights.src_grid.lat_edges, axes.grid.lat_edges, atol=1e-9)
              and np.allclose((weights.src_grid.lon_edges - axes.grid.lon_edges + 180) % 360 - 180, 0, atol=1e-9)):
        raise InputDataError(f"the weights given are for source grid {weights.src_grid.describe()}, not for {name} "
                             f"variable {da.name!r} ({axes.grid.describe()}); compute them for this input")
    ny, nx = axes.grid.shape
    if isinstance(weights, SeparableWeights):
        plan = _Plan(weights=weights, lat_dim=axes.lat_dim, lon_dim=axes.lon_dim, ny=ny, nx=nx,
                     out_grid=weights.dst_grid, kind="separable", links=_sorted_rows(weights.rows, axes.row_index), xp=xp)
        cs, cd, cw = weights.cols
        plan.cols_dev = plan._to(np.asarray(axes.col_index)[cs], cd, cw)
        return plan
    groups = []
    for dst_rows, rows, cols, ncols in weights.group_links():
        groups.append((dst_rows, _sorted_rows(rows, axes.row_index), cols, ncols))
    plan = _Plan(weights=weights, lat_dim=axes.lat_dim, lon_dim=axes.lon_dim, ny=ny, nx=nx,
                 out_grid=weights.dst_grid, kind="rowwise", links=groups, xp=xp)
    plan.cols_dev = [plan._to(np.asarray(axes.col_index)[c[0]], c[1], c[2]) for _, _, c, _ in groups]
    return plan


def _lat_lon_dims(da, name):
    try:
        axes_dims = source_axes(da, name=name)
        return axes_dims.lat_dim, axes_dims.lon_dim
    except InputDataError:
        if da.ndim >= 2:  # storage-order weights only need the last two dims
            return da.dims[-2], da.dims[-1]
        raise


# ----------------------------------------------------------------------------------------------
# the chunk loop
# ----------------------------------------------------------------------------------------------


def _chunks(da, plan: _Plan, nb: int, chunk_rows: int | None):
    """Row ranges [r0, r1) to stream: ``chunk_rows`` rows, or a memory budget; dask-backed arrays
    are cut on their own chunk boundaries along latitude (merged up to the budget)."""
    ny, nx = plan.ny, plan.nx
    if chunk_rows is not None and (isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer))
                                   or chunk_rows < 1):
        raise ConfigError(f"chunk_rows must be a positive whole number of source rows (or None: ~{CHUNK_VALUES:,} "
                          f"values per chunk), got {chunk_rows!r}")
    rows = chunk_rows or max(1, CHUNK_VALUES // max(1, nb * nx))
    chunks = getattr(da, "chunks", None)
    if chunks is not None and not chunk_rows:
        dask_bounds = np.concatenate([[0], np.cumsum(chunks[da.dims.index(plan.lat_dim)])]).astype(int)
        bounds = [0]
        for prev, b in zip(dask_bounds[1:-1], dask_bounds[2:]):
            if b - bounds[-1] > rows:
                bounds.append(int(prev))
        bounds.append(ny)
    else:
        bounds = list(range(0, ny, rows)) + [ny]
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _read(da, plan: _Plan, lead: tuple[str, ...], r0: int, r1: int, xp):
    """Rows [r0, r1) of ``da`` as a (nb, rows, nx) array of the backend (no copy if avoidable)."""
    sub = da.isel({plan.lat_dim: slice(r0, r1)}).transpose(*lead, plan.lat_dim, plan.lon_dim)
    a = sub.data
    if hasattr(a, "compute") and not isinstance(a, np.ndarray) and not _is_cupy(a):
        a = a.compute()
    if not (isinstance(a, np.ndarray) or _is_cupy(a)):
        a = np.asarray(sub.values)
    if xp is not np and not _is_cupy(a):
        a = xp.asarray(a)
    return a.reshape((-1, r1 - r0, plan.nx))


def _lead(da, plan):
    lead = tuple(d for d in da.dims if d not in (plan.lat_dim, plan.lon_dim))
    nb = int(np.prod([da.sizes[d] for d in lead])) if lead else 1
    return lead, nb


def _xp_for(engine, da):
    if engine == "cupy" or (engine == "auto" and _is_cupy(da.variable._data)):
        from kernels.gpu import device_array_module

        try:
            return device_array_module()
        except Exception as err:  # noqa: BLE001  (no CuPy, no driver or no device)
            raise BackendError(f"engine 'cupy' needs CuPy and a CUDA GPU ({type(err).__name__}: {err}); "
                               "use engine='numba' (CPU) or install terrascale[gpu]") from None
    return np


def _prepare(da, grid, weights, engine, name):
    if not isinstance(da, xr.DataArray):
        raise InputDataError(f"{name}: expected an xarray.DataArray, got {type(da).__name__}")
    from_file = isinstance(weights, SparseWeights)
    if grid is None and weights is None:
        raise ConfigError("give a target grid (e.g. '1deg', 'N128') or weights")
    xp = _xp_for(engine, da)
    K, engine_used = _kernels(engine, da.variable._data if engine == "auto" else None)
    plan = _bind(da, weights, grid, name=name, from_file=from_file, xp=xp)
    return plan, K, xp


# ----------------------------------------------------------------------------------------------
# output helpers
# ----------------------------------------------------------------------------------------------


def _out_coords(da, plan: _Plan, lead):
    coords = {d: da.coords[d] for d in lead if d in da.coords}
    g = plan.out_grid
    if g is not None:  # bounds need a 'bnds' dim a DataArray cannot hold: see to_dataset()
        for k, v in g.cf_coords().items():
            if "bnds" not in k:
                coords[k] = (v[0], v[1], {a: b for a, b in v[2].items() if a != "bounds"})
        return coords, g.dims, g.shape
    shp = tuple(plan.weights.dst_shape)
    dims = ("lat", "lon") if len(shp) == 2 else ("cell",)
    cen = getattr(plan.weights, "dst_centers_", None)
    if cen is not None and cen[0].size == plan.n_dst:
        lat, lon = cen[0].reshape(shp), cen[1].reshape(shp)
        latt = {"standard_name": "latitude", "units": "degrees_north"}
        lont = {"standard_name": "longitude", "units": "degrees_east"}
        if len(shp) == 2 and np.allclose(lat, lat[:, :1]) and np.allclose(lon, lon[:1, :]):
            coords.update(lat=("lat", lat[:, 0], latt), lon=("lon", lon[0], lont))
        else:
            coords.update(lat=(dims, lat, latt), lon=(dims, lon, lont))
    return coords, dims, shp


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


def _cell_methods(da, method: str) -> str:
    prev = str(da.attrs.get("cell_methods", "")).strip()
    return f"{prev} area: {method}".strip()


def _base_attrs(da, keep=("units", "long_name", "standard_name")):
    return {k: da.attrs[k] for k in keep if k in da.attrs}


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------


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


def _valid_fraction(den, plan):
    area = plan.weights.dst_area()
    if area is None or np.size(area) != plan.n_dst:
        area = plan.weights.dst_cover()
    return np.divide(den, area, out=np.zeros_like(den), where=area > 0)


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


def _wrap(da, plan, lead, flat, cell_methods, *, name=None, attrs=None):
    coords, dims, shp = _out_coords(da, plan, lead)
    lead_shape = tuple(da.sizes[d] for d in lead)
    data = flat.reshape(lead_shape + tuple(shp))
    a = dict(_base_attrs(da)) if attrs is None else dict(attrs)
    a["cell_methods"] = cell_methods
    return xr.DataArray(data, dims=lead + tuple(dims), coords=coords, name=name or da.name, attrs=a)


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


# ---- categorical ---------------------------------------------------------------------------


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


def _missing_codes(da, missing):
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


def _class_areas(da, grid, weights, classes, missing, engine, chunk_rows, name):
    """Per target cell and class, the area (unit sphere) of the source cells of that class."""
    nc = len(classes)
    miss = _missing_codes(da, missing)
    both = sorted(set(classes) & set(miss))
    if both:
        where = "--missing / missing=" if missing is not None else "the variable's fill/no-data attributes"
        raise ConfigError(f"{name}: codes {both} of {da.name!r} are both classes and missing codes (from {where}); "
                          "a code is one or the other: drop them from the classes or from the missing codes")
    plan, K, xp = _prepare(da, grid, weights, engine, name)
    lead, nb = _lead(da, plan)
    if nb != 1:
        raise InputDataError(f"{name}: categorical variable {da.name!r} has extra dimensions {lead}; select one "
                             f"(e.g. da.isel({lead[0]}=0)) per call")
    is_float = np.dtype(da.dtype).kind == "f"
    itemsize = np.dtype(da.dtype).itemsize if not is_float else 4
    lut_len = max(classes) + 1
    if not is_float and itemsize <= 2:
        lut_len = max(lut_len, 2 ** (8 * itemsize))  # every code of the dtype inside the table
    # missing codes far beyond the classes (e.g. a uint32 fill 4294967295) do not size the table:
    # they are replaced by one extra slot meaning missing
    small = [m for m in miss if m < max(lut_len, _LUT_MISSING_MAX)]
    far = [m for m in miss if m >= max(lut_len, _LUT_MISSING_MAX)]
    lut_len = max([lut_len] + [m + 1 for m in small])
    # slot nc collects codes that are not declared: an error after the pass, naming them
    lut = np.full(lut_len + (1 if far else 0), nc, dtype=np.int64)
    lut[classes] = np.arange(nc)
    lut[small] = -1
    if far:
        lut[lut_len] = -1
    lut_dev = xp.asarray(lut)
    acc = plan.new_acc(1, 1, classes=nc + 1)
    for r0, r1 in _chunks(da, plan, 1, chunk_rows):
        if not plan.chunk_has_links(r0, r1):
            continue
        codes = _read(da, plan, lead, r0, r1, xp)[0]
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
        except ValueError as err:  # a code beyond the lookup table: name all undeclared values
            if "class codes outside" not in str(err):
                raise
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
    for r0, r1 in _chunks(da, plan, 1, chunk_rows):
        v = _read(da, plan, lead, r0, r1, np)
        v = v[np.isfinite(v)] if v.dtype.kind == "f" else v
        bad |= {int(x) for x in np.unique(v)} - ok
        if len(bad) >= 10:
            break
    return sorted(bad)[:10]


def _read_crosswalk(crosswalk, classes):
    """class→PFT table → (pft names, matrix (n_classes, n_pft)); rows must sum to 1."""
    import pandas as pd

    from pipeline.datasets.classes import check_crosswalk, read_crosswalk

    if isinstance(crosswalk, (str, Path)):
        table = read_crosswalk(crosswalk)
    elif isinstance(crosswalk, dict):
        table = pd.DataFrame.from_dict({int(k): v for k, v in crosswalk.items()}, orient="index").fillna(0.0)
        table = check_crosswalk(table, "(dict)")
    elif isinstance(crosswalk, pd.DataFrame):
        table = check_crosswalk(crosswalk, "(DataFrame)")
    else:
        raise ConfigError("crosswalk must be a CSV path, a dict {class: {pft: fraction}} or a pandas DataFrame")
    missing = [c for c in classes if c not in table.index]
    if missing:
        raise ConfigError(f"crosswalk has no row for classes {missing}; add them (fractions per PFT summing to 1)")
    return [str(c) for c in table.columns], table.loc[classes].to_numpy(dtype=np.float64)


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
