"""The deep models (MLP, U-Net) and their training loop: accuracy, constraints, persistence, resume."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from pydantic import ValidationError

from pipeline.config.models import MLPParams, UNetParams
from pipeline.config.sections import TrainingConfig
from pipeline.errors import ConfigError, InputDataError
from pipeline.models import load_model, save_model
from pipeline.models.allocation import allocate_quotas
from pipeline.models.constraints import block_means
from pipeline.models.deep.loop import CHECKPOINT_FILE, block_batches, train_epochs
from pipeline.models.deep.mlp import MLPModel
from pipeline.models.deep.unet import UNetModel
from tests.helpers.deep_tasks import group_fraction_error, make_lai_table, make_lulc_table


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny networks: intra-op threads only contend (a 50x slowdown on a busy 2-core machine)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def fitted_mlp(split, epochs=3, **params):
    model = MLPModel(split.spec, MLPParams(hidden=[16], **params), seed=0)
    model.configure_training(max_epochs=epochs, batch_size=128, learning_rate=5e-3)
    return model.fit(split.train, split.train[split.spec.target])


def fitted_unet(split, epochs=3, **params):
    params = {"depth": 2, "base_channels": 4, "patch_size": 16, "overlap": 8, **params}
    model = UNetModel(split.spec, UNetParams(**params), seed=0)
    model.configure_training(max_epochs=epochs, batch_size=1024, learning_rate=1e-2)
    return model.fit(split.train, split.train[split.spec.target])


# ---------------------------------------------------------------------- accuracy
def test_mlp_lai_within_15_percent_of_the_noise_floor():
    sigma = 0.2
    s = make_lai_table(nlat=64, nlon=64, sigma=sigma, downscaling=False)
    model = MLPModel(s.spec, MLPParams(hidden=[64, 64]), seed=0)
    model.configure_training(max_epochs=40, batch_size=128, learning_rate=5e-3, early_stopping_patience=10)
    model.fit(s.train, s.train["lai"], X_valid=s.valid, y_valid=s.valid["lai"])
    pred = model.predict(s.test)
    constant = rmse(s.train["lai"].mean(), s.test["lai"])
    assert rmse(pred, s.test["lai"]) <= 1.15 * sigma
    assert rmse(pred, s.test["lai"]) < 0.3 * constant
    assert np.all(pred >= 0)


def test_unet_beats_a_constant_on_a_smooth_field():
    s = make_lai_table(nlat=48, nlon=48, sigma=0.1, smooth=True, downscaling=False, split_by_rows=True)
    model = UNetModel(s.spec, UNetParams(depth=2, base_channels=8, patch_size=16, overlap=8), seed=0)
    model.configure_training(max_epochs=30, batch_size=1024, learning_rate=1e-2, early_stopping_patience=30)
    model.fit(s.train, s.train["lai"], X_valid=s.valid, y_valid=s.valid["lai"])
    pred = model.predict(s.test)
    assert pred.shape == (len(s.test),)
    assert rmse(pred, s.test["lai"]) < 0.8 * rmse(s.train["lai"].mean(), s.test["lai"])


# ---------------------------------------------------------------------- constraints in the models
def test_mlp_lai_downscaling_reproduces_the_coarse_lai_exactly():
    s = make_lai_table(nlat=24, nlon=24, sigma=0.2, downscaling=True)
    model = fitted_mlp(s)
    pred = model.predict(s.test)
    assert model.last_constrained and np.all(pred >= 0)
    blocks, parents = pd.factorize(s.test["parent"])
    coarse = s.test.groupby("parent")["lai_coarse"].first().reindex(parents).to_numpy()
    means = block_means(pred, blocks, s.test["area"].to_numpy(), len(parents))
    np.testing.assert_allclose(means, coarse, rtol=1e-6)
    # without the parent column the constraint cannot apply, and the model says so
    model.predict(s.test.drop(columns="parent"))
    assert not model.last_constrained


def test_mlp_lulc_constrained_keeps_every_coarse_group_fraction():
    s = make_lulc_table(nlat=32, nlon=32)
    model = MLPModel(s.spec, MLPParams(hidden=[32]), seed=0)
    model.configure_training(max_epochs=8, batch_size=128, learning_rate=5e-3)
    model.fit(s.train, s.train["igbp"], X_valid=s.valid, y_valid=s.valid["igbp"])
    probs = model.predict(s.test)
    assert model.last_constrained
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    assert group_fraction_error(s.test, probs, s.spec) < 1e-6
    true = np.searchsorted(s.spec.classes, s.test["igbp"].to_numpy())
    log_loss = -np.mean(np.log(np.clip(probs[np.arange(len(probs)), true], 1e-12, None)))
    assert log_loss < np.log(len(s.spec.classes)) - 0.3  # clearly better than knowing nothing
    # the hard map keeps the quotas within one fine cell per coarse cell
    blocks, parents = pd.factorize(s.test["parent"])
    cg = np.array([list(s.spec.group_columns).index(g) for g in s.spec.class_groups])
    fr = s.test.groupby("parent")[list(s.spec.group_columns.values())].first().reindex(parents).to_numpy()
    hard = np.eye(len(s.spec.classes))[allocate_quotas(probs, blocks, s.test["area"].to_numpy(), cg, fr)]
    assert group_fraction_error(s.test, hard, s.spec) < 1.0 / 16 + 1e-9  # 16 fine cells per coarse cell


def test_unconstrained_mlp_gives_plain_probabilities():
    s = make_lulc_table(nlat=16, nlon=16)
    model = fitted_mlp(s, epochs=2, constrained=False)
    probs = model.predict(s.test)
    assert not model.last_constrained
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)


def test_unet_lulc_constrained_keeps_every_coarse_group_fraction():
    s = make_lulc_table(nlat=32, nlon=32, smooth=True, split_by_rows=True)
    model = fitted_unet(s, epochs=2)
    probs = model.predict(s.test)
    assert model.last_constrained and probs.shape == (len(s.test), len(s.spec.classes))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
    assert group_fraction_error(s.test, probs, s.spec) < 1e-6


def test_unet_lai_downscaling_is_exact_and_predicts_regions_smaller_than_a_patch():
    s = make_lai_table(nlat=32, nlon=32, smooth=True, split_by_rows=True, downscaling=True)
    model = fitted_unet(s, epochs=2)
    pred = model.predict(s.test)
    assert model.last_constrained and np.all(pred >= 0)
    blocks, parents = pd.factorize(s.test["parent"])
    coarse = s.test.groupby("parent")["lai_coarse"].first().reindex(parents).to_numpy()
    np.testing.assert_allclose(block_means(pred, blocks, s.test["area"].to_numpy(), len(parents)), coarse, rtol=1e-6)
    # one coarse cell (4 x 4 fine cells): smaller than a patch, reflect-padded
    one = s.test[s.test["parent"] == s.test["parent"].iloc[0]]
    small = model.predict(one)
    np.testing.assert_allclose(np.average(small, weights=one["area"]), one["lai_coarse"].iloc[0], rtol=1e-6)


# ---------------------------------------------------------------------- persistence
@pytest.mark.parametrize("kind", ["mlp", "unet"])
def test_save_load_predict_identical(tmp_path, kind):
    if kind == "mlp":
        s = make_lai_table(nlat=16, nlon=16, downscaling=True)
        model = fitted_mlp(s, epochs=2, dropout=0.1)
    else:
        s = make_lulc_table(nlat=32, nlon=32, smooth=True, split_by_rows=True)
        model = fitted_unet(s, epochs=1)
    before = model.predict(s.test)
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.params == model.params
    np.testing.assert_array_equal(loaded.predict(s.test), before)


def test_tampered_weights_are_refused(tmp_path):
    s = make_lai_table(nlat=16, nlon=16)
    save_model(fitted_mlp(s, epochs=1), tmp_path / "m")
    weights = tmp_path / "m" / "weights.pt"
    data = bytearray(weights.read_bytes())
    data[-20] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(InputDataError, match="sha256"):
        load_model(tmp_path / "m")


# ---------------------------------------------------------------------- settings
def test_bad_parameters_are_errors():
    for make in (lambda: MLPParams(hidden=[]), lambda: MLPParams(dropout=1.0), lambda: MLPParams(embedding_dim=0),
                 lambda: UNetParams(patch_size=4), lambda: UNetParams(depth=0), lambda: TrainingConfig(batch_size=0),
                 lambda: TrainingConfig(learning_rate=0), lambda: MLPParams(hiden=[8])):
        with pytest.raises(ValidationError):
            make()
    spec = make_lai_table(nlat=8, nlon=8).spec
    with pytest.raises(ConfigError, match="'deep1'.*dropout"):
        MLPModel(spec, {"dropout": 2.0}, name="deep1")
    with pytest.raises(ValidationError, match="hidden"):
        MLPParams(hidden=[8, 0])
    model = MLPModel(spec, MLPParams())
    with pytest.raises(ConfigError, match="batch_size"):
        model.configure_training(batch_size=0)
    with pytest.raises(ConfigError, match="unknown training settings epochs"):
        model.configure_training(epochs=3)
    with pytest.raises(ValidationError, match="2\\*\\*depth"):
        UNetParams(depth=4, patch_size=8, overlap=2)
    with pytest.raises(ValidationError, match="overlap 16"):
        UNetParams(patch_size=16, overlap=16)


def test_unet_patch_larger_than_the_region_is_one_clear_error():
    s = make_lai_table(nlat=12, nlon=40, split_by_rows=True)
    model = UNetModel(s.spec, UNetParams(depth=2, patch_size=16, overlap=4), name="unet_small")
    with pytest.raises(ConfigError, match=r"'unet_small'.*patch_size 16 is larger than the training region \(\d+ x 40"):
        model.fit(s.train, s.train["lai"])


# ---------------------------------------------------------------------- the training loop
def _toy(seed=0, n=256):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 0.1 * torch.randn(n, generator=g)
    return x, y


def _net(seed):
    torch.manual_seed(seed)
    # dropout: the resumed run must also restore the global RNG state
    return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(16, 1))


def _mse(module, batch):
    x, y = batch
    return torch.mean((module(x)[:, 0] - y) ** 2)


LOOP = {"batch_size": 32, "learning_rate": 1e-2, "early_stopping_patience": 10, "seed": 7}


def test_resumed_run_ends_with_the_same_weights(tmp_path):
    train, valid = _toy(0), _toy(1, 64)
    straight = _net(0)
    train_epochs(straight, _mse, train, valid, max_epochs=4, **LOOP)

    def killed_after_two(info):
        if info["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_epochs(_net(0), _mse, train, valid, max_epochs=4, checkpoint_dir=tmp_path, progress=killed_after_two,
                     **LOOP)
    checkpoint = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    assert checkpoint["epoch"] == 2
    # a new process: a fresh module with other initial weights, resumed from the checkpoint
    resumed = _net(123)
    result = train_epochs(resumed, _mse, train, valid, max_epochs=4, checkpoint_dir=tmp_path, **LOOP)
    assert result.resumed_from == 2 and result.epochs == 4
    a, b = straight.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_of_another_run_is_refused(tmp_path):
    train = _toy(0)
    train_epochs(_net(0), _mse, train, max_epochs=1, checkpoint_dir=tmp_path, fingerprint="run a", **LOOP)
    with pytest.raises(ConfigError, match="resume: false"):
        train_epochs(_net(0), _mse, train, max_epochs=2, checkpoint_dir=tmp_path, fingerprint="run b", **LOOP)
    # resume: false starts afresh and overwrites it
    result = train_epochs(_net(0), _mse, train, max_epochs=1, checkpoint_dir=tmp_path, fingerprint="run b",
                          resume=False, **LOOP)
    assert result.resumed_from == 0


def test_early_stopping_keeps_the_best_weights():
    x, y = _toy(0)
    valid = (x[:64], -y[:64])  # the better the fit, the worse the validation loss
    snapshots = {}
    net = _net(0)
    result = train_epochs(net, _mse, (x, y), valid, max_epochs=30,
                          progress=lambda info: snapshots.setdefault(info["epoch"], {k: v.clone() for k, v in
                                                                                     net.state_dict().items()}),
                          **{**LOOP, "early_stopping_patience": 2})
    assert result.stopped_early and result.epochs == result.best_epoch + 2 < 30
    best = snapshots[result.best_epoch]
    assert all(torch.equal(best[k], v) for k, v in net.state_dict().items())


def test_model_level_resume_matches_an_uninterrupted_fit(tmp_path):
    s = make_lulc_table(nlat=16, nlon=16)

    def fit(**extra):
        model = MLPModel(s.spec, MLPParams(hidden=[16], dropout=0.1), seed=3)
        model.configure_training(max_epochs=3, batch_size=64, learning_rate=5e-3, **extra)
        return model.fit(s.train, s.train["igbp"], X_valid=s.valid, y_valid=s.valid["igbp"])

    straight = fit().predict(s.test)

    def stop(info):
        if info["epoch"] == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit(checkpoint_dir=tmp_path, progress=stop)
    np.testing.assert_array_equal(fit(checkpoint_dir=tmp_path).predict(s.test), straight)


def test_block_batches_keep_blocks_whole():
    block = np.random.default_rng(0).integers(0, 30, 500)
    rows = torch.arange(500)
    seen = []
    for batch_rows, local, blocks in block_batches((rows,), block, 64)(torch.Generator().manual_seed(0), 0):
        assert torch.equal(torch.from_numpy(block)[batch_rows], blocks[local])
        # every block of the batch is there with all its rows
        assert sorted(batch_rows.tolist()) == sorted(np.flatnonzero(np.isin(block, blocks.numpy())).tolist())
        seen += batch_rows.tolist()
    assert sorted(seen) == list(range(500))
