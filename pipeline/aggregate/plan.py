"""Weights bound to the storage layout of one source array: the per-chunk kernel calls.

A plan holds the links of one weights type sorted by physical source row, makes the target
accumulators, calls the kernels on a chunk of rows and turns the accumulators into flat target
arrays. The plan class is chosen once, from the weights' type (:func:`bind_plan`):
:class:`SeparablePlan` (rectilinear → rectilinear), :class:`RowwisePlan` (rectilinear → reduced)
and :class:`SparsePlan` (anything else, and weights read from files). Column links are bound as
runs (:class:`kernels.runs.ColumnRuns`), made once here rather than in every kernel call; a
reduced target's groups of column links are made one at a time and only their runs kept.

A plan can be bound to a subset of the target cells (``cells=`` of :func:`bind_plan`, e.g. the
cells that overlap a regional input, :func:`pipeline.aggregate.overlap_cells`): its accumulators
and finished arrays then hold those cells only (:class:`SubsetWeights`), so the work on the
target side is proportional to the region, not to the globe. The links into the kept cells are
those of the whole grid, in the same order, so every kept cell gets exactly (bit for bit) the
value it gets on the whole grid streamed in the same row chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from kernels import to_host
from kernels.runs import ColumnRuns, col_runs
from pipeline.errors import InputDataError
from pipeline.grids import Grid, check_memory, parse_grid, source_axes
from pipeline.weights import (
    RowwiseWeights,
    SeparableWeights,
    SparseWeights,
    Weights,
    compute_weights,
)

#: Bytes per target cell besides the accumulators: cell boxes and areas, covered area, valid
#: fraction and the output coordinates.
TARGET_CELL_BYTES = 80


def target_bytes(n_dst: int, width: int, n: int) -> float:
    """Bytes of the target side of an aggregation: ``n`` float64 accumulators of ``width`` fields
    (or classes) per target cell, their host copies, the output and the per-cell arrays."""
    return float(n_dst) * (width * (2 * n + 1) * 8 + TARGET_CELL_BYTES)


def _span(key_sorted, r0, r1) -> slice:
    a, b = np.searchsorted(key_sorted, [r0, r1])
    return slice(int(a), int(b))


@dataclass(eq=False)
class SubsetWeights(Weights):
    """The weights of a plan bound to a subset of the target cells (see :func:`bind_plan`).

    ``cells`` are the kept cells' flat indices in the parent's target order, in output order;
    ``shape`` is the output's shape (rows x columns of a lat-lon target, points of a reduced
    one). Per-cell quantities (covered area, cell area) are the parent's, selected.
    """

    parent: Weights | None = None
    cells: np.ndarray | None = None
    shape: tuple = ()

    @property
    def src_shape(self):
        return self.parent.src_shape

    @property
    def dst_shape(self):
        return tuple(self.shape)

    @property
    def n_links(self) -> int:
        return self.parent.n_links

    def dst_cover(self):
        return np.asarray(self.parent.dst_cover())[self.cells]

    def src_cover(self):
        return self.parent.src_cover()

    def dst_area(self):
        area = self.parent.dst_area()
        return None if area is None or np.size(area) != self.parent.n_dst else np.asarray(area).ravel()[self.cells]

    def src_area(self):
        return self.parent.src_area()


@dataclass
class Plan:
    """Base: the weights, the source layout (lat/lon dims and sizes), the target grid, the array module."""

    weights: Weights
    lat_dim: str
    lon_dim: str
    ny: int
    nx: int
    out_grid: Grid | None
    xp: object = np

    @property
    def n_dst(self) -> int:
        return self.weights.n_dst

    def _to(self, *arrays):
        return tuple(self.xp.asarray(a) for a in arrays)

    def _mk(self, shape, n, fill):
        return tuple(self.xp.full(shape, fill, dtype=np.float64) for _ in range(n))

    def chunk_has_links(self, r0: int, r1: int) -> bool:
        """Whether source rows [r0, r1) contribute to any target cell."""
        raise NotImplementedError

    def new_acc(self, nb: int, n: int, *, classes: int | None = None, fill=0.0) -> list:
        """``n`` accumulators of shape (nb, target) or (target, classes), filled with ``fill``.

        Refused with a :class:`~pipeline.errors.ConfigError` (the estimate and the limit) when
        they, their host copies, the output and the per-cell areas cannot fit in memory.
        """
        width = classes if classes else nb
        what = (f"{width:,} classes" if classes else f"{nb:,} fields") + f" on {self.n_dst:,} target cells"
        grid = self.out_grid.name if self.out_grid is not None else "the weights' grid"
        fix = ("choose a coarser target grid or a smaller region" + ("" if classes else
               ", or aggregate fewer fields at a time (select them: --select DIM=VALUE)"))
        check_memory(target_bytes(self.n_dst, width, n), f"aggregating onto {grid} ({what})", fix)
        return self._new_acc(nb, n, classes=classes, fill=fill)

    def _new_acc(self, nb: int, n: int, *, classes: int | None = None, fill=0.0) -> list:
        raise NotImplementedError

    def finish(self, acc, *, classes: bool = False) -> tuple:
        """Accumulators → tuple of host arrays (nb, n_dst) (or (n_dst, nc)) in the grid's flat order."""
        raise NotImplementedError

    def weighted_sum(self, K, x, r0, r1, acc, squares):
        """Add Σ w x (and Σ w, Σ w x² when ``squares``) of rows [r0, r1) into ``acc``."""
        self._call(K, "weighted_sum", x, r0, r1, acc, squares=squares)

    def min_max(self, K, x, r0, r1, acc):
        """Fold the minimum and maximum of rows [r0, r1) into ``acc``."""
        self._call(K, "min_max", x, r0, r1, acc)

    def class_sum(self, K, codes, r0, r1, acc, n_classes, lut):
        """Add the area of every class of rows [r0, r1) into ``acc``."""
        self._call(K, "class_sum", codes, r0, r1, [a[0] for a in acc], n_classes, lut=lut)

    def _call(self, K, op, x, r0, r1, acc, *args, **kwargs):
        raise NotImplementedError


