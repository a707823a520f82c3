"""Tiny synthetic input stores with the layout of the demo stores (see pipeline.features)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr


def _axis(start: float, stop: float, res: float) -> np.ndarray:
    n = int(round((stop - start) / res))
    return np.round(start + res * (np.arange(n) + 0.5), 10)


def write_synthetic_stores(root: Path, *, years=(2001, 2002), scenarios=("ssp126", "ssp585"), seed: int = 0,
                           fine=(40.0, 42.0, -2.0, 0.0), climate_res: float = 1.0, lulc_res: float = 0.25) -> dict:
    """Write static/lulc_coarse/climate/lai stores (Zarr v3) into ``root``; return their paths."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    s, n, w, e = fine
    lat, lon = _axis(s, n, 0.05), _axis(w, e, 0.05)
    ny, nx = lat.size, lon.size
    yy, xx = np.meshgrid(np.linspace(0, 1, ny), np.linspace(0, 1, nx), indexing="ij")
    land = np.clip(1.6 * (xx + 0.3 * np.sin(6 * yy)) - 0.4, 0, 1).astype(np.float32)  # ocean in the west
    koppen = np.where(land > 0, 1 + (yy * 4.99).astype(np.uint8), 0).astype(np.uint8)
    koppen[3, 30] = 0  # a land cell without a climate zone
    igbp = np.where(land > 0, rng.integers(1, 17, (ny, nx)), 0).astype(np.uint8)
    static = xr.Dataset(
        {
            "land_fraction": (("lat", "lon"), land, {"units": "1"}),
            "koppen": (("lat", "lon"), koppen, {"flag_values": np.arange(1, 6, dtype=np.uint8), "missing_value": np.uint8(0)}),
            "distance_to_coast": (("lat", "lon"), (xx * 100).astype(np.float32), {"units": "km"}),
            "igbp": (("lat", "lon"), igbp, {}),
        },
        coords={"lat": lat, "lon": lon},
    )
    months = pd.date_range(f"{years[0]}-01-01", f"{years[1]}-12-01", freq="MS")
    cmonths = pd.date_range(f"{years[0] - 1}-10-01", f"{years[1]}-12-01", freq="MS")
    nsc = len(scenarios)
    season = np.sin(2 * np.pi * (months.month.to_numpy() - 4) / 12)
    lai = (2 + season[None, :, None, None] + 0.5 * land[None, None] + 0.05 * rng.standard_normal((nsc, months.size, ny, nx))).astype(np.float32)
    lai = np.where(land[None, None] > 0, lai, np.nan).astype(np.float32)
    lai[0, 3, 10:12, 25:28] = np.nan  # a gap on land
    lai_ds = xr.Dataset(
        {"lai": (("scenario", "time", "lat", "lon"), lai, {"units": "m2 m-2"})},
        coords={"scenario": list(scenarios), "time": months, "lat": lat, "lon": lon},
    )
    clat, clon = _axis(s - 1, n + 1, climate_res), _axis(w - 1, e + 1, climate_res)
    cshape = (nsc, cmonths.size, clat.size, clon.size)
    base = np.arange(cmonths.size, dtype=np.float32)[None, :, None, None]
    climate = xr.Dataset(
        {
            "tas": (("scenario", "time", "lat", "lon"), (280 + base + rng.standard_normal(cshape)).astype(np.float32)),
            "pr": (("scenario", "time", "lat", "lon"), (rng.random(cshape) * 5).astype(np.float32)),
            "rsds": (("scenario", "time", "lat", "lon"), (150 + 10 * rng.random(cshape)).astype(np.float32)),
        },
        coords={"scenario": list(scenarios), "time": cmonths, "lat": clat, "lon": clon},
    )
    def cover(a, b):  # whole coarse cells from a that cover [a, b]
        return _axis(a, a + lulc_res * np.ceil((b - a) / lulc_res - 1e-9), lulc_res)

    llat, llon = cover(s, n), cover(w, e)
    groups = ["crops", "forest", "grass/shrub"]
    yrs = pd.date_range(f"{years[0]}-01-01", f"{years[1]}-01-01", freq="YS")
    frac = rng.random((nsc, yrs.size, len(groups), llat.size, llon.size)).astype(np.float32)
    frac /= frac.sum(axis=2, keepdims=True)
    lulc = xr.Dataset(
        {"lulc_fraction": (("scenario", "time", "group", "lat", "lon"), frac)},
        coords={"scenario": list(scenarios), "time": yrs, "group": groups, "lat": llat, "lon": llon},
    )
    paths = {}
    for key, name, ds in (("static", "static.zarr", static), ("lulc", "lulc_coarse.zarr", lulc),
                          ("climate", "climate.zarr", climate), ("target", "lai.zarr", lai_ds)):
        ds.to_zarr(root / name, mode="w", zarr_format=3, consolidated=False, write_empty_chunks=True)
        paths[key] = root / name
    return paths
