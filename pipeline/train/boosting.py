"""XGBoost on the dask cluster: ``xgboost.dask`` over the lazily read feature table.

The training rows are never collected into one pandas frame: a ``DaskQuantileDMatrix`` is built
from the dask DataFrame's partitions on the workers (native categorical columns, NaN as
missing), and the trees are grown by ``xgboost.dask.train`` across all workers. LULC targets
(class codes) are mapped to 0..K-1 in the order of the task's classes, partition by partition.
"""

from __future__ import annotations

import numpy as np

from pipeline.errors import ConfigError

__all__ = ["booster_params", "fit_xgboost_dask"]


def booster_params(spec, params, *, device: str = "cpu", seed: int = 0) -> dict:
    """The XGBoost training parameters of a task and its typed ``XGBoostParams``.

    Parameters
    ----------
    spec : pipeline.models.TaskSpec
        The task (LULC: multiclass soft probabilities over ``spec.classes``; LAI: squared error).
    params : pipeline.config.XGBoostParams
        The model's parameters.
    device : str
        ``cpu`` or ``cuda``.
    seed : int
        The run's seed.

    Returns
    -------
    dict
        Parameters for ``xgboost.train`` / ``xgboost.dask.train``.
    """
    out = {"tree_method": "hist", "device": device, "max_depth": params.max_depth, "eta": params.learning_rate,
           "subsample": params.subsample, "colsample_bytree": params.colsample_bytree,
           "min_child_weight": params.min_child_weight, "lambda": params.reg_lambda, "max_bin": params.max_bin,
           "seed": seed}
    if spec.task == "lulc":
        out.update(objective="multi:softprob", num_class=spec.n_classes, eval_metric="mlogloss")
    else:
        out.update(objective="reg:squarederror", eval_metric="rmse")
    return out


def _labels(part, target: str, classes: np.ndarray):
    codes = np.asarray(part[target], dtype=np.int64)
    idx = np.clip(np.searchsorted(classes, codes), 0, classes.size - 1)
    return part.assign(**{target: idx.astype(np.float32)})


def _check_classes(ddf, target: str, classes: np.ndarray) -> None:
    # checked on the client before training: an error raised inside xgboost's workers comes back
    # as xgboost's own assertion, without the codes
    found = np.asarray(ddf[target].dropna().unique().compute(), dtype=np.int64)
    bad = sorted(set(found.tolist()) - set(classes.tolist()))
    if bad:
        raise ConfigError(f"target {target!r} holds class codes {bad[:10]} outside the task's classes "
                          f"{classes.tolist()}; add them to the class table or mark them missing")


def _matrix(client, ddf, spec, params, ref=None):
    import xgboost.dask as dxgb

    if spec.task == "lulc":
        classes = np.asarray(sorted(spec.classes), dtype=np.int64)
        _check_classes(ddf, spec.target, classes)
        meta = ddf._meta.assign(**{spec.target: np.zeros(0, np.float32)})
        ddf = ddf.map_partitions(_labels, spec.target, classes, meta=meta)
    X = ddf[list(spec.features)]
    categorical = [c for c in spec.categorical if c in X.columns]
    if categorical:
        X = X.categorize(columns=categorical) if not all(X[c].cat.known for c in categorical) else X
    # validation bins must be the training matrix's: it is passed as the reference
    return dxgb.DaskQuantileDMatrix(client, X, ddf[spec.target], enable_categorical=True, max_bin=params.max_bin,
                                    ref=ref)


def fit_xgboost_dask(client, train_ddf, spec, params, *, valid_ddf=None, device: str = "cpu", seed: int = 0):
    """Grow an XGBoost model over the cluster's workers from dask DataFrames.

    Parameters
    ----------
    client : distributed.Client
        The cluster.
    train_ddf : dask.dataframe.DataFrame
        The training rows (feature columns and the target), read lazily.
    spec : pipeline.models.TaskSpec
        The task and its columns.
    params : pipeline.config.XGBoostParams
        The model's parameters.
    valid_ddf : dask.dataframe.DataFrame, optional
        Validation rows (early stopping after ``params.early_stopping_rounds`` stalled rounds).
    device : str
        ``cpu`` or ``cuda`` (a ``LocalCUDACluster``'s workers train on their GPU).
    seed : int
        The run's seed.

    Returns
    -------
    xgboost.Booster
        The trained booster (the LULC class order is ``sorted(spec.classes)``).
    """
    import xgboost.dask as dxgb

    missing = [c for c in (*spec.features, spec.target) if c not in train_ddf.columns]
    if missing:
        raise ConfigError(f"the training table has no column(s) {missing}; check features: and the task's target")
    dtrain = _matrix(client, train_ddf, spec, params)
    evals = []
    if valid_ddf is not None:
        dvalid = _matrix(client, valid_ddf, spec, params, ref=dtrain)
        evals = [(dvalid, "valid")]
    out = dxgb.train(client, booster_params(spec, params, device=device, seed=seed), dtrain,
                     num_boost_round=params.n_estimators, evals=evals,
                     early_stopping_rounds=params.early_stopping_rounds if evals else None, verbose_eval=False)
    return out["booster"]
