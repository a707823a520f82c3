"""Coarse → fine broadcasting: fields of a coarse grid onto the valid fine cells (parent, nearest, bilinear)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from pipeline.errors import ConfigError, InputDataError
from pipeline.features.cells import CellIndex, _grid_coords
from pipeline.sphere import edges_from_centres

_NEIGHBOURS = (("nw", 1, -1), ("n", 1, 0), ("ne", 1, 1), ("w", 0, -1), ("e", 0, 1),
               ("sw", -1, -1), ("s", -1, 0), ("se", -1, 1))


def _axis_edges(ds, name: str) -> np.ndarray:
    """Cell edges of a coordinate: from ``<name>_bnds``/``bounds`` when present, else midpoints."""
    c = np.asarray(ds[name].values, np.float64)
    bname = ds[name].attrs.get("bounds", f"{name}_bnds")
    if bname in ds.variables and ds[bname].ndim == 2 and ds[bname].shape[0] == c.size:
        b = np.asarray(ds[bname].values, np.float64)
        return np.concatenate([b[:, 0], b[-1:, 1]])
    if c.size == 1:
        raise InputDataError(f"coordinate '{name}' has a single value and no '{name}_bnds'; add bounds")
    return edges_from_centres(c)


def _nests(fine_edges: np.ndarray, coarse_edges: np.ndarray) -> float | None:
    """None when every coarse edge inside the fine domain is a fine edge; else the first offender."""
    tol = 1e-3 * float(np.min(np.diff(fine_edges)))
    inside = coarse_edges[(coarse_edges > fine_edges[0] + tol) & (coarse_edges < fine_edges[-1] - tol)]
    if inside.size == 0:
        return None
    j = np.clip(np.searchsorted(fine_edges, inside), 1, fine_edges.size - 1)
    d = np.minimum(np.abs(fine_edges[j] - inside), np.abs(fine_edges[j - 1] - inside))
    bad = inside[d > tol]
    return float(bad[0]) if bad.size else None


@dataclass
class Broadcast:
    """Puts fields of one coarse grid onto the valid fine cells.

    ``idx`` (k, nvalid) are flat indices into the coarse (lat, lon) field, ``ncoarse`` pointing
    at an appended NaN (outside the coarse grid); ``w`` (k, nvalid) are bilinear weights.
    """

    method: str
    idx: np.ndarray
    w: np.ndarray | None
    ncoarse: int
    labels: tuple[str, ...] = ("",)

    def apply(self, block, xp=np):
        """(nt, ny_c, nx_c) coarse block → (k, nt, nvalid) (parent/nearest: one per label)."""
        nt = block.shape[0]
        flat = block.reshape(nt, self.ncoarse)
        flat = xp.concatenate([flat, xp.full((nt, 1), xp.nan, dtype=flat.dtype)], axis=1)
        idx = xp.asarray(self.idx)
        g = flat[:, idx]  # (nt, k, nvalid)
        if self.w is None:
            return xp.moveaxis(g, 1, 0)
        w = xp.asarray(self.w)[None]
        ok = ~xp.isnan(g)
        num = xp.where(ok, g, 0).astype(xp.float64) * w
        den = (w * ok).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = num.sum(axis=1) / den
        out = xp.where(den > 0, out, xp.nan).astype(block.dtype if block.dtype.kind == "f" else xp.float32)
        return out[None]


def make_broadcast(index: CellIndex, coarse: xr.Dataset, method: str, *, var: str, store: str,
                   neighbours: bool = False) -> Broadcast:
    """Index maps from the valid fine cells of ``index`` to the grid of ``coarse``.

    ``parent`` needs the grids to nest (every coarse cell edge is a fine cell edge); otherwise an
    :class:`InputDataError` asks for a rule (``nearest`` or ``bilinear``) in ``features.broadcast``.
    """
    clat, clon = _grid_coords(coarse, store)
    ey, ex = _axis_edges(coarse, "lat"), _axis_edges(coarse, "lon")
    global_lon = abs((ex[-1] - ex[0]) - 360.0) < 1e-6
    fy, fx = index.lat_lon()
    ny, nx = clat.size, clon.size
    if method == "parent":
        fine_ds = xr.Dataset(coords={"lat": index.lat, "lon": index.lon})
        for axis, fe, ce in (("lat", _axis_edges(fine_ds, "lat"), ey), ("lon", _axis_edges(fine_ds, "lon"), ex)):
            bad = _nests(fe, ce)
            if bad is not None:
                raise InputDataError(
                    f"'{var}' in {store} is on a grid whose cells do not nest the fine grid: its cell edge at "
                    f"{axis} {bad:g} cuts through fine cells, so a fine cell has no single parent; declare a "
                    f"broadcast rule for it in the config: features.broadcast.{var}: nearest (the coarse cell "
                    f"holding the fine cell centre) or bilinear"
                )
    if method in ("parent", "nearest"):
        jy = np.searchsorted(ey, fy, side="right") - 1
        jx = np.searchsorted(ex, fx, side="right") - 1
        if global_lon:
            jx = np.mod(np.searchsorted(ex, (fx - ex[0]) % 360.0 + ex[0], side="right") - 1, nx)
        out = (jy < 0) | (jy >= ny) | (jx < 0) | (jx >= nx)
        if out.any():
            raise InputDataError(
                f"{int(out.sum())} fine cells lie outside the grid of '{var}' in {store} (lat {ey[0]:g}..{ey[-1]:g}, "
                f"lon {ex[0]:g}..{ex[-1]:g}); give {store} a domain that covers the fine grid"
            )
        offsets = [("", 0, 0)] + (list(_NEIGHBOURS) if neighbours else [])
        idx = np.empty((len(offsets), fy.size), np.int32 if ny * nx < 2**31 - 1 else np.int64)
        for k, (_, dy, dx) in enumerate(offsets):
            yy, xx = jy + dy, jx + dx
            if global_lon:
                xx = np.mod(xx, nx)
            bad = (yy < 0) | (yy >= ny) | (xx < 0) | (xx >= nx)
            idx[k] = np.where(bad, ny * nx, yy * nx + xx)
        return Broadcast(method, idx, None, ny * nx, tuple(o[0] for o in offsets))
    if method != "bilinear":
        raise ConfigError(f"unknown broadcast rule '{method}' for '{var}'; use parent, nearest or bilinear")
    if fy.min() < ey[0] - 1e-9 or fy.max() > ey[-1] + 1e-9 or (not global_lon and (fx.min() < ex[0] - 1e-9 or fx.max() > ex[-1] + 1e-9)):
        raise InputDataError(
            f"fine cells lie outside the grid of '{var}' in {store} (lat {ey[0]:g}..{ey[-1]:g}, lon {ex[0]:g}..{ex[-1]:g}); "
            f"give {store} a domain that covers the fine grid"
        )

    def axis_weights(c, x, wrap):
        if wrap:
            c_ext = np.concatenate([[c[-1] - 360.0], c, [c[0] + 360.0]])
            ids = np.concatenate([[c.size - 1], np.arange(c.size), [0]])
            xw = (x - c[0]) % 360.0 + c[0]
            xw = np.where(xw > c_ext[-1], xw - 360.0, xw)
        else:
            c_ext, ids, xw = c, np.arange(c.size), x
        if c_ext.size == 1:
            return ids[np.zeros(x.size, int)], ids[np.zeros(x.size, int)], np.zeros(x.size)
        j = np.clip(np.searchsorted(c_ext, xw, side="right") - 1, 0, c_ext.size - 2)
        t = np.clip((xw - c_ext[j]) / (c_ext[j + 1] - c_ext[j]), 0.0, 1.0)
        return ids[j], ids[j + 1], t

    y0, y1, ty = axis_weights(clat, fy, False)
    x0, x1, tx = axis_weights(clon, fx, global_lon)
    idx = np.stack([y0 * nx + x0, y0 * nx + x1, y1 * nx + x0, y1 * nx + x1]).astype(np.int32)
    w = np.stack([(1 - ty) * (1 - tx), (1 - ty) * tx, ty * (1 - tx), ty * tx]).astype(np.float32)
    return Broadcast("bilinear", idx, w, ny * nx)
