"""The ``terrascale`` app: the command group, its error handling and the console-script entry point.

Errors a user can cause (:class:`~pipeline.errors.TerrascaleError`) are printed as one red line
and exit with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import typer
from rich.markup import escape
from typer.core import TyperGroup

from pipeline import __version__
from pipeline.cli import aggregate, catalog, data, features, inspect, models, run, train
from pipeline.cli.common import console, err_console
from pipeline.errors import TerrascaleError


class UserErrorGroup(TyperGroup):
    """A command group that turns a :class:`TerrascaleError` into one red line and exit 2."""

    def invoke(self, ctx):
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


def _version(value: bool) -> None:
    if value:
        console.print(f"terrascale {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """terrascale: land-use/land-cover and LAI fields for Earth system models."""


# Every command module registers its commands the same way: a ``register(app)`` function.
for _module in (inspect, data, features, aggregate, models, train, run, catalog):
    _module.register(app)


def main() -> None:
    """Run the app as the ``terrascale`` process (called by the console script :func:`pipeline.cli.main`).

    Applies the process-wide allocator settings first (:func:`pipeline.runtime.tune_allocators`:
    glibc's mmap threshold pinned, pyarrow's system pool), so that streaming stages such as
    ``features`` return each partition's buffers to the OS instead of creeping up; importing
    the library does not do this, only the application. The interrupt handlers are installed
    earlier, by :func:`pipeline.cli.main`, before this module's imports.
    """
    from pipeline.runtime import tune_allocators

    tune_allocators()
    app()


if __name__ == "__main__":
    from pipeline.cli import interrupts

    interrupts.install()
    main()
