"""Models of both tasks behind one interface, chosen by kind from the registry.

LULC downscaling (class probabilities) and LAI reconstruction/downscaling (values): statistical
baselines (:mod:`~pipeline.models.baselines`), XGBoost (:mod:`~pipeline.models.boosting`), random
forests (:mod:`~pipeline.models.forest`), ridge and logistic regression
(:mod:`~pipeline.models.linear`), and PyTorch models (:mod:`pipeline.models.deep`: MLP, U-Net)
with exact conservation constraints (:mod:`~pipeline.models.constraints`). Every model saves in a
safe format with checksums (:mod:`~pipeline.models.persist`).
"""

from __future__ import annotations

from pipeline.models.base import TASKS, Model, TaskSpec
from pipeline.models.persist import load_model, save_model
from pipeline.models.registry import MODEL_CLASSES, create_model, list_models, model_class

__all__ = [
    "MODEL_CLASSES",
    "TASKS",
    "Model",
    "TaskSpec",
    "create_model",
    "list_models",
    "load_model",
    "model_class",
    "save_model",
]
