"""CLI commands of the aggregation stage: ``aggregate``, ``weights`` and ``grids``.

Registered on the main typer app by :func:`register` (see :mod:`pipeline.cli.root`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from pipeline.cli.common import check_output, console, err_console, history, spec_paths
from pipeline.errors import ConfigError, InputDataError


def _parse_classes(text: Optional[str]):
    if text is None:
        return None
    try:
        return [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise ConfigError(f"--classes must be comma-separated integer codes, got {text!r}") from None


def _pre_check_memory(grid: str, da, method: str, classes) -> None:
    """Refuse a target grid whose accumulators cannot fit, before the grid is built (Gaussian N: minutes of CPU)."""
    import numpy as np

    from pipeline.aggregate.plan import TARGET_CELL_BYTES
    from pipeline.aggregate.select import grid_dims
    from pipeline.grids import check_grid_memory

    lat, lon = grid_dims(da)
    if method in ("fractions", "majority"):
        fv = da.attrs.get("flag_values")
        width, n = (len(classes) if classes else (np.size(fv) if fv is not None else 1)) + 1, 1
    else:
        width = int(np.prod([da.sizes[d] for d in da.dims if d not in (lat, lon)], dtype=np.float64))
        n = 2 if method == "mean" else 5
    check_grid_memory(grid, width * (2 * n + 1) * 8 + TARGET_CELL_BYTES, f"aggregating {da.name} onto {grid}",
                      fix="choose a coarser target grid or a smaller region"
                      + ("" if method in ("fractions", "majority") else ", or select fewer fields (--select DIM=VALUE)"))


def _all_empty(res, method: str) -> bool:
    """Whether every target cell of an aggregation result is empty (NaN, or -1 for majority)."""
    import numpy as np
    import xarray as xr

    if isinstance(res, xr.Dataset):
        return all(_all_empty(v, method) for v in res.data_vars.values())
    values = np.asarray(res.values)
    if method == "majority":
        return not bool((values >= 0).any())
    return not bool(np.isfinite(values).any())


def aggregate(
    input: str = typer.Argument(..., help="NetCDF file or Zarr store with the fine field"),  # noqa: A002
    var: str = typer.Option(..., "--var", "-v", help="variable to aggregate"),
    grid: Optional[str] = typer.Option(None, "--grid", "-g", help="target grid: 1deg, 0.25deg, F128, O96, N128, tl255, file:grid.nc"),
    method: str = typer.Option("mean", "--method", "-m", help="mean | fractions | majority | std"),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="SCRIP/ESMF weights file (e.g. from cdo gencon) instead of --grid"),
    output: Path = typer.Option(..., "-o", "--output", help="output .nc or .zarr"),
    select: Optional[list[str]] = typer.Option(
        None, "--select", "-s",
        help="one field of a variable with extra dimensions, repeatable: DIM=VALUE (a coordinate value: "
             "time=2019-01-01, scenario=ssp126, level=850) or 'DIM\\[i]' (position i from 0)"),
    classes: Optional[str] = typer.Option(None, "--classes", help="class codes, e.g. 1,2,3,4,5 (fractions/majority; default: flag_values)"),
    missing: Optional[str] = typer.Option(None, "--missing", help="class codes meaning no data (default: _FillValue)"),
    crosswalk: Optional[Path] = typer.Option(None, "--crosswalk", help="CSV class -> PFT table (fractions): first column class, one column per PFT"),
    min_valid_fraction: float = typer.Option(0.0, help="mean/std: mask target cells whose valid area is a smaller fraction (0..1) of the cell"),
    engine: str = typer.Option("auto", help="auto | numpy | numba | cupy"),
    chunk_rows: Optional[int] = typer.Option(None, min=1, help="source rows per streamed chunk (default: ~32 M values)"),
    gaussian_bounds: str = typer.Option("midpoints", help="Gaussian cell bounds: midpoints | weights | cdo"),
    global_output: bool = typer.Option(
        False, "--global", help="write the whole target grid; default: only the target cells that overlap the input"),
    compression_level: int = typer.Option(4, "--compression-level", min=0, max=9,
                                          help="zlib level of a NetCDF output (0: uncompressed)"),
) -> None:
    """Aggregate a fine field onto an ESM grid (conservative mean, class fractions, majority, sub-grid std).

    Extra dimensions (time ...) are kept by mean/std; pick one field with --select time=2019-01-01.
    A regional input gives the target cells that overlap it (--global: the whole grid); NetCDF
    outputs are compressed (zlib + shuffle).
    """
    from pipeline import aggregate as agg
    from pipeline.aggregate import METHODS, extra_dims, select_fields
    from pipeline.aggregate.select import example_selection
    from pipeline.grids import parse_grid
    from pipeline.io import open_dataset, write
    from pipeline.weights import read_weights

    if method not in METHODS:
        raise ConfigError(f"--method {method!r} is not one of {', '.join(METHODS)}")
    if (grid is None) == (weights is None):
        raise ConfigError("give exactly one of --grid SPEC or --weights FILE")
    check_output(output, inputs=[input, weights, crosswalk, *spec_paths(grid)])
    ds = open_dataset(input)
    if var not in ds.data_vars:
        raise InputDataError(f"{input} has no variable {var!r}; its variables are {', '.join(map(str, ds.data_vars))}")
    da, selected = select_fields(ds[var], select, source=str(input))
    class_list = _parse_classes(classes)
    if method in ("mean", "std"):
        agg.refuse_categorical(da, str(input))
    else:
        extra = extra_dims(da)
        if extra:
            sizes = ", ".join(f"{d} ({da.sizes[d]} values)" for d in extra)
            raise ConfigError(f"{var} of {input} has the extra dimension(s) {sizes}; --method {method} aggregates one "
                              f"class map at a time: add " + " ".join(f"--select {example_selection(da, d)}" for d in extra)
                              + " (a coordinate value, or 'DIM[i]' for position i)")
    if grid:
        _pre_check_memory(grid, da, method, class_list)
    target = parse_grid(grid, gaussian_bounds=gaussian_bounds) if grid else None
    w = read_weights(weights) if weights else None
    common = dict(weights=w, engine=engine, chunk_rows=chunk_rows, name=str(input))
    t0 = time.perf_counter()
    if method == "mean":
        res = agg.conservative_mean(da, target, min_valid_fraction=min_valid_fraction, **common)
    elif method == "std":
        res = agg.subgrid_stats(da, target, stats=("mean", "std", "min", "max"), min_valid_fraction=min_valid_fraction,
                                **common)
    else:
        miss = _parse_classes(missing)
        if method == "fractions":
            res = agg.class_fractions(da, target, classes=class_list, missing=miss, crosswalk=crosswalk, **common)
        else:
            res = agg.majority_class(da, target, classes=class_list, missing=miss, **common)
    dt = time.perf_counter() - t0
    empty = _all_empty(res, method)
    # the selected positions stay on the output as scalar coordinates: it says which field it holds
    res = res.assign_coords({d: c for d, c in selected.items() if c is not None})
    out_grid = target if target is not None else (w.dst_grid if w is not None else None)
    out = agg.to_dataset(res, grid=out_grid)
    if method == "fractions" and "valid_fraction" in out.coords:
        out = out.reset_coords("valid_fraction")
    cropped = ""
    if not global_output and out_grid is not None:
        out, cropped = _crop(out, out_grid, da, str(input))
    write(out, output, history=history(), compression_level=compression_level)
    gname = out_grid.name if out_grid is not None else f"weights {weights}"
    if empty:
        err_console.print(f"[yellow]warning:[/yellow] every cell of the output is empty: {escape(var)} of "
                          f"{escape(str(input))} has no valid value over the target grid (all NaN or no-data codes, "
                          "or no overlap); the output was written anyway", highlight=False, soft_wrap=True)
    console.print(f"[green]OK[/green] {escape(str(input))}:{escape(var)} -> {escape(gname)} ({method}{cropped}) in "
                  f"{dt:.2f} s: {escape(str(output))}")


def _crop(out, grid, da, source: str):
    """``out`` cut to the target cells that overlap the input, and a note for the summary line.

    The whole grid is kept when the input has no lat/lon coordinates to place it (weights that
    index it as stored) or overlaps no target cell (the empty-output warning says so).
    """
    from pipeline.aggregate import crop_to_source, overlap_cells, source_edges

    try:
        edges = source_edges(da, name=source)
    except InputDataError:
        return out, ""
    index = overlap_cells(grid, *edges)
    if any(ix.size == 0 for ix in index.values()):
        return out, ""
    res = crop_to_source(out, grid, *edges)
    if res is out:
        return out, ""
    kept = " x ".join(str(ix.size) for ix in index.values())
    return res, f", regional: {kept} of {' x '.join(map(str, grid.shape))} cells; --global for all"


def weights(
    src: str = typer.Argument(..., help="source grid spec (e.g. 0.05deg) or file:grid.nc"),
    dst: str = typer.Argument(..., help="destination grid spec (e.g. N128, tl255, 1deg)"),
    output: Path = typer.Option(..., "-o", "--output", help="weights file (.nc)"),
    fmt: str = typer.Option("scrip", "--format", help="scrip (CDO: cdo remap,GRID,weights.nc) | esmf"),
    gaussian_bounds: str = typer.Option("midpoints", help="Gaussian cell bounds: midpoints | weights | cdo"),
) -> None:
    """Compute exact conservative weights between two grids and write them as a SCRIP or ESMF file (.nc)."""
    from pipeline.grids import check_memory, check_netcdf_suffix, grid_shape, parse_grid
    from pipeline.weights import compute_weights, write_weights
    from pipeline.weights.files import LINK_BYTES, WEIGHTS_BYTES_PER_CELL

    if fmt not in ("scrip", "esmf"):
        raise ConfigError(f"--format {fmt!r}: use scrip or esmf")
    check_netcdf_suffix(output, "SCRIP and ESMF weight files")
    check_output(output, inputs=spec_paths(src, dst))
    # before the grids are built: a Gaussian grid of a huge N costs minutes of CPU before any array
    n_src, n_dst = grid_shape(src)[1], grid_shape(dst)[1]
    check_memory(float(n_src + n_dst) * WEIGHTS_BYTES_PER_CELL + float(max(n_src, n_dst)) * LINK_BYTES,
                 f"weights {src} -> {dst} ({n_src:,} + {n_dst:,} cells)", "choose coarser grids or a smaller region")
    s, d = parse_grid(src, gaussian_bounds=gaussian_bounds), parse_grid(dst, gaussian_bounds=gaussian_bounds)
    t0 = time.perf_counter()
    w = compute_weights(s, d)
    write_weights(w, output, format=fmt, history=history())
    console.print(f"[green]OK[/green] {escape(s.describe())} -> {escape(d.describe())}: {w.n_links} links, "
                  f"{time.perf_counter() - t0:.2f} s, written to {escape(str(output))} ({fmt.upper()})")


def grids(
    write_grid: Optional[str] = typer.Option(None, "--write", help="write this grid spec as a SCRIP grid file (-o)"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="SCRIP grid file (.nc) for --write"),
) -> None:
    """List the named ESM grids with their sizes (or write one as a SCRIP grid file for CDO)."""
    from pipeline.grids import (
        SCRIP_BYTES_PER_CELL,
        check_grid_memory,
        check_netcdf_suffix,
        list_grids,
        parse_grid,
        write_scrip,
    )

    if write_grid is not None:
        if output is None:
            raise ConfigError("--write needs -o FILE.nc")
        check_netcdf_suffix(output, "SCRIP grid files")
        check_output(output, inputs=spec_paths(write_grid))
        check_grid_memory(write_grid, SCRIP_BYTES_PER_CELL, f"writing grid {write_grid}")  # before building it
        g = parse_grid(write_grid)
        write_scrip(g, output)
        console.print(f"[green]OK[/green] {escape(g.describe())} written to {escape(str(output))} "
                      f"(use: cdo remapcon,{escape(str(output))} in.nc out.nc)")
        return
    table = Table(title="named grids (any 'Xdeg', 'F<N>', 'O<N>', 'N<N>' with a shipped list, 'file:grid.nc' also work)")
    for col in ("name", "spec", "rows", "cells", "description"):
        table.add_column(col)
    for row in list_grids():
        table.add_row(row["name"], row["spec"], str(row["rows"]), f"{row['cells']:,}", escape(row["description"]))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the aggregation commands to the main app."""
    app.command("aggregate")(aggregate)
    app.command("weights")(weights)
    app.command("grids")(grids)
