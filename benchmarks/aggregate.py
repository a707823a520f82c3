"""Aggregation benchmark: terrascale against CDO remapcon and xarray-regrid, with the one-pass floor.

Every case runs all its tools on the same in-memory input, interleaved (see :mod:`benchmarks.harness`).
Every peer time includes building its weights (CDO ``remapcon`` computes them on every call,
xarray-regrid's ``conservative`` too; ours: ``compute_weights`` inside the call).

* ``continuous``: a global LAI-like field (float32, oceans NaN) made from the real MODIS MCD12C1
  2019 IGBP map through a fixed class -> LAI table (:data:`IGBP_LAI`), at 0.05° (3600 x 7200,
  26 M cells; ``--quick``: every second cell, 0.1°, 6.5 M cells) onto 1°; full runs also onto F128
  (``continuous-F128``). Peers: ``cdo remapcon`` (from a NetCDF file written outside the timing,
  ``-P`` = terrascale's thread count), xarray-regrid ``conservative`` (latitudes sorted ascending
  outside the timing). Floors: one numpy ``sum`` over the input, and a memcpy of it. Ours runs twice:
  weights built in the call (against the peers, which build theirs on every call) and weights
  given (computed once outside the timing: the aggregation pass itself, against the floors).
* ``categorical``: a band of the 1 km Köppen-Geiger map (uint8 classes 1-5, 0 = no data; rows
  8400-9000, 20°N-15°N, 26 M cells; ``--quick``: rows 8400-8520, 5.2 M cells) onto 1° class
  fractions. Peers: one-hot (one float32 field per class, NaN where no data, built outside the
  timing) + ``cdo remapcon`` / xarray-regrid ``conservative``.
* ``1km-global`` (full runs): the whole 1 km map (933 M cells) onto 1° class fractions; the
  peers are skipped (a one-hot float copy of it is 18.7 GB; they are measured on the band). The
  peak memory of streaming the map from its GeoTIFF to 1° and N128 fractions is measured in
  child processes (VmHWM above the RSS after imports).
* GPU (when one is usable): the same calls on a CuPy copy of the input (``engine="auto"`` picks
  the CuPy kernels through :mod:`pipeline.backend`).

Run: ``python -m benchmarks aggregate [--quick] [--repeat N]`` (or ``python benchmarks/aggregate.py ...``).
"""

from __future__ import annotations

if __name__ == "__main__" and not __package__:  # `python benchmarks/aggregate.py`: import as the package
    import os as _os
    import sys as _sys

    _here = _os.path.dirname(_os.path.abspath(__file__))
    _sys.path[:] = [p for p in _sys.path if _os.path.abspath(p or ".") != _here]
    _sys.path.insert(0, _os.path.dirname(_here))

import functools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr

from benchmarks._memory import peak_rss
from benchmarks.harness import Tool

ROOT = Path(__file__).resolve().parents[1]
# IGBP class -> LAI-like value (water, snow/ice and no data -> NaN): a continuous test field.
IGBP_LAI = {1: 5.0, 2: 4.5, 3: 4.0, 4: 4.5, 5: 4.2, 6: 1.5, 7: 1.0, 8: 2.5, 9: 1.6, 10: 1.2, 11: 2.0, 12: 2.6,
            13: 0.8, 14: 2.2, 16: 0.1}
