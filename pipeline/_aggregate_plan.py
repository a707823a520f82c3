"""Aggregation internals: a weights object bound to the storage layout of one source array.

:class:`_Plan` holds the links (separable, row-wise or sparse) sorted by physical source row, the
per-chunk kernel calls and the target accumulators; :func:`_bind` builds it from ``weights`` (or
computes them for ``grid``) for a :class:`xarray.DataArray`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from kernels.gpu import is_device_array as _is_cupy
from pipeline.errors import InputDataError
from pipeline.grids import Grid, parse_grid, source_axes
from pipeline.weights import RowwiseWeights, SeparableWeights, Weights, compute_weights


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


def _valid_fraction(den, plan):
    area = plan.weights.dst_area()
    if area is None or np.size(area) != plan.n_dst:
        area = plan.weights.dst_cover()
    return np.divide(den, area, out=np.zeros_like(den), where=area > 0)