@dataclass
class SeparablePlan(Plan):
    """Row links ``(src row, dst row, w)`` sorted by physical row, and one set of column runs."""

    rows: tuple = ()
    cols_dev: ColumnRuns | None = None
    #: subset plans: the accumulators' rows and columns are the kept ones in ascending grid order
    #: (the links keep their order); output position k is accumulator row/column order[.][k]
    order: tuple | None = None

    def chunk_has_links(self, r0, r1):
        s = _span(self.rows[0], r0, r1)
        return s.stop > s.start

    def _new_acc(self, nb, n, *, classes=None, fill=0.0):
        my, mx = self.weights.dst_shape
        return [self._mk((my, mx, classes) if classes else (nb, my, mx), n, fill)]

    def finish(self, acc, *, classes=False):
        res = [to_host(a) for a in acc[0]]
        if self.order is not None:
            ro, co = self.order
            res = [r[ro][:, co] if classes else r[:, ro][:, :, co] for r in res]
        return tuple(r.reshape(self.n_dst, r.shape[-1]) if classes else r.reshape(r.shape[0], self.n_dst) for r in res)

    def _call(self, K, op, x, r0, r1, acc, *args, **kwargs):
        rs, rd, rw = self.rows
        s = _span(rs, r0, r1)
        if s.stop > s.start:
            out = acc[0]
            getattr(K, f"separable_{op}")(x, self._to(rs[s] - r0, rd[s], rw[s]), self.cols_dev,
                                          *self.weights.dst_shape, *args, out=out, **kwargs)


@dataclass
class RowwisePlan(Plan):
    """One separable sub-plan per number of points per target row (reduced Gaussian targets)."""

    groups: list = None  # (dst_rows, sorted row links, ncols)
    cols_dev: list = None  # per group its ColumnRuns
    #: per group, the output position of each of its cells, (rows, ncols)
    dst_index: list = None

    def chunk_has_links(self, r0, r1):
        return any(_span(g[1][0], r0, r1).stop > _span(g[1][0], r0, r1).start for g in self.groups)

    def _new_acc(self, nb, n, *, classes=None, fill=0.0):
        return [self._mk((g[0].size, g[2], classes) if classes else (nb, g[0].size, g[2]), n, fill) for g in self.groups]

    def finish(self, acc, *, classes=False):
        out = []
        width = acc[0][0].shape[-1] if classes else acc[0][0].shape[0]
        for k in range(len(acc[0])):
            o = np.zeros((self.n_dst, width)) if classes else np.zeros((width, self.n_dst))
            for index, a in zip(self.dst_index, acc):
                p = to_host(a[k])
                if classes:
                    o[index.ravel()] = p.reshape(-1, width)
                else:
                    o[:, index.ravel()] = p.reshape(width, -1)
            out.append(o)
        return tuple(out)

    def _call(self, K, op, x, r0, r1, acc, *args, **kwargs):
        for (dst_rows, (rs, rg, rw), ncols), a, cdev in zip(self.groups, acc, self.cols_dev):
            s = _span(rs, r0, r1)
            if s.stop > s.start:
                getattr(K, f"separable_{op}")(x, self._to(rs[s] - r0, rg[s], rw[s]), cdev, dst_rows.size, ncols,
                                              *args, out=a, **kwargs)


