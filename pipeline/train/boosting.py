"""XGBoost on the dask cluster: ``xgboost.dask`` over the lazily read feature table.

The training rows are never collected into one pandas frame: a ``DaskQuantileDMatrix`` is built
from the dask DataFrame's partitions on the workers (native categorical columns, NaN as
missing), and the trees are grown by ``xgboost.dask.train`` across all workers. LULC targets
(class codes) are mapped to 0..K-1 in the order of the task's classes, partition by partition.

:func:`_fit_xgboost_model` trains a configured :class:`~pipeline.models.boosting.XGBoostModel`
the same way from an in-memory table (:func:`pipeline.train.fit_on_cluster`): the model's own
encoding, labels and parameters (:meth:`~pipeline.models.boosting.XGBoostModel.training_data`),
the table split into partitions scattered over the workers, and the booster adopted by the model
(:meth:`~pipeline.models.boosting.XGBoostModel.adopt_booster`), so that it predicts, saves and
loads as after an in-process fit.
"""

from __future__ import annotations

import math
import time

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


#: training rows per partition of the scattered table (more partitions when the workers are fewer)
ROWS_PER_PARTITION = 500_000
#: the label column of the scattered partitions (beside the feature columns)
_LABEL = "__label__"


def _scattered_frame(client, frame, label, n_parts: int):
    """A dask DataFrame of ``frame`` plus the labels, cut into row ranges scattered over the workers."""
    import dask.dataframe as dd

    table = frame.assign(**{_LABEL: np.asarray(label)})
    bounds = np.linspace(0, len(table), max(1, min(n_parts, len(table))) + 1).astype(np.int64)
    chunks = [table.iloc[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    futures = client.scatter(chunks, hash=False)  # one chunk per worker in turn
    ddf = dd.from_delayed(futures, meta=table.iloc[:0], verify_meta=False)
    return ddf.map_partitions(_own_buffers, meta=table.iloc[:0]), futures


def _own_buffers(part):
    # a frame unpickled on a worker may view the message buffer at any byte offset; XGBoost's
    # array interface refuses a misaligned pointer, so each column gets a freshly allocated copy
    # (a deep copy shares a categorical's categories, which are rebuilt explicitly)
    import pandas as pd

    out = part.copy(deep=True)
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype):
            cat = out[col].cat
            categories = pd.Index(np.array(cat.categories.to_numpy(), copy=True))
            out[col] = pd.Categorical.from_codes(np.array(cat.codes.to_numpy(), copy=True), categories=categories,
                                                 ordered=cat.ordered)
    return out


def _fit_xgboost_model(client, model, X, y, *, X_valid=None, y_valid=None, partitions: int | None = None) -> dict:
    """Train an :class:`~pipeline.models.boosting.XGBoostModel` with ``xgboost.dask`` and make it fitted.

    Parameters
    ----------
    client : distributed.Client
        The cluster.
    model : XGBoostModel
        Created and configured; its parameters, seed and device are those of the in-process fit.
    X, y, X_valid, y_valid
        As for ``model.fit`` (early stopping on the validation rows, as in-process).
    partitions : int, optional
        Partitions of the training table (default: at least one per worker, at most
        :data:`ROWS_PER_PARTITION` rows each).

    Returns
    -------
    dict
        ``partitions`` and ``rounds`` (boosting rounds kept).
    """
    import xgboost.dask as dxgb

    t0 = time.perf_counter()
    workers = client.scheduler_info()["workers"]
    if not workers:
        raise ConfigError("the dask cluster has no workers; start it with cluster.n_workers >= 1")
    data = model.training_data(X, y, X_valid, y_valid)
    n_parts = int(partitions or max(len(workers), math.ceil(len(data.frame) / ROWS_PER_PARTITION)))
    features = list(data.encoder.features)
    max_bin = data.params["max_bin"]
    # the scattered partitions are released when their futures go out of scope (cancelling
    # scattered data trips the scheduler)
    train_ddf, _ = _scattered_frame(client, data.frame, data.label, n_parts)
    dtrain = dxgb.DaskQuantileDMatrix(client, train_ddf[features], train_ddf[_LABEL], enable_categorical=True,
                                      missing=np.nan, max_bin=max_bin)
    evals = []
    if data.early_stopping_rounds is not None:
        valid_parts = max(len(workers), math.ceil(len(data.valid_frame) / ROWS_PER_PARTITION))
        valid_ddf, _ = _scattered_frame(client, data.valid_frame, data.valid_label, valid_parts)
        # validation bins must be the training matrix's: it is passed as the reference
        evals = [(dxgb.DaskQuantileDMatrix(client, valid_ddf[features], valid_ddf[_LABEL], enable_categorical=True,
                                           missing=np.nan, max_bin=max_bin, ref=dtrain), "valid")]
    out = dxgb.train(client, data.params, dtrain, num_boost_round=data.num_boost_round, evals=evals,
                     early_stopping_rounds=data.early_stopping_rounds, verbose_eval=False)
    model.adopt_booster(out["booster"], encoder=data.encoder, present=data.present,
                        fit_seconds=time.perf_counter() - t0)
    return {"partitions": int(train_ddf.npartitions), "rounds": int(model.booster.num_boosted_rounds())}
