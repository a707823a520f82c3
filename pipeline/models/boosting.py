"""Gradient-boosted trees with XGBoost, for both tasks.

Histogram trees (``tree_method="hist"``) on the CPU or the GPU (``device``), categorical
features split natively (pandas ``category`` columns, ``enable_categorical=True``), NaN sent down
the learnt default branch. LULC is ``multi:softprob`` over the classes seen in training (mapped to
0..m-1; the spec's other classes get probability 0), LAI ``reg:squarederror``. With a validation
split and ``early_stopping_rounds``, training stops when the validation score stalls and the
booster is cut to its best iteration. Saved as UBJ (``model.ubj``, XGBoost's own format, no
pickle) with ``state.json`` (the feature encoding and the classes).

A fit is two steps that the cluster path (:func:`pipeline.train.fit_on_cluster`, ``xgboost.dask``)
shares with the in-process one: :meth:`XGBoostModel.training_data` (encoding, labels, validation
rows, parameters: a :class:`BoostingData`) and :meth:`XGBoostModel.adopt_booster` (the trained
booster cut to its best iteration, with the encoding, becomes the model's state).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config.models import XGBoostParams
from pipeline.errors import ConfigError, InputDataError
from pipeline.models.base import Model, TaskSpec
from pipeline.models.columns import FeatureEncoder, class_indices, spread_probabilities, training_rows

__all__ = ["BoostingData", "XGBoostModel"]

_BOOSTER = "model.ubj"
_META = "state.json"


@dataclass
class BoostingData:
    """What an XGBoost fit trains on, prepared by :meth:`XGBoostModel.training_data`.

    Attributes
    ----------
    encoder : FeatureEncoder
        The feature encoding learnt on the training rows.
    present : numpy.ndarray
        LULC: positions in ``spec.classes`` of the classes seen in training (the booster's outputs).
    frame : pandas.DataFrame
        The training features (:meth:`FeatureEncoder.frame`: fixed categories, float32, NaN kept).
    label : numpy.ndarray
        Training labels (LULC: 0..len(present)-1; LAI: float64).
    valid_frame, valid_label : optional
        Validation rows and labels when early stopping applies, else ``None``.
    params : dict
        ``xgboost.train`` parameters (objective, ``num_class`` ...).
    num_boost_round : int
        ``params.n_estimators``.
    early_stopping_rounds : int or None
        Set when there are validation rows to stop on.
    """

    encoder: FeatureEncoder
    present: np.ndarray
    frame: pd.DataFrame
    label: np.ndarray
    valid_frame: pd.DataFrame | None
    valid_label: np.ndarray | None
    params: dict
    num_boost_round: int
    early_stopping_rounds: int | None


def _booster_outputs(booster) -> int:
    """Output columns of a booster (its ``num_class``, 1 for a regression)."""
    cfg = json.loads(booster.save_config())
    return max(int(cfg["learner"]["learner_model_param"].get("num_class", "0")), 1)


class XGBoostModel(Model):
    """XGBoost hist trees with native categoricals; multiclass softprob (LULC) or squared error (LAI)."""

    kind = "xgboost"
    family = "ml"
    tasks = frozenset({"lulc", "lai"})
    params_type = XGBoostParams

    def __init__(self, spec: TaskSpec, params=None, **kwargs):
        super().__init__(spec, params, **kwargs)
        self.booster = None
        self.encoder: FeatureEncoder | None = None
        #: positions in spec.classes of the booster's output columns (LULC)
        self.present = np.zeros(0, dtype=np.int64)

    def _device(self) -> str:
        return "cuda" if str(self.device).startswith(("cuda", "gpu")) else "cpu"

    def booster_params(self, n_outputs: int | None = None) -> dict:
        """The ``xgboost.train`` / ``xgboost.dask.train`` parameters of this model.

        Parameters
        ----------
        n_outputs : int, optional
            LULC: the number of classes seen in training (default: those of the last fit).
        """
        p = self.params
        params = {
            "tree_method": "hist",
            "device": self._device(),
            "max_depth": p.max_depth,
            "learning_rate": p.learning_rate,
            "subsample": p.subsample,
            "colsample_bytree": p.colsample_bytree,
            "min_child_weight": p.min_child_weight,
            "reg_lambda": p.reg_lambda,
            "max_bin": p.max_bin,
            "seed": self.seed,
        }
        if self.spec.task == "lulc":
            params.update(objective="multi:softprob", num_class=len(self.present) if n_outputs is None else n_outputs,
                          eval_metric="mlogloss")
        else:
            params.update(objective="reg:squarederror", eval_metric="rmse")
        return params

    def _matrix(self, X: pd.DataFrame, label=None, *, ref=None, quantile: bool = False):
        """XGBoost's matrix of the features (categories fixed to the training lists, NaN kept).

        Training takes a ``QuantileDMatrix`` (the hist bins built once, without a float copy of the
        table kept); prediction a plain ``DMatrix``.
        """
        import xgboost as xgb

        frame = self.encoder.frame(X)
        if quantile:
            return xgb.QuantileDMatrix(frame, label=label, enable_categorical=True, missing=np.nan,
                                       max_bin=self.params.max_bin, ref=ref)
        return xgb.DMatrix(frame, label=label, enable_categorical=True, missing=np.nan)

    def _labels(self, y: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
        """LULC: class codes → 0..m-1 over the training classes (-1: a class not seen in training)."""
        present = self.present if present is None else present
        lookup = np.full(self.spec.n_classes, -1, dtype=np.int64)
        lookup[present] = np.arange(len(present))
        return lookup[class_indices(y, self.spec.classes, self.name)]

    def training_data(self, X: pd.DataFrame, y, X_valid: pd.DataFrame | None = None, y_valid=None) -> BoostingData:
        """Everything a fit trains on: encoding, labels, validation rows and parameters (the model is unchanged).

        Rows without a target are dropped; LULC validation rows of a class absent from training are
        dropped (the booster has no output to score them); without validation rows, or with
        ``params.early_stopping_rounds`` null, no early stopping.

        Parameters
        ----------
        X : pandas.DataFrame
            Training table.
        y : array_like
            Targets (class codes or LAI).
        X_valid, y_valid : optional
            Validation rows.

        Returns
        -------
        BoostingData
        """
        X, y = training_rows(X, np.asarray(y), self.name)
        encoder = FeatureEncoder.fit(X, self.spec.features, self.spec.categorical, model=self.name)
        present = np.zeros(0, dtype=np.int64)
        if self.spec.task == "lulc":
            present = np.unique(class_indices(y, self.spec.classes, self.name))
            if len(present) < 2:
                raise ConfigError(f"model {self.name!r}: the training rows hold only one class; a classifier "
                                  "needs at least two")
            label = self._labels(y, present)
        else:
            label = y.astype(np.float64)
        valid_frame = valid_label = stop = None
        if X_valid is not None and y_valid is not None and self.params.early_stopping_rounds:
            Xv, yv = training_rows(X_valid, np.asarray(y_valid), self.name)
            if self.spec.task == "lulc":
                # validation rows of classes the booster has no output for cannot be scored
                lv = self._labels(yv, present)
                Xv, lv = Xv.iloc[np.flatnonzero(lv >= 0)], lv[lv >= 0]
            else:
                lv = yv.astype(np.float64)
            if len(lv):
                valid_frame, valid_label = encoder.frame(Xv), lv
                stop = self.params.early_stopping_rounds
        return BoostingData(encoder=encoder, present=present, frame=encoder.frame(X), label=label,
                            valid_frame=valid_frame, valid_label=valid_label,
                            params=self.booster_params(len(present) if self.spec.task == "lulc" else None),
                            num_boost_round=self.params.n_estimators, early_stopping_rounds=stop)

    def adopt_booster(self, booster, *, encoder: FeatureEncoder, present=None,
                      fit_seconds: float | None = None) -> "XGBoostModel":
        """Make a booster trained elsewhere (``xgboost.dask``) this model's fitted state.

        Sets what an in-process fit sets: the booster (cut to its best iteration when it was
        early-stopped, so that it predicts the same without an iteration range), the feature
        encoding (feature order, categories), the classes seen in training, the fit time; then
        ``predict``, ``save``, ``load`` and ``describe`` behave as after :meth:`fit`.

        Parameters
        ----------
        booster : xgboost.Booster
            Trained on :meth:`training_data`'s frames and labels with its ``params``.
        encoder : FeatureEncoder
            ``BoostingData.encoder``.
        present : array_like, optional
            LULC: ``BoostingData.present``.
        fit_seconds : float, optional
            How long the fit took.

        Returns
        -------
        XGBoostModel
            ``self``.

        Raises
        ------
        ConfigError
            The booster's features or outputs do not match the encoding and classes.
        """
        present = np.zeros(0, dtype=np.int64) if present is None else np.asarray(present, dtype=np.int64)
        names = booster.feature_names
        if booster.num_features() != len(encoder.features) or (names is not None and
                                                               list(names) != list(encoder.features)):
            raise ConfigError(f"model {self.name!r}: the booster was trained on features {names or booster.num_features()}, "
                              f"not the encoding's {list(encoder.features)}")
        outputs = len(present) if self.spec.task == "lulc" else 1
        if _booster_outputs(booster) != outputs:
            raise ConfigError(f"model {self.name!r}: the booster has {_booster_outputs(booster)} output(s), "
                              f"the task's training classes {outputs}")
        best = booster.attr("best_iteration")
        if best is not None and booster.num_boosted_rounds() > int(best) + 1:
            # keep the trees up to the best validation score only: the saved model then predicts
            # the same without any iteration range
            booster = booster[: int(best) + 1]
        booster.set_param({"device": self._device()})
        self.booster = booster
        self.encoder = encoder
        self.present = present
        self.fit_seconds = None if fit_seconds is None else float(fit_seconds)
        self.fitted = True
        return self

    def _fit(self, X, y, X_valid, y_valid) -> None:
        import xgboost as xgb

        data = self.training_data(X, y, X_valid, y_valid)
        dtrain = xgb.QuantileDMatrix(data.frame, label=data.label, enable_categorical=True, missing=np.nan,
                                     max_bin=self.params.max_bin)
        evals = []
        if data.early_stopping_rounds is not None:
            # binned with the training rows' cut points (ref), as XGBoost requires for evaluation
            evals = [(xgb.QuantileDMatrix(data.valid_frame, label=data.valid_label, enable_categorical=True,
                                          missing=np.nan, max_bin=self.params.max_bin, ref=dtrain), "valid")]
        booster = xgb.train(data.params, dtrain, num_boost_round=data.num_boost_round, evals=evals,
                            early_stopping_rounds=data.early_stopping_rounds, verbose_eval=False)
        # Model.fit sets the fit time and `fitted` after this returns
        self.adopt_booster(booster, encoder=data.encoder, present=data.present)

    def _predict(self, X: pd.DataFrame) -> np.ndarray:
        pred = self.booster.predict(self._matrix(X))
        if self.spec.task == "lulc":
            return spread_probabilities(pred.reshape(len(X), len(self.present)), self.present, self.spec.n_classes)
        return pred.astype(np.float64)

    def _save(self, directory: Path) -> list[str]:
        self.booster.save_model(str(directory / _BOOSTER))
        (directory / _META).write_text(json.dumps({"encoder": self.encoder.to_dict(),
                                                   "present": self.present.tolist()}, indent=1))
        return [_BOOSTER, _META]

    def _load(self, directory: Path) -> None:
        import xgboost as xgb

        try:
            meta = json.loads((directory / _META).read_text())
            booster = xgb.Booster()
            booster.load_model(str(directory / _BOOSTER))
        except (OSError, ValueError, xgb.core.XGBoostError) as err:
            raise InputDataError(f"model {directory}: the XGBoost state cannot be read ({err}); "
                                 "save the model again") from None
        booster.set_param({"device": self._device()})
        self.booster = booster
        self.encoder = FeatureEncoder.from_dict(meta["encoder"], model=self.name)
        self.present = np.asarray(meta["present"], dtype=np.int64)
