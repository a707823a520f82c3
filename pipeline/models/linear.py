"""Linear baselines: ridge regression (LAI) and multinomial logistic regression (LULC).

scikit-learn pipelines on the CPU: the numeric features standardised, the categorical ones
one-hot encoded (a category unseen in training encodes as all zeros), NaN imputed beforehand with
the training medians (:class:`~pipeline.models.columns.FeatureEncoder`). Saved through skops
(``linear.skops``) with the trust check of :func:`pipeline.models.forest.load_estimator`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config.models import LogisticParams, RidgeParams
from pipeline.errors import ConfigError
from pipeline.models.base import Model, TaskSpec
from pipeline.models.columns import FeatureEncoder, class_indices, spread_probabilities, training_rows
from pipeline.models.forest import load_estimator_state, save_estimator_state

__all__ = ["LogisticModel", "RidgeModel"]

_ESTIMATOR = "linear.skops"


class _LinearModel(Model):
    """Shared by the two linear models: the feature encoding, the pipeline, skops persistence."""

    family = "ml"
    params_type = RidgeParams

    def __init__(self, spec: TaskSpec, params=None, **kwargs):
        super().__init__(spec, params, **kwargs)
        self.pipeline = None
        self.encoder: FeatureEncoder | None = None
        self.present = np.zeros(0, dtype=np.int64)

    def _final_estimator(self):
        raise NotImplementedError

    def _new_pipeline(self):
        from sklearn.compose import ColumnTransformer
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        parts = []
        if self.encoder.numeric_positions:
            parts.append(("numeric", StandardScaler(), self.encoder.numeric_positions))
        if self.encoder.categorical_positions:
            # the codes of the encoder (-1: missing/unseen) as one column per category
            parts.append(("categorical", OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                          self.encoder.categorical_positions))
        return Pipeline([("encode", ColumnTransformer(parts)), ("fit", self._final_estimator())])

    def _fit(self, X, y, X_valid, y_valid) -> None:
        X, y = training_rows(X, y, self.name)
        self.encoder = FeatureEncoder.fit(X, self.spec.features, self.spec.categorical, model=self.name)
        M = self.encoder.matrix(X)
        self.pipeline = self._new_pipeline()
        if self.spec.task == "lulc":
            k = class_indices(y, self.spec.classes, self.name)
            self.present = np.unique(k)
            if len(self.present) < 2:
                raise ConfigError(f"model {self.name!r}: the training rows hold only one class; a classifier "
                                  "needs at least two")
            with _one_blas_thread():
                self.pipeline.fit(M, k)
        else:
            with _one_blas_thread():
                self.pipeline.fit(M, y.astype(np.float64))

    def _predict(self, X: pd.DataFrame) -> np.ndarray:
        M = self.encoder.matrix(X)
        if self.spec.task == "lulc":
            proba = self.pipeline.predict_proba(M)
            cols = np.asarray(self.pipeline.classes_, dtype=np.int64)
            return spread_probabilities(proba, cols, self.spec.n_classes)
        return np.asarray(self.pipeline.predict(M), dtype=np.float64)

    def _save(self, directory: Path) -> list[str]:
        return save_estimator_state(directory, _ESTIMATOR, self.pipeline, self.encoder, self.present)

    def _load(self, directory: Path) -> None:
        self.pipeline, self.encoder, self.present = load_estimator_state(directory, _ESTIMATOR, self.name)


def _one_blas_thread():
    """BLAS limited to one thread for the linear fits.

    Their matrices are a few dozen columns wide: a second BLAS thread gains nothing, and on a
    machine whose cores also run dask workers OpenBLAS's waiting threads made lbfgs 20x slower
    (47 s against 2.6 s for the demo's logistic regression).
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


class RidgeModel(_LinearModel):
    """Ridge regression (LAI) on standardised features, categories one-hot encoded."""

    kind = "ridge"
    tasks = frozenset({"lai"})
    params_type = RidgeParams

    def _final_estimator(self):
        from sklearn.linear_model import Ridge

        return Ridge(alpha=self.params.alpha)


class LogisticModel(_LinearModel):
    """Multinomial logistic regression (LULC) on standardised features, categories one-hot encoded."""

    kind = "logistic"
    tasks = frozenset({"lulc"})
    params_type = LogisticParams

    def _final_estimator(self):
        from sklearn.linear_model import LogisticRegression

        # lbfgs fits the multinomial (softmax) model whenever there are more than two classes
        return LogisticRegression(C=self.params.C, max_iter=self.params.max_iter, random_state=self.seed)
