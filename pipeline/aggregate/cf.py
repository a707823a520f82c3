"""CF output of aggregation results: target coordinates, attributes, ``cell_methods``, bounds.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from pipeline.aggregate.plan import Plan
from pipeline.grids import parse_grid


def out_coords(da, plan: Plan, lead):
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


def cell_methods_of(da, method: str) -> str:
    prev = str(da.attrs.get("cell_methods", "")).strip()
    return f"{prev} area: {method}".strip()


def base_attrs(da, keep=("units", "long_name", "standard_name")):
    return {k: da.attrs[k] for k in keep if k in da.attrs}


def wrap(da, plan, lead, flat, cell_methods, *, name=None, attrs=None):
    coords, dims, shp = out_coords(da, plan, lead)
    lead_shape = tuple(da.sizes[d] for d in lead)
    data = flat.reshape(lead_shape + tuple(shp))
    a = dict(base_attrs(da)) if attrs is None else dict(attrs)
    a["cell_methods"] = cell_methods
    return xr.DataArray(data, dims=lead + tuple(dims), coords=coords, name=name or da.name, attrs=a)


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
