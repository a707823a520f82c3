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

from pipeline.cli.common import check_output, console, history, spec_paths
from pipeline.errors import ConfigError, InputDataError


def _parse_classes(text: Optional[str]):
    if text is None:
        return None
    try:
        return [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise ConfigError(f"--classes must be comma-separated integer codes, got {text!r}") from None


def aggregate(
    input: str = typer.Argument(..., help="NetCDF file or Zarr store with the fine field"),  # noqa: A002
    var: str = typer.Option(..., "--var", "-v", help="variable to aggregate"),
    grid: Optional[str] = typer.Option(None, "--grid", "-g", help="target grid: 1deg, 0.25deg, F128, O96, N128, tl255, file:grid.nc"),
    method: str = typer.Option("mean", "--method", "-m", help="mean | fractions | majority | std"),
    weights: Optional[Path] = typer.Option(None, "--weights", "-w", help="SCRIP/ESMF weights file (e.g. from cdo gencon) instead of --grid"),
    output: Path = typer.Option(..., "-o", "--output", help="output .nc or .zarr"),
    classes: Optional[str] = typer.Option(None, "--classes", help="class codes, e.g. 1,2,3,4,5 (fractions/majority; default: flag_values)"),
    missing: Optional[str] = typer.Option(None, "--missing", help="class codes meaning no data (default: _FillValue)"),
    crosswalk: Optional[Path] = typer.Option(None, "--crosswalk", help="CSV class -> PFT table (fractions): first column class, one column per PFT"),
    min_valid_fraction: float = typer.Option(0.0, help="mean/std: mask target cells whose valid area is a smaller fraction (0..1) of the cell"),
    engine: str = typer.Option("auto", help="auto | numpy | numba | cupy"),
    chunk_rows: Optional[int] = typer.Option(None, min=1, help="source rows per streamed chunk (default: ~32 M values)"),
    gaussian_bounds: str = typer.Option("midpoints", help="Gaussian cell bounds: midpoints | weights | cdo"),
) -> None:
    """Aggregate a fine field onto an ESM grid (conservative mean, class fractions, majority, sub-grid std)."""
    from pipeline import aggregate as agg
    from pipeline.aggregate import METHODS
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
    da = ds[var]
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
            res = agg.class_fractions(da, target, classes=_parse_classes(classes), missing=miss,
                                      crosswalk=crosswalk, **common)
        else:
            res = agg.majority_class(da, target, classes=_parse_classes(classes), missing=miss, **common)
    dt = time.perf_counter() - t0
    out_grid = target if target is not None else (w.dst_grid if w is not None else None)
    out = agg.to_dataset(res, grid=out_grid)
    if method == "fractions" and "valid_fraction" in out.coords:
        out = out.reset_coords("valid_fraction")
    write(out, output, history=history())
    gname = out_grid.name if out_grid is not None else f"weights {weights}"
    console.print(f"[green]OK[/green] {escape(str(input))}:{escape(var)} -> {escape(gname)} ({method}) in {dt:.2f} s: "
                  f"{escape(str(output))}")


def weights(
    src: str = typer.Argument(..., help="source grid spec (e.g. 0.05deg) or file:grid.nc"),
    dst: str = typer.Argument(..., help="destination grid spec (e.g. N128, tl255, 1deg)"),
    output: Path = typer.Option(..., "-o", "--output", help="weights file (.nc)"),
    fmt: str = typer.Option("scrip", "--format", help="scrip (CDO: cdo remap,GRID,weights.nc) | esmf"),
    gaussian_bounds: str = typer.Option("midpoints", help="Gaussian cell bounds: midpoints | weights | cdo"),
) -> None:
    """Compute exact conservative weights between two grids and write them as a SCRIP or ESMF file."""
    from pipeline.grids import parse_grid
    from pipeline.weights import compute_weights, write_weights

    if fmt not in ("scrip", "esmf"):
        raise ConfigError(f"--format {fmt!r}: use scrip or esmf")
    check_output(output, inputs=spec_paths(src, dst))
    s, d = parse_grid(src, gaussian_bounds=gaussian_bounds), parse_grid(dst, gaussian_bounds=gaussian_bounds)
    t0 = time.perf_counter()
    w = compute_weights(s, d)
    sp = w.to_sparse()
    write_weights(w, output, format=fmt, history=history())
    console.print(f"[green]OK[/green] {escape(s.describe())} -> {escape(d.describe())}: {sp.src.size} links, "
                  f"{time.perf_counter() - t0:.2f} s, written to {escape(str(output))} ({fmt.upper()})")


def grids(
    write_grid: Optional[str] = typer.Option(None, "--write", help="write this grid spec as a SCRIP grid file (-o)"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="SCRIP grid file for --write"),
) -> None:
    """List the named ESM grids with their sizes (or write one as a SCRIP grid file for CDO)."""
    from pipeline.grids import list_grids, parse_grid, write_scrip

    if write_grid is not None:
        if output is None:
            raise ConfigError("--write needs -o FILE.nc")
        check_output(output, inputs=spec_paths(write_grid))
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
