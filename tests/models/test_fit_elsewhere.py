"""The model pieces that let a fit run elsewhere (the cluster): shards of the batches, adopted states, epoch events."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.config.models import MLPParams, XGBoostParams
from pipeline.errors import ConfigError
from pipeline.models import TaskSpec
from pipeline.models.boosting import XGBoostModel
from pipeline.models.columns import FeatureEncoder
from pipeline.models.deep.loop import block_batches, row_batches, train_epochs
from pipeline.models.deep.mlp import MLPModel
from tests.helpers.deep_tasks import make_lai_table, make_lulc_table


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _batches(factory, seed=0):
    return list(factory(torch.Generator().manual_seed(seed), 0))


@pytest.mark.parametrize("world", [2, 3])
def test_the_ranks_shares_make_up_every_global_batch(world):
    rows = torch.arange(500)
    whole = _batches(row_batches((rows,), 64))
    shares = [_batches(row_batches((rows,), 64, rank=r, world_size=world)) for r in range(world)]
    assert all(len(s) == len(whole) for s in shares)  # every rank steps as often (DDP needs it)
    for i, (batch,) in enumerate(whole):
        assert torch.equal(torch.cat([s[i][0] for s in shares]), batch)

    block = np.random.default_rng(0).integers(0, 40, 500)
    whole = _batches(block_batches((rows,), block, 64))
    shares = [_batches(block_batches((rows,), block, 64, rank=r, world_size=world)) for r in range(world)]
    assert all(len(s) == len(whole) for s in shares)
    for i, (batch, _, blocks) in enumerate(whole):
        got_rows = torch.cat([s[i][0] for s in shares])
        assert sorted(got_rows.tolist()) == sorted(batch.tolist())
        assert sorted(torch.cat([s[i][2] for s in shares]).tolist()) == sorted(blocks.tolist())
        for s in shares:  # whole blocks on each rank, local indices into its own blocks
            r, local, b = s[i]
            assert torch.equal(torch.from_numpy(block)[r], b[local]) if len(r) else len(b) == 0


def test_a_data_parallel_loop_needs_its_process_group():
    net = torch.nn.Linear(2, 1)
    data = (torch.zeros(4, 2), torch.zeros(4))
    with pytest.raises(ConfigError, match="process group"):
        train_epochs(net, lambda m, b: m(b[0]).sum(), data, max_epochs=1, batch_size=2, learning_rate=0.1,
                     early_stopping_patience=1, rank=1, world_size=2)
    with pytest.raises(ConfigError, match="rank 2 of world size 2"):
        row_batches(data, 2, rank=2, world_size=2)


@pytest.mark.parametrize("task", ["lai", "lulc"])
def test_an_adopted_booster_is_the_in_process_fit(task, tmp_path):
    import xgboost as xgb

    s = make_lai_table(nlat=24, nlon=24) if task == "lai" else make_lulc_table(nlat=24, nlon=24)
    y, yv = s.train[s.spec.target], s.valid[s.spec.target]
    params = XGBoostParams(n_estimators=40, max_depth=3, early_stopping_rounds=5)
    fitted = XGBoostModel(s.spec, params, seed=2).fit(s.train, y, X_valid=s.valid, y_valid=yv)

    model = XGBoostModel(s.spec, params, seed=2)
    data = model.training_data(s.train, y, s.valid, yv)
    assert not model.fitted and data.early_stopping_rounds == 5
    dtrain = xgb.QuantileDMatrix(data.frame, label=data.label, enable_categorical=True, max_bin=params.max_bin)
    dvalid = xgb.QuantileDMatrix(data.valid_frame, label=data.valid_label, enable_categorical=True,
                                 max_bin=params.max_bin, ref=dtrain)
    booster = xgb.train(data.params, dtrain, num_boost_round=data.num_boost_round, evals=[(dvalid, "valid")],
                        early_stopping_rounds=data.early_stopping_rounds, verbose_eval=False)
    model.adopt_booster(booster, encoder=data.encoder, present=data.present, fit_seconds=1.5)
    assert model.fitted and model.describe()["fit_seconds"] == 1.5
    assert model.booster.num_boosted_rounds() == fitted.booster.num_boosted_rounds()  # cut to the best round
    np.testing.assert_array_equal(model.predict(s.test), fitted.predict(s.test))

    other = XGBoostModel(TaskSpec(s.spec.task, s.spec.target, ("x1", "x2"), classes=s.spec.classes), params)
    with pytest.raises(ConfigError, match="features"):
        other.adopt_booster(booster, encoder=FeatureEncoder(["x1", "x2"]), present=data.present)
    if task == "lulc":
        with pytest.raises(ConfigError, match="output"):
            XGBoostModel(s.spec, params).adopt_booster(booster, encoder=data.encoder, present=data.present[:2])


def test_an_adopted_trained_state_is_the_fitted_mlp():
    s = make_lulc_table(nlat=16, nlon=16)
    fitted = MLPModel(s.spec, MLPParams(hidden=[8]), seed=0).configure_training(max_epochs=2, batch_size=128)
    fitted.fit(s.train, s.train["igbp"], X_valid=s.valid, y_valid=s.valid["igbp"])
    copy = MLPModel(s.spec, MLPParams(hidden=[8]), seed=5).adopt_trained_state(fitted.trained_state())
    assert copy.fitted and copy.history == fitted.history and copy.fit_seconds == fitted.fit_seconds
    np.testing.assert_array_equal(copy.predict(s.test), fitted.predict(s.test))
    with pytest.raises(ConfigError, match="do not fit"):
        MLPModel(s.spec, MLPParams(hidden=[4]), seed=0).adopt_trained_state(fitted.trained_state())
    with pytest.raises(ConfigError, match="not fitted"):
        MLPModel(s.spec, MLPParams(hidden=[4])).trained_state()


@pytest.mark.parametrize("task", ["lai", "lulc"])
def test_on_epoch_reports_the_validation_score_of_the_kept_weights(task):
    s = make_lai_table(nlat=24, nlon=24, downscaling=False) if task == "lai" else make_lulc_table(nlat=24, nlon=24)
    events = []
    model = MLPModel(s.spec, MLPParams(hidden=[16], constrained=False), name="net", seed=0)
    model.configure_training(max_epochs=3, batch_size=128, learning_rate=5e-3, on_epoch=events.append)
    y, yv = s.train[s.spec.target], s.valid[s.spec.target].to_numpy()
    model.fit(s.train, y, X_valid=s.valid, y_valid=yv)
    assert [e["epoch"] for e in events] == [1, 2, 3] and all(e["model"] == "net" for e in events)
    assert [e["valid_score"] for e in events] == [h["valid_score"] for h in model.history]
    best = min(model.history, key=lambda h: h["valid_loss"])
    pred = model.predict(s.valid)
    if task == "lai":
        assert events[0]["score_name"] == "rmse"
        assert best["valid_score"] == pytest.approx(float(np.sqrt(np.mean((pred - yv) ** 2))), rel=1e-4)
    else:
        assert events[0]["score_name"] == "accuracy"
        hit = np.asarray(s.spec.classes)[pred.argmax(1)] == yv
        assert best["valid_score"] == pytest.approx(float(hit.mean()), abs=1e-9)
