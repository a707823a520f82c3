"""``terrascale run``: the stages in order, each reused when its key is unchanged.

For every stage (and task) the runner computes its key (:mod:`pipeline.run.keys`), compares it
with the manifest's record and either reuses the outputs (saying so) or runs the stage
(:mod:`pipeline.run.stages`) and records its outputs, key and wall time. ``--stages`` runs a
subset and refuses a stage whose upstream outputs are missing or stale, naming the stage to run
first; ``--force`` recomputes the asked stages whatever their keys; ``--resume`` lets an
interrupted training continue from its checkpoints.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pipeline.errors import ConfigError
from pipeline.run.directory import IDENTITY_SECTIONS, RunDirectory
from pipeline.run.keys import STAGES, StageKey, digest, model_key, stage_parts
from pipeline.run.state import RunState

__all__ = ["RunSummary", "parse_stages", "run_pipeline"]

log = logging.getLogger("pipeline.run")


@dataclass
class RunSummary:
    """What a run did.

    Attributes
    ----------
    run_dir : pathlib.Path
        The run directory.
    ran, reused : list of str
        Stage names (``train/lai``...) computed and reused.
    reasons : dict
        Stage → why it ran (changed config parts, missing outputs, ``--force``).
    wall_s : dict
        Stage → seconds.
    """

    run_dir: object
    ran: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)
    wall_s: dict[str, float] = field(default_factory=dict)


def parse_stages(text: str | Sequence[str] | None) -> list[str] | None:
    """Stage names from ``--stages a,b`` (checked against :data:`STAGES`)."""
    if text is None:
        return None
    items = [s.strip() for part in ([text] if isinstance(text, str) else text) for s in part.split(",") if s.strip()]
    bad = [s for s in items if s not in STAGES]
    if bad:
        raise ConfigError(f"unknown stage(s) {', '.join(bad)}; the stages are {', '.join(STAGES)}")
    return items


def _task_stage(stage: str, task: str | None) -> str:
    return f"{stage}/{task}" if task else stage


def run_pipeline(cfg, *, stages: Sequence[str] | None = None, force: bool = False, resume: bool = False,
                 config_path: str | None = None, models: Sequence[str] | None = None,
                 notify: Callable[[str], None] | None = None,
                 progress: Callable[[str, int, int], None] | None = None,
                 epoch: Callable[[dict], None] | None = None) -> RunSummary:
    """Run (or re-run) the stages of a config in its run directory.

    Parameters
    ----------
    cfg : pipeline.config.RunConfig
        The resolved config.
    stages : sequence of str, optional
        The stages to run (default: all); the others must be complete for them to start.
    force : bool
        Recompute the asked stages even when their keys are unchanged; take over a run directory
        written by another config.
    resume : bool
        Continue an interrupted deep-model training from its last checkpoint.
    config_path : str, optional
        The config file (manifest, report).
    models : sequence of path, optional
        Model archives (``terrascale catalog export``) to use instead of training: each replaces
        the config's models of its task, and the run's tasks become the archives' tasks.
    notify : callable, optional
        One line per event (default: the log only).
    progress : callable, optional
        ``progress(label, done, total)`` for long steps.
    epoch : callable, optional
        Per-epoch events of the deep models.

    Returns
    -------
    RunSummary
    """
    from pipeline.config import config_dict, write_resolved_config
    from pipeline.datasets.checks import check_config
    from pipeline.features import make_run_dir

    check_config(cfg, source=config_path)  # every problem of the config at once, before any work
    wanted = list(stages) if stages else list(STAGES)
    cfg_dict = config_dict(cfg)
    run_dir = cfg.run_dir
    make_run_dir(run_dir, cfg.output.root)
    rd = RunDirectory(run_dir)
    rd.claim(cfg_dict, digest({s: cfg_dict.get(s) for s in IDENTITY_SECTIONS}), force=force, config_path=config_path)
    _record_run(rd, cfg)
    write_resolved_config(cfg, run_dir)
    handler = rd.open_log()
    state = RunState(cfg, cfg_dict, rd, notify or (lambda _m: None), progress, epoch, resume)
    if models:
        _open_archives(state, models)
    summary = RunSummary(run_dir)
    try:
        _run(state, wanted, force, summary)
    finally:
        state.close()
        logging.getLogger("pipeline").removeHandler(handler)
        handler.close()
    rd.manifest["wall_s"] = {**rd.manifest.get("wall_s", {}), **summary.wall_s}
    rd.save()
    return summary


def _record_run(rd: RunDirectory, cfg) -> None:
    import pipeline
    from pipeline.backend import resolve_backend
    from pipeline.config import config_dict, config_sha256
    from pipeline.info import package_versions

    rd.manifest.update({"run_name": cfg.run_name, "config_sha256": config_sha256(cfg), "config": config_dict(cfg),
                        "terrascale_version": pipeline.__version__, "git_commit": _git_commit(),
                        "backend": resolve_backend(cfg.backend).name, "packages": package_versions()})
    rd.save()


def _git_commit() -> str | None:
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return sha + ("-dirty" if dirty else "")


def _open_archives(state: RunState, archives: Sequence[str]) -> None:
    """Extract and verify model archives into ``<run_dir>/imported`` and put them in place of the config's models."""
    from pathlib import Path

    from pipeline.catalog import file_sha256, open_archive

    for archive in archives:
        model_dir, manifest = open_archive(archive, state.run_dir / "imported")
        info = manifest["export"]
        task = info["task"]
        record = (manifest.get("models") or {}).get(task, {}).get(info["model"], {})
        state.imported.setdefault(task, []).append({
            "name": info["model"], "kind": info.get("kind") or record.get("kind"), "dir": model_dir,
            "archive": str(Path(archive).resolve()), "sha256": file_sha256(archive), "record": record,
            "entry": info.get("entry")})
        state.say(f"model archive {archive}: {info.get('entry')} ({task}), checksums verified")
    # the run's tasks become the archives' (in the config's order when both)
    tasks = [t for t in ("lulc", "lai") if t in state.imported]
    # (the keys still hash the config's own tasks: the features built for them serve the archives)
    state.cfg = state.cfg.model_copy(update={"tasks": tasks})


