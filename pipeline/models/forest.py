"""Random forests for both tasks: scikit-learn on the CPU, cuML on the GPU, with the same settings.

The estimator comes from :func:`pipeline.backend.estimator_module` (the one place that imports
cuML): scikit-learn's ``ensemble`` for ``device="cpu"``, cuML's for ``device="cuda"``. The
parameters map one to one (``n_estimators``, ``max_depth``, ``min_samples_leaf``, ``max_features``
as a fraction, ``max_samples`` as a fraction of bootstrapped rows); ``n_bins`` applies to cuML only
(scikit-learn splits exactly). Features are a float matrix: numbers with NaN imputed by the
training medians, categories as their integer codes (:class:`~pipeline.models.columns.FeatureEncoder`).

Saved through skops (``forest.skops``), never pickle: loading first lists the file's types that
skops does not trust by default and refuses any that is not in :data:`TRUSTED_SKOPS_TYPES`. A cuML
forest is converted to its scikit-learn equivalent to be saved, so a loaded forest always predicts
with scikit-learn on the CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.config.models import RandomForestParams
from pipeline.errors import ConfigError, InputDataError
from pipeline.models.base import Model, TaskSpec
from pipeline.models.columns import FeatureEncoder, class_indices, spread_probabilities, training_rows

__all__ = ["TRUSTED_SKOPS_TYPES", "RandomForestModel", "dump_estimator", "load_estimator"]

_ESTIMATOR = "forest.skops"
_META = "state.json"

#: types a saved scikit-learn estimator of terrascale may hold beyond those skops trusts by default
#: (scikit-learn's estimators and NumPy arrays): the trees of a forest
TRUSTED_SKOPS_TYPES: frozenset[str] = frozenset({"sklearn.tree._tree.Tree"})


def dump_estimator(estimator, path: Path) -> None:
    """Write a scikit-learn estimator with skops (no pickle).

    Parameters
    ----------
    estimator : sklearn estimator
        A fitted estimator or pipeline.
    path : Path
        The ``.skops`` file to write.
    """
    import skops.io as sio

    sio.dump(estimator, path)


def load_estimator(path: Path, trusted: frozenset[str] = TRUSTED_SKOPS_TYPES):
    """Read an estimator :func:`dump_estimator` wrote, trusting only the listed types.

    Parameters
    ----------
    path : Path
        The ``.skops`` file.
    trusted : frozenset of str
        Types allowed beyond skops' defaults.

    Returns
    -------
    sklearn estimator

    Raises
    ------
    InputDataError
        The file is unreadable or holds a type outside ``trusted`` (it could run code when loaded).
    """
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as err:  # noqa: BLE001  (skops raises zipfile/json/its own errors on a damaged file)
        raise InputDataError(f"{path}: not a readable skops file ({type(err).__name__}: {err}); "
                             "save the model again") from None
    refused = sorted(set(untrusted) - set(trusted))
    if refused:
        raise InputDataError(f"{path} holds type(s) {refused} that terrascale does not trust; refusing to load it")
    return sio.load(path, trusted=list(untrusted))


def save_estimator_state(directory: Path, name: str, estimator, encoder, present) -> list[str]:
    """Write a scikit-learn estimator (skops) and its encoder and class columns (JSON).

    The state of :class:`RandomForestModel` and the linear models; returns the files written.
    """
    dump_estimator(estimator, directory / name)
    (directory / _META).write_text(json.dumps({"encoder": encoder.to_dict(), "present": present.tolist()}, indent=1))
    return [name, _META]


def load_estimator_state(directory: Path, name: str, model: str):
    """Read what :func:`save_estimator_state` wrote: ``(estimator, encoder, present)``."""
    estimator = load_estimator(directory / name)
    meta = json.loads((directory / _META).read_text())
    return (estimator, FeatureEncoder.from_dict(meta["encoder"], model=model),
            np.asarray(meta["present"], dtype=np.int64))


def _rows_in_parallel(estimator, method: str, M: np.ndarray, block: int = 1 << 16) -> np.ndarray:
    """``estimator.method(M)`` computed on blocks of rows in threads, each block on one thread.

    scikit-learn's own ``n_jobs`` parallelises over trees and adds their outputs in whatever
    order the threads finish, so the same forest gives predictions a few ulps apart from one call
    to the next; over row blocks every row is summed in tree order, and a saved and reloaded
    forest predicts exactly the same (tree traversal releases the GIL: the threads do run in parallel).
    """
    from joblib import Parallel, delayed

    estimator.set_params(n_jobs=1)
    predict = getattr(estimator, method)
    if len(M) <= block:
        return predict(M)
    parts = Parallel(n_jobs=-1, prefer="threads")(delayed(predict)(M[i:i + block]) for i in range(0, len(M), block))
    return np.concatenate(parts)


class RandomForestModel(Model):
    """Random forest (scikit-learn on the CPU, cuML on the GPU); class probabilities or values."""

    kind = "random_forest"
    family = "ml"
    tasks = frozenset({"lulc", "lai"})
    params_type = RandomForestParams

    def __init__(self, spec: TaskSpec, params=None, **kwargs):
        super().__init__(spec, params, **kwargs)
        self.estimator = None
        self.encoder: FeatureEncoder | None = None
        #: positions in spec.classes of the estimator's classes (LULC)
        self.present = np.zeros(0, dtype=np.int64)

    def _on_gpu(self) -> bool:
        return str(self.device).startswith(("cuda", "gpu"))

    def _new_estimator(self):
        from pipeline.backend import estimator_module, resolve_backend

        p = self.params
        classifier = self.spec.task == "lulc"
        settings = {"n_estimators": p.n_estimators, "max_depth": p.max_depth, "min_samples_leaf": p.min_samples_leaf,
                    "max_features": p.max_features, "max_samples": p.max_samples, "bootstrap": True,
                    "random_state": self.seed}
        if self._on_gpu():
            # cuML through the backend (BackendError naming what is missing without a usable GPU)
            module = estimator_module(resolve_backend("gpu"), "ensemble")
            cls = module.RandomForestClassifier if classifier else module.RandomForestRegressor
            return cls(**settings, n_bins=p.n_bins, output_type="numpy")
        module = estimator_module(resolve_backend("cpu"), "ensemble")
        cls = module.RandomForestClassifier if classifier else module.RandomForestRegressor
        return cls(**settings, n_jobs=-1)

    def _fit(self, X, y, X_valid, y_valid) -> None:
        X, y = training_rows(X, y, self.name)
        self.encoder = FeatureEncoder.fit(X, self.spec.features, self.spec.categorical, model=self.name)
        # cuML wants float32 features and int32 labels; scikit-learn takes either
        dtype = np.float32 if self._on_gpu() else np.float64
        M = self.encoder.matrix(X, dtype=dtype)
        est = self._new_estimator()
        if self.spec.task == "lulc":
            k = class_indices(y, self.spec.classes, self.name)
            self.present = np.unique(k)
            if len(self.present) < 2:
                raise ConfigError(f"model {self.name!r}: the training rows hold only one class; a classifier "
                                  "needs at least two")
            est.fit(M, np.searchsorted(self.present, k).astype(np.int32))
        else:
            est.fit(M, y.astype(dtype))
        self.estimator = est

    def _predict(self, X: pd.DataFrame) -> np.ndarray:
        sklearn = self._is_sklearn()
        M = self.encoder.matrix(X, dtype=np.float64 if sklearn else np.float32)
        method = "predict_proba" if self.spec.task == "lulc" else "predict"
        out = _rows_in_parallel(self.estimator, method, M) if sklearn else getattr(self.estimator, method)(M)
        if self.spec.task == "lulc":
            # the estimator's columns are its classes_ (labels 0..m-1 of the present classes)
            cols = self.present[np.asarray(self.estimator.classes_, dtype=np.int64)]
            return spread_probabilities(np.asarray(out), cols, self.spec.n_classes)
        return np.asarray(out, dtype=np.float64)

    def _is_sklearn(self) -> bool:
        return type(self.estimator).__module__.startswith("sklearn.")

    def _save(self, directory: Path) -> list[str]:
        est = self.estimator if self._is_sklearn() else self.estimator.as_sklearn()
        return save_estimator_state(directory, _ESTIMATOR, est, self.encoder, self.present)

    def _load(self, directory: Path) -> None:
        self.estimator, self.encoder, self.present = load_estimator_state(directory, _ESTIMATOR, self.name)
