"""The one interface of every model: ``fit``, ``predict``, ``save``, ``load``, ``describe``.

A model learns from a table (one row per fine cell and time step, pandas on the CPU) whose
columns' roles are given by a :class:`TaskSpec`. LULC models predict class probabilities, an
array (rows, classes) in the order of :attr:`TaskSpec.classes`; LAI models predict one value per
row. Deep models on patches (the U-Net) also take tables, and cut their patches from the grid
that the table's ``cell`` column indexes (:attr:`TaskSpec.grid_shape`).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError, InputDataError
from pipeline.models.safe_files import read_model_meta, write_model_dir

__all__ = ["TASKS", "Model", "TaskSpec"]

#: the two tasks: LULC downscaling (class probabilities) and LAI reconstruction/downscaling
TASKS: tuple[str, ...] = ("lulc", "lai")


@dataclass(frozen=True)
class TaskSpec:
    """The roles of a table's columns for one task.

    Attributes
    ----------
    task : {"lulc", "lai"}
        What is learnt.
    target : str
        The target column (``igbp`` for LULC, ``lai_obs`` or ``lai`` for LAI).
    features : tuple of str
        The predictor columns, in the order the models see them.
    categorical : tuple of str
        Predictors that are categories (pandas ``category`` dtype in the table).
    classes : tuple of int
        LULC: the class codes, the column order of the predicted probabilities.
    class_groups : tuple of str
        LULC: the coarse group of each class (aligned with ``classes``).
    group_columns : dict of str to str
        LULC: group name → column holding the parent coarse cell's fraction of that group.
    koppen : str
        Column of the Köppen-Geiger zone (statistical baselines).
    land_cover : str
        Column of the land-cover class (LAI climatology).
    time : str
        Column of the time stamp (month of a monthly table).
    coarse_target : str or None
        LAI downscaling: column of the coarse LAI put on the fine grid (``None``: reconstruction).
    cell : str
        Column of the fine cell index (flat C order over ``grid_shape``).
    parent : str
        Column of the coarse parent cell's index (the constraint layers' blocks).
    area : str
        Column of the fine cell's exact spherical area (m², :func:`pipeline.sphere.box_areas`).
    grid_shape : tuple of int
        Shape (nlat, nlon) of the fine grid the ``cell`` index refers to.
    """

    task: Literal["lulc", "lai"]
    target: str
    features: tuple[str, ...]
    categorical: tuple[str, ...] = ()
    classes: tuple[int, ...] = ()
    class_groups: tuple[str, ...] = ()
    group_columns: dict[str, str] = field(default_factory=dict)
    koppen: str = "koppen"
    land_cover: str = "igbp"
    time: str = "time"
    coarse_target: str | None = None
    cell: str = "cell"
    parent: str = "parent"
    area: str = "area"
    grid_shape: tuple[int, ...] = ()

    def __post_init__(self):
        if self.task not in TASKS:
            raise ConfigError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        if self.task == "lulc" and not self.classes:
            raise ConfigError("a LULC task needs its class codes (TaskSpec.classes)")
        if self.class_groups and len(self.class_groups) != len(self.classes):
            raise ConfigError(f"{len(self.class_groups)} class groups for {len(self.classes)} classes")

    @property
    def n_classes(self) -> int:
        """Number of LULC classes (0 for LAI)."""
        return len(self.classes)

    def to_dict(self) -> dict:
        """A JSON-able description (saved with every model)."""
        d = asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TaskSpec":
        """The spec :meth:`to_dict` wrote."""
        d = dict(d)
        for k in ("features", "categorical", "classes", "class_groups", "grid_shape"):
            d[k] = tuple(d.get(k, ()))
        return cls(**d)


class Model(ABC):
    """Base of every model of the registry.

    Subclasses set :attr:`kind`, :attr:`family` and :attr:`tasks`, and implement :meth:`_fit`,
    :meth:`_predict`, :meth:`_save` and :meth:`_load`; this class times the calls, checks the
    inputs and keeps the description.

    Parameters
    ----------
    spec : TaskSpec
        The task and its columns.
    params : pydantic model or dict, optional
        The model's typed parameters (see :mod:`pipeline.config.models`).
    name : str, optional
        The name given in the config (default: the kind).
    device : str
        ``cpu`` or ``cuda`` (from the backend).
    seed : int
        Seed of every random choice of the model.
    """

    kind: ClassVar[str] = ""
    family: ClassVar[str] = ""  # baseline | ml | deep
    tasks: ClassVar[frozenset[str]] = frozenset(TASKS)
    #: the pydantic class of the kind's parameters (:mod:`pipeline.config.models`)
    params_type: ClassVar[type | None] = None

    def __init__(self, spec: TaskSpec, params: Any = None, *, name: str | None = None, device: str = "cpu",
                 seed: int = 0):
        if spec.task not in self.tasks:
            raise ConfigError(f"model {name or self.kind!r} ({self.kind}) does not support the {spec.task} task; "
                              f"it supports {', '.join(sorted(self.tasks))}")
        self.spec = spec
        self.name = name or self.kind
        self.params = self._typed_params(params)
        self.device = device
        self.seed = int(seed)
        self.fit_seconds: float | None = None
        self.predict_seconds: float | None = None
        self.fitted = False

    def _typed_params(self, params):
        """``params`` as the kind's typed parameters (a mapping or ``None`` is validated)."""
        if self.params_type is None or isinstance(params, self.params_type):
            return params
        from pydantic import ValidationError

        if hasattr(params, "model_dump"):  # another kind's parameters: validated field by field
            params = params.model_dump()
        try:
            return self.params_type.model_validate(params or {})
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
            raise ConfigError(f"model {self.name!r} ({self.kind}): invalid params: {problems}") from None

    # ------------------------------------------------------------------ public interface
    def fit(self, X: pd.DataFrame, y, *, X_valid: pd.DataFrame | None = None, y_valid=None) -> "Model":
        """Learn from the rows of ``X`` and the targets ``y``.

        Parameters
        ----------
        X : pandas.DataFrame
            The table; the model reads the columns its spec names.
        y : array_like
            Targets: class codes (LULC) or values (LAI), one per row.
        X_valid, y_valid : optional
            A validation split (early stopping of the iterative models).

        Returns
        -------
        Model
            ``self``.
        """
        y = np.asarray(y)
        if len(X) != y.shape[0]:
            raise ConfigError(f"model {self.name!r}: {len(X)} rows but {y.shape[0]} targets")
        if len(X) == 0:
            raise ConfigError(f"model {self.name!r}: no training rows")
        t0 = time.perf_counter()
        self._fit(X, y, X_valid, None if y_valid is None else np.asarray(y_valid))
        self.fit_seconds = time.perf_counter() - t0
        self.fitted = True
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predictions for the rows of ``X``.

        Returns
        -------
        numpy.ndarray
            LULC: probabilities (rows, classes) summing to 1 per row; LAI: values (rows,).
        """
        if not self.fitted:
            raise ConfigError(f"model {self.name!r} is not fitted; fit or load it first")
        t0 = time.perf_counter()
        out = np.asarray(self._predict(X))
        self.predict_seconds = time.perf_counter() - t0
        return out

    def save(self, directory: str | Path) -> Path:
        """Write the model into ``directory`` in a safe format, with ``model.json`` and checksums.

        Parameters
        ----------
        directory : str or Path
            Where to write; an existing saved model there is replaced atomically.

        Returns
        -------
        Path
            ``directory``.
        """
        if not self.fitted:
            raise ConfigError(f"model {self.name!r} is not fitted; there is nothing to save")
        return write_model_dir(self, directory)

    @classmethod
    def load(cls, directory: str | Path, *, device: str | None = None) -> "Model":
        """Read a model :meth:`save` wrote, refusing files whose sha256 changed.

        Parameters
        ----------
        directory : str or Path
            A saved model of this class's kind.
        device : str, optional
            Where to predict (``cpu``/``cuda``); default: the device it was trained on. A model
            trained on a GPU is loaded with ``device="cpu"`` on a machine without one.

        Returns
        -------
        Model
            The fitted model.
        """
        meta = read_model_meta(directory)
        if meta.get("kind") != cls.kind:
            raise InputDataError(f"{directory} holds a {meta.get('kind')!r} model, not {cls.kind!r}; "
                                 "load it with pipeline.models.load_model")
        spec = TaskSpec.from_dict(meta["spec"])
        params_type = getattr(cls, "params_type", None)
        params = params_type(**meta.get("params", {})) if params_type else meta.get("params")
        model = cls(spec, params, name=meta.get("name"), device=device or meta.get("device") or "cpu",
                    seed=meta.get("seed", 0))
        model._load(Path(directory))
        model.fitted = True
        model.fit_seconds = meta.get("fit_seconds")
        return model

    def describe(self) -> dict:
        """Name, kind, family, task, parameters, device, fit and predict times."""
        params = self.params.model_dump() if hasattr(self.params, "model_dump") else dict(self.params or {})
        return {"name": self.name, "kind": self.kind, "family": self.family, "task": self.spec.task,
                "params": params, "device": self.device, "seed": self.seed,
                "fit_seconds": self.fit_seconds, "predict_seconds": self.predict_seconds}

    # ------------------------------------------------------------------ to implement
    @abstractmethod
    def _fit(self, X: pd.DataFrame, y: np.ndarray, X_valid, y_valid) -> None:
        """Learn (called by :meth:`fit`)."""

    @abstractmethod
    def _predict(self, X: pd.DataFrame) -> np.ndarray:
        """Predict (called by :meth:`predict`)."""

    @abstractmethod
    def _save(self, directory: Path) -> list[str]:
        """Write the learnt state into ``directory``; return the file names written."""

    @abstractmethod
    def _load(self, directory: Path) -> None:
        """Read the learnt state :meth:`_save` wrote."""
