"""A tiny ``terrascale run`` config: both tasks, every stage, seconds on two cores."""

from __future__ import annotations

from pathlib import Path

import yaml

TINY_RUN = {
    "run_name": "tiny",
    "seed": 3,
    "backend": "cpu",
    "tasks": ["lulc", "lai"],
    "data": {"source": "demo", "region": "40,41.5,-5,-3", "years": "2018:2021", "scenarios": ["ssp126", "ssp585"]},
    "grids": {"fine": "0.05deg", "coarse": "1deg", "targets": ["1deg", "N32"]},
    "features": {"static": ["land_fraction", "koppen", "lat", "lon", "distance_to_coast", "igbp"],
                 "lulc_neighbourhood": False, "lags": [], "categorical": ["koppen", "igbp"]},
    "splits": {"kind": "both", "block_size_deg": 0.5, "n_folds": 3, "test_fold": 0, "test_years": [2019, 2020]},
    "models": [
        {"name": "coarse_prior", "kind": "coarse_prior"},
        {"name": "climatology", "kind": "climatology"},
        {"name": "xgboost", "kind": "xgboost", "params": {"n_estimators": 8, "max_depth": 3}},
        {"name": "mlp", "kind": "mlp", "params": {"hidden": [8]}},
    ],
    "training": {"max_epochs": 2, "batch_size": 512, "sample_rows": 5000},
    "cluster": {"kind": "local", "n_workers": 1, "threads_per_worker": 1},
    "report": {"bootstrap_samples": 10},
}


def write_tiny_config(directory: Path, **changes) -> Path:
    """Write the tiny config into ``directory`` (output.root there too), top-level keys replaced by ``changes``."""
    cfg = {**TINY_RUN, **changes, "output": {"root": str(directory / "runs")}}
    path = directory / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path