@dataclass
class SparsePlan(Plan):
    """COO links ``(src, dst, w)`` over flat cell indices, sorted by source."""

    links: tuple = ()

    def chunk_has_links(self, r0, r1):
        s = _span(self.links[0], r0 * self.nx, r1 * self.nx)
        return s.stop > s.start

    def _new_acc(self, nb, n, *, classes=None, fill=0.0):
        return [self._mk((self.n_dst, classes) if classes else (nb, self.n_dst), n, fill)]

    def finish(self, acc, *, classes=False):
        res = [to_host(a) for a in acc[0]]
        perm = getattr(self.weights, "dst_perm", None)
        if perm is not None:
            res = [r[perm] if classes else r[:, perm] for r in res]
        return tuple(res)

    def _call(self, K, op, x, r0, r1, acc, *args, **kwargs):
        src, dst, w = self.links
        s = _span(src, r0 * self.nx, r1 * self.nx)
        if s.stop == s.start:
            return
        x = x.reshape(-1) if op == "class_sum" else x.reshape(x.shape[0], -1)
        links = self._to(src[s] - r0 * self.nx, dst[s]) if op == "min_max" else self._to(src[s] - r0 * self.nx, dst[s], w[s])
        getattr(K, f"sparse_{op}")(x, *links, self.n_dst, *args, out=acc[0], **kwargs)


def _sorted_rows(rows, row_index):
    rs, rd, rw = rows
    rs = np.asarray(row_index)[rs]  # grid row → physical row of the array
    o = np.argsort(rs, kind="stable")
    return rs[o], rd[o], rw[o]


def bind_plan(da: xr.DataArray, weights: Weights | None, grid, *, name: str, xp,
              cells: dict[str, np.ndarray] | None = None) -> Plan:
    """Bind weights (computed for ``grid`` if not given) to the storage layout of ``da``.

    Parameters
    ----------
    da : xarray.DataArray
        The source field.
    weights : Weights or None
        Weights to use; :class:`~pipeline.weights.SparseWeights` (read from a file) index ``da`` as
        stored. ``None``: computed from ``da``'s grid to ``grid``.
    grid : str or Grid or None
        The target grid, when no weights are given.
    name : str
        What ``da`` is, for messages.
    xp : module
        The array module of the chosen engine.
    cells : dict, optional
        Keep only these target cells: grid dimension → indices, as
        :func:`pipeline.aggregate.overlap_cells` gives them (``{"lat": rows, "lon": columns}`` or
        ``{"cell": points}``), in output order. The plan's results then hold those cells only,
        each equal bit for bit to its value on the whole grid (same row chunks). Default: every cell.

    Returns
    -------
    Plan
        The plan of the weights' type.
    """
    if isinstance(weights, SparseWeights):
        return _bind_sparse(da, weights, name=name, xp=xp, cells=cells)
    axes = source_axes(da, name=name)
    if weights is None:
        weights = compute_weights(axes.grid, parse_grid(grid))
    elif not (isinstance(weights, (SeparableWeights, RowwiseWeights)) and weights.src_grid.shape == axes.grid.shape
              and np.allclose(weights.src_grid.lat_edges, axes.grid.lat_edges, atol=1e-9)
              and np.allclose((weights.src_grid.lon_edges - axes.grid.lon_edges + 180) % 360 - 180, 0, atol=1e-9)):
        raise InputDataError(f"the weights given are for source grid {weights.src_grid.describe()}, not for {name} "
                             f"variable {da.name!r} ({axes.grid.describe()}); compute them for this input")
    ny, nx = axes.grid.shape
    common = dict(lat_dim=axes.lat_dim, lon_dim=axes.lon_dim, ny=ny, nx=nx, out_grid=weights.dst_grid, xp=xp)
    col_index = np.asarray(axes.col_index)

    def runs(cols):
        """The column links as runs over the array's physical columns, on the engine's array module."""
        cs, cd, cw = cols
        return ColumnRuns(*(xp.asarray(a) for a in col_runs(col_index[cs], cd, cw)))
    if isinstance(weights, SeparableWeights):
        rows, cols, order, sub = weights.rows, weights.cols, None, weights
        if cells is not None:
            rows, cols, order, sub = _subset_separable(weights, cells)
            common["out_grid"] = None
        return SeparablePlan(weights=sub, **common, rows=_sorted_rows(rows, axes.row_index), order=order,
                             cols_dev=runs(cols))
    sub, pos = weights, None
    if cells is not None:
        sub, pos = _subset_points(weights, cells)
        common["out_grid"] = None
    parts, offs = [], weights.dst_grid.offsets
    # one group's column links at a time, kept as runs (1 km -> N128: 43 x 43 200 links, 42 MB)
    for k, dst_rows in enumerate(weights.groups):
        ncols = weights.group_ncols(k)
        part = (dst_rows, weights.group_rows(k), weights.group_cols(k), ncols,
                offs[dst_rows][:, None] + np.arange(ncols)[None, :])
        for d, r, cols, n, index in ([part] if pos is None else _subset_group(part, pos)):
            parts.append((d, _sorted_rows(r, axes.row_index), n, index, runs(cols)))
    return RowwisePlan(weights=sub, **common, groups=[p[:3] for p in parts], dst_index=[p[3] for p in parts],
                       cols_dev=[p[4] for p in parts])


