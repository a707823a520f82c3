"""Flatten benchmark: CPU throughput against a numpy copy, and peak memory of a streamed stack.

Run:  .venv/bin/python benchmarks/flatten.py [--years 20] [--months 12] [--workdir DIR]

1. Throughput. A 0.05° European stack (760 x 1400 cells, the real GLOBE land fraction as the
   mask: cells with land_fraction > 0) of ``--months`` monthly float32 fields (three variables)
   plus one static field is flattened with :func:`pipeline.features.flatten` (pandas). The bytes
   of the resulting table (all columns: time, cell and values) divided by the time is compared
   with ``numpy.copy`` of a buffer of exactly as many bytes (allocation included in both, best
   of ``--repeat`` runs, same process, one thread). The issue asks for >= 50 %.

2. Peak memory. A Zarr store of ``--years`` x 12 monthly 0.05° European fields (two float32
   variables, chunks of one month: (1, 760, 1400)) plus the static mask is written to
   ``--workdir``; a fresh process then streams it through :func:`pipeline.features.flatten_dask`
   (one partition per month, dask's synchronous scheduler) into Parquet files, one partition at
   a time, while a thread samples the process RSS every 5 ms. Partitions are written with
   :func:`pipeline.features.write_partition`, the writer of ``write_feature_table`` (the
   ``terrascale features`` path). Runs, each in a fresh process:

   - allocators as ``terrascale`` sets them: :func:`pipeline.runtime.tune_allocators` called
     at the start of the process, before numpy/pandas/pyarrow are imported, as in
     ``pipeline.cli.main`` (``pipeline.cli`` imports none of them); flatten only, then
     flatten + write. The last one is the verdict.
   - default allocators (no tuning, as a library user gets): flatten only, flatten + write.
   - for comparison: the same tuning through the environment at start-up
     (``MALLOC_MMAP_THRESHOLD_``, ``ARROW_DEFAULT_MEMORY_POOL``), and pandas ``to_parquet``
     (pyarrow's default 1 MiB dictionary limit) instead of ``write_partition``.

   Reported: peak RSS above the baseline taken after imports, opening the store, the mask,
   and a warm-up of the gather kernel and the Parquet writer (on Linux exact: the kernel's
   high-water mark VmHWM, reset through /proc/self/clear_refs after the baseline and read
   after each compute and each write, so the peak of each phase is known; elsewhere sampled
   every 5 ms, which can miss short spikes; both are printed), against the issue's bound
   2 x (one chunk of every variable read per partition) + one output partition; and the RSS
   after partitions 1, 2, n/2 and n, which shows whether anything accumulates with the number
   of partitions (it must not).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# A child run "as terrascale" applies the allocator settings where pipeline.cli.main does: before
# numpy/pandas/pyarrow are imported (pipeline.cli imports none of them), so that pyarrow's
# default pool is chosen from ARROW_DEFAULT_MEMORY_POOL when it loads.
_TUNED = None
if __name__ == "__main__" and sys.argv[1:2] == ["--child"] and sys.argv[5:6] == ["tune"]:
    from pipeline.runtime import tune_allocators

    _TUNED = tune_allocators()

if __name__ == "__main__" and not __package__:  # `python benchmarks/flatten.py`: import as the package
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.path.insert(0, os.path.dirname(_here))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402

from benchmarks._memory import hwm_bytes, reset_hwm  # noqa: E402
from benchmarks.harness import Tool  # noqa: E402

SOUTH, NORTH, WEST, EAST, RES = 34.0, 72.0, -25.0, 45.0, 0.05


def europe_grid():
    lat = np.round(SOUTH + RES * (np.arange(round((NORTH - SOUTH) / RES)) + 0.5), 6)
    lon = np.round(WEST + RES * (np.arange(round((EAST - WEST) / RES)) + 0.5), 6)
    return lat, lon


def land_mask(lat, lon) -> tuple[np.ndarray, str]:
    """The real GLOBE land fraction of Europe at 0.05° (> 0 = land), or a smooth stand-in."""
    try:
        from pipeline.datasets.loaders import land_fraction

        lf = land_fraction("europe")["land_fraction"]
        if lf.shape == (lat.size, lon.size):
            return np.asarray(lf.values) > 0, "GLOBE land fraction > 0"
    except Exception as err:  # noqa: BLE001  (the sample-data packages may be missing: say so and go on)
        print(f"(real land mask unavailable: {type(err).__name__}: {err}; using a synthetic one)")
    yy, xx = np.meshgrid(lat, lon, indexing="ij")
    return (np.sin(yy / 3.0) + np.cos(xx / 4.0)) > -0.2, "synthetic smooth mask"


def best(fn, repeat: int) -> float:
    t = []
    for _ in range(repeat):
        s = time.perf_counter()
        fn()
        t.append(time.perf_counter() - s)
    return min(t)


def stack(months: int):
    """The throughput input: (dataset of 3 monthly + 1 static float32 fields, land mask, mask description)."""
    lat, lon = europe_grid()
    mask, how = land_mask(lat, lon)
    rng = np.random.default_rng(0)
    shape = (months, lat.size, lon.size)
    times = pd.date_range("2001-01-01", periods=months, freq="MS")
    ds = xr.Dataset(
        {name: (("time", "lat", "lon"), rng.random(shape, dtype=np.float32)) for name in ("lai", "tas", "pr")}
        | {"land_fraction": (("lat", "lon"), rng.random(shape[1:], dtype=np.float32))},
        coords={"time": times, "lat": lat, "lon": lon},
    )
    return ds, mask, how


def table_bytes(df) -> int:
    return int(sum(df[c].to_numpy().nbytes for c in df.columns))


def throughput(months: int, repeat: int) -> None:
    from pipeline.features import flatten

    ds, mask, how = stack(months)
    lat, lon = ds["lat"].values, ds["lon"].values
    flatten(ds, target="lai", mask=mask)  # warm-up: numba compile, page cache
    holder = {}

    def run():
        holder["df"] = flatten(ds, target="lai", mask=mask)

    t_flat = best(run, repeat)
    df = holder.pop("df")
    nbytes = table_bytes(df)
    src = np.ones(nbytes, np.uint8)
    t_copy = best(lambda: np.copy(src), repeat)
    dst = np.empty_like(src)
    dst[:] = 0  # fault the pages in: this copy pays no allocation, unlike flatten and np.copy
    t_into = best(lambda: np.copyto(dst, src), repeat)
    rows = len(df)
    del df, src, dst
    print(f"grid 0.05° Europe {lat.size}x{lon.size}, mask: {how} ({mask.mean():.1%} of cells), {months} months, "
          f"3 monthly + 1 static float32 fields")
    print(f"table {rows:,} rows x 6 columns = {nbytes / 2**20:,.1f} MiB")
    print(f"flatten (pandas): {t_flat * 1e3:8.1f} ms  {nbytes / t_flat / 1e9:6.2f} GB/s")
    print(f"numpy copy      : {t_copy * 1e3:8.1f} ms  {nbytes / t_copy / 1e9:6.2f} GB/s")
    print(f"ratio flatten/copy throughput: {t_copy / t_flat:.2f} (target >= 0.50)")
    print(f"(for reference, numpy copyto into an already-allocated buffer: {nbytes / t_into / 1e9:.2f} GB/s, "
          f"ratio {t_into / t_flat:.2f}; flatten and np.copy both allocate their output)")


def bench(ctx) -> None:
    """Harness entry: flatten throughput against memcpy of the same bytes; full runs add the streamed peak memory.

    ``memcpy`` (``np.copy``, allocating its output, as flatten does) is the issue's comparison;
    ``memcpy-into`` (``np.copyto`` into a buffer faulted in beforehand) is the hardware's best.
    """
    from pipeline.features import flatten

    months = 6 if ctx.quick else 12
    ds, mask, how = stack(months)
    df = flatten(ds, target="lai", mask=mask)  # numba compile, page cache; the table's size
    nbytes, rows = table_bytes(df), len(df)
    del df
    src = np.ones(nbytes, np.uint8)
    dst = np.empty_like(src)
    dst[:] = 0
    title = (f"0.05° Europe {ds.sizes['lat']}x{ds.sizes['lon']}, {months} months, 3 monthly + 1 static float32 "
             f"fields, mask {how} -> {rows:,} rows ({nbytes / 2**20:,.0f} MiB)")
    rec = ctx.compare("throughput", title, [
        Tool("terrascale", lambda: flatten(ds, target="lai", mask=mask), "terrascale", "terrascale flatten (pandas)"),
        Tool("memcpy", lambda: np.copy(src), "floor", "memcpy of the table's bytes (np.copy, allocating)"),
        Tool("memcpy-into", lambda: np.copyto(dst, src), "floor", "memcpy into a preallocated buffer (np.copyto)"),
    ], info={"bytes": nbytes, "rows": rows})
    del src, dst
    ctx.metric("gb_per_s", {t["key"]: nbytes / t["median"] / 1e9 for t in rec["tools"] if t["median"]})
    if not ctx.quick:
        store = ctx.scratch / "stack.zarr"
        write_stack(store, 2)
        r = run_child(store, ctx.scratch / "parquet", "parquet", True, {})
        rise = r["peak"] - r["base"]
        bound = 2 * (2 * r["chunk_bytes"]) + r["part_bytes"]
        ctx.metric("streamed_peak", {"rise_mb": rise / 2**20, "bound_mb": bound / 2**20, "exact": r["exact"],
                                     "partitions": r["partitions"], "rss_after_each_mb": r["after_each"]})
        ctx.note(f"streamed flatten + Parquet of 24 monthly partitions: peak {rise / 2**20:.1f} MiB above the "
                 f"baseline, {rise / bound:.2f} x the bound 2 x chunk + partition ({bound / 2**20:.1f} MiB; "
                 f"{'within' if rise <= bound else 'ABOVE'})")


def write_stack(path: Path, years: int) -> tuple[int, int]:
    lat, lon = europe_grid()
    mask, how = land_mask(lat, lon)
    nt = 12 * years
    times = pd.date_range("2001-01-01", periods=nt, freq="MS")
    static = xr.Dataset({"land_fraction": (("lat", "lon"), mask.astype(np.float32))}, coords={"lat": lat, "lon": lon})
    static.to_zarr(path, mode="w", zarr_format=3, consolidated=False)
    base = (np.sin(np.deg2rad(lat))[:, None] * np.cos(np.deg2rad(lon))[None, :]).astype(np.float32)
    rng = np.random.default_rng(1)
    first = True
    step = 12
    for t0 in range(0, nt, step):
        n = min(step, nt - t0)
        noise = rng.standard_normal((n,) + base.shape, dtype=np.float32) * 0.1
        block = xr.Dataset(
            {"lai": (("time", "lat", "lon"), base[None] + noise), "tas": (("time", "lat", "lon"), 280 + base[None] - noise)},
            coords={"time": times[t0 : t0 + n], "lat": lat, "lon": lon},
        )
        enc = {v: {"chunks": (1, lat.size, lon.size)} for v in ("lai", "tas")} if first else None
        block.to_zarr(path, mode="a", append_dim=None if first else "time", encoding=enc, zarr_format=3, consolidated=False)
        first = False
    print(f"stack: {years} years x 12 months, {lat.size}x{lon.size} cells, 2 float32 variables "
          f"({2 * nt * lat.size * lon.size * 4 / 2**30:.2f} GiB uncompressed), mask: {how}")
    return nt, int(mask.sum())


def _child(store: str, out: str, mode: str, tune: bool) -> None:
    """Stream the stack into Parquet partition by partition; print JSON with the memory figures.

    ``mode``: ``flatten`` (compute and drop), ``parquet`` (:func:`write_partition`) or
    ``to_parquet`` (pandas). ``tune``: :func:`pipeline.runtime.tune_allocators` was called at
    the top of the module, before numpy/pandas/pyarrow were imported, as ``terrascale`` does.
    """
    tuned = _TUNED if tune else None
    assert (tuned is not None) == tune, "tune_allocators must run at import, before pandas"
    import dask
    import psutil
    import pyarrow as pa

    from pipeline.features import flatten_dask, write_partition
    from pipeline.io import open_dataset

    write = {"flatten": None, "parquet": write_partition,
             "to_parquet": lambda part, path: part.to_parquet(path, index=False)}[mode]
    proc = psutil.Process()
    os.makedirs(out, exist_ok=True)
    ds = open_dataset(store, chunks={})
    mask = ds["land_fraction"].values > 0
    nvalid = int(mask.sum())
    ddf = flatten_dask(ds, target="lai", predictors=["tas"], mask=mask, partition_rows=nvalid)
    sampled = {"rss": 0}
    stop = threading.Event()

    def sample():  # where the kernel's exact high-water mark cannot be reset
        while not stop.is_set():
            sampled["rss"] = max(sampled["rss"], proc.memory_info().rss)
            time.sleep(0.005)

    import gc

    # one-off costs that are not data: JIT-compile the gather kernel and load Arrow's Parquet
    # writer on a tiny table, before the baseline is taken
    from pipeline.features import CellIndex

    CellIndex(np.arange(2.0), np.arange(2.0), np.array([[True, False], [False, True]])).gather(np.zeros((1, 2, 2), np.float32))
    if write is not None:
        write(pd.DataFrame({"a": np.zeros(4, np.float32)}), os.path.join(out + ".warm.parquet"))
    gc.collect()
    base = proc.memory_info().rss
    exact = reset_hwm()
    peak = {"compute": base, "write": base}

    def phase_end(name):  # the exact peak of the phase just ended, then start a new high-water mark
        if exact:
            peak[name] = max(peak[name], hwm_bytes())
            reset_hwm()

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    part_bytes = 0
    trace = []
    t = time.perf_counter()
    with dask.config.set(scheduler="synchronous"):
        for i in range(ddf.npartitions):
            part = ddf.partitions[i].compute()
            part_bytes = max(part_bytes, int(part.memory_usage(deep=True).sum()))
            phase_end("compute")
            if write is not None:
                write(part, os.path.join(out, f"part-{i:05d}.parquet"))
                phase_end("write")
            del part
            gc.collect()  # xarray/dask leave reference cycles that would hold the last blocks
            trace.append(proc.memory_info().rss - base)
    elapsed = time.perf_counter() - t
    stop.set()
    th.join()
    if not exact:
        peak = {"compute": sampled["rss"], "write": base}
    chunk = ds["lai"].encoding.get("chunks") or ds["lai"].data.chunksize
    chunk_bytes = int(np.prod(chunk)) * 4
    print(json.dumps(dict(base=base, peak=max(peak.values()), exact=exact, sampled=sampled["rss"],
                          peak_compute=peak["compute"], peak_write=peak["write"],
                          partitions=ddf.npartitions, part_bytes=part_bytes,
                          chunk_bytes=chunk_bytes, nvalid=nvalid, seconds=elapsed,
                          after_each=[round(x / 2**20, 1) for x in trace], tuned=tuned,
                          arrow_pool=pa.default_memory_pool().backend_name)))


def _clean_env(extra: dict) -> dict:
    tuned = ("MALLOC_MMAP_THRESHOLD_", "ARROW_DEFAULT_MEMORY_POOL", "GLIBC_TUNABLES")
    return {**{k: v for k, v in os.environ.items() if k not in tuned}, **extra}


def run_child(store: Path, out: Path, mode: str, tune: bool, extra: dict) -> dict:
    """One streamed run in a fresh process (see :func:`_child`); its JSON figures."""
    shutil.rmtree(out, ignore_errors=True)
    res = subprocess.run([sys.executable, __file__, "--child", str(store), str(out), mode, "tune" if tune else "plain"],
                         check=True, capture_output=True, text=True, env=_clean_env(extra))
    shutil.rmtree(out, ignore_errors=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def memory(years: int, workdir: Path) -> None:
    store = workdir / "stack.zarr"
    t = time.perf_counter()
    nt, nvalid = write_stack(store, years)
    print(f"(stack written in {time.perf_counter() - t:.0f} s)")
    mib = 2**20
    # glibc raises its mmap threshold after freeing a large block, after which freed multi-MiB
    # buffers stay in the heap (RSS creeps up although nothing is alive); pyarrow's mimalloc/jemalloc
    # pool likewise keeps freed memory. pipeline.runtime.tune_allocators (called by terrascale's
    # main) pins the threshold with mallopt and switches pyarrow to the system pool; the env run
    # checks that this has the effect of the same settings made through the environment.
    env_tuned = {"MALLOC_MMAP_THRESHOLD_": "262144", "ARROW_DEFAULT_MEMORY_POOL": "system"}
    runs = [
        ("flatten", "as terrascale: pipeline.runtime.tune_allocators()", True, {}),
        ("parquet", "as terrascale: pipeline.runtime.tune_allocators()", True, {}),
        ("flatten", "default allocators", False, {}),
        ("parquet", "default allocators", False, {}),
        ("parquet", "tuned through the environment " + " ".join(f"{k}={v}" for k, v in env_tuned.items()), False, env_tuned),
        ("to_parquet", "as terrascale: pipeline.runtime.tune_allocators()", True, {}),
    ]
    whats = {"flatten": "flatten only (partitions computed and dropped)",
             "parquet": "flatten + Parquet write_partition (the terrascale features writer)",
             "to_parquet": "flatten + pandas to_parquet (the former writer, for comparison)"}
    for mode, env_name, tune, extra in runs:
        r = run_child(store, workdir / "parquet", mode, tune, extra)
        rise = r["peak"] - r["base"]
        read = 2 * r["chunk_bytes"]  # one chunk of each of the two variables per partition
        bound = 2 * read + r["part_bytes"]
        steps = r["after_each"]
        print(f"[{whats[mode]}; {env_name}] {r['partitions']} partitions of {r['nvalid']:,} rows in {r['seconds']:.0f} s"
              f" (mmap threshold pinned: {(r['tuned'] or {}).get('mmap_threshold') or 'no (by mallopt)'}; "
              f"arrow pool: {r['arrow_pool']})")
        print(f"  one chunk: {r['chunk_bytes'] / mib:.1f} MiB per variable, {read / mib:.1f} MiB for both; "
              f"output partition: {r['part_bytes'] / mib:.1f} MiB; bound 2 x chunk + partition = {bound / mib:.1f} MiB")
        print(f"  RSS above baseline after partition 1, 2, n/2, n: {steps[0]}, {steps[min(1, len(steps) - 1)]}, "
              f"{steps[len(steps) // 2]}, {steps[-1]} MiB")
        how = ("exact: kernel high-water mark VmHWM, reset after the baseline" if r["exact"]
               else "sampled every 5 ms, may miss short spikes")
        print(f"  peak RSS above baseline ({how}; sampled every 5 ms: {(r['sampled'] - r['base']) / mib:.1f} MiB)")
        if mode != "flatten" and r["exact"]:
            print(f"    while computing a partition: {(r['peak_compute'] - r['base']) / mib:.1f} MiB, "
                  f"while writing one: {(r['peak_write'] - r['base']) / mib:.1f} MiB")
        print(f"  peak RSS above baseline: {rise / mib:.1f} MiB = {rise / bound:.2f} x the bound "
              f"({'within' if rise <= bound else 'ABOVE'}; baseline {r['base'] / mib:.0f} MiB)")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5] == "tune")
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--months", type=int, default=12, help="months in the throughput stack")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--years", type=int, default=20, help="years in the memory stack (0: skip)")
    ap.add_argument("--workdir", type=Path, default=None, help="scratch directory (default: a temp dir, removed)")
    args = ap.parse_args()
    throughput(args.months, args.repeat)
    if args.years:
        work = args.workdir or Path(tempfile.mkdtemp(prefix="terrascale-bench-"))
        try:
            memory(args.years, work)
        finally:
            if args.workdir is None:
                shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
