"""Gradient-boosted trees with XGBoost, for both tasks.

Histogram trees (``tree_method="hist"``) on the CPU or the GPU (``device``), categorical
features split natively (pandas ``category`` columns, ``enable_categorical=True``), NaN sent down
the learnt default branch. LULC is ``multi:softprob`` over the classes seen in training (mapped to
0..m-1; the spec's other classes get probability 0), LAI ``reg:squarederror``. With a validation
split and ``early_stopping_rounds``, training stops when the validation score stalls and the
booster is cut to its best iteration. Saved as UBJ (``model.ubj``, XGBoost's own format, no
pickle) with ``state.json`` (the feature encoding and the classes).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config.models import XGBoostParams
from pipeline.errors import ConfigError, InputDataError
from pipeline.models.base import Model, TaskSpec
from pipeline.models.columns import FeatureEncoder, class_indices, spread_probabilities, training_rows

__all__ = ["XGBoostModel"]

_BOOSTER = "model.ubj"
_META = "state.json"


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

    def _booster_params(self) -> dict:
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
            params.update(objective="multi:softprob", num_class=len(self.present), eval_metric="mlogloss")
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

    def _labels(self, y: np.ndarray) -> np.ndarray:
        """LULC: class codes → 0..m-1 over the training classes (-1: a class not seen in training)."""
        lookup = np.full(self.spec.n_classes, -1, dtype=np.int64)
        lookup[self.present] = np.arange(len(self.present))
        return lookup[class_indices(y, self.spec.classes, self.name)]

    def _fit(self, X, y, X_valid, y_valid) -> None:
        import xgboost as xgb

        X, y = training_rows(X, y, self.name)
        self.encoder = FeatureEncoder.fit(X, self.spec.features, self.spec.categorical, model=self.name)
        if self.spec.task == "lulc":
            self.present = np.unique(class_indices(y, self.spec.classes, self.name))
            if len(self.present) < 2:
                raise ConfigError(f"model {self.name!r}: the training rows hold only one class; a classifier "
                                  "needs at least two")
            label = self._labels(y)
        else:
            label = y.astype(np.float64)
        dtrain = self._matrix(X, label, quantile=True)
        evals, stop = [], None
        if X_valid is not None and y_valid is not None and self.params.early_stopping_rounds:
            Xv, yv = training_rows(X_valid, y_valid, self.name)
            if self.spec.task == "lulc":
                # validation rows of classes the booster has no output for cannot be scored
                lv = self._labels(yv)
                Xv, lv = Xv.iloc[np.flatnonzero(lv >= 0)], lv[lv >= 0]
            else:
                lv = yv.astype(np.float64)
            if len(lv):
                # binned with the training rows' cut points (ref), as XGBoost requires for evaluation
                evals = [(self._matrix(Xv, lv, ref=dtrain, quantile=True), "valid")]
                stop = self.params.early_stopping_rounds
        booster = xgb.train(self._booster_params(), dtrain, num_boost_round=self.params.n_estimators, evals=evals,
                            early_stopping_rounds=stop, verbose_eval=False)
        if stop is not None:
            # keep the trees up to the best validation score only: the saved model then predicts
            # the same without any iteration range
            booster = booster[: booster.best_iteration + 1]
        self.booster = booster

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