def _positions(kept: np.ndarray, n: int) -> np.ndarray:
    """Index → position among ``kept`` (-1 where not kept), for indices 0..n-1."""
    pos = np.full(n, -1, dtype=np.int64)
    pos[kept] = np.arange(kept.size)
    return pos


def _keep_links(links, pos):
    """The links ``(src, dst, w)`` into kept destinations, their destination renumbered by ``pos``."""
    s, d, w = links
    sel = pos[d] >= 0
    return s[sel], pos[d[sel]], w[sel]


def _cell_index(cells, dims) -> list[np.ndarray]:
    missing = [d for d in dims if d not in cells]
    if missing:
        raise InputDataError(f"cells must give indices for the target grid dimensions {dims}; missing {missing}")
    return [np.asarray(cells[d], dtype=np.int64).ravel() for d in dims]


def _subset_separable(w: SeparableWeights, cells):
    """Row and column links into the kept rows/columns (renumbered in ascending order), the output order."""
    my, mx = w.dst_shape
    rows_out, cols_out = _cell_index(cells, ("lat", "lon"))
    # the accumulators hold the kept rows and columns in ascending order, so the renumbering keeps
    # the links' order (and the kernels' sums) as on the whole grid; finish() puts them in output order
    rk, ck = np.unique(rows_out), np.unique(cols_out)
    if rk.size != rows_out.size or ck.size != cols_out.size:
        raise InputDataError("cells: repeated target rows or columns")
    rows = _keep_links(w.rows, _positions(rk, my))
    cols = _keep_links(w.cols, _positions(ck, mx))
    ro, co = np.searchsorted(rk, rows_out), np.searchsorted(ck, cols_out)
    ident = np.array_equal(ro, np.arange(ro.size)) and np.array_equal(co, np.arange(co.size))
    flat = (rows_out[:, None] * mx + cols_out[None, :]).ravel()
    sub = SubsetWeights(w.src_grid, None, parent=w, cells=flat, shape=(rows_out.size, cols_out.size))
    return rows, cols, None if ident else (ro, co), sub


def _subset_points(w: RowwiseWeights, cells):
    """The weights of the kept points of a reduced target, and each point's output position (-1: not kept)."""
    (points,) = _cell_index(cells, ("cell",))
    if np.unique(points).size != points.size:
        raise InputDataError("cells: repeated target points")
    return SubsetWeights(w.src_grid, None, parent=w, cells=points, shape=(points.size,)), _positions(points, w.n_dst)


