"""The ``terrascale`` command line: thin, it parses, calls stage functions and prints.

Errors a user can cause (:class:`~pipeline.errors.TerrascaleError`) are printed as one red line
and exit with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup
from rich.table import Table

from pipeline import __version__
from pipeline.errors import TerrascaleError

err_console = Console(stderr=True)


class UserErrorGroup(TyperGroup):
    """A command group that turns a :class:`TerrascaleError` into one red line and exit 2."""

    def invoke(self, ctx):  # noqa: D102
        try:
            return super().invoke(ctx)
        except TerrascaleError as err:
            err_console.print(f"[bold red]error:[/bold red] {escape(str(err))}", highlight=False, soft_wrap=True)
            raise typer.Exit(err.exit_code) from None


app = typer.Typer(
    name="terrascale",
    cls=UserErrorGroup,
    help="LULC and LAI reconstruction, ML downscaling and aggregation onto Earth system model grids.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()


def _version(value: bool) -> None:
    if value:
        console.print(f"terrascale {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """terrascale: land-use/land-cover and LAI fields for Earth system models."""


@app.command()
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


@app.command()
def validate(
    path: str = typer.Argument(..., help="NetCDF file, glob of files, or Zarr store"),
    var: Optional[list[str]] = typer.Option(None, "--var", "-v", help="variable(s) to check; default all data variables"),
    max_nan_fraction: float = typer.Option(1.0, help="fail when a variable has more NaN than this fraction"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="write the harmonised copy (.nc or .zarr)"),
) -> None:
    """Check an input file: coordinates, bounds, units, value ranges, NaN fraction; optionally harmonise it."""
    from pipeline.io import open_dataset, write
    from pipeline.validate import validate_dataset

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
        write(result.dataset, output, history=f"terrascale validate {path} -o {output}")
        console.print(f"harmonised copy written to {output}")
    console.print(f"[green]OK[/green] {path}: {len(result.summary)} variable(s) checked")


@app.command("config")
def show_config(
    config: Path = typer.Argument(..., help="YAML run config"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="override, e.g. --set seed=1 --set data.region=europe"),
) -> None:
    """Validate a run config and print it resolved (every default filled in) with its sha256."""
    from pipeline.config import config_sha256, dump_config, load_config

    cfg = load_config(config, set_)
    sys.stdout.write(dump_config(cfg))
    sys.stdout.write(f"# sha256: {config_sha256(cfg)}\n")


# --- sub-apps ---
# Each stage registers its commands here (one line pair per module).
from pipeline.datasets.commands import data_app  # noqa: E402
app.add_typer(data_app, name="data")
from pipeline.features_commands import register as _reg_feat  # noqa: E402
_reg_feat(app)
from pipeline.aggregate_commands import register as _reg_agg  # noqa: E402
_reg_agg(app)
# --- end sub-apps ---


def main() -> None:
    """Console-script entry point.

    Applies the process-wide allocator settings first (:func:`pipeline.runtime.tune_allocators`:
    glibc's mmap threshold pinned, pyarrow's system pool), so that streaming stages such as
    ``features`` return each partition's buffers to the OS instead of creeping up; importing
    the library does not do this, only the application.
    """
    from pipeline.runtime import tune_allocators

    tune_allocators()
    app()


if __name__ == "__main__":
    main()
