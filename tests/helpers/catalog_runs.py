"""Fake run directories for the catalogue: a manifest, tiny model directories with their sha256, metrics.

:func:`make_run` writes ``<root>/<run_name>/`` as ``pipeline.run`` would lay it out, without any
training: each model directory holds a ``model.json`` and a small state file, recorded in the
manifest with their sha256; ``metrics/<task>/metrics.csv`` has a few rows per model.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

#: families of the fake models, by name
FAMILIES = {"xgboost": "boosting", "ridge": "linear", "climatology": "baseline", "mlp": "deep",
            "coarse_prior": "baseline", "logistic": "linear"}
#: (split, metric) rows of each task's fake metrics
METRIC_ROWS = {"lai": [("test (truth)", "rmse"), ("test (truth)", "r2")],
               "lulc": [("test", "overall_accuracy"), ("test", "macro_f1")]}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_model_dir(directory: Path, name: str, *, salt: str = "") -> dict[str, str]:
    """Write a tiny model directory; its ``{relative path: sha256}``."""
    directory.mkdir(parents=True, exist_ok=True)
    state = (f"state of {name}{salt}\n".encode() * 50)
    meta = json.dumps({"kind": name, "name": name, "files": {"state.ubj": _sha(state)}}).encode()
    files = {"model.json": meta, "state.ubj": state, "sub/extra.npz": f"{name}{salt}".encode()}
    out = {}
    for rel, data in files.items():
        (directory / rel).parent.mkdir(parents=True, exist_ok=True)
        (directory / rel).write_bytes(data)
        out[rel] = _sha(data)
    return out


def make_run(root: Path, run_name: str = "r1", models: dict[str, list[str]] | None = None, *,
             metrics: bool = True, config: bool = True, score_offset: float = 0.0,
             created: str = "2025-01-02T03:04:05+0000") -> Path:
    """Write a fake run directory under ``root``; its path.

    Parameters
    ----------
    root : Path
        The output root.
    run_name : str
        The run's name (and directory).
    models : dict of str to list of str, optional
        Task → model names; ``{"lai": ["xgboost", "ridge"]}`` by default; ``{}`` for a run
        without any trained model.
    metrics : bool
        Write ``metrics/<task>/metrics.csv``.
    config : bool
        Write ``config.resolved.yaml``.
    score_offset : float
        Added to every score and metric (tells runs apart).
    created : str
        The manifest's ``created``.
    """
    models = {"lai": ["xgboost", "ridge"]} if models is None else models
    run_dir = root / run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    records: dict[str, dict] = {}
    stages: dict[str, dict] = {"prepare": {"status": "complete", "key": "k0", "parts": {}, "wall_s": 1.0,
                                           "outputs": ["inputs"], "reason": "new"}}
    for task, names in models.items():
        records[task] = {}
        for i, name in enumerate(names):
            rel = f"models/{task}/{name}"
            files = make_model_dir(run_dir / rel, name, salt=run_name)
            records[task][name] = {"key": f"key-{task}-{name}", "path": rel, "kind": name,
                                   "family": FAMILIES.get(name, "other"), "fit_seconds": 1.5 + i,
                                   "valid_score": 0.5 + 0.1 * i + score_offset, "files": files}
        stages[f"train/{task}"] = {"status": "complete", "key": f"train-{task}", "parts": {}, "wall_s": 3.0,
                                   "outputs": [f"models/{task}/{n}" for n in names], "reason": "new"}
        if metrics and names:
            out = run_dir / "metrics" / task
            out.mkdir(parents=True, exist_ok=True)
            with open(out / "metrics.csv", "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["task", "model", "family", "split", "metric", "value", "lo", "hi"])
                for i, name in enumerate(names):
                    for j, (split, metric) in enumerate(METRIC_ROWS.get(task, METRIC_ROWS["lai"])):
                        v = 0.25 + 0.1 * i + 0.01 * j + score_offset
                        w.writerow([task, name, FAMILIES.get(name, "other"), split, metric, f"{v:.4f}",
                                    f"{v - 0.05:.4f}", f"{v + 0.05:.4f}"])
    manifest = {"run_name": run_name, "config_sha256": _sha(run_name.encode()), "terrascale_version": "0.1.0",
                "git_commit": "abc1234", "backend": "cpu", "packages": {"numpy": "2.0"},
                "config_path": "configs/demo.yaml", "created": created, "updated": created, "stages": stages,
                "models": records, "wall_s": {k: v["wall_s"] for k, v in stages.items()}}
    (run_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    if config:
        (run_dir / "config.resolved.yaml").write_text(f"run_name: {run_name}\nseed: 0\n")
    return run_dir
