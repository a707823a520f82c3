"""``terrascale catalog list|show|compare|promote|export``: the catalogue of trained models."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from pipeline.cli.common import console, err_console

catalog_app = typer.Typer(
    name="catalog",
    help="The catalogue of trained models, indexed from the run manifests: list, show, compare, promote, export.",
    no_args_is_help=True,
)

_ROOT = typer.Option(None, "--root", help="output root holding the runs (default: the config's output.root, or runs)")
_CONFIG = typer.Option(None, "--config", "-c", help="a run config whose output.root is the default --root")
_JSON = typer.Option(False, "--json", help="print JSON instead of a table")


def _root(root: Optional[Path], config: Optional[Path]) -> Path:
    if root is not None:
        return Path(root)
    if config is not None:
        from pipeline.config import load_config

        return Path(load_config(config).output.root)
    return Path("runs")


def _fmt(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _print_json(data) -> None:
    sys.stdout.write(json.dumps(data, indent=1, default=str) + "\n")


def list_command(
    root: Optional[Path] = _ROOT,
    config: Optional[Path] = _CONFIG,
    task: Optional[str] = typer.Option(None, "--task", help="only this task's models (lulc or lai)"),
    stage: Optional[str] = typer.Option(None, "--stage", help="only models in this stage: candidate, production or "
                                        "archived"),
    as_json: bool = _JSON,
) -> None:
    """List the trained models of every run under the output root, with their stage."""
    from pipeline.catalog import STAGES, Registry, scan
    from pipeline.errors import ConfigError

    if stage is not None and stage not in STAGES:
        raise ConfigError(f"--stage {stage!r} is not one of {', '.join(STAGES)}")
    root = _root(root, config)
    catalog = scan(root)
    stages = Registry(root).stages()
    rows = [(e, stages.get(e.id, "candidate")) for e in catalog.entries
            if (task is None or e.task == task) and (stage is None or stages.get(e.id, "candidate") == stage)]
    for line in catalog.skipped:
        err_console.print(f"[dim]skipped {escape(line)}[/dim]", highlight=False, soft_wrap=True)
    if as_json:
        _print_json([dict(e.summary(), stage=s) for e, s in rows])
        return
    if not rows:
        console.print(f"no trained model under {escape(str(root))}"
                      + (" matching the filters" if catalog.entries else ""), highlight=False)
        return
    table = Table(title=f"terrascale catalogue ({escape(str(root))})",
                  caption="valid: validation score (RMSE for lai, log loss for lulc; lower is better)")
    for col in ("id", "kind", "family", "stage", "valid", "fit s", "created"):
        table.add_column(col, no_wrap=col not in ("kind", "family"), overflow="fold")
    for e, s in rows:
        style = {"production": "bold green", "archived": "dim"}.get(s, "")
        table.add_row(escape(e.id), escape(e.kind), escape(e.family), f"[{style}]{s}[/{style}]" if style else s,
                      _fmt(e.valid_score), _fmt(e.fit_seconds, 3), escape(e.created[:10]))
    console.print(table)


def show_command(
    ident: str = typer.Argument(..., metavar="ID", help="catalogue entry: RUN/TASK/MODEL"),
    root: Optional[Path] = _ROOT,
    config: Optional[Path] = _CONFIG,
    as_json: bool = _JSON,
) -> None:
    """Show one model: provenance, files (verified against the manifest), promotions and metrics."""
    from pipeline.catalog import Registry, find_entry, read_metrics, scan, verify_entry
    from pipeline.errors import InputDataError

    root = _root(root, config)
    entry = find_entry(scan(root), ident)
    registry = Registry(root)
    history = registry.history(entry.id)
    stage = history[-1].stage if history else "candidate"
    try:
        verify_entry(entry)
        verified = "ok"
    except InputDataError as err:
        verified = str(err)
    metrics = read_metrics(entry.run_dir, entry.task)
    metrics = metrics[metrics["model"] == entry.model]
    m = entry.manifest
    if as_json:
        _print_json(dict(entry.summary(), stage=stage, verified=verified, history=[h.to_dict() for h in history],
                         metrics=metrics.to_dict("records"), packages=m.get("packages"),
                         input_checksums=m.get("input_checksums"), train_stage=(m.get("stages") or {}).get(
                             f"train/{entry.task}")))
        return
    info = Table.grid(padding=(0, 2))
    info.add_column(style="bold")
    info.add_column(overflow="fold")
    train = (m.get("stages") or {}).get(f"train/{entry.task}") or {}
    for label, value in (
        ("entry", entry.id), ("stage", stage), ("kind", entry.kind), ("family", entry.family),
        ("model directory", str(entry.model_dir)), ("validation score", _fmt(entry.valid_score)),
        ("fit seconds", _fmt(entry.fit_seconds, 3)), ("model key", entry.key),
        ("train stage", f"{train.get('status', '-')}, {_fmt(train.get('wall_s'), 3)} s" if train else "-"),
        ("run created", entry.created or "-"), ("run updated", str(m.get("updated") or "-")),
        ("config", str(m.get("config_path") or "-")), ("config sha256", entry.config_sha256 or "-"),
        ("terrascale", str(m.get("terrascale_version") or "-")), ("git commit", str(m.get("git_commit") or "-")),
        ("backend", str(m.get("backend") or "-")), ("artefact", verified),
    ):
        info.add_row(escape(label), escape(value))
    console.print(info)
    files = Table(title="files")
    files.add_column("file", overflow="fold")
    files.add_column("sha256")
    for rel, sha in sorted(entry.files.items()):
        files.add_row(escape(rel), sha[:16] + "…")
    console.print(files)
    inputs = m.get("input_checksums")
    if isinstance(inputs, dict) and inputs:
        t = Table(title="input data")
        t.add_column("input")
        t.add_column("sha256")
        for name, sha in inputs.items():
            t.add_row(escape(str(name)), escape(str(sha)[:16]) + "…")
        console.print(t)
    if history:
        t = Table(title="promotions")
        for col in ("at", "by", "from", "to", "reason"):
            t.add_column(col, overflow="fold")
        for h in history:
            t.add_row(escape(h.at), escape(h.by), h.previous, h.stage, escape(h.reason))
        console.print(t)
    if not metrics.empty:
        t = Table(title="metrics")
        for col in ("split", "metric", "value", "interval"):
            t.add_column(col)
        for r in metrics.itertuples():
            t.add_row(escape(r.split), escape(r.metric), _fmt(r.value), f"[{_fmt(r.lo)}, {_fmt(r.hi)}]")
        console.print(t)
    else:
        console.print("[dim]no metrics (the run was not evaluated)[/dim]")


def compare_command(
    runs: list[str] = typer.Argument(..., metavar="RUN...", help="run names under --root (or run directories)"),
    root: Optional[Path] = _ROOT,
    config: Optional[Path] = _CONFIG,
    task: Optional[str] = typer.Option(None, "--task", help="only this task's metrics"),
    split: Optional[str] = typer.Option(None, "--split", help="only this split, e.g. 'test (truth)'"),
    metric: Optional[str] = typer.Option(None, "--metric", help="only this metric, e.g. rmse"),
    as_csv: bool = typer.Option(False, "--csv", help="print the long table as CSV (a run column added)"),
) -> None:
    """Print the metrics of several runs side by side: one row per task, split, metric and model."""
    from pipeline.catalog import compare_runs

    df = compare_runs(_root(root, config), runs, task=task, split=split, metric=metric)
    if as_csv:
        sys.stdout.write(df.to_csv(index=False))
        return
    names = list(dict.fromkeys(df["run"]))
    keys = ["task", "split", "metric", "model", "family"]
    cells: dict[tuple, dict[str, str]] = {}
    for r in df.itertuples(index=False):
        key = (r.task, r.split, r.metric, r.model, r.family)
        interval = "" if (isinstance(r.lo, float) and math.isnan(r.lo)) else f" [{_fmt(r.lo)}, {_fmt(r.hi)}]"
        cells.setdefault(key, {})[r.run] = _fmt(r.value) + interval
    table = Table(title=f"metrics of {', '.join(escape(n) for n in names)}")
    for col in keys:
        table.add_column(col, overflow="fold")
    for name in names:
        table.add_column(escape(name), overflow="fold")
    first: dict = {}
    for k in cells:
        for i, part in enumerate(k[:3]):
            first.setdefault((i, part), len(first))
    # grouped by task, split and metric (in the order they come), the models of each side by side
    for key, row in sorted(cells.items(), key=lambda kv: tuple(first[(i, p)] for i, p in enumerate(kv[0][:3]))):
        table.add_row(*(escape(str(k)) for k in key), *(row.get(n, "-") for n in names))
    console.print(table)


def promote_command(
    ident: str = typer.Argument(..., metavar="ID", help="catalogue entry: RUN/TASK/MODEL"),
    reason: str = typer.Option(..., "--reason", help="why (recorded with the promotion)"),
    stage: str = typer.Option("production", "--stage", help="production (default) or archived"),
    by: Optional[str] = typer.Option(None, "--by", help="who (default: your login name)"),
    root: Optional[Path] = _ROOT,
    config: Optional[Path] = _CONFIG,
    mlflow: Optional[bool] = typer.Option(None, "--mlflow/--no-mlflow", help="mirror to MLflow (default: when "
                                          "installed)"),
    tracking_uri: Optional[str] = typer.Option(None, "--tracking-uri", help="MLflow tracking and registry URI "
                                               "(default: sqlite:///ROOT/catalog/mlflow.db)"),
) -> None:
    """Promote a model to production (archiving the task's previous one) or archive it; verified first."""
    from pipeline.catalog import promote

    root = _root(root, config)
    events = promote(root, ident, stage, reason=reason, by=by, mlflow=mlflow, tracking_uri=tracking_uri)
    for ev in events:
        console.print(f"{escape(ev.entry)}: {ev.previous} → [bold]{ev.stage}[/bold] by {escape(ev.by)} at "
                      f"{escape(ev.at)} ({escape(ev.reason)})", highlight=False, soft_wrap=True)


def export_command(
    ident: str = typer.Argument(..., metavar="ID", help="RUN/TASK/MODEL, or a run name with --task/--model"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="archive to write (default: "
                                          "RUN-TASK-MODEL.tar.gz here; a directory: that name in it)"),
    task: Optional[str] = typer.Option(None, "--task", help="the task, when ID is a run"),
    model: Optional[str] = typer.Option(None, "--model", help="the model name, when ID is a run"),
    root: Optional[Path] = _ROOT,
    config: Optional[Path] = _CONFIG,
) -> None:
    """Write a model with its run manifest and resolved config as one checksummed .tar.gz archive."""
    from pipeline.catalog import archive_name, export_model, select_entry
    from pipeline.cli.common import human_bytes

    entry = select_entry(_root(root, config), ident, task=task, model=model)
    out = output if output is not None else Path(f"{archive_name(entry.run_name, entry.task, entry.model)}.tar.gz")
    written = export_model(entry.run_dir, entry.task, entry.model, out)
    console.print(f"exported {escape(entry.id)} to {escape(str(written))} ({human_bytes(written.stat().st_size)})",
                  highlight=False, soft_wrap=True)


catalog_app.command("list")(list_command)
catalog_app.command("show")(show_command)
catalog_app.command("compare")(compare_command)
catalog_app.command("promote")(promote_command)
catalog_app.command("export")(export_command)


def register(app: typer.Typer) -> None:
    """Add the ``catalog`` command group to the terrascale app."""
    app.add_typer(catalog_app, name="catalog")