def _subset_group(part, pos):
    """One group of a reduced target cut to the kept points: per set of kept columns, the kept
    rows, their row links, the kept column links and the output position of each cell."""
    dst_rows, (rs, rg, rw), (cs, cd, cw), ncols, index = part
    kept = pos[index] >= 0  # (rows, ncols)
    sets: dict[bytes, list[int]] = {}
    for g in np.flatnonzero(kept.any(axis=1)):
        sets.setdefault(np.flatnonzero(kept[g]).tobytes(), []).append(int(g))
    out = []
    for key, members in sets.items():
        kc, members = np.frombuffer(key, dtype=np.int64), np.asarray(members, dtype=np.int64)
        out.append((dst_rows[members], _keep_links((rs, rg, rw), _positions(members, dst_rows.size)),
                    _keep_links((cs, cd, cw), _positions(kc, ncols)), kc.size, pos[index[members][:, kc]]))
    return out


def _bind_sparse(da, sp: SparseWeights, *, name, xp, cells=None) -> SparsePlan:
    lat_dim, lon_dim = _lat_lon_dims(da, name)
    ny, nx = da.sizes[lat_dim], da.sizes[lon_dim]
    if tuple(sp.src_shape) not in ((ny, nx),) and int(np.prod(sp.src_shape)) != ny * nx:
        raise InputDataError(
            f"{sp.source} is for a source grid of {' x '.join(map(str, sp.src_shape))} = {sp.n_src} cells, but {name} "
            f"variable {da.name!r} has {ny} x {nx} = {ny * nx} cells ({lat_dim} x {lon_dim}); make weights for this "
            "input (`cdo gencon,<grid> INPUT w.nc` or `terrascale weights`)")
    if sp.src_centers_ is not None:
        _check_source_centres(da, sp, lat_dim, lon_dim, name)
    o = np.argsort(sp.src, kind="stable")
    links, weights, out_grid = (sp.src[o], sp.dst[o], sp.w[o]), sp, sp.dst_grid
    if cells is not None:
        shape = tuple(sp.dst_shape)
        if len(shape) == 2:
            r, c = _cell_index(cells, ("lat", "lon"))
            flat, sub_shape = (r[:, None] * shape[1] + c[None, :]).ravel(), (r.size, c.size)
        else:
            (flat,) = _cell_index(cells, (next(iter(cells)),))
            sub_shape = (flat.size,)
        if np.unique(flat).size != flat.size:
            raise InputDataError("cells: repeated target cells")
        # the links index the file's cells: grid cell k is file cell dst_perm[k]
        file_cells = flat if sp.dst_perm is None else np.asarray(sp.dst_perm)[flat]
        links = _keep_links(links, _positions(file_cells, sp.n_dst))
        weights, out_grid = SubsetWeights(sp.src_grid, None, parent=sp, cells=flat, shape=sub_shape), None
    return SparsePlan(weights=weights, lat_dim=lat_dim, lon_dim=lon_dim, ny=ny, nx=nx, out_grid=out_grid, xp=xp,
                      links=links)


def _input_centres(da, lat_dim, lon_dim):
    """Per-row access to the (lat, lon) centres of ``da`` in storage order, or None without coordinates.

    Returns ``(rows, get)``: ``get(r0, r1)`` gives the centres of rows [r0, r1) as two (r1-r0, nx)
    arrays (float64 degrees), and their dtype's resolution for the tolerance.
    """
    from pipeline.io import LAT_NAMES, LON_NAMES

    c = da.coords
    if lat_dim in c and lon_dim in c and c[lat_dim].ndim == 1 and c[lon_dim].ndim == 1:
        lat, lon = np.asarray(c[lat_dim].values), np.asarray(c[lon_dim].values)
        if lat.dtype.kind not in "fiu" or lon.dtype.kind not in "fiu":
            return None
        eps = max(_eps(lat), _eps(lon))
        return eps, lambda r0, r1: (np.broadcast_to(lat[r0:r1, None].astype(np.float64), (r1 - r0, lon.size)),
                                    np.broadcast_to(lon[None, :].astype(np.float64), (r1 - r0, lon.size)))
    # curvilinear inputs: 2-D latitude/longitude coordinates over the two grid dimensions

    def find(names, standard):
        for k, v in c.items():
            if set(v.dims) == {lat_dim, lon_dim} and v.ndim == 2 and (
                    v.attrs.get("standard_name") == standard or str(k) in names):
                return v.transpose(lat_dim, lon_dim)
        return None

    la, lo = find(LAT_NAMES, "latitude"), find(LON_NAMES, "longitude")
    if la is None or lo is None or la.dtype.kind not in "fiu" or lo.dtype.kind not in "fiu":
        return None
    eps = max(_eps(la), _eps(lo))
    return eps, lambda r0, r1: (np.asarray(la[r0:r1].values, np.float64), np.asarray(lo[r0:r1].values, np.float64))


