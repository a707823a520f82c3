"""``terrascale models``: the model kinds a config's ``models:`` list may name."""

from __future__ import annotations

import json
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from pipeline.cli.common import console
from pipeline.errors import ConfigError

_TASKS = ("lulc", "lai")


def _params_text(params: dict) -> str:
    """Default parameters one per line, ``name: value`` (JSON values, so ``null`` and lists read as in YAML)."""
    if not params:
        return "-"
    return "\n".join(f"{k}: {json.dumps(v)}" for k, v in params.items())


def models(
    task: Optional[str] = typer.Option(None, "--task", help="only the models of this task: lulc or lai"),
) -> None:
    """List the model kinds: family, tasks, description and default parameters."""
    from pipeline.models import list_models

    if task is not None and task not in _TASKS:
        raise ConfigError(f"--task {task!r} is not one of {', '.join(_TASKS)}")
    rows = [r for r in list_models() if task is None or task in r["tasks"]]
    table = Table(title="terrascale models" + (f" ({task})" if task else ""), show_lines=True)
    for col in ("kind", "family", "tasks", "description", "default params"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(escape(r["kind"]), escape(r["family"]), escape(", ".join(r["tasks"])),
                      escape(r["description"]), escape(_params_text(r["params"])))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add ``models`` to the terrascale app."""
    app.command("models")(models)
