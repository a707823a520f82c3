"""Streaming global LAI generation: peak memory and time for 20 years of monthly 0.05° LAI.

Builds the static predictors for the region (real rasters), then writes ``lai`` (and the
observed copy ``lai_obs`` for 2000-2020) as a Zarr store through the dask graph of
:func:`pipeline.datasets.generate_lai`, one (year, 200-row, 1800-column) block per task, so
memory stays bounded whatever the number of years. Prints wall times, the store size and the
process's peak resident set size (the goal: under 4 GB for the global 20-year run): the kernel's
high-water mark VmHWM, reset once the interpreter has started (see ``benchmarks/_memory.py``;
``ru_maxrss`` would also count the peak of the process that started this one).

Run (about 10-15 minutes on 2 cores, ~10 GB of temporary disk):

    .venv/bin/python benchmarks/lai_generation.py --region global --years 2001:2020

Smaller smoke run: ``--region europe --years 2019:2020``. ``--sink none`` computes a global
monthly mean instead of writing a store (no disk).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__" and not __package__:  # `python benchmarks/lai_generation.py`: import as the package
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.path.insert(0, os.path.dirname(_here))

import dask
import numpy as np

from benchmarks._memory import hwm_bytes, peak_rss, reset_hwm


def _peak_rss_gb() -> float:
    return peak_rss()[0] / 1e9


def _du(path: Path) -> float:
    from pipeline.io import store_size

    return store_size(path) / 1e9


def generate(region: str, years: str, *, scenario: str = "ssp585", seed: int = 0, workers: int = 2,
             sink: str = "zarr", out: Path | None = None) -> dict:
    """Build the static predictors and generate the LAI; times, size and the peak memory above the RSS before."""
    from pipeline.datasets import generate_lai, parse_years, static_fields
    from pipeline.io import write

    exact = reset_hwm()
    base = hwm_bytes() if exact else 0
    yrs = parse_years(years)
    t0 = time.perf_counter()
    static = static_fields(region)
    t_static = time.perf_counter() - t0
    ds = generate_lai(static, yrs, (scenario,), seed=seed)
    n_values = int(np.prod(ds["lai"].shape))
    info = {"region": region, "years": f"{yrs[0]}-{yrs[1]}", "shape": [static.sizes["lat"], static.sizes["lon"]],
            "months": int(ds.sizes["time"]), "values": n_values, "blocks": int(ds["lai"].data.npartitions),
            "static_s": t_static}
    tmp = None
    t1 = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=workers):
        if sink == "zarr":
            out_dir = out or Path(tmp := tempfile.mkdtemp(prefix="terrascale-lai-bench-"))
            path = write(ds, out_dir / "lai.zarr", history="benchmarks/lai_generation.py")
            info["store_gb"] = _du(path)
        else:
            info["global_mean"] = float(ds["lai"].mean(("lat", "lon")).compute().mean())
    info["generate_s"] = time.perf_counter() - t1
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    info["total_s"] = time.perf_counter() - t0
    info["peak_rss_gb"] = _peak_rss_gb()
    info["peak_above_start_gb"] = (peak_rss()[0] - base) / 1e9 if exact else None
    info["memory_how"] = "kernel VmHWM" if exact else f"{peak_rss()[1]}, may include the parent's peak"
    return info


def bench(ctx) -> None:
    """Harness entry: one generation (quick: Europe 2019-2020, no store; full: Europe 2011-2020 to Zarr)."""
    from benchmarks.harness import Tool

    region, years, sink = ("europe", "2019:2020", "none") if ctx.quick else ("europe", "2011:2020", "zarr")
    holder = {}

    def run():
        holder["info"] = generate(region, years, sink=sink, workers=ctx.threads, out=ctx.scratch)
        shutil.rmtree(ctx.scratch / "lai.zarr", ignore_errors=True)

    ctx.compare("generate", f"semi-synthetic monthly 0.05° LAI, {region} {years.replace(':', '-')}, sink {sink}",
                [Tool("terrascale", run, "terrascale", "generate_lai + static predictors",
                      note="peak memory goal < 4 GB (global, 20 years)")],
                repeat=1, memory=False)
    info = holder.get("info")
    if info:
        ctx.metric("generation", info)
        ctx.note(f"{info['values'] / 1e6:.0f} M LAI values in {info['generate_s']:.1f} s "
                 f"({info['values'] / info['generate_s'] / 1e6:.1f} M values/s); peak memory "
                 f"{(info['peak_above_start_gb'] or 0) * 1e3:.0f} MB above the start ({info['memory_how']})")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--region", default="global")
    ap.add_argument("--years", default="2001:2020")
    ap.add_argument("--scenario", default="ssp585")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=2, help="dask threads")
    ap.add_argument("--sink", choices=("zarr", "none"), default="zarr")
    ap.add_argument("--out", type=Path, default=None, help="store directory (default: a temporary one, removed)")
    args = ap.parse_args(argv)
    info = generate(args.region, args.years, scenario=args.scenario, seed=args.seed, workers=args.workers,
                    sink=args.sink, out=args.out)
    ny, nx = info["shape"]
    print(f"region {args.region}: {ny} x {nx} cells at 0.05°, years {info['years']}, {info['months']} months, "
          f"{info['values'] / 1e9:.2f} G LAI values, {info['blocks']} blocks; static predictors {info['static_s']:.1f} s")
    size = (f"{info['store_gb']:.2f} GB on disk" if "store_gb" in info
            else f"no store; global mean LAI {info['global_mean']:.3f}")
    print(f"LAI generation + {args.sink}: {info['generate_s']:.1f} s "
          f"({info['values'] / info['generate_s'] / 1e6:.1f} M values/s), {size}")
    print(f"total {info['total_s']:.1f} s; peak RSS {info['peak_rss_gb']:.2f} GB ({info['memory_how']}; "
          f"{(info['peak_above_start_gb'] or float('nan')):.2f} GB above the start)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