def _keys(state: RunState) -> dict[str, StageKey]:
    """Every stage's key (and each model's), computed from the config alone."""
    from pipeline.train.stage import task_entries

    c = state.cfg_dict
    keys: dict[str, StageKey] = {}
    keys["prepare"] = stage_parts(c, "prepare", {})
    keys["features"] = stage_parts(c, "features", {"prepare": keys["prepare"].key, "tasks": c["tasks"]})
    state.model_keys = {}
    for task in state.cfg.tasks:
        if task in state.imported:
            # an imported model's key is its archive's checksum: the same archive is installed once
            mk = {m["name"]: StageKey({"archive": m["sha256"]}) for m in state.imported[task]}
            state.model_keys[task] = mk
            _task_keys(state, keys, task, mk, c)
            continue
        entries = task_entries(state.cfg, task, notify=state.say)
        if not entries:
            raise ConfigError(f"no model of the config is trained for the {task} task; add one to models: or remove "
                              f"{task} from tasks:")
        mk = {(e.name or e.kind): model_key(c, task, e.model_dump(mode="json"), keys["features"].key) for e in entries}
        state.model_keys[task] = mk
        _task_keys(state, keys, task, mk, c)
    up = {n: k.key for n, k in keys.items() if n.startswith(("aggregate/", "evaluate/"))}
    keys["report"] = stage_parts(c, "report", up)
    return keys


def _task_keys(state: RunState, keys: dict, task: str, mk: dict, c: dict) -> None:
    """The keys of a task's train, predict, aggregate and evaluate stages from its models' keys."""
    keys[f"train/{task}"] = StageKey({f"models.{n}": k.key for n, k in mk.items()})
    up = {"train": keys[f"train/{task}"].key, "data": c["data"]}
    if task == "lai" and "lulc" in state.cfg.tasks:
        up["predict/lulc"] = keys["predict/lulc"].key  # phase 2 follows phase 1: its land cover
    keys[f"predict/{task}"] = stage_parts(c, "predict", up)
    keys[f"aggregate/{task}"] = stage_parts(c, "aggregate", {"predict": keys[f"predict/{task}"].key})
    # the LULC evaluation scores the ESM files' class fractions too
    up_eval = {"predict": keys[f"predict/{task}"].key}
    if task == "lulc":
        up_eval["aggregate"] = keys["aggregate/lulc"].key
    keys[f"evaluate/{task}"] = stage_parts(c, "evaluate", up_eval)


