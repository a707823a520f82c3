"""``terrascale run CONFIG`` and the stage commands ``predict``, ``evaluate`` and ``report``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from pipeline.errors import ConfigError

_SET = typer.Option(None, "--set", help="override, e.g. --set training.max_epochs=3")
_OUT = typer.Option(None, "-o", "--run-dir", help="run directory (default: output.root/run_name)")


def _config(config: Optional[Path], set_: Optional[list[str]], run_dir: Optional[Path],
            from_manifest: Optional[Path] = None):
    from pipeline.config import load_config, resolve_config
    from pipeline.config.load import apply_overrides

    overrides = list(set_ or [])
    if run_dir is not None:
        run_dir = Path(run_dir)
        overrides += [f"output.root={run_dir.parent}", f"run_name={run_dir.name}"]
    if from_manifest is None:
        if config is None:
            raise ConfigError("give a CONFIG file (or --from-manifest MANIFEST to re-run a recorded run)")
        return load_config(config, overrides)
    if config is not None:
        raise ConfigError("give either a CONFIG file or --from-manifest, not both")
    return resolve_config(apply_overrides(_manifest_config(from_manifest), overrides), str(from_manifest))


def _manifest_config(path: Path) -> dict:
    import json

    try:
        manifest = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(f"--from-manifest {path} cannot be read as JSON ({err}); pass a run's manifest.json") from None
    raw = manifest.get("config") if isinstance(manifest, dict) else None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} records no resolved config (key 'config'); pass the manifest.json of a "
                          "`terrascale run` run directory")
    return raw


def _execute(config: Optional[Path], set_, run_dir, *, stages, force: bool, resume: bool,
             from_manifest: Optional[Path] = None, models: Optional[list[Path]] = None) -> None:
    from pipeline.run import parse_stages, run_pipeline

    console = Console()
    cfg = _config(config, set_, run_dir, from_manifest)
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

        summary = run_pipeline(cfg, stages=chosen, force=force, resume=resume, config_path=str(config or from_manifest),
                               models=[str(m) for m in models or []], notify=say,
                               progress=progress, epoch=epoch)
    ran = ", ".join(summary.ran) or "none"
    reused = ", ".join(summary.reused) or "none"
    console.print(f"[bold]run[/bold] {summary.run_dir}: ran {ran}; reused {reused}")
    report = Path(summary.run_dir) / "report.html"
    if "report" in summary.ran and report.exists():
        console.print(f"report: {report}")


def run_command(
    config: Optional[Path] = typer.Argument(None, help="YAML run config"),
    set_: Optional[list[str]] = _SET,
    stages: Optional[str] = typer.Option(None, "--stages", help="comma-separated subset: prepare,features,train,"
                                         "predict,aggregate,evaluate,report"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted training from its checkpoints"),
    force: bool = typer.Option(False, "--force", help="recompute even unchanged stages; take over a run directory "
                               "of another config"),
    run_dir: Optional[Path] = _OUT,
    from_manifest: Optional[Path] = typer.Option(None, "--from-manifest", help="re-run the config recorded in a "
                                                 "run's manifest.json"),
) -> None:
    """Run the whole job: prepare, features, train, predict, aggregate, evaluate, report (cached per stage)."""
    _execute(config, set_, run_dir, stages=stages, force=force, resume=resume, from_manifest=from_manifest)


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


def predict_command(
    config: Path = typer.Argument(..., help="YAML run config"),
    set_: Optional[list[str]] = _SET,
    model: Optional[list[Path]] = typer.Option(None, "--model", help="a model archive (`terrascale catalog export`) "
                                               "to predict with instead of the run's trained models; repeatable"),
    force: bool = typer.Option(False, "--force", help="recompute even when unchanged"),
    run_dir: Optional[Path] = _OUT,
) -> None:
    """Predict with the trained models (or --model archives): evaluation rows, every year and scenario."""
    # an archive is installed by the train stage (no fitting), then predicts like a trained model
    _execute(config, set_, run_dir, stages="train,predict" if model else "predict", force=force, resume=False,
             models=model)


def register(app: typer.Typer) -> None:
    """Add ``run``, ``predict``, ``evaluate`` and ``report`` to the terrascale app."""
    app.command("run")(run_command)
    app.command("predict")(predict_command)
    app.command("evaluate")(_stage_command("evaluate", "Score the predictions with block-bootstrap intervals (the "
                                                       "evaluate stage of `terrascale run`)."))
    app.command("report")(_stage_command("report", "Write report.html from the run directory (the report stage of "
                                                   "`terrascale run`)."))
