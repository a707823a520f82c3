"""``terrascale data``: list the embedded sample data and write the demo stores."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

data_app = typer.Typer(help="Embedded sample data: real rasters and the semi-synthetic demo generator.",
                       no_args_is_help=True)


def _size(path: Path) -> str:
    n = path.stat().st_size
    return f"{n / 1e6:.1f} MB"


@data_app.command("list")
def list_data() -> None:
    """What sample data exists: real rasters (source, size, licence), regions and scenarios."""
    from pipeline.datasets.regions import REGIONS
    from pipeline.datasets.sources import SOURCES
    from pipeline.datasets.synthetic import SCENARIOS
    from pipeline.errors import InputDataError, MissingDependencyError

    console = Console(width=160)
    t = Table(title="Real rasters (read from their registry packages)")
    for col in ("key", "title", "grid", "file size", "licence", "package", "citation"):
        t.add_column(col, overflow="fold")
    for s in SOURCES.values():
        try:
            size = _size(s.path())
        except (MissingDependencyError, InputDataError):
            size = f"missing: pip install {s.package}"
        t.add_row(s.key, s.title, f"{s.shape[0]}x{s.shape[1]} ({s.resolution})", size, s.licence, s.package, s.citation)
    console.print(t)
    r = Table(title="Regions (--region NAME or 'south,north,west,east')")
    for col in ("name", "south", "north", "west", "east", "cells at 0.05°", "description"):
        r.add_column(col)
    for reg in REGIONS.values():
        n = round((reg.north - reg.south) * 20) * round((reg.east - reg.west) * 20)
        r.add_row(reg.name, f"{reg.south:g}", f"{reg.north:g}", f"{reg.west:g}", f"{reg.east:g}", f"{n:,}", reg.description)
    console.print(r)
    s = Table(title="Synthetic scenarios (historical 1950-2020 shared, then diverging to 2100)")
    for col in ("name", "extra warming 2021-2100 (K)", "cropland trend to 2100", "description"):
        s.add_column(col)
    for sc in SCENARIOS.values():
        s.add_row(sc.name, f"{sc.warming:+.1f}", f"{sc.crop_trend:+.0%}", sc.description)
    console.print(s)
    console.print("Generated stores (terrascale data demo): static.zarr (0.05°), lulc_coarse.zarr (0.25°), "
                  "climate.zarr (1°), lai.zarr (0.05°); generated variables carry synthetic='yes'.")


@data_app.command("demo")
def demo(
    region: str = typer.Option("iberia", "--region", "-r", help="region name or 'south,north,west,east'"),
    years: str = typer.Option("2011:2030", "--years", "-y", help="inclusive years A:B within 1950:2100"),
    out: Path = typer.Option(Path("demo-data"), "--out", "-o",
                             help="output directory of the four Zarr stores: new, empty, or an earlier demo output "
                                  "(replaced as a whole, in one rename)"),
    seed: int = typer.Option(0, "--seed", help="seed of the synthetic fields (a whole number >= 0)"),
    scenarios: str = typer.Option("ssp126,ssp585", "--scenarios", help="comma-separated scenario names"),
    lulc_res: float = typer.Option(0.25, "--lulc-res", help="land-use grid resolution (degrees)"),
    climate_res: float = typer.Option(1.0, "--climate-res", help="climate grid resolution (degrees)"),
    class_table: Optional[Path] = typer.Option(None, "--class-table", help="replacement IGBP class table CSV"),
) -> None:
    """Write the demo Zarr stores (static, lulc_coarse, climate, lai) for a region and years.

    Every option and the class table are checked before anything is written; the four stores are
    written together into a temporary directory that replaces --out in one rename, so an
    interrupted or failed run leaves the earlier stores as they were.
    """
    from pipeline.cli import interrupts
    from pipeline.datasets.demo import write_demo_stores
    from pipeline.io import expect_output, store_size

    console = Console()
    t0 = time.perf_counter()
    if interrupts.is_installed():  # named by the message of an interrupt of the console script
        expect_output(out)
    paths = write_demo_stores(out, region=region, years=years, scenarios=scenarios, seed=seed,
                              lulc_res=lulc_res, climate_res=climate_res, class_table=class_table,
                              progress=lambda msg: console.print(f"[dim]·[/dim] {msg}"))
    for name, p in paths.items():
        console.print(f"{name:12s} {escape(str(p))}  ({store_size(p) / 1e6:.1f} MB)")
    console.print(f"wrote {len(paths)} stores in {time.perf_counter() - t0:.1f} s")


def register(app: typer.Typer) -> None:
    """Add the ``data`` command group to the terrascale app."""
    app.add_typer(data_app, name="data")
