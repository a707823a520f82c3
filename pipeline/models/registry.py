"""The model registry: kind → class, with the tasks and family of each.

Classes are imported on first use (deep models pull in PyTorch), from the table below, the one
place that names them.
"""

from __future__ import annotations

import importlib

from pipeline.errors import ConfigError

__all__ = ["MODEL_CLASSES", "create_model", "list_models", "model_class"]

#: kind → "module:Class" of its implementation
MODEL_CLASSES: dict[str, str] = {
    "coarse_prior": "pipeline.models.baselines:CoarsePrior",
    "parent_majority": "pipeline.models.baselines:ParentMajority",
    "climatology": "pipeline.models.baselines:Climatology",
    "bilinear": "pipeline.models.baselines:Bilinear",
    "xgboost": "pipeline.models.boosting:XGBoostModel",
    "random_forest": "pipeline.models.forest:RandomForestModel",
    "ridge": "pipeline.models.linear:RidgeModel",
    "logistic": "pipeline.models.linear:LogisticModel",
    "mlp": "pipeline.models.deep.mlp:MLPModel",
    "unet": "pipeline.models.deep.unet:UNetModel",
}


def model_class(kind: str):
    """The class implementing ``kind``.

    Raises
    ------
    ConfigError
        An unknown kind, listing the known ones.
    """
    try:
        where = MODEL_CLASSES[kind]
    except KeyError:
        raise ConfigError(f"unknown model kind {kind!r}; available: {', '.join(MODEL_CLASSES)}") from None
    module, name = where.split(":")
    return getattr(importlib.import_module(module), name)


def create_model(entry, spec, *, device: str = "cpu", seed: int = 0):
    """A new, unfitted model for a config ``models:`` entry and a task.

    Parameters
    ----------
    entry : pipeline.config.ModelEntry
        The typed entry (kind, name, params).
    spec : pipeline.models.base.TaskSpec
        The task and its columns.
    device : str
        ``cpu`` or ``cuda`` (from the backend).
    seed : int
        The run's seed.

    Returns
    -------
    pipeline.models.base.Model
    """
    cls = model_class(entry.kind)
    return cls(spec, entry.params, name=entry.name or entry.kind, device=device, seed=seed)


def list_models() -> list[dict]:
    """Every registered kind with its family, tasks and default parameters."""
    rows = []
    for kind in MODEL_CLASSES:
        cls = model_class(kind)
        params = cls.params_type().model_dump() if getattr(cls, "params_type", None) else {}
        rows.append({"kind": kind, "family": cls.family, "tasks": sorted(cls.tasks),
                     "description": (cls.__doc__ or "").strip().splitlines()[0], "params": params})
    return rows
