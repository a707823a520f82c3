"""``terrascale info``, ``validate`` and ``config``: look at the installation, an input file or a config."""

from __future__ import annotations

import sys
import warnings
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
    max_nan_fraction: float = typer.Option(1.0, help="fail when a variable has more NaN than this fraction (0..1)"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="write the harmonised copy (.nc or .zarr)"),
    allow_missing_chunks: bool = typer.Option(
        False, "--allow-missing-chunks",
        help="read the missing chunks of a Zarr store as fill values (with -o: write a complete copy)"),
) -> None:
    """Check an input file: coordinates, bounds, units, value ranges, NaN fraction; optionally harmonise it."""
    from pipeline.io import check_max_nan_fraction, open_dataset, validate_dataset, write
    from pipeline.io.integrity import IncompleteStoreWarning, missing_chunks

    check_max_nan_fraction(max_nan_fraction)  # before any file is opened
    if output is not None:
        check_output(output, inputs=[path])
    with warnings.catch_warnings(record=True) as caught:  # a store's missing chunks become note lines
        warnings.simplefilter("always", IncompleteStoreWarning)
        ds = open_dataset(path, missing_chunks="allow" if allow_missing_chunks else "auto")
    incomplete = [str(w.message) for w in caught if issubclass(w.category, IncompleteStoreWarning)]
    for w in caught:
        if not issubclass(w.category, IncompleteStoreWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    result = validate_dataset(ds, source=path, variables=var, max_nan_fraction=max_nan_fraction)
    result.notes += incomplete
    if allow_missing_chunks and Path(path).is_dir():
        for name, (count, first) in missing_chunks(path).items():
            result.notes.append(f"variable '{name}': {count} missing chunk(s) read as fill values ({', '.join(first)}"
                                + (", ..." if count > len(first) else "") + ")")
    table = Table(title=f"validate {escape(path)}")
    for col in ("variable", "dims", "units", "min", "max", "NaN %"):
        table.add_column(col)
    for row in result.summary:
        table.add_row(*(escape(str(row[k])) for k in ("variable", "dims", "units", "min", "max", "nan_percent")))
    console.print(table)
    for note in result.notes:
        console.print(f"[yellow]note:[/yellow] {escape(note)}")
    result.raise_if_problems()
    if output is not None:
        write(result.dataset, output, history=history())
        console.print(f"harmonised copy written to {escape(str(output))}")
    console.print(f"[green]OK[/green] {escape(path)}: {len(result.summary)} variable(s) checked")


def show_config(
    config: Path = typer.Argument(..., help="YAML run config"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="override, e.g. --set seed=1 --set data.region=europe"),
) -> None:
    """Validate a run config and print it resolved (every default filled in) with its sha256."""
    from pipeline.config import config_sha256, dump_config, load_config
    from pipeline.errors import ConfigError

    if config.is_dir():  # before load_config, which would call a directory a missing file
        raise ConfigError(f"{config} is a directory, not a config file; pass the path of a YAML config such as "
                          "configs/demo.yaml")
    cfg = load_config(config, set_)
    from pipeline.datasets import check_config

    # the checks the later stages run (region, years, grids, backend, crosswalk), reported now
    check_config(cfg, source=str(config))
    sys.stdout.write(dump_config(cfg))
    sys.stdout.write(f"# sha256: {config_sha256(cfg)}\n")


def register(app: typer.Typer) -> None:
    """Add ``info``, ``validate`` and ``config`` to the terrascale app."""
    app.command("info")(info)
    app.command("validate")(validate)
    app.command("config")(show_config)
