"""Typed parameters of every model kind, and the model entry of a config (a union on ``kind``).

An unknown kind or a mistyped parameter is a config error naming the model, like any other key:
each kind has its own parameter model with ``extra="forbid"``, and ``models:`` entries are a
pydantic union discriminated on ``kind``.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, PositiveInt, model_validator

from pipeline.config.section import Section

__all__ = [
    "MODEL_KINDS",
    "BilinearParams",
    "ClimatologyParams",
    "CoarsePriorParams",
    "LogisticParams",
    "MLPParams",
    "ModelEntry",
    "ParentMajorityParams",
    "RandomForestParams",
    "RidgeParams",
    "UNetParams",
    "XGBoostParams",
]


class CoarsePriorParams(Section):
    """LULC coarse prior: parent group fractions shared among a group's classes by their training
    frequency in the cell's Köppen zone."""

    smoothing: float = Field(1.0, ge=0, description="pseudo-count added to every class count (Laplace smoothing)")


class ParentMajorityParams(Section):
    """LULC parent majority: the most frequent class of the parent's largest group."""


class ClimatologyParams(Section):
    """LAI climatology: training mean per land-cover class x Köppen zone x month."""

    min_count: int = Field(1, ge=1, description="fewer training rows than this: fall back to class x month, then month")


class BilinearParams(Section):
    """LAI downscaling baseline: the coarse LAI interpolated bilinearly to the fine cells."""


class XGBoostParams(Section):
    """XGBoost (hist trees, native categoricals; multiclass softprob for LULC)."""

    n_estimators: int = Field(200, ge=1)
    max_depth: int = Field(8, ge=1)
    learning_rate: float = Field(0.1, gt=0)
    subsample: float = Field(1.0, gt=0, le=1)
    colsample_bytree: float = Field(1.0, gt=0, le=1)
    min_child_weight: float = Field(1.0, ge=0)
    reg_lambda: float = Field(1.0, ge=0)
    max_bin: int = Field(256, ge=2)
    early_stopping_rounds: int | None = Field(20, ge=1, description="stop when the validation score stalls; null: never")


class RandomForestParams(Section):
    """Random forest (scikit-learn on the CPU, cuML on the GPU, settings matched)."""

    n_estimators: int = Field(100, ge=1)
    max_depth: int = Field(12, ge=1)
    min_samples_leaf: int = Field(1, ge=1)
    max_features: float = Field(0.5, gt=0, le=1, description="fraction of the features tried at each split")
    max_samples: float = Field(1.0, gt=0, le=1, description="fraction of the rows bootstrapped per tree")
    n_bins: int = Field(128, ge=2, description="split candidates per feature (cuML; scikit-learn splits exactly)")


class RidgeParams(Section):
    """Ridge regression (LAI) on standardised features, categories one-hot encoded."""

    alpha: float = Field(1.0, ge=0)


class LogisticParams(Section):
    """Multinomial logistic regression (LULC) on standardised features, categories one-hot encoded."""

    C: float = Field(1.0, gt=0)
    max_iter: int = Field(200, ge=1)


class MLPParams(Section):
    """A multilayer perceptron on the table (PyTorch)."""

    hidden: list[PositiveInt] = Field(default_factory=lambda: [128, 128], min_length=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    embedding_dim: int = Field(4, ge=1, description="width of each categorical column's embedding")
    constrained: bool = Field(True, description="apply the conservation constraint layer (see README)")


class UNetParams(Section):
    """A U-Net on patches of the fine grid (PyTorch), tiles blended by a Gaussian window."""

    depth: int = Field(3, ge=1, le=6)
    base_channels: int = Field(16, ge=1)
    patch_size: int = Field(64, ge=8)
    overlap: int = Field(16, ge=0)
    embedding_dim: int = Field(4, ge=1, description="width of each categorical column's embedding")
    constrained: bool = Field(True, description="apply the conservation constraint layer (see README)")

    @model_validator(mode="after")
    def _check(self) -> "UNetParams":
        if self.overlap >= self.patch_size:
            raise ValueError(f"overlap {self.overlap} must be smaller than patch_size {self.patch_size}")
        if self.patch_size < 2**self.depth:
            raise ValueError(f"patch_size {self.patch_size} is smaller than 2**depth = {2**self.depth}; "
                             "lower depth or raise patch_size")
        return self


def _entry(kind: str, params: type[Section], doc: str) -> type[Section]:
    annotations = {"kind": Literal[kind], "name": str | None, "tasks": list[Literal["lulc", "lai"]] | None,
                   "params": params}
    namespace = {
        "__annotations__": annotations,
        "__doc__": doc,
        "__module__": __name__,
        "name": Field(None, description="name in the report (default: the kind)"),
        "tasks": Field(None, description="tasks this entry is trained for (default: every task of the run "
                       "that its kind supports)"),
        "params": Field(default_factory=params),
    }
    return type(f"{params.__name__[:-6]}Entry", (Section,), namespace)


_PARAMS = {
    "coarse_prior": CoarsePriorParams,
    "parent_majority": ParentMajorityParams,
    "climatology": ClimatologyParams,
    "bilinear": BilinearParams,
    "xgboost": XGBoostParams,
    "random_forest": RandomForestParams,
    "ridge": RidgeParams,
    "logistic": LogisticParams,
    "mlp": MLPParams,
    "unet": UNetParams,
}
#: every model kind the config accepts (the registry of :mod:`pipeline.models` implements them)
MODEL_KINDS: tuple[str, ...] = tuple(_PARAMS)
_ENTRIES = tuple(_entry(k, p, f"A ``{k}`` model of the comparison.") for k, p in _PARAMS.items())

#: one ``models:`` entry: ``{kind: xgboost, name: ..., params: {...}}``, typed by its kind
ModelEntry = Annotated[Union[_ENTRIES], Field(discriminator="kind")]
