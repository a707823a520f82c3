"""Training on the dask cluster: PyTorch data-parallel ranks on the workers.

:func:`run_data_parallel` runs a function as one ``DistributedDataParallel`` rank per dask worker
(gloo on the CPU, nccl on GPUs); :func:`fit_data_parallel` fits a regression module that way.
:func:`fit_xgboost_dask` grows XGBoost trees over the workers from the lazily read table
(``DaskQuantileDMatrix``); :func:`sample_rows` draws the row sample of the in-memory estimators
on the workers. :func:`fit_on_cluster` fits one created, configured model through the cluster
(xgboost.dask, DDP ranks or in-process, by kind; :class:`EventRelay` brings the ranks' epoch
events back). :func:`train_models` is the train stage: it fits and saves the config's models on
the feature table, validated on whole training blocks (:func:`split_rows`).
"""

from __future__ import annotations

from pipeline.train.boosting import booster_params, fit_xgboost_dask
from pipeline.train.ddp import DataParallelResult, EventRelay, fit_data_parallel, run_data_parallel
from pipeline.train.on_cluster import fit_on_cluster
from pipeline.train.sampling import sample_rows
from pipeline.train.stage import lai_task_spec, split_rows, train_models

__all__ = ["DataParallelResult", "EventRelay", "booster_params", "fit_data_parallel", "fit_on_cluster",
           "fit_xgboost_dask", "lai_task_spec", "run_data_parallel", "sample_rows", "split_rows", "train_models"]