KOPPEN_BAND = {True: (8400, 8520), False: (8400, 9000)}  # quick / full: 1 km rows of the categorical case
CLASSES = [1, 2, 3, 4, 5]
CDO = shutil.which("cdo")
LAT_ATTRS = {"units": "degrees_north", "standard_name": "latitude"}
LON_ATTRS = {"units": "degrees_east", "standard_name": "longitude"}


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rel_diff(a, b, skip_rows=0):
    """Max relative difference over the cells finite in both, and the count of NaN mismatches."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if skip_rows:
        a, b = a[..., skip_rows:-skip_rows, :], b[..., skip_rows:-skip_rows, :]
    m = np.isfinite(a) & np.isfinite(b)
    nan_mismatch = int((np.isfinite(a) != np.isfinite(b)).sum())
    return float(np.max(np.abs(a[m] - b[m]) / np.maximum(np.abs(b[m]), 1e-12))), nan_mismatch


# ------------------------------------------------------------------------------------- data


def latlon(values: np.ndarray, res: float, name: str, lat0: float = 90.0, attrs=None) -> xr.DataArray:
    """A north-up global-width field with CF coordinates (cell centres, descending latitude from ``lat0``)."""
    ny, nx = values.shape
    lat = lat0 - res * (np.arange(ny) + 0.5)
    lon = -180 + res * (np.arange(nx) + 0.5)
    return xr.DataArray(values, dims=("lat", "lon"), name=name, attrs=attrs or {},
                        coords={"lat": ("lat", lat, LAT_ATTRS), "lon": ("lon", lon, LON_ATTRS)})


@functools.lru_cache(maxsize=1)
def igbp_map() -> np.ndarray:
    """The MODIS 2019 IGBP map at 0.05° (uint8, read once per process; do not modify it)."""
    from pipeline.datasets.readers import StripTiff
    from pipeline.datasets.sources import SOURCES

    with StripTiff(SOURCES["igbp"].path()) as tif:
        return tif.read_rows(0, tif.shape[0])


def lai_values(step: int = 1) -> np.ndarray:
    """The LAI-like float32 field at 0.05° x ``step`` (every ``step``-th cell of the 0.05° map)."""
    igbp = igbp_map()[::step, ::step]
    table = np.full(256, np.nan, np.float32)
    for k, v in IGBP_LAI.items():
        table[k] = v
    lon = -180 + 0.05 * step * (np.arange(igbp.shape[1]) + 0.5)
    return np.ascontiguousarray(table[igbp] * (1 + 0.1 * np.sin(np.radians(lon))[None, :]).astype(np.float32))


def lai_field(step: int = 1) -> xr.DataArray:
    return latlon(lai_values(step), 0.05 * step, "lai", attrs={"units": "m2 m-2"})


def modis_field() -> xr.DataArray:
    """The 0.05° LAI-like field (kept for callers of the former script)."""
    return lai_field(1)


def koppen_rows(r0: int = 0, r1: int | None = None) -> np.ndarray:
    from pipeline.datasets.readers import StripTiff
    from pipeline.datasets.sources import SOURCES

    with StripTiff(SOURCES["koppen"].path()) as tif:
        return tif.read_rows(r0, tif.shape[0] if r1 is None else r1)


def koppen_da(a: np.ndarray, r0: int = 0) -> xr.DataArray:
    return latlon(a, 1 / 120, "koppen", lat0=90 - r0 / 120)


def warm_kernels() -> None:
    """Compile (or load from numba's cache) the kernels outside every timing."""
    from pipeline.aggregate import class_fractions, conservative_mean

    warm = xr.DataArray(np.ones((18, 36), np.float32), dims=("lat", "lon"),
                        coords={"lat": np.arange(-85, 90, 10.0), "lon": np.arange(-175, 180, 10.0)}, name="w")
    for g in ("30deg", "N32"):
        conservative_mean(warm, g)
        class_fractions(warm.astype(np.uint8), g, classes=[1])


# ------------------------------------------------------------------------------------- peers


def run_cdo(grid_arg: str, infile: Path, outfile: Path, cwd: Path, threads: int = 1) -> Path:
    res = subprocess.run([CDO, "-s", "-O", "-P", str(threads), f"remapcon,{grid_arg}", str(infile), str(outfile)],
                         cwd=cwd, capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"cdo remapcon failed: {res.stderr.strip()[-500:]}")
    return outfile


def regrid_target(grid):
    lat = grid.lat
    lon = ((grid.lon + 180) % 360) - 180
    order = np.argsort(lon)
    return xr.Dataset(coords={"lat": ("lat", lat), "lon": ("lon", lon[order])}), order


def xr_regrid(ds_or_da, grid):
    import xarray_regrid  # noqa: F401  (registers the .regrid accessor)

    target, order = regrid_target(grid)
    return ds_or_da.regrid.conservative(target, latitude_coord="lat", skipna=True).compute(), order


def cdo_tool(ctx, label: str, call, note: str) -> Tool:
    """The CDO tool of a case, or a skipped one (with the reason) where the binary is missing."""
    if not CDO:
        return Tool("cdo", None, "peer", label, skip="the cdo binary is not on PATH (install CDO to compare)")
    return Tool("cdo", call, "peer", f"{label} -P {ctx.threads}", warmup=False, in_process=False,
                max_repeat=2 if ctx.quick else None, note=note + ("; at most 2 runs with --quick" if ctx.quick else ""))


def cdo_field(path: Path, name: str) -> np.ndarray:
    """A (lat, lon) field of a CDO output file, latitudes ascending (size-1 dimensions other than lat/lon dropped)."""
    with xr.open_dataset(path) as ds:
        da = ds[name]
        extra = [d for d in da.dims if d not in ("lat", "lon") and da.sizes[d] == 1]
        return da.squeeze(extra).sortby("lat").values


def gpu_tool(ctx, da: xr.DataArray, fn, label: str) -> Tool:
    """``fn(device_da)`` timed on a CuPy copy of ``da``, or a skipped tool where no GPU is usable."""
    if not ctx.gpu.get("usable"):
        return Tool("terrascale-gpu", None, "terrascale", label, skip=f"no usable GPU ({ctx.gpu.get('reason')})")
    from pipeline.backend import resolve_backend

    xp = resolve_backend("gpu").xp
    dev = da.copy(data=xp.asarray(da.values))
    return Tool("terrascale-gpu", lambda: fn(dev), "terrascale", label, sync=xp.cuda.Device().synchronize,
                note="input already on the device")


def floors(src: np.ndarray) -> list[Tool]:
    """The one-pass floor (numpy sum over the input) and a memcpy of it into a preallocated buffer."""
    dst = np.empty_like(src)
    dst[...] = 0  # fault the pages in outside the timing
    return [Tool("numpy-sum", src.sum, "floor", "numpy sum over the input (one pass)"),
            Tool("memcpy", lambda: np.copyto(dst, src), "floor", "memcpy of the input (np.copyto, preallocated)")]


# ------------------------------------------------------------------------------------- cases


def continuous(ctx) -> None:
    from pipeline.aggregate import conservative_mean
    from pipeline.grids import parse_grid, source_axes
    from pipeline.weights import compute_weights

    step = 2 if ctx.quick else 1
    da = lai_field(step)
    src = da.values
    res = 0.05 * step
    infile = ctx.scratch / "lai.nc"
    if CDO:
        da.to_dataset().to_netcdf(infile, encoding={"lai": {"_FillValue": np.float32(-9999)}})
    asc = da.sortby("lat")  # xarray-regrid wants ascending coordinates (prepared outside the timing)
    for spec in ("1deg",) if ctx.quick else ("1deg", "F128"):
        grid = parse_grid(spec)
        case = "continuous" if spec == "1deg" else f"continuous-{spec}"
        title = f"{res:g}° LAI-like global ({src.size / 1e6:.1f} M cells, NaN oceans) -> {spec}"
        if spec == "1deg":
            (ctx.scratch / "g1.txt").write_text(grid.cdo_griddes())
            cdo_arg = "g1.txt"
        else:  # CDO's own F128 (outer bounds extrapolated): compared with that convention
            cdo_arg = spec
        out_nc = ctx.scratch / f"cdo_{spec}.nc"
        given = compute_weights(source_axes(da).grid, grid)
        tools = [
            Tool("terrascale", lambda: conservative_mean(da, spec), "terrascale", "terrascale conservative_mean (numba)",
                 note="weights built in the call"),
            Tool("terrascale-weights", lambda w=given: conservative_mean(da, weights=w), "terrascale",
                 "terrascale conservative_mean, weights given (numba)",
                 note="weights computed once outside the timing, as for every field after the first"),
            gpu_tool(ctx, da, lambda d: conservative_mean(d, spec), "terrascale conservative_mean (CuPy)"),
            cdo_tool(ctx, "cdo remapcon", lambda: run_cdo(cdo_arg, infile, out_nc, ctx.scratch, ctx.threads),
                     "NetCDF in and out (its interface)"),
            Tool("xarray-regrid", lambda: xr_regrid(asc, grid), "peer", "xarray-regrid conservative"),
            *floors(src),
        ]

        def agreement(out, spec=spec, out_nc=out_nc):
            ours = out["terrascale"]
            text = {}
            if "cdo" in out:
                ref = cdo_field(out["cdo"], "lai")
                mine = ours.values if spec == "1deg" else conservative_mean(
                    da, parse_grid(spec, gaussian_bounds="cdo")).values
                d, n = rel_diff(mine, ref)
                text["cdo"] = f"max rel diff {d:.1e}, NaN mismatches {n}"
            if "xarray-regrid" in out:
                reg, order = out["xarray-regrid"]
                d, n = rel_diff(reg.values, ours.values[:, order])
                inner, _ = rel_diff(reg.values, ours.values[:, order], skip_rows=8 if spec != "1deg" else 5)
                text["xarray-regrid"] = f"max rel diff {d:.1e} ({inner:.1e} without the polar rows), NaN mismatches {n}"
            return text

        ctx.compare(case, title, tools, agreement=agreement, info={"cells": int(src.size), "target": spec})
    if infile.exists():
        infile.unlink()


def categorical(ctx) -> None:
    from pipeline.aggregate import class_fractions
    from pipeline.grids import parse_grid

    r0, r1 = KOPPEN_BAND[ctx.quick]
    band = koppen_da(koppen_rows(r0, r1), r0)
    src = band.values
    lat0, lat1 = 90 - r1 / 120, 90 - r0 / 120
    grid = parse_grid(f"1deg:-180,{lat0:g},180,{lat1:g}")
    onehot = xr.Dataset({f"c{c}": xr.where(band == 0, np.float32(np.nan), (band == c).astype(np.float32))
                         for c in CLASSES})
    onehot = onehot.assign_coords(lat=band.lat, lon=band.lon)  # xr.where drops the CF attrs CDO needs
    infile, out_nc = ctx.scratch / "onehot.nc", ctx.scratch / "cdo_onehot.nc"
    if CDO:
        onehot.to_netcdf(infile, encoding={f"c{c}": {"_FillValue": np.float32(-9999)} for c in CLASSES})
        (ctx.scratch / "gs.txt").write_text(grid.cdo_griddes())
    asc = onehot.sortby("lat")

    def ours(d=band):
        return class_fractions(d, grid, classes=CLASSES, missing=[0])

    tools = [
        Tool("terrascale", ours, "terrascale", "terrascale class_fractions (numba)", note="no one-hot array"),
        gpu_tool(ctx, band, lambda d: ours(d), "terrascale class_fractions (CuPy)"),
        cdo_tool(ctx, "cdo one-hot + remapcon", lambda: run_cdo("gs.txt", infile, out_nc, ctx.scratch, ctx.threads),
                 "one-hot NetCDF written outside the timing"),
        Tool("xarray-regrid", lambda: xr_regrid(asc, grid), "peer", "xarray-regrid one-hot + conservative",
             note="one-hot built outside the timing"),
        *floors(src),
    ]

    def agreement(out):
        fs = np.nan_to_num(out["terrascale"].values, nan=0)
        text = {}
        if "cdo" in out:
            ref = np.stack([cdo_field(out["cdo"], f"c{c}") for c in CLASSES])
            text["cdo"] = f"max abs diff of fractions {np.max(np.abs(np.nan_to_num(ref, nan=0) - fs)):.1e}"
        if "xarray-regrid" in out:
            res, order = out["xarray-regrid"]
            refx = np.stack([res[f"c{c}"].values[:, order] for c in CLASSES])
            text["xarray-regrid"] = f"max abs diff of fractions {np.max(np.abs(np.nan_to_num(refx, nan=0) - fs)):.1e}"
        return text

    title = (f"1 km Köppen band, rows {r0}-{r1} ({src.size / 1e6:.1f} M cells, 5 classes + no data) "
             "-> 1° class fractions")
    ctx.compare("categorical", title, tools, agreement=agreement, info={"cells": int(src.size)})
    for f in (infile, out_nc):
        if f.exists():
            f.unlink()


def global_1km(ctx) -> None:
    from pipeline.aggregate import class_fractions

    t0 = time.perf_counter()
    kg = koppen_rows()
    ctx.note(f"reading + inflating the 1 km Köppen GeoTIFF (outside every timing): {time.perf_counter() - t0:.1f} s")
    full = koppen_da(kg)
    why = "one-hot float copy of the whole map would be 18.7 GB: peers measured on the band (categorical case)"
    tools = [
        Tool("terrascale", lambda: class_fractions(full, "1deg", classes=CLASSES, missing=[0]), "terrascale",
             "terrascale class_fractions (numba)"),
        Tool("terrascale-N128", lambda: class_fractions(full, "N128", classes=CLASSES, missing=[0]), "terrascale",
             "terrascale class_fractions -> N128 (numba)"),
        gpu_tool(ctx, full, lambda d: class_fractions(d, "1deg", classes=CLASSES, missing=[0]),
                 "terrascale class_fractions (CuPy)"),
        Tool("cdo", None, "peer", "cdo one-hot + remapcon", skip=why),
        Tool("xarray-regrid", None, "peer", "xarray-regrid one-hot + conservative", skip=why),
        *floors(kg),
    ]
    ctx.compare("1km-global", f"1 km Köppen global ({kg.size / 1e6:.0f} M cells) -> 1° class fractions", tools,
                repeat=max(2, ctx.repeat // 2), info={"cells": int(kg.size)})
    del full, kg, tools
    for target in ("1deg", "N128"):
        m = memory_run(target)
        ctx.metric(f"streamed_1km_{target}", m)
        ctx.note(f"1 km map streamed from the GeoTIFF -> {target} fractions: peak {m['peak_mb'] - m['base_mb']:.0f} MB "
                 f"above the {m['base_mb']:.0f} MB after imports and loading the kernels (bound: one chunk + target + "
                 f"kernel buffers = {m['bound_mb']:.0f} MB; {m['seconds']:.1f} s including inflating the strips)")


def bench(ctx) -> None:
    """Harness entry: the aggregation cases (see the module docstring)."""
    warm_kernels()
    continuous(ctx)
    categorical(ctx)
    if not ctx.quick:
        global_1km(ctx)


# ------------------------------------------------------------------------------------- memory child


def memory_bound(chunk_bytes: int, grid: str, *, classes: int | None = None) -> float:
    """Bytes an aggregation onto ``grid`` may add: one streamed chunk of the input, the target side
    (:func:`pipeline.aggregate.plan.target_bytes`: two accumulators of one field, or one of
    ``classes`` class areas) and the kernels' fixed work buffers (the class kernel's cap, or the
    profile cap of the weighted sum)."""
    from kernels.cpu import _BUF_BYTES, PROFILE_BYTES
    from pipeline.aggregate.plan import target_bytes
    from pipeline.grids import parse_grid

    n_dst = int(np.prod(parse_grid(grid).shape))
    target = target_bytes(n_dst, classes, 1) if classes else target_bytes(n_dst, 1, 2)
    return float(chunk_bytes + target + (_BUF_BYTES if classes else PROFILE_BYTES))


def memory_child(target: str) -> None:
    """Stream the 1 km map from the GeoTIFF to class fractions; print JSON with memory figures.

    Run as ``terrascale`` runs (:func:`pipeline.runtime.tune_allocators`: large buffers mmap'ed and
    returned on free). The kernels are loaded (numba's cache: ~150 MB of LLVM the first time in a
    process) and the heap trimmed before the baseline, so the peak above it is the streaming's own;
    the bound is one chunk of the map, the target's arrays and the class kernel's buffer cap.
    """
    from benchmarks._memory import reset_hwm
    from pipeline.aggregate import class_fractions
    from pipeline.aggregate.stream import CHUNK_VALUES
    from pipeline.datasets.loaders import load_koppen
    from pipeline.runtime import trim_heap

    ds = load_koppen("global")
    class_fractions(ds["koppen"].isel(lat=slice(0, 24), lon=slice(0, 240)), target, classes=CLASSES, missing=[0])
    trim_heap()
    base = rss_mb()
    reset_hwm()
    t0 = time.perf_counter()
    f = class_fractions(ds["koppen"], target, classes=CLASSES, missing=[0])
    dt = time.perf_counter() - t0
    bound = memory_bound(CHUNK_VALUES, target, classes=len(CLASSES) + 1)  # uint8: one byte per value
    print(json.dumps({"target": target, "seconds": dt, "base_mb": base, "peak_mb": peak_rss()[0] / 2**20,
                      "bound_mb": bound / 2**20, "valid_fraction_sum": float(np.nansum(f.valid_fraction.values))}))


def memory_run(target: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, "-m", "benchmarks.aggregate", "--memory-child", target], capture_output=True,
                         text=True, env=env, cwd=ROOT)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-2000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    if sys.argv[1:2] == ["--memory-child"]:
        from pipeline.runtime import tune_allocators

        tune_allocators()  # as `terrascale aggregate` runs (pipeline.cli.main applies it first)
        memory_child(sys.argv[2])
    else:
        from benchmarks.__main__ import main

        raise SystemExit(main(["aggregate", *sys.argv[1:]]))
