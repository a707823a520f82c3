"""``terrascale features CONFIG``: build the training table and print its summary."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from pipeline.cli.common import human_bytes


def features_command(
    config: Path = typer.Argument(..., help="YAML run config"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="override, e.g. --set splits.kind=spatial"),
) -> None:
    """Flatten the inputs into the training table (Parquet, partitioned) in <run_dir>/features."""
    from pipeline.config import load_config
    from pipeline.features import run_features
    from pipeline.io import store_size

    console = Console()
    cfg = load_config(config, set_)
    with console.status("building the feature table", spinner="dots") as status:
        def progress(done: int, total: int) -> None:
            status.update(f"building the feature table: partition {done}/{total}")

        meta = run_features(cfg, progress=progress if console.is_terminal else None,
                            notify=lambda msg: console.print(f"[dim]·[/dim] {escape(msg)}"))
    ncol = len(meta["columns"])
    console.print(f"[bold]features[/bold] → {meta['path']}  (backend {meta['backend']})")
    console.print(
        f"shape: {meta['rows']:,} rows x {ncol} columns "
        f"({meta['rows_before_missing_policy']:,} before the missing-value policy); "
        f"memory {human_bytes(meta['memory_bytes'])}, on disk {human_bytes(store_size(Path(meta['path'])))} "
        f"in {len(meta['partitions'])} Parquet partition(s)"
    )
    handled, kept, nkept = [], 0, 0
    for c, r in meta["missing"]["columns"].items():
        if not r["n_missing"]:
            continue
        if r["action"] == "keep":
            kept, nkept = kept + 1, nkept + r["n_missing"]
        elif r["action"] == "drop":
            handled.append(f"{c}: {r['n_missing']:,} rows dropped")
        else:
            handled.append(f"{c}: {r['n_missing']:,} filled with {r['action']} {r['value']:.4g}")
    if kept:
        handled.append(f"{kept} column(s) keep {nkept:,} NaN")
    if handled:
        console.print("missing values: " + "; ".join(handled))
    if meta["split_summary"]:
        s = meta["splits"]
        title = f"splits: {s['kind']}, blocks {s['block_size_deg']}°, {s['n_folds']} folds, test fold {s['test_fold']}"
        if s.get("buffer_deg"):
            title += f", buffer {s['buffer_deg']}°"
        if s.get("test_years") and s["kind"] != "spatial":
            title += f", test years {s['test_years'][0]}-{s['test_years'][1]}"
        table = Table(title=title)
        for col in ("split", "rows", "rows %", "cells", "area km²", "area %", "years"):
            table.add_column(col, justify="left" if col in ("split", "years") else "right")
        for r in meta["split_summary"]:
            table.add_row(r["split"], f"{r['rows']:,}", f"{100 * r['row_fraction']:.1f}", f"{r['cells']:,}",
                          f"{r['area_km2']:,.0f}", f"{100 * r['area_fraction']:.1f}", r["years"])
        console.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``features`` command to the terrascale app."""
    app.command("features")(features_command)
