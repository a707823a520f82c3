"""Aggregation benchmark: terrascale vs CDO remapcon vs xarray-regrid, with the memory-bandwidth floor.

One run prints one table. Every peer time includes building its weights (CDO ``remapcon``
computes them on every call; xarray-regrid's ``conservative`` too; ours: ``compute_weights``
inside the call). Every row also reports how far the peer's result is from ours.

* Continuous: a 0.05° global field (3600 x 7200, float32, oceans NaN), made from the real MODIS
  MCD12C1 2019 IGBP map through a fixed class -> LAI-like table (see ``IGBP_LAI``), onto 1° and
  onto F128.
* Categorical: the 1 km Köppen-Geiger map (21600 x 43200 uint8, classes 1-5, 0 = no data) onto 1°
  class fractions; ours on the whole map (in memory, and streamed from the file for the memory
  figure), the peers (one-hot + conservative) on a 5°-latitude slab of the same map, because a
  one-hot float copy of the whole map does not fit here (5 classes x 933 M x 4 B = 18.7 GB); their
  whole-map times are the slab times scaled by the cell count, and marked so.
* Floor: one numpy ``sum`` over the same input array (one pass through memory).
* Peak memory of the 1 km runs: child processes streaming the map from the GeoTIFF (``load_koppen``,
  600-row bands) to 1° and to N128 class fractions, peak RSS (VmHWM) minus the RSS after imports.

Usage: ``python benchmarks/aggregate.py [--repeat N] [--quick]`` (``--quick``: skip the 1 km part).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from _memory import peak_rss  # noqa: E402  (benchmarks/ is on sys.path: the script's own directory

from pipeline.aggregate import class_fractions, conservative_mean  # noqa: E402
from pipeline.grids import parse_grid  # noqa: E402

# IGBP class -> LAI-like value (water, snow/ice and no data -> NaN): a continuous test field.
IGBP_LAI = {1: 5.0, 2: 4.5, 3: 4.0, 4: 4.5, 5: 4.2, 6: 1.5, 7: 1.0, 8: 2.5, 9: 1.6, 10: 1.2, 11: 2.0, 12: 2.6,
            13: 0.8, 14: 2.2, 16: 0.1}
KOPPEN_SLAB = (8400, 9000)  # 1 km rows of the peer slab: 20°N .. 15°N (classes A, B, C)
CDO = shutil.which("cdo")


def timed(fn, repeat=1):
    best, out = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def one_thread(fn):
    import numba

    n = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        return fn()
    finally:
        numba.set_num_threads(n)


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def maxrss_mb() -> float:
    """Peak RSS of this process image in MB: VmHWM (ru_maxrss would carry the forking parent's peak over exec)."""
    return peak_rss()[0] / 2**20


def rel_diff(a, b, skip_rows=0):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if skip_rows:
        a, b = a[..., skip_rows:-skip_rows, :], b[..., skip_rows:-skip_rows, :]
    m = np.isfinite(a) & np.isfinite(b)
    nan_mismatch = int((np.isfinite(a) != np.isfinite(b)).sum())
    return float(np.max(np.abs(a[m] - b[m]) / np.maximum(np.abs(b[m]), 1e-12))), nan_mismatch


# ------------------------------------------------------------------------------------- data


def modis_field():
    from pipeline.datasets.readers import StripTiff
    from pipeline.datasets.sources import SOURCES

    with StripTiff(SOURCES["igbp"].path()) as tif:
        igbp = tif.read_rows(0, tif.shape[0])
    table = np.full(256, np.nan, np.float32)
    for k, v in IGBP_LAI.items():
        table[k] = v
    ny, nx = igbp.shape
    lat = 90 - 0.05 * (np.arange(ny) + 0.5)  # north-up, as in the file: descending latitude
    lon = -180 + 0.05 * (np.arange(nx) + 0.5)
    x = table[igbp] * (1 + 0.1 * np.sin(np.radians(lon))[None, :]).astype(np.float32)
    return xr.DataArray(x, dims=("lat", "lon"), name="lai", attrs={"units": "m2 m-2"},
                        coords={"lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
                                "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"})})