def _units(state: RunState) -> list[tuple[str, str | None]]:
    """(stage, task) in run order."""
    out: list[tuple[str, str | None]] = [("prepare", None), ("features", None)]
    for stage in ("train", "predict", "aggregate", "evaluate"):
        out += [(stage, t) for t in state.cfg.tasks]
    out.append(("report", None))
    return out


def _upstream(name: str, tasks: Sequence[str]) -> list[str]:
    stage, _, task = name.partition("/")
    if stage == "prepare":
        return []
    if stage == "features":
        return ["prepare"]
    if stage == "train":
        return ["features"]
    if stage == "predict":
        return [f"train/{task}"] + (["predict/lulc"] if task == "lai" and "lulc" in tasks else [])
    if stage == "evaluate" and task == "lulc":
        return ["predict/lulc", "aggregate/lulc"]
    if stage in ("aggregate", "evaluate"):
        return [f"predict/{task}"]
    return [f"{s}/{t}" for s in ("aggregate", "evaluate") for t in tasks]


def _run(state: RunState, wanted: list[str], force: bool, summary: RunSummary) -> None:
    from pipeline.run import stages as S

    keys = _keys(state)
    rd = state.rd
    tasks = list(state.cfg.tasks)
    for stage, task in _units(state):
        name = _task_stage(stage, task)
        key = keys[name]
        state.keys[name] = key.key
        if stage not in wanted:
            continue
        # a subset run needs its inputs complete and current
        for up in _upstream(name, tasks):
            if up.split("/")[0] in wanted:
                continue
            if not rd.is_complete(up, keys[up].key):
                why = "never ran" if rd.record(up) is None else "is out of date for this config"
                raise ConfigError(f"stage {name} needs the outputs of {up}, which {why}; run "
                                  f"`terrascale run CONFIG --stages {up.split('/')[0]}` first (or without --stages)")
        if stage == "train":
            todo = _models_to_fit(state, task, force)
            if not todo and rd.is_complete(name, key.key):
                summary.reused.append(name)
                state.say(f"{name}: reused (every model's key unchanged)")
                continue
        elif not force and rd.is_complete(name, key.key):
            summary.reused.append(name)
            state.say(f"{name}: reused (key {key.key} unchanged)")
            continue
        reason = "--force" if force else _why(rd.record(name), key)
        summary.reasons[name] = reason
        state.say(f"{name}: running ({reason})")
        rd.set_record(name, {"status": "running", "key": key.key, "parts": key.parts, "started": time.time()})
        t0 = time.perf_counter()
        if stage == "prepare":
            outputs = S.stage_prepare(state)
        elif stage == "features":
            outputs = S.stage_features(state)
        elif stage == "train":
            outputs = S.stage_train(state, task, todo, {n: k.key for n, k in state.model_keys[task].items()})
        elif stage == "predict":
            outputs = S.stage_predict(state, task)
        elif stage == "aggregate":
            outputs = S.stage_aggregate(state, task)
        elif stage == "evaluate":
            outputs = S.stage_evaluate(state, task)
        else:
            from pipeline.run.report import stage_report

            outputs = stage_report(state)
        wall = time.perf_counter() - t0
        rd.set_record(name, {"status": "complete", "key": key.key, "parts": key.parts, "wall_s": round(wall, 3),
                             "finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "outputs": outputs, "reason": reason})
        summary.ran.append(name)
        summary.wall_s[name] = round(wall, 3)
        state.say(f"{name}: done in {wall:.1f} s")


def _why(record: dict | None, key: StageKey) -> str:
    if record is None:
        return "first run"
    if record.get("status") != "complete":
        return "its last run did not finish"
    changed = key.changed(record.get("parts"))
    if not changed:
        return "its outputs are missing"
    return "changed: " + ", ".join(changed)


def _models_to_fit(state: RunState, task: str, force: bool) -> list:
    from pathlib import Path

    from pipeline.train.stage import task_entries

    recorded = state.rd.manifest.get("models", {}).get(task, {})
    todo = []
    if task in state.imported:
        return [m for m in state.imported[task] if force or (recorded.get(m["name"]) or {}).get("key")
                != state.model_keys[task][m["name"]].key]
    for entry in task_entries(state.cfg, task):
        name = entry.name or entry.kind
        rec = recorded.get(name)
        key = state.model_keys[task][name].key
        if force or not rec or rec.get("key") != key or not (Path(state.run_dir) / rec.get("path", "-")).exists():
            todo.append(entry)
        else:
            state.say(f"train/{task}: {name} reused (key {key} unchanged)")
    return todo
