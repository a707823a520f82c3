"""fit_on_cluster over a real 2-worker LocalCluster: xgboost.dask, DDP ranks, in-process, by kind."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.config.models import MLPParams, RidgeParams, XGBoostParams
from pipeline.config.sections import TrainingConfig
from pipeline.errors import ConfigError
from pipeline.models import TaskSpec, load_model
from pipeline.models.boosting import XGBoostModel
from pipeline.models.deep.loop import CHECKPOINT_FILE
from pipeline.models.deep.mlp import MLPModel
from pipeline.models.linear import RidgeModel
from pipeline.train import fit_on_cluster
from tests.helpers.deep_tasks import make_lai_table, make_lulc_table

EVENT_KEYS = {"model", "epoch", "max_epochs", "train_loss", "valid_loss", "best_loss", "valid_score", "score_name"}


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    zone = rng.integers(1, 4, n)
    x1, x2 = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)
    x2[rng.random(n) < 0.05] = np.nan  # missing values take the learnt default branch
    lai = 2 + np.sin(3 * x1) + 0.5 * np.nan_to_num(x2) + 0.7 * (zone == 2) + 0.1 * rng.standard_normal(n)
    cls = np.where(x1 > 0.3, 5, np.where(zone == 3, 10, 12))
    return pd.DataFrame({"x1": x1, "x2": x2, "koppen": pd.Categorical(zone, categories=[1, 2, 3]),
                         "lai": lai, "igbp": cls})


@pytest.mark.parametrize("task", ["lai", "lulc"])
def test_xgboost_dask_fit_predicts_like_the_in_process_fit_and_round_trips(client, task, tmp_path):
    train, valid, test = _table(6000, 0), _table(1500, 1), _table(1500, 2)
    if task == "lulc":  # class 14 never occurs: its probability column stays 0, as in-process
        spec = TaskSpec("lulc", "igbp", ("x1", "x2", "koppen"), categorical=("koppen",), classes=(5, 10, 12, 14))
    else:
        spec = TaskSpec("lai", "lai", ("x1", "x2", "koppen"), categorical=("koppen",))
    params = XGBoostParams(n_estimators=60, max_depth=4, early_stopping_rounds=10)
    here = XGBoostModel(spec, params, seed=1).fit(train, train[spec.target], X_valid=valid,
                                                  y_valid=valid[spec.target])
    there = XGBoostModel(spec, params, seed=1)
    record = fit_on_cluster(there, client, train, train[spec.target], X_valid=valid, y_valid=valid[spec.target])
    assert record["how"] == "xgboost.dask" and record["workers"] == 2 and record["partitions"] >= 2
    assert record["rounds"] == there.booster.num_boosted_rounds() <= params.n_estimators
    a, b = here.predict(test), there.predict(test)
    assert a.shape == b.shape
    if task == "lai":
        assert np.sqrt(np.mean((a - b) ** 2)) < 0.05  # the noise is 0.1
    else:
        assert np.abs(a - b).max() < 0.1 and (a.argmax(1) == b.argmax(1)).mean() > 0.98
        assert np.all(b[:, 3] == 0) and np.allclose(b.sum(1), 1)
    d = there.describe()
    assert d["fit_seconds"] > 0 and d["params"] == here.describe()["params"]
    loaded = load_model(there.save(tmp_path / "xgb"))
    np.testing.assert_array_equal(loaded.predict(test), b)


def _mlp(split, **training):
    model = MLPModel(split.spec, MLPParams(hidden=[16]), seed=0)
    return model.configure_training(**{"max_epochs": 4, "batch_size": 128, "learning_rate": 5e-3, **training})


def test_mlp_on_two_ranks_reaches_the_loss_of_one_and_reports_every_epoch(client, tmp_path):
    s = make_lulc_table(nlat=16, nlon=16)  # constrained: whole coarse cells per batch, dealt to the ranks
    y, yv = s.train["igbp"], s.valid["igbp"]
    one_events, two_events = [], []
    one = _mlp(s)
    assert fit_on_cluster(one, None, s.train, y, X_valid=s.valid, y_valid=yv, progress=one_events.append) == {
        "how": "in-process", "workers": 0, "seconds": pytest.approx(one.fit_seconds, abs=0.1), "epochs": 4}
    two = _mlp(s)
    record = fit_on_cluster(two, client, s.train, y, X_valid=s.valid, y_valid=yv, progress=two_events.append)
    assert record["how"] == "ddp:2 ranks" and record["workers"] == 2 and record["epochs"] == 4
    # the same global batches and averaged gradients: the same path up to float rounding
    for h1, h2 in zip(one.history, two.history, strict=True):
        assert h2["train_loss"] == pytest.approx(h1["train_loss"], rel=0.02)
        assert h2["valid_loss"] == pytest.approx(h1["valid_loss"], rel=0.02)
        assert h2["valid_score"] == pytest.approx(h1["valid_score"], abs=0.02)
    assert two.history[-1]["train_loss"] < two.history[0]["train_loss"]
    # progress: once per epoch, here, with the validation score
    for events, model in ((one_events, one), (two_events, two)):
        assert [e["epoch"] for e in events] == [1, 2, 3, 4]
        assert all(set(e) == EVENT_KEYS and e["model"] == "mlp" and e["score_name"] == "accuracy" for e in events)
        assert [e["valid_loss"] for e in events] == [h["valid_loss"] for h in model.history]
    np.testing.assert_allclose(two.predict(s.test), one.predict(s.test), atol=0.02)
    # the learning curve is saved with the model
    loaded = load_model(two.save(tmp_path / "mlp"))
    assert loaded.history == two.history and loaded.describe()["epochs_run"] == 4
    np.testing.assert_array_equal(loaded.predict(s.test), two.predict(s.test))


def test_ddp_checkpoints_resume_on_the_cluster_and_in_process(client, tmp_path):
    s = make_lai_table(nlat=16, nlon=16)  # downscaling: the LAI constraint on whole coarse cells
    y, yv = s.train["lai"], s.valid["lai"]
    ck = tmp_path / "ck"
    first = _mlp(s, max_epochs=2, early_stopping_patience=10)
    first.configure_training(checkpoint_dir=ck)
    fit_on_cluster(first, client, s.train, y, X_valid=s.valid, y_valid=yv)
    assert torch.load(ck / CHECKPOINT_FILE, weights_only=True)["epoch"] == 2  # written by rank 0
    resumed = _mlp(s, max_epochs=3, early_stopping_patience=10)
    resumed.configure_training(checkpoint_dir=ck)
    record = fit_on_cluster(resumed, client, s.train, y, X_valid=s.valid, y_valid=yv)
    assert record["epochs"] == 3 and resumed.history[:2] == first.history
    # the same checkpoint goes on in one process (a cluster of one worker, or none)
    alone = _mlp(s, max_epochs=4, early_stopping_patience=10)
    alone.configure_training(checkpoint_dir=ck)
    fit_on_cluster(alone, None, s.train, y, X_valid=s.valid, y_valid=yv)
    assert alone.history[:3] == resumed.history and len(alone.history) == 4
    assert alone.history[-1]["valid_score"] == pytest.approx(np.sqrt(alone.history[-1]["valid_loss"]) * alone.y_std,
                                                             rel=1e-4)  # RMSE in LAI units
    straight = _mlp(s, max_epochs=4, early_stopping_patience=10)
    fit_on_cluster(straight, None, s.train, y, X_valid=s.valid, y_valid=yv)
    assert alone.history[-1]["valid_loss"] == pytest.approx(straight.history[-1]["valid_loss"], rel=0.02)


def test_other_models_fit_in_process_and_inputs_are_checked(client):
    s = make_lai_table(nlat=16, nlon=16, downscaling=False)
    ridge = RidgeModel(s.spec, RidgeParams())
    record = fit_on_cluster(ridge, client, s.train, s.train["lai"], training=TrainingConfig(max_epochs=2))
    assert record["how"] == "in-process" and record["workers"] == 2 and ridge.fitted
    with pytest.raises(ConfigError, match="rows but"):
        fit_on_cluster(RidgeModel(s.spec), client, s.train, s.train["lai"][:-1])
    with pytest.raises(ConfigError, match="X_valid and y_valid"):
        fit_on_cluster(RidgeModel(s.spec), client, s.train, s.train["lai"], X_valid=s.valid)
    # training: applied to a deep model; its own on_epoch keeps being called besides progress
    own, extra = [], []
    mlp = _mlp(s)
    mlp.on_epoch = own.append
    fit_on_cluster(mlp, None, s.train, s.train["lai"], training=TrainingConfig(max_epochs=2, batch_size=256),
                   progress=extra.append)
    assert mlp.training.max_epochs == 2 and len(own) == len(extra) == 2 and mlp.on_epoch == own.append
