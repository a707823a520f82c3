"""``terrascale info``, ``validate`` and ``config``: look at the installation, an input file or a config."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from pipeline import __version__
from pipeline.cli.common import check_output, console, history


def info(
    backend: str = typer.Option("auto", help="backend choice to resolve: auto, cpu or gpu"),
) -> None:
    """Show package versions, whether a GPU is usable, the backend a choice resolves to and cluster defaults."""
    from pipeline.info import collect_info

    report = collect_info(backend)
    table = Table(title=f"terrascale {__version__}", show_header=True)
    table.add_column("item")
    table.add_column("value")
    for key, value in report.items():
        table.add_row(key, escape(str(value)))
    console.print(table)


def validate(
    path: str = typer.Argument(..., help="NetCDF file, glob of files, or Zarr store"),
    var: Optional[list[str]] = typer.Option(None, "--var", "-v", help="variable(s) to check; default all data variables"),
    max_nan_fraction: float = typer.Option(1.0, help="fail when a variable has more NaN than this fraction"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="write the harmonised copy (.nc or .zarr)"),
) -> None:
    """Check an input file: coordinates, bounds, units, value ranges, NaN fraction; optionally harmonise it."""
    from pipeline.io import open_dataset, validate_dataset, write

    if output is not None:
        check_output(output, inputs=[path])
    ds = open_dataset(path)
    result = validate_dataset(ds, source=path, variables=var, max_nan_fraction=max_nan_fraction)
    table = Table(title=f"validate {path}")
    for col in ("variable", "dims", "units", "min", "max", "NaN %"):
        table.add_column(col)
    for row in result.summary:
        table.add_row(*(escape(str(row[k])) for k in ("variable", "dims", "units", "min", "max", "nan_percent")))
    console.print(table)
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    result.raise_if_problems()
    if output is not None:
        write(result.dataset, output, history=history())
        console.print(f"harmonised copy written to {output}")
    console.print(f"[green]OK[/green] {path}: {len(result.summary)} variable(s) checked")


def show_config(
    config: Path = typer.Argument(..., help="YAML run config"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="override, e.g. --set seed=1 --set data.region=europe"),
) -> None:
    """Validate a run config and print it resolved (every default filled in) with its sha256."""
    from pipeline.config import config_sha256, dump_config, load_config

    cfg = load_config(config, set_)
    sys.stdout.write(dump_config(cfg))
    sys.stdout.write(f"# sha256: {config_sha256(cfg)}\n")


def register(app: typer.Typer) -> None:
    """Add ``info``, ``validate`` and ``config`` to the terrascale app."""
    app.command("info")(info)
    app.command("validate")(validate)
    app.command("config")(show_config)
