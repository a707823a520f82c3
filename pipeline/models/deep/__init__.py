"""PyTorch models of both tasks: an MLP on the table and a U-Net on the fine grid.

Both share this module's :class:`DeepModel` base: the typed parameters, the training settings
(:meth:`DeepModel.configure_training`, defaults of :class:`pipeline.config.sections.TrainingConfig`),
the table encoding (:class:`TableEncoder`: standardised numeric features, categorical columns as
embedding indices) and the inputs of the constraint layers (:meth:`DeepModel.constraint_inputs`).
Training runs in :func:`pipeline.models.deep.loop.train_epochs` (deterministic, checkpointed and
resumable; in this process, or as one rank of a data-parallel group: :attr:`DeepModel.data_parallel`,
set by :func:`pipeline.train.fit_on_cluster`). :attr:`DeepModel.on_epoch` is called after every
epoch (a progress bar); :attr:`DeepModel.history` keeps the learning curve and is saved with the
model.

Constraint blocks
    The constraint layers conserve the coarse data per *block*: the rows of one coarse cell
    (``spec.parent``) at one time step (``spec.time``, when the table has that column). They hold
    over the rows given to one ``predict`` call, so predict whole coarse cells at once.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from pydantic import ValidationError

from pipeline.config.sections import TrainingConfig
from pipeline.errors import ConfigError, InputDataError
from pipeline.models.base import Model, TaskSpec
from pipeline.models.constraints import balance_lulc, block_means, correct_lai

__all__ = ["DeepModel", "TableEncoder", "lai_scale"]

#: Sinkhorn iterations of the LULC constraint layer in training (the exact projection runs at inference)
TRAIN_SINKHORN_ITER = 10
#: the training settings :meth:`DeepModel.configure_training` accepts besides TrainingConfig's
_EXTRA_TRAINING = ("checkpoint_dir", "progress", "on_epoch")


def _json_value(v):
    """A category value as JSON keeps it (NumPy scalars become Python ones)."""
    return v.item() if hasattr(v, "item") else v


class TableEncoder:
    """Numeric features standardised, categorical features as embedding indices.

    Numeric columns are centred and scaled by their training mean and standard deviation (a
    constant column keeps scale 1); a missing value becomes 0, the training mean. Categorical
    columns map to ``1 + position`` in the training categories; 0 stands for a missing value or a
    category unseen in training (its embedding is never trained, so such rows get a neutral input).

    Parameters
    ----------
    numeric, categorical : list of str
        The column names, in the order the network sees them.
    """

    def __init__(self, numeric: list[str], categorical: list[str]):
        self.numeric = list(numeric)
        self.categorical = list(categorical)
        self.mean = np.zeros(len(self.numeric))
        self.std = np.ones(len(self.numeric))
        self.categories: dict[str, list] = {}

    @classmethod
    def for_spec(cls, spec: TaskSpec) -> "TableEncoder":
        """The encoder of a spec's features (categorical ones are those in ``spec.categorical``)."""
        cat = [f for f in spec.features if f in spec.categorical]
        return cls([f for f in spec.features if f not in spec.categorical], cat)

    @property
    def cardinalities(self) -> list[int]:
        """Embedding table sizes (categories + the 'unknown' index 0)."""
        return [len(self.categories[c]) + 1 for c in self.categorical]

    def _check(self, X: pd.DataFrame, model: str) -> None:
        missing = [c for c in self.numeric + self.categorical if c not in X.columns]
        if missing:
            raise InputDataError(f"model {model!r}: the table lacks the feature columns {', '.join(missing)}")

    def fit(self, X: pd.DataFrame, model: str = "") -> "TableEncoder":
        """Learn means, standard deviations and category lists from ``X``."""
        self._check(X, model)
        if self.numeric:
            values = X[self.numeric].to_numpy(dtype=np.float64, na_value=np.nan)
            with np.errstate(invalid="ignore"):
                mean = np.nanmean(values, axis=0) if len(values) else np.zeros(len(self.numeric))
                std = np.nanstd(values, axis=0) if len(values) else np.ones(len(self.numeric))
            self.mean = np.nan_to_num(mean)
            self.std = np.where(np.isfinite(std) & (std > 0), std, 1.0)
        for c in self.categorical:
            col = X[c]
            cats = col.cat.categories if isinstance(col.dtype, pd.CategoricalDtype) else pd.Index(col.dropna().unique())
            values = [_json_value(v) for v in cats]
            try:
                json.dumps(values)
            except TypeError:
                raise InputDataError(f"model {model!r}: categories of {c!r} must be numbers or strings to be saved "
                                     f"(found {type(values[0]).__name__})") from None
            self.categories[c] = values
        return self

    def transform(self, X: pd.DataFrame, model: str = "") -> tuple[np.ndarray, np.ndarray]:
        """(numeric float32 (n, p), categorical int64 (n, c)) inputs of the network."""
        self._check(X, model)
        n = len(X)
        if self.numeric:
            num = (X[self.numeric].to_numpy(dtype=np.float64, na_value=np.nan) - self.mean) / self.std
            num = np.nan_to_num(num, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
        else:
            num = np.zeros((n, 0), dtype=np.float32)
        cat = np.zeros((n, len(self.categorical)), dtype=np.int64)
        for j, c in enumerate(self.categorical):
            codes = pd.Categorical(np.asarray(X[c].astype(object)), categories=self.categories[c]).codes
            cat[:, j] = codes.astype(np.int64) + 1
        return num, cat

    def to_dict(self) -> dict:
        """JSON-able state."""
        return {"numeric": self.numeric, "categorical": self.categorical, "mean": self.mean.tolist(),
                "std": self.std.tolist(), "categories": self.categories}

    @classmethod
    def from_dict(cls, d: dict) -> "TableEncoder":
        """The encoder :meth:`to_dict` described."""
        enc = cls(d["numeric"], d["categorical"])
        enc.mean = np.asarray(d["mean"], dtype=np.float64)
        enc.std = np.asarray(d["std"], dtype=np.float64)
        enc.categories = {k: list(v) for k, v in d["categories"].items()}
        return enc


#: the torch ``state_dict`` of a deep model, read back with ``weights_only=True``
WEIGHTS_FILE = "weights.pt"


class DeepModel(Model):
    """Base of the PyTorch models: parameters, training settings, encoding, constraint inputs.

    Subclasses set ``kind``, ``tasks`` and ``params_type`` and implement the four ``_`` methods of
    :class:`~pipeline.models.base.Model`.
    """

    family = "deep"
    #: the JSON state file beside the weights (encoders, target scale, learning curve)
    state_file = "state.json"

    def __init__(self, spec: TaskSpec, params: Any = None, *, name: str | None = None, device: str = "cpu",
                 seed: int = 0):
        super().__init__(spec, params, name=name, device=device, seed=seed)
        self.training = TrainingConfig()
        self.checkpoint_dir: Path | None = None
        self.progress: Callable[[dict], None] | None = None
        #: called after every epoch with {"model", "epoch", "max_epochs", "train_loss", "valid_loss",
        #: "best_loss"} and, with validation rows and a score, "valid_score" and "score_name"
        self.on_epoch: Callable[[dict], None] | None = None
        #: (rank, world size) when fitted as one rank of a torch.distributed group, else (0, 1)
        self.data_parallel: tuple[int, int] = (0, 1)
        #: the learning curve: per epoch {"epoch", "train_loss", "valid_loss"[, "valid_score"]}
        self.history: list[dict] = []
        self.encoder: TableEncoder | None = None
        self.y_mean, self.y_std = 0.0, 1.0  # LAI target scale (the network predicts standardised values)
        self.last_constrained = False  # whether the last predict applied the constraint
        self._cg_t = None  # class groups as a tensor, for the training constraint layer

    # ------------------------------------------------------------------ training settings
    def configure_training(self, config: TrainingConfig | None = None, **kwargs) -> "DeepModel":
        """Set the training hyper-parameters (defaults: :class:`~pipeline.config.sections.TrainingConfig`).

        Parameters
        ----------
        config : TrainingConfig, optional
            The run's ``training:`` section; keyword arguments override its values.
        **kwargs
            ``max_epochs``, ``batch_size``, ``learning_rate``, ``early_stopping_patience``,
            ``checkpoint_every``, ``resume`` (validated like the config section), and
            ``checkpoint_dir`` (where to checkpoint and resume; ``None``: no checkpoints),
            ``progress`` (called with the loop's dict after every epoch) and ``on_epoch`` (the
            same with the model's name, see :attr:`on_epoch`).

        Returns
        -------
        DeepModel
            ``self``.

        Raises
        ------
        ConfigError
            An unknown setting or an invalid value (e.g. ``batch_size=0``), naming the model.
        """
        base = (config or self.training).model_dump()
        extra = {k: kwargs.pop(k) for k in _EXTRA_TRAINING if k in kwargs}
        unknown = sorted(set(kwargs) - set(base))
        if unknown:
            raise ConfigError(f"model {self.name!r}: unknown training settings {', '.join(unknown)}; "
                              f"known: {', '.join(list(base) + list(_EXTRA_TRAINING))}")
        try:
            self.training = TrainingConfig(**{**base, **kwargs})
        except ValidationError as err:
            raise ConfigError(f"model {self.name!r}: invalid training settings: "
                              + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
                              ) from None
        if "checkpoint_dir" in extra:
            self.checkpoint_dir = None if extra["checkpoint_dir"] is None else Path(extra["checkpoint_dir"])
        if "progress" in extra:
            self.progress = extra["progress"]
        if "on_epoch" in extra:
            self.on_epoch = extra["on_epoch"]
        return self

    def describe(self) -> dict:
        """The base description plus the training settings and the epochs run."""
        d = super().describe()
        d["training"] = self.training.model_dump()
        d["epochs_run"] = len(self.history)
        return d

    def torch_device(self):
        """The torch device of :attr:`device`; CUDA without a usable device is a ConfigError (loading falls back to the CPU)."""
        import torch

        if str(self.device).startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"model {self.name!r}: device {self.device!r} asked for but torch sees no CUDA device")
        return torch.device(self.device)

    # ------------------------------------------------------------------ targets
    def class_indices(self, y: np.ndarray) -> np.ndarray:
        """LULC class codes → column indices 0..K-1 (unknown codes are an error)."""
        codes = np.asarray(y)
        idx = pd.Index(list(self.spec.classes)).get_indexer(codes)
        if np.any(idx < 0):
            bad = sorted({str(v) for v in codes[idx < 0]})[:10]
            # a ConfigError like pipeline.models.columns.class_indices: the class table is the usual culprit
            raise ConfigError(f"model {self.name!r}: target class code(s) {', '.join(bad)} are not among the task's "
                              f"classes {list(self.spec.classes)}; fix the class table or the target column")
        return idx.astype(np.int64)

    # ------------------------------------------------------------------ constraints
    def class_groups(self) -> np.ndarray | None:
        """Group index (position in ``spec.group_columns``) of every class, or ``None`` without groups."""
        spec = self.spec
        if not spec.class_groups or not spec.group_columns:
            return None
        groups = list(spec.group_columns)
        missing = sorted({g for g in spec.class_groups if g not in groups})
        if missing:
            raise ConfigError(f"model {self.name!r}: class groups {', '.join(missing)} have no column in "
                              f"spec.group_columns ({', '.join(groups)}); the constraint needs every group's fraction")
        return np.array([groups.index(g) for g in spec.class_groups], dtype=np.int64)

    def constraint_inputs(self, X: pd.DataFrame) -> dict | None:
        """What the constraint layer of this task needs from ``X``, or ``None`` when it does not apply.

        The constraint applies when ``params.constrained`` and the table has the parent and area
        columns and, for LULC, the group fraction columns (with ``spec.class_groups`` set) or, for
        LAI, the ``spec.coarse_target`` column (downscaling).

        Returns
        -------
        dict or None
            ``block`` (n,) block index of every row (coarse cell × time step), ``n_blocks``, ``area``
            (n,), and per block either ``fractions`` (n_blocks, G) with ``class_group`` (K,), or
            ``coarse`` (n_blocks,): the area-weighted mean of the per-row coarse values over the
            block's rows (the feature builder repeats the parent's value on every row, so this is
            that value, and stays well defined if rows disagree slightly).
        """
        spec = self.spec
        if not getattr(self.params, "constrained", False):
            return None
        if spec.parent not in X.columns or spec.area not in X.columns:
            return None
        if spec.task == "lulc":
            cg = self.class_groups()
            if cg is None or any(c not in X.columns for c in spec.group_columns.values()):
                return None
        elif not spec.coarse_target or spec.coarse_target not in X.columns:
            return None
        keys = [spec.parent] + ([spec.time] if spec.time in X.columns else [])
        block = X.groupby(keys, sort=False, observed=True, dropna=False).ngroup().to_numpy().astype(np.int64)
        n_blocks = int(block.max()) + 1 if len(block) else 0
        area = X[spec.area].to_numpy(dtype=np.float64)
        if not np.all(np.isfinite(area)) or np.any(area < 0):
            raise InputDataError(f"model {self.name!r}: column {spec.area!r} must hold finite, non-negative areas")
        out = {"block": block, "n_blocks": n_blocks, "area": area}
        if spec.task == "lulc":
            cols = list(spec.group_columns.values())
            out["fractions"] = block_means(X[cols].to_numpy(dtype=np.float64, na_value=np.nan), block, area, n_blocks)
            out["class_group"] = cg
        else:
            out["coarse"] = block_means(X[spec.coarse_target].to_numpy(dtype=np.float64, na_value=np.nan), block,
                                        area, n_blocks)
        return out

    def apply_constraint(self, X: pd.DataFrame, pred: np.ndarray) -> np.ndarray:
        """The exact constraint projection of predictions for the rows of ``X`` (when it applies).

        LULC: :func:`~pipeline.models.constraints.balance_lulc`; LAI:
        :func:`~pipeline.models.constraints.correct_lai`; sets :attr:`last_constrained`.
        """
        cons = self.constraint_inputs(X) if len(X) else None
        self.last_constrained = cons is not None
        if cons is None:
            return pred
        if self.spec.task == "lulc":
            return balance_lulc(pred, cons["block"], cons["area"], cons["class_group"], cons["fractions"])
        return correct_lai(pred, cons["block"], cons["area"], cons["coarse"])

    # ------------------------------------------------------------------ torch pieces
    def activate(self, out):
        """Network output → class probabilities (softmax over dim 1) or non-negative LAI (softplus)."""
        import torch

        if self.spec.task == "lulc":
            return torch.softmax(out, dim=1)
        return torch.nn.functional.softplus(self.y_mean + self.y_std * out[:, 0])

    def row_loss(self, out, y, constraint: tuple | None = None):
        """Mean loss over rows, with the differentiable constraint layer on some rows.

        Parameters
        ----------
        out : torch.Tensor
            (n, n_out) network outputs of the rows.
        y : torch.Tensor
            (n,) class indices (LULC) or LAI (NaN: no target, no loss).
        constraint : tuple, optional
            ``(sel, block, area, targets)``: the rows of whole blocks (bool mask, or ``None`` for
            all rows), their block index 0..m-1, their areas, and the m blocks' coarse fractions
            (LULC) or coarse LAI.

        Returns
        -------
        torch.Tensor
            Cross-entropy (LULC) or mean squared error in units of the target's standard deviation.
        """
        import torch

        from pipeline.models.constraints import balance_lulc_torch, correct_lai_torch

        if out.shape[0] == 0:
            return out.sum() * 0.0
        if self.spec.task == "lulc":
            if constraint is None:
                return torch.nn.functional.cross_entropy(out, y)
            sel, block, area, targets = constraint
            probs = torch.softmax(out, dim=1)
            if sel is None:
                probs = balance_lulc_torch(probs, block, area, self._cg_t, targets, n_iter=TRAIN_SINKHORN_ITER)
            elif bool(sel.any()):
                probs = probs.clone()
                probs[sel] = balance_lulc_torch(probs[sel], block, area, self._cg_t, targets,
                                                n_iter=TRAIN_SINKHORN_ITER)
            return torch.nn.functional.nll_loss(torch.log(probs.clamp_min(1e-12)), y)
        pred = self.activate(out)
        if constraint is not None:
            sel, block, area, targets = constraint
            if sel is None:
                pred = correct_lai_torch(pred, block, area, targets)
            elif bool(sel.any()):
                pred = pred.clone()
                pred[sel] = correct_lai_torch(pred[sel], block, area, targets)
        ok = torch.isfinite(y)
        err = torch.where(ok, (pred - torch.where(ok, y, torch.zeros_like(y))) / self.y_std, torch.zeros_like(pred))
        return (err**2).sum() / ok.sum().clamp_min(1)

    # ------------------------------------------------------------------ checkpoints
    def fingerprint(self, **extra) -> str:
        """What a checkpoint must match to be resumed: kind, spec, params, training, seed, data sizes."""
        t = self.training.model_dump()
        t.pop("max_epochs")  # more epochs may be asked for on resume
        t.pop("resume")
        t.pop("checkpoint_every")
        d = {"kind": self.kind, "spec": self.spec.to_dict(), "params": self.params.model_dump(), "training": t,
             "seed": self.seed, **extra}
        return json.dumps(d, sort_keys=True, default=str)

    def _save(self, directory: Path) -> list[str]:
        import torch

        torch.save(self.net.state_dict(), directory / WEIGHTS_FILE)
        self.write_json(directory / self.state_file, {"encoder": self.encoder.to_dict(), "y_mean": self.y_mean,
                                                      "y_std": self.y_std, "history": self.history})
        return [WEIGHTS_FILE, self.state_file]

    def _load(self, directory: Path) -> None:
        import torch

        state = self.read_json(directory / self.state_file)
        self.encoder = TableEncoder.from_dict(state["encoder"])
        self.y_mean, self.y_std = float(state["y_mean"]), float(state["y_std"])
        self.history = list(state.get("history", []))
        if str(self.device).startswith("cuda") and not torch.cuda.is_available():
            self.device = "cpu"  # a model trained on a GPU still predicts on a CPU-only machine
        self.net = self._build()
        self.net.load_state_dict(torch.load(directory / WEIGHTS_FILE, map_location=self.torch_device(),
                                            weights_only=True))
        self.net.eval()

    def trained_state(self) -> dict:
        """What a fit learnt, as plain values and CPU tensors (sent back from a data-parallel rank).

        Returns
        -------
        dict
            ``weights`` (the network's ``state_dict``), ``encoder``, ``y_mean``, ``y_std``,
            ``history`` and ``fit_seconds``; :meth:`adopt_trained_state` takes it.
        """
        if not self.fitted or self.net is None:
            raise ConfigError(f"model {self.name!r} is not fitted; there is no trained state")
        return {"weights": {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()},
                "encoder": self.encoder.to_dict(), "y_mean": self.y_mean, "y_std": self.y_std,
                "history": [dict(h) for h in self.history], "fit_seconds": self.fit_seconds}

    def adopt_trained_state(self, state: dict, *, fit_seconds: float | None = None) -> "DeepModel":
        """Become the model :meth:`trained_state` described (fitted elsewhere, e.g. on the cluster's ranks).

        Afterwards ``predict``, ``save``, ``load`` and ``describe`` behave as after ``fit`` here.

        Parameters
        ----------
        state : dict
            From :meth:`trained_state` of a model of the same kind, spec and parameters.
        fit_seconds : float, optional
            The fit's time (default: the one in ``state``).

        Returns
        -------
        DeepModel
            ``self``.
        """
        self.encoder = TableEncoder.from_dict(state["encoder"])
        self.y_mean, self.y_std = float(state["y_mean"]), float(state["y_std"])
        self.history = [dict(h) for h in state.get("history", [])]
        self.net = self._build()
        try:
            self.net.load_state_dict(state["weights"])
        except RuntimeError as err:
            raise ConfigError(f"model {self.name!r}: the trained weights do not fit this model's network "
                              f"({err}); adopt a state of the same kind and parameters") from None
        self.net.eval()
        self.fit_seconds = state.get("fit_seconds") if fit_seconds is None else float(fit_seconds)
        self.fitted = True
        return self

    def validation_score(self):
        """The :class:`~pipeline.models.deep.loop.ValidScore` reported every epoch (``None``: none)."""
        return None

    def _epoch_event(self, event: dict) -> None:
        if self.progress is not None:
            self.progress(event)
        if self.on_epoch is not None:
            self.on_epoch({"model": self.name, **event})

    def loop_kwargs(self) -> dict:
        """The keyword arguments of :func:`~pipeline.models.deep.loop.train_epochs` from the settings."""
        t = self.training
        rank, world = self.data_parallel
        hooked = self.progress is not None or self.on_epoch is not None
        return {"max_epochs": t.max_epochs, "batch_size": t.batch_size, "learning_rate": t.learning_rate,
                "early_stopping_patience": t.early_stopping_patience, "checkpoint_dir": self.checkpoint_dir,
                "checkpoint_every": t.checkpoint_every, "resume": t.resume, "seed": self.seed,
                "progress": self._epoch_event if hooked else None, "mixed_precision": t.mixed_precision,
                "score": self.validation_score(), "rank": rank, "world_size": world}

    @staticmethod
    def write_json(path: Path, data: dict) -> None:
        """Write the JSON state file (finite floats only)."""
        path.write_text(json.dumps(data, indent=1, allow_nan=False))

    @staticmethod
    def read_json(path: Path) -> dict:
        """Read a JSON state file."""
        return json.loads(Path(path).read_text())


def lai_scale(y: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of the LAI targets (scale 1 for a constant target)."""
    mean = float(np.mean(y)) if y.size else 0.0
    std = float(np.std(y)) if y.size else 1.0
    return mean, std if math.isfinite(std) and std > 0 else 1.0
