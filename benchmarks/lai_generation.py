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
import shutil
import sys
import tempfile
import time
from pathlib import Path

import dask
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _memory import peak_rss, reset_hwm


def _peak_rss_gb() -> float:
    return peak_rss()[0] / 1e9


def _du(path: Path) -> float:
    from pipeline.io import store_size

    return store_size(path) / 1e9


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
    # baseline: the interpreter with numpy and dask; from here VmHWM is this process's own peak
    exact = reset_hwm()

    from pipeline.datasets import generate_lai, parse_years, static_fields
    from pipeline.io import write

    years = parse_years(args.years)
    t0 = time.perf_counter()
    static = static_fields(args.region)
    t_static = time.perf_counter() - t0
    ds = generate_lai(static, years, (args.scenario,), seed=args.seed)
    n_values = int(np.prod(ds["lai"].shape))
    print(f"region {args.region}: {static.sizes['lat']} x {static.sizes['lon']} cells at 0.05°, "
          f"years {years[0]}-{years[1]}, {ds.sizes['time']} months, {n_values / 1e9:.2f} G LAI values, "
          f"{ds['lai'].data.npartitions} blocks; static predictors {t_static:.1f} s, "
          f"peak RSS so far {_peak_rss_gb():.2f} GB", flush=True)

    tmp = None
    t1 = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=args.workers):
        if args.sink == "zarr":
            out_dir = args.out or Path(tmp := tempfile.mkdtemp(prefix="terrascale-lai-bench-"))
            path = write(ds, out_dir / "lai.zarr", history="benchmarks/lai_generation.py")
            size = f"{_du(path):.2f} GB on disk"
        else:
            mean = ds["lai"].mean(("lat", "lon")).compute()
            size = f"no store; global mean LAI {float(mean.mean()):.3f}"
    t_lai = time.perf_counter() - t1
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"LAI generation + {args.sink}: {t_lai:.1f} s ({n_values / t_lai / 1e6:.1f} M values/s), {size}")
    how = "kernel VmHWM" if exact else f"{peak_rss()[1]}, may include the parent's peak"
    print(f"total {time.perf_counter() - t0:.1f} s; peak RSS {_peak_rss_gb():.2f} GB ({how})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
