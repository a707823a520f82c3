"""Fit one created, configured model through the dask cluster: :func:`fit_on_cluster`.

How a model trains depends on its kind:

* ``xgboost``: ``xgboost.dask`` over the workers (the table cut into partitions scattered over
  them, a ``DaskQuantileDMatrix`` with native categoricals, the model's own parameters and early
  stopping), the booster then adopted by the model.
* ``mlp`` on two or more workers: PyTorch ``DistributedDataParallel``, one rank per worker (gloo
  on the CPU, nccl on GPUs), the model's own epoch loop on every rank (validation, early
  stopping, checkpoints and resume as in-process), the trained weights then adopted by the model.
* everything else (the baselines, random forest, ridge, logistic, the U-Net whose patches come
  from the grid; an MLP on one worker): fitted in this process.

Afterwards the model predicts, saves, loads and describes itself exactly as after ``model.fit``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from pipeline.errors import ConfigError
from pipeline.train.boosting import _fit_xgboost_model
from pipeline.train.ddp import _fit_deep_model

__all__ = ["fit_on_cluster"]

#: the model kinds trained with xgboost.dask
XGBOOST_KINDS = frozenset({"xgboost"})
#: the model kinds trained data-parallel (one DDP rank per worker) on two or more workers
DATA_PARALLEL_KINDS = frozenset({"mlp"})


def _n_workers(client) -> int:
    return 0 if client is None else len(client.scheduler_info()["workers"])


def _chain(*hooks):
    hooks = [h for h in hooks if h is not None]
    if not hooks:
        return None
    if len(hooks) == 1:
        return hooks[0]

    def call(event: dict) -> None:
        for h in hooks:
            h(event)

    return call


def fit_on_cluster(model, client, X, y, *, X_valid=None, y_valid=None, training=None,
                   progress: Callable[[dict], None] | None = None) -> dict:
    """Fit ``model`` on the rows of ``X`` through the cluster of ``client``.

    Parameters
    ----------
    model : pipeline.models.Model
        Created (:func:`pipeline.models.create_model`) and configured (a deep model's
        ``configure_training``: settings, checkpoint directory); fitted in place.
    client : distributed.Client or None
        The cluster (:func:`pipeline.cluster.start_cluster`); ``None``: in this process.
    X : pandas.DataFrame
        The training table (the columns the model's spec names).
    y : array_like
        Targets, one per row.
    X_valid, y_valid : optional
        Validation rows (early stopping of XGBoost and the deep models).
    training : pipeline.config.TrainingConfig, optional
        Applied to a deep model first (``configure_training(training)``; its checkpoint
        directory is kept); ``None``: the model's own settings.
    progress : callable, optional
        Called here once per epoch of a deep model, also when its ranks run on the workers, with
        ``{"model", "epoch", "max_epochs", "train_loss", "valid_loss", "best_loss"}`` and, with
        validation rows, ``"valid_score"`` (accuracy for LULC, RMSE for LAI; MLP) and
        ``"score_name"``; called besides the model's own ``on_epoch``.

    Returns
    -------
    dict
        ``how`` (``"xgboost.dask"``, ``"ddp:N ranks"`` or ``"in-process"``), ``workers`` (of the
        cluster, 0 without one), ``seconds`` (wall time of the fit) and by kind ``partitions``
        and ``rounds`` (XGBoost) or ``epochs`` (deep models).

    Raises
    ------
    ConfigError
        Rows and targets of different lengths, no training rows, a cluster without workers, or
        the model's own checks (as ``model.fit``).
    """
    y = np.asarray(y)
    if len(X) != y.shape[0]:
        raise ConfigError(f"model {model.name!r}: {len(X)} rows but {y.shape[0]} targets")
    if len(X) == 0:
        raise ConfigError(f"model {model.name!r}: no training rows")
    if (X_valid is None) != (y_valid is None):
        raise ConfigError(f"model {model.name!r}: give both X_valid and y_valid, or neither")
    if training is not None and hasattr(model, "configure_training"):
        model.configure_training(training)
    n = _n_workers(client)
    if client is not None and n == 0:
        raise ConfigError("the dask cluster has no workers; start it with cluster.n_workers >= 1")
    deep = hasattr(model, "on_epoch")
    record: dict = {}
    t0 = time.perf_counter()
    if client is not None and model.kind in XGBOOST_KINDS:
        how = "xgboost.dask"
        record.update(_fit_xgboost_model(client, model, X, y, X_valid=X_valid, y_valid=y_valid))
    elif client is not None and deep and model.kind in DATA_PARALLEL_KINDS and n >= 2:
        how = f"ddp:{n} ranks"
        _fit_deep_model(client, model, X, y, X_valid=X_valid, y_valid=y_valid,
                        on_event=_chain(model.progress, model.on_epoch, progress))
    else:
        how = "in-process"
        if deep:
            before = model.on_epoch
            model.on_epoch = _chain(before, progress)
            try:
                model.fit(X, y, X_valid=X_valid, y_valid=y_valid)
            finally:
                model.on_epoch = before
        else:
            model.fit(X, y, X_valid=X_valid, y_valid=y_valid)
    if deep:
        record["epochs"] = len(model.history)
    return {"how": how, "workers": n, "seconds": round(time.perf_counter() - t0, 3), **record}
