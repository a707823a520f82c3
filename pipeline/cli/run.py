"""``terrascale run CONFIG`` and the stage commands ``predict``, ``evaluate`` and ``report``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

_SET = typer.Option(None, "--set", help="override, e.g. --set training.max_epochs=3")
_OUT = typer.Option(None, "-o", "--run-dir", help="run directory (default: output.root/run_name)")


def _config(config: Path, set_: Optional[list[str]], run_dir: Optional[Path]):
    from pipeline.config import load_config

    overrides = list(set_ or [])
    if run_dir is not None:
        run_dir = Path(run_dir)
        overrides += [f"output.root={run_dir.parent}", f"run_name={run_dir.name}"]
    return load_config(config, overrides)


def _execute(config: Path, set_, run_dir, *, stages, force: bool, resume: bool) -> None:
    from pipeline.run import parse_stages, run_pipeline

    console = Console()
    cfg = _config(config, set_, run_dir)
    chosen = parse_stages(stages)

    def say(msg: str) -> None:
        console.print(f"[dim]·[/dim] {escape(msg)}")

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=True, disable=not console.is_terminal) as bars:
        tasks: dict[str, int] = {}

        def progress(label: str, done: int, total: int) -> None:
            if label not in tasks:
                tasks[label] = bars.add_task(label, total=total)
            bars.update(tasks[label], completed=done, total=total)

        def epoch(event: dict) -> None:
            label = f"{event.get('model')}: epoch"
            score = event.get("valid_loss")
            if label not in tasks:
                tasks[label] = bars.add_task(label, total=event.get("max_epochs") or 1)
            desc = f"{event.get('model')}: epoch {event.get('epoch')}" + (
                f", validation loss {score:.4g}" if isinstance(score, (int, float)) else "")
            bars.update(tasks[label], completed=event.get("epoch", 0), description=escape(desc))

        summary = run_pipeline(cfg, stages=chosen, force=force, resume=resume, config_path=str(config), notify=say,
                               progress=progress, epoch=epoch)
    ran = ", ".join(summary.ran) or "none"
    reused = ", ".join(summary.reused) or "none"
    console.print(f"[bold]run[/bold] {summary.run_dir}: ran {ran}; reused {reused}")
    report = Path(summary.run_dir) / "report.html"
    if "report" in summary.ran and report.exists():
        console.print(f"report: {report}")


def run_command(
    config: Path = typer.Argument(..., help="YAML run config"),
    set_: Optional[list[str]] = _SET,
    stages: Optional[str] = typer.Option(None, "--stages", help="comma-separated subset: prepare,features,train,"
                                         "predict,aggregate,evaluate,report"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted training from its checkpoints"),
    force: bool = typer.Option(False, "--force", help="recompute even unchanged stages; take over a run directory "
                               "of another config"),
    run_dir: Optional[Path] = _OUT,
) -> None:
    """Run the whole job: prepare, features, train, predict, aggregate, evaluate, report (cached per stage)."""
    _execute(config, set_, run_dir, stages=stages, force=force, resume=resume)


def _stage_command(stage: str, doc: str):
    def command(
        config: Path = typer.Argument(..., help="YAML run config"),
        set_: Optional[list[str]] = _SET,
        force: bool = typer.Option(False, "--force", help="recompute even when unchanged"),
        run_dir: Optional[Path] = _OUT,
    ) -> None:
        _execute(config, set_, run_dir, stages=stage, force=force, resume=False)

    command.__doc__ = doc
    return command


def register(app: typer.Typer) -> None:
    """Add ``run``, ``predict``, ``evaluate`` and ``report`` to the terrascale app."""
    app.command("run")(run_command)
    app.command("predict")(_stage_command("predict", "Predict with the trained models: evaluation rows, every year "
                                                     "and scenario (the predict stage of `terrascale run`)."))
    app.command("evaluate")(_stage_command("evaluate", "Score the predictions with block-bootstrap intervals (the "
                                                       "evaluate stage of `terrascale run`)."))
    app.command("report")(_stage_command("report", "Write report.html from the run directory (the report stage of "
                                                   "`terrascale run`)."))