def koppen_array():
    from pipeline.datasets.readers import StripTiff
    from pipeline.datasets.sources import SOURCES

    with StripTiff(SOURCES["koppen"].path()) as tif:
        return tif.read_rows(0, tif.shape[0])


def koppen_da(a, r0=0, r1=None):
    r1 = a.shape[0] if r1 is None else r1
    lat = 90 - (np.arange(r0, r1) + 0.5) / 120
    lon = -180 + (np.arange(a.shape[1]) + 0.5) / 120
    return xr.DataArray(a[r0:r1], dims=("lat", "lon"), name="koppen",
                        coords={"lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
                                "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"})})


# ------------------------------------------------------------------------------------- peers


def run_cdo(grid_arg, infile, outfile, cwd):
    t0 = time.perf_counter()
    res = subprocess.run([CDO, "-s", "-P", "1", f"remapcon,{grid_arg}", str(infile), str(outfile)], cwd=cwd,
                         capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"cdo remapcon failed: {res.stderr.strip()}")
    return time.perf_counter() - t0


def regrid_target(grid):
    lat = grid.lat
    lon = ((grid.lon + 180) % 360) - 180
    order = np.argsort(lon)
    return xr.Dataset(coords={"lat": ("lat", lat), "lon": ("lon", lon[order])}), order


def xr_regrid(ds_or_da, grid):
    import xarray_regrid  # noqa: F401  (registers the .regrid accessor)

    target, order = regrid_target(grid)
    return ds_or_da.regrid.conservative(target, latitude_coord="lat", skipna=True).compute(), order


# ------------------------------------------------------------------------------------- memory child


def memory_child(target: str) -> None:
    """Stream the 1 km map from the GeoTIFF to class fractions; print JSON with memory figures."""
    from pipeline.datasets.loaders import load_koppen

    base = rss_mb()
    ds = load_koppen("global")
    t0 = time.perf_counter()
    f = class_fractions(ds["koppen"], target, classes=[1, 2, 3, 4, 5], missing=[0])
    dt = time.perf_counter() - t0
    print(json.dumps({"target": target, "seconds": dt, "base_mb": base, "peak_mb": maxrss_mb(),
                      "valid_fraction_sum": float(np.nansum(f.valid_fraction.values))}))