def _eps(a) -> float:
    dt = np.dtype(a.dtype)
    return float(np.finfo(dt).eps) if dt.kind == "f" else 0.0


#: Largest distance (degrees) between a weights file's source centre and the input's for the
#: same cell, for float64 coordinates; float32 coordinates get their own resolution on top.
CENTRE_TOLERANCE = 1e-6


def _check_source_centres(da, sp: SparseWeights, lat_dim, lon_dim, name) -> None:
    """Refuse weights whose source cells are not where the input's cells are (storage order).

    The cell count alone cannot tell two grids apart (1° lat-lon from 0..360 or from -180..180,
    north to south or south to north, a shifted region): weights for another grid would be
    applied and the output labelled at the wrong places. Longitudes are compared modulo 360 and
    not at the poles; latitudes as stored, so a flipped input is a mismatch.
    """
    access = _input_centres(da, lat_dim, lon_dim)
    if access is None:
        return  # no coordinates to compare: the storage order is all there is
    eps_in, get = access
    flat_lat, flat_lon = sp.src_centers_
    ny, nx = da.sizes[lat_dim], da.sizes[lon_dim]
    tol = max(CENTRE_TOLERANCE, 4 * 360.0 * max(eps_in, _eps(flat_lat), _eps(flat_lon)))
    flat_lat, flat_lon = flat_lat.reshape(ny, nx), flat_lon.reshape(ny, nx)
    step = max(1, 2**20 // max(nx, 1))
    n_bad, first = 0, None
    for r0 in range(0, ny, step):
        r1 = min(ny, r0 + step)
        lat, lon = get(r0, r1)
        flat, flon = flat_lat[r0:r1], flat_lon[r0:r1]
        dlat = np.abs(lat - flat)
        dlon = np.abs((lon - flon + 180.0) % 360.0 - 180.0)
        dlon = np.where(np.abs(lat) > 90.0 - tol, 0.0, dlon)  # every longitude is the same point at a pole
        bad = ~((dlat <= tol) & (dlon <= tol))
        if bad.any():
            n_bad += int(bad.sum())
            if first is None:
                i, j = (int(v) for v in np.argwhere(bad)[0])
                first = (r0 + i, j, flat[i, j], flon[i, j], lat[i, j], lon[i, j])
    if not n_bad:
        return
    r, j, flat_, flon_, lat_, lon_ = first
    hint = ""
    lat_all = get(0, ny)[0][:, 0]
    if ny > 1 and np.allclose(lat_all[::-1], flat_lat[:, 0], atol=tol):
        hint = " (the input's latitudes run the other way; flip it, e.g. `cdo invertlat`, or make weights for it)"
    else:
        lon_row, flon_row = get(0, 1)[1][0], flat_lon[0]
        rotated = np.abs((lon_row - flon_row + 180.0) % 360.0 - 180.0).max() > tol
        if nx > 1 and rotated and np.allclose(np.sort(lon_row % 360.0), np.sort(flon_row % 360.0), atol=tol):
            hint = (f" (the input's longitudes start at {lon_row[0]:g}, the weights' at {flon_row[0]:g}: 0..360 "
                    "against -180..180)")
    raise InputDataError(
        f"{sp.source} was made for another source grid than {name} variable {da.name!r}, although both have "
        f"{ny * nx:,} cells: {n_bad:,} cell centres differ, first source cell {r * nx + j + 1} (row {r}, column {j} "
        f"as stored) is at lat {flat_:.6g}, lon {flon_:.6g} in the weights but at lat {lat_:.6g}, lon {lon_:.6g} in "
        f"the input{hint}; the output would be placed wrongly: make weights for this input "
        "(`cdo gencon,<grid> INPUT w.nc` or `terrascale weights`)")


def _lat_lon_dims(da, name):
    try:
        axes_dims = source_axes(da, name=name)
        return axes_dims.lat_dim, axes_dims.lon_dim
    except InputDataError:
        if da.ndim >= 2:  # storage-order weights only need the last two dims
            return da.dims[-2], da.dims[-1]
        raise


def valid_fraction(den, plan: Plan) -> np.ndarray:
    """The valid (finite) area of each target cell as a fraction of the cell's area."""
    area = plan.weights.dst_area()
    if area is None or np.size(area) != plan.n_dst:
        area = plan.weights.dst_cover()
    return np.divide(den, area, out=np.zeros_like(den), where=area > 0)
