"""``terrascale train CONFIG``: fit the config's models on the feature table and print a summary.

The models are fitted in-process (no dask cluster is started here): the cluster path, used by
XGBoost only, comes with ``terrascale run``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def train_command(
    config: Path = typer.Argument(..., help="YAML run config"),
    set_: Optional[list[str]] = typer.Option(None, "--set", help="override, e.g. --set training.max_epochs=5"),
    task: str = typer.Option("lai", "--task", help="the task to train (lai; lulc comes with `terrascale run`)"),
    model: Optional[list[str]] = typer.Option(None, "--model", help="train only this config entry (repeatable)"),
) -> None:
    """Fit the config's models on <run_dir>/features and save them in <run_dir>/models/<task>."""
    from pipeline.config import load_config
    from pipeline.train import train_models

    console = Console()
    cfg = load_config(config, set_)
    with console.status(f"training the {task} models", spinner="dots"):
        results = train_models(cfg, task=task, models=model or None,
                               notify=lambda msg: console.print(f"[dim]·[/dim] {escape(msg)}"))
    table = Table(title=f"{task} models → {Path(cfg.run_dir) / 'models' / task}")
    for col in ("model", "kind", "family", "rows", "valid rows", "fit s", "valid RMSE" if task == "lai" else "valid log loss"):
        table.add_column(col, justify="left" if col in ("model", "kind", "family") else "right")
    for r in results:
        rmse = "-" if r["valid_score"] is None else f"{r['valid_score']:.4g}"
        table.add_row(escape(r["name"]), r["kind"], r["family"], f"{r['rows']:,}", f"{r['valid_rows']:,}",
                      f"{r['fit_seconds']:.2f}", rmse)
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the ``train`` command to the terrascale app."""
    app.command("train")(train_command)