def memory_run(target: str):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    res = subprocess.run([sys.executable, __file__, "--memory-child", target], capture_output=True, text=True, env=env)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-2000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="skip the 1 km Köppen part")
    ap.add_argument("--memory-child", default=None)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    rows = []  # (case, tool, seconds, ratio text, agreement text)
    notes = []
    tmp = Path(tempfile.mkdtemp(prefix="ts-bench-"))
    # warm the numba kernels (compilation is cached on disk; not part of any timing)
    warm = xr.DataArray(np.ones((18, 36), np.float32), dims=("lat", "lon"),
                        coords={"lat": np.arange(-85, 90, 10.0), "lon": np.arange(-175, 180, 10.0)}, name="w")
    conservative_mean(warm, "30deg"), conservative_mean(warm, "N32")
    class_fractions(warm.astype(np.uint8), "30deg", classes=[1]), class_fractions(warm.astype(np.uint8), "N32", classes=[1])

    # ---------------- continuous 0.05 deg -> 1 deg and F128
    da = modis_field()
    floor, _ = timed(lambda: da.values.sum(), args.repeat)
    infile = tmp / "modis_lai.nc"
    da.to_dataset().to_netcdf(infile, encoding={"lai": {"_FillValue": np.float32(-9999)}})
    asc = da.sortby("lat")  # xarray-regrid wants ascending coordinates (prepared outside the timing)
    for spec in ("1deg", "F128"):
        grid = parse_grid(spec)
        case = f"0.05° LAI-like (26 M cells, NaN oceans) -> {spec}"
        t_ours, ours = timed(lambda: conservative_mean(da, spec), args.repeat)
        rows.append((case, "terrascale (numba, weights incl.)", t_ours, "1", "-"))
        rows.append((case, "terrascale, 1 thread", one_thread(lambda: timed(lambda: conservative_mean(da, spec), args.repeat)[0]),
                     "-", "same code"))
        rows.append((case, "numpy sum (bandwidth floor)", floor, f"ours/floor = {t_ours / floor:.1f}", "-"))
        if CDO:
            if spec == "1deg":
                (tmp / "g1.txt").write_text(grid.cdo_griddes())
                t_cdo = run_cdo("g1.txt", infile, tmp / "cdo1.nc", tmp)
                ref = xr.open_dataset(tmp / "cdo1.nc").lai.squeeze().sortby("lat").values
                agree = rel_diff(ours.values, ref)
            else:  # CDO's own F128: its outer bounds are extrapolated; compare with that convention
                t_cdo = run_cdo("F128", infile, tmp / "cdoF.nc", tmp)
                ref = xr.open_dataset(tmp / "cdoF.nc").lai.squeeze().sortby("lat").values
                ours_cdo = conservative_mean(da, parse_grid("F128", gaussian_bounds="cdo")).values
                agree = rel_diff(ours_cdo, ref)
            rows.append((case, "cdo remapcon (-P 1)", t_cdo, f"{t_cdo / t_ours:.0f}x slower",
                         f"max rel diff {agree[0]:.1e}, NaN mismatches {agree[1]}"))
        t_xr, (res, order) = timed(lambda: xr_regrid(asc, grid), 1)
        mine = ours.values[:, order]
        agree = rel_diff(res.values, mine)
        inner = rel_diff(res.values, mine, skip_rows=8 if spec == "F128" else 5)
        rows.append((case, "xarray-regrid conservative", t_xr, f"{t_xr / t_ours:.1f}x slower",
                     f"max rel diff {agree[0]:.1e} (without 5-8 polar rows {inner[0]:.1e}), NaN mismatches {agree[1]}"))

    del da, asc
    # ---------------- categorical 1 km Koppen -> 1 deg class fractions
    if not args.quick:
        t_read, kg = timed(koppen_array, 1)
        notes.append(f"reading + inflating the 1 km GeoTIFF (not in any timing below): {t_read:.1f} s")
        full = koppen_da(kg)
        case = "1 km Köppen (933 M cells) -> 1° class fractions"
        t_floor, _ = timed(lambda: kg.sum(), args.repeat)
        t_ours, frac = timed(lambda: class_fractions(full, "1deg", classes=[1, 2, 3, 4, 5], missing=[0]), args.repeat)
        rows.append((case, "terrascale (numba, weights incl.)", t_ours, "1", "-"))
        rows.append((case, "terrascale, 1 thread", one_thread(lambda: timed(
            lambda: class_fractions(full, "1deg", classes=[1, 2, 3, 4, 5], missing=[0]), 1)[0]), "-", "same code"))
        rows.append((case, "numpy sum (bandwidth floor)", t_floor, f"ours/floor = {t_ours / t_floor:.1f}", "-"))
        t_n128, _ = timed(lambda: class_fractions(full, "N128", classes=[1, 2, 3, 4, 5], missing=[0]), 1)
        rows.append(("1 km Köppen (933 M cells) -> N128 class fractions", "terrascale (numba, weights incl.)", t_n128,
                     f"ours/floor = {t_n128 / t_floor:.1f}", "-"))
        # peers on a slab
        r0, r1 = KOPPEN_SLAB
        slab = koppen_da(kg, r0, r1)
        scale = kg.shape[0] / (r1 - r0)
        scase = f"slab rows {r0}-{r1} (5° band, {slab.size / 1e6:.0f} M cells) -> 1° fractions"
        lat0, lat1 = 90 - r1 / 120, 90 - r0 / 120
        sgrid = parse_grid(f"1deg:-180,{lat0:g},180,{lat1:g}")
        t_os, fs = timed(lambda: class_fractions(slab, sgrid, classes=[1, 2, 3, 4, 5], missing=[0]), args.repeat)
        rows.append((scase, "terrascale", t_os, "1", "-"))
        onehot = xr.Dataset({f"c{c}": xr.where(slab == 0, np.float32(np.nan), (slab == c).astype(np.float32))
                             for c in (1, 2, 3, 4, 5)})
        onehot = onehot.assign_coords(lat=slab.lat, lon=slab.lon)  # xr.where drops the CF attrs CDO needs
        if CDO:
            onehot.to_netcdf(tmp / "onehot.nc", encoding={f"c{c}": {"_FillValue": np.float32(-9999)} for c in range(1, 6)})
            (tmp / "gs.txt").write_text(sgrid.cdo_griddes())
            t_cdo = run_cdo("gs.txt", tmp / "onehot.nc", tmp / "cdo_kg.nc", tmp)
            out = xr.open_dataset(tmp / "cdo_kg.nc")
            ref = np.stack([out[f"c{c}"].squeeze().sortby("lat").values for c in range(1, 6)])
            agree = rel_diff(np.nan_to_num(fs.values, nan=0) + 1, np.nan_to_num(ref, nan=0) + 1)
            rows.append((scase, "cdo one-hot + remapcon (-P 1)", t_cdo, f"{t_cdo / t_os:.0f}x slower",
                         f"max abs diff of fractions {agree[0] * 2:.1e}"))
            rows.append((case, "cdo one-hot + remapcon (slab x %.0f, extrapolated)" % scale, t_cdo * scale,
                         f"{t_cdo * scale / t_ours:.0f}x slower", "see slab row"))
            (tmp / "onehot.nc").unlink()
        t_xs, (res, order) = timed(lambda: xr_regrid(onehot, sgrid), 1)
        refx = np.stack([res[f"c{c}"].values[:, order] for c in range(1, 6)])
        agree = np.nanmax(np.abs(np.nan_to_num(refx, nan=0) - np.nan_to_num(fs.values, nan=0)))
        rows.append((scase, "xarray-regrid one-hot + conservative", t_xs, f"{t_xs / t_os:.1f}x slower",
                     f"max abs diff of fractions {agree:.1e}"))
        rows.append((case, "xarray-regrid one-hot + conservative (slab x %.0f, extrapolated)" % scale, t_xs * scale,
                     f"{t_xs * scale / t_ours:.1f}x slower", "see slab row"))
        del kg, full, slab, onehot
        for target in ("1deg", "N128"):
            m = memory_run(target)
            notes.append(f"peak memory, 1 km map streamed from the GeoTIFF -> {target} fractions: "
                         f"{m['peak_mb'] - m['base_mb']:.0f} MB above the {m['base_mb']:.0f} MB after imports "
                         f"(peak RSS {m['peak_mb']:.0f} MB; {m['seconds']:.1f} s including inflating the strips)")
    shutil.rmtree(tmp, ignore_errors=True)

    # ---------------- table
    import numba

    head = ("case", "tool", "seconds", "ratio (peer / terrascale)", "agreement with terrascale")
    widths = [max(len(str(r[i])) if i != 2 else 8 for r in rows + [head]) for i in range(5)]
    fmt = lambda r: " | ".join(  # noqa: E731
        (f"{r[i]:8.3f}" if isinstance(r[i], float) else str(r[i])).ljust(widths[i]) for i in range(5))
    print(f"terrascale aggregation benchmark - {os.cpu_count()} CPU cores visible, numba threads "
          f"{numba.get_num_threads()}, CDO {'present' if CDO else 'absent'}")
    print(fmt(head))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(fmt(r))
    for n in notes:
        print("note:", n)


if __name__ == "__main__":
    main()
