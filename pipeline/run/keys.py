"""Cache keys of the run's stages: what each stage reads, hashed.

A stage's key is the hash of the config sections it reads and of its input stages' keys
(:data:`STAGE_SECTIONS`). Each part is hashed on its own too, so that when a key changes the run can
say *why* (``train/lai: models.xgboost changed``). Models have their own keys (their entry, the
training settings, the seed, the backend and the feature key), so changing one model retrains that
model only; everything downstream of its task follows from the task keys.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["STAGES", "StageKey", "digest", "model_key", "stage_parts"]

#: the stages of a run, in order
STAGES: tuple[str, ...] = ("prepare", "features", "train", "predict", "aggregate", "evaluate", "report")


def digest(value: Any) -> str:
    """A short sha256 (16 hex digits) of the canonical JSON of ``value``."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class StageKey:
    """A stage's key from named parts (config sections, upstream keys).

    Parameters
    ----------
    parts : dict
        Part name → JSON-able value (a config section's dump, an upstream key).
    """

    def __init__(self, parts: dict[str, Any]):
        self.parts = {name: digest(value) for name, value in parts.items()}
        self.key = digest(self.parts)

    def changed(self, recorded: dict[str, str] | None) -> list[str]:
        """Names of the parts that differ from a recorded ``parts`` dict (all when none was recorded)."""
        if not recorded:
            return list(self.parts)
        names = set(self.parts) | set(recorded)
        return sorted(n for n in names if self.parts.get(n) != recorded.get(n))


def _section(cfg_dict: dict, dotted: str) -> Any:
    node: Any = cfg_dict
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


#: config sections each stage reads (besides its upstream keys)
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "prepare": ("data", "seed", "grids.fine", "grids.coarse"),
    "features": ("features", "splits", "data.target"),
    "predict": ("predict",),
    "aggregate": ("aggregation", "grids.targets"),
    "evaluate": ("report.bootstrap_samples", "seed", "splits.block_size_deg"),
    "report": ("report", "run_name"),
}


def stage_parts(cfg_dict: dict, stage: str, upstream: dict[str, str]) -> StageKey:
    """The key of a stage from its config sections and its upstream keys.

    Parameters
    ----------
    cfg_dict : dict
        The resolved config (:func:`pipeline.config.config_dict`).
    stage : str
        The stage (a key of :data:`STAGE_SECTIONS`).
    upstream : dict
        Upstream part name → key.
    """
    parts = {s: _section(cfg_dict, s) for s in STAGE_SECTIONS.get(stage, ())}
    parts.update(upstream)
    return StageKey(parts)


def model_key(cfg_dict: dict, task: str, entry: dict, features_key: str) -> StageKey:
    """The key of one model: its task and entry, the training settings, the seed, the backend and the table's key."""
    return StageKey({"task": task, "entry": entry, "training": cfg_dict.get("training"), "seed": cfg_dict.get("seed"),
                     "backend": cfg_dict.get("backend"), "table": features_key})
