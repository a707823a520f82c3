"""XGBoost over a real dask LocalCluster from dask DataFrames, and row samples drawn on the workers."""

from __future__ import annotations

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from pipeline.config.models import XGBoostParams
from pipeline.errors import ConfigError
from pipeline.models import TaskSpec
from pipeline.train import fit_xgboost_dask, sample_rows

SIGMA = 0.1


def _frame(n, seed):
    rng = np.random.default_rng(seed)
    zone = rng.integers(1, 4, n)
    x1, x2 = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)
    lai = 2 + np.sin(3 * x1) + 0.5 * x2 + 0.7 * (zone == 2) + SIGMA * rng.standard_normal(n)
    cls = np.where(x1 > 0.3, 5, np.where(zone == 3, 10, 12))
    return pd.DataFrame({"x1": x1, "x2": x2, "koppen": pd.Categorical(zone, categories=[1, 2, 3]),
                         "lai": lai, "igbp": cls})


def test_lai_trees_over_the_workers_reach_the_noise_floor(client):
    train, test = _frame(20000, 0), _frame(4000, 1)
    spec = TaskSpec("lai", "lai", ("x1", "x2", "koppen"), categorical=("koppen",))
    booster = fit_xgboost_dask(client, dd.from_pandas(train, npartitions=4), spec,
                               XGBoostParams(n_estimators=150, max_depth=4), valid_ddf=dd.from_pandas(test, npartitions=2))
    pred = booster.predict(xgb.DMatrix(test[list(spec.features)], enable_categorical=True))
    rmse = float(np.sqrt(np.mean((pred - test["lai"]) ** 2)))
    assert rmse <= 1.15 * SIGMA


def test_lulc_softprob_in_class_order(client):
    train, test = _frame(6000, 2), _frame(2000, 3)
    spec = TaskSpec("lulc", "igbp", ("x1", "x2", "koppen"), categorical=("koppen",), classes=(5, 10, 12))
    booster = fit_xgboost_dask(client, dd.from_pandas(train, npartitions=3), spec, XGBoostParams(n_estimators=30))
    prob = booster.predict(xgb.DMatrix(test[list(spec.features)], enable_categorical=True))
    assert prob.shape == (len(test), 3)
    np.testing.assert_allclose(prob.sum(1), 1, rtol=1e-5)
    assert (np.asarray(spec.classes)[prob.argmax(1)] == test["igbp"]).mean() > 0.95


def test_class_codes_outside_the_task_are_named(client):
    spec = TaskSpec("lulc", "igbp", ("x1",), classes=(5, 10))
    with pytest.raises(ConfigError, match="12"):
        fit_xgboost_dask(client, dd.from_pandas(_frame(500, 4), npartitions=2), spec, XGBoostParams(n_estimators=2))


def test_sample_rows_draws_on_the_workers_and_says_when_it_takes_the_table():
    ddf = dd.from_pandas(_frame(5000, 5), npartitions=5)
    s = sample_rows(ddf, 1000, seed=1)
    assert 800 < len(s) < 1200 and s.index.is_monotonic_increasing
    said = []
    whole = sample_rows(ddf, 10**6, notify=said.append)
    assert len(whole) == 5000 and "using the whole table" in said[0]
