"""XGBoost, random forest, ridge and logistic regression on synthetic tasks of known noise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.errors import BackendError, ConfigError
from pipeline.models import model_class
from pipeline.models.forest import RandomForestModel
from tests.helpers.optional import gpu_available
from tests.helpers.synthetic_tasks import (
    LULC_CLASSES,
    constant_probabilities,
    log_loss,
    make_lai_task,
    make_lulc_task,
    rmse,
)

# small settings: the tests check that the models learn, not their best scores
LAI_MODELS = {
    "xgboost": {"n_estimators": 200, "max_depth": 5, "learning_rate": 0.2, "early_stopping_rounds": None},
    "random_forest": {"n_estimators": 30, "max_depth": 10, "min_samples_leaf": 5, "max_samples": 0.5},
    "ridge": {"alpha": 1.0},
}
LULC_MODELS = {
    "xgboost": {"n_estimators": 100, "max_depth": 4, "learning_rate": 0.1, "early_stopping_rounds": None},
    "random_forest": {"n_estimators": 30, "max_depth": 10, "min_samples_leaf": 10, "max_samples": 0.5},
    "logistic": {"max_iter": 500},
}


@pytest.fixture(scope="module", autouse=True)
def _one_xgboost_thread():
    # the test machine's cores are shared: OpenMP threads spinning against other processes make
    # XGBoost several times slower than one thread
    import xgboost as xgb

    with xgb.config_context(nthread=1):
        yield


@pytest.fixture(scope="module")
def lai_task():
    return make_lai_task(n_parents=300, seed=5)


@pytest.fixture(scope="module")
def lulc_task():
    return make_lulc_task(n_parents=500, seed=6)


@pytest.fixture(scope="module")
def lai_predictions(lai_task):
    t = lai_task
    return {k: model_class(k)(t.spec, p, seed=1).fit(t.X_train, t.y_train).predict(t.X_test)
            for k, p in LAI_MODELS.items()}


@pytest.fixture(scope="module")
def lulc_predictions(lulc_task):
    t = lulc_task
    return {k: model_class(k)(t.spec, p, seed=1).fit(t.X_train, t.y_train).predict(t.X_test)
            for k, p in LULC_MODELS.items()}


@pytest.mark.parametrize("kind", sorted(LAI_MODELS))
def test_lai_model_beats_constant(lai_task, lai_predictions, kind):
    t = lai_task
    constant = rmse(np.full(len(t.y_test), t.y_train.mean()), t.y_test)
    assert rmse(lai_predictions[kind], t.y_test) < 0.6 * constant


def test_xgboost_reaches_lai_noise_floor(lai_task, lai_predictions):
    # RMSE within 15 % of the noise's standard deviation, the best any model can do on average
    assert rmse(lai_predictions["xgboost"], lai_task.y_test) <= 1.15 * lai_task.noise_floor


@pytest.mark.parametrize("kind", sorted(LULC_MODELS))
def test_lulc_model_beats_constant(lulc_task, lulc_predictions, kind):
    t = lulc_task
    constant = log_loss(constant_probabilities(t.y_train, len(t.y_test)), t.y_test)
    # closes at least half of the gap between the constant and the Bayes log-loss
    assert log_loss(lulc_predictions[kind], t.y_test) < constant - 0.5 * (constant - t.noise_floor)


@pytest.mark.parametrize("kind", sorted(LULC_MODELS))
def test_lulc_probabilities_are_distributions(lulc_task, lulc_predictions, kind):
    p = lulc_predictions[kind]
    assert p.shape == (len(lulc_task.y_test), len(LULC_CLASSES)) and p.dtype == np.float64
    assert (p >= 0).all() and (p <= 1).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("kind", sorted(LULC_MODELS))
def test_class_absent_from_training_gets_probability_zero(lulc_task, kind):
    t = lulc_task
    keep = t.y_train != 14
    model = model_class(kind)(t.spec, LULC_MODELS[kind]).fit(t.X_train[keep], t.y_train[keep])
    p = model.predict(t.X_test)
    assert p.shape[1] == len(LULC_CLASSES)
    assert (p[:, LULC_CLASSES.index(14)] == 0).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)


def _with_gaps(X: pd.DataFrame, rng) -> pd.DataFrame:
    """Copy of X with 10 % NaN elevations and some rows in a Köppen zone never seen in training."""
    X = X.copy()
    X.loc[rng.random(len(X)) < 0.1, "elevation"] = np.nan
    zones = X["koppen"].cat.add_categories(["ET"])
    zones[rng.random(len(X)) < 0.05] = "ET"
    X["koppen"] = zones
    return X


@pytest.mark.parametrize("task_name,kind", [("lai", k) for k in sorted(LAI_MODELS)]
                         + [("lulc", k) for k in sorted(LULC_MODELS)])
def test_missing_values_and_unseen_categories(request, task_name, kind):
    t = request.getfixturevalue(f"{task_name}_task")
    rng = np.random.default_rng(0)
    n = 3000
    X_train = t.X_train.iloc[:n].copy()
    X_train.loc[rng.random(n) < 0.1, "elevation"] = np.nan
    params = (LAI_MODELS if task_name == "lai" else LULC_MODELS)[kind]
    model = model_class(kind)(t.spec, params).fit(X_train, t.y_train[:n])
    pred = model.predict(_with_gaps(t.X_test, rng))
    assert np.isfinite(pred).all()
    if kind in ("random_forest", "ridge", "logistic"):
        # NaN imputed with the training median, learnt (and saved) with the model
        assert model.encoder.medians["elevation"] == pytest.approx(float(np.nanmedian(X_train["elevation"])))


def test_lai_training_rows_without_target_are_skipped(lai_task):
    t = lai_task
    y = t.y_train[:2000].copy()
    y[::3] = np.nan
    for kind, params in LAI_MODELS.items():
        pred = model_class(kind)(t.spec, params).fit(t.X_train.iloc[:2000], y).predict(t.X_test.iloc[:50])
        assert np.isfinite(pred).all(), kind


def _halves(t):
    """Training and validation rows of a task, split by parent (rows are month-major: not by position)."""
    valid = (t.X_train["parent"] % 2 == 1).to_numpy()
    return t.X_train[~valid], t.y_train[~valid], t.X_train[valid], t.y_train[valid]


def test_xgboost_early_stopping_keeps_best_iteration(lai_task):
    t = lai_task
    X, y, X_valid, y_valid = _halves(t)
    params = {"n_estimators": 2000, "max_depth": 5, "learning_rate": 0.2, "early_stopping_rounds": 10}
    model = model_class("xgboost")(t.spec, params)
    model.fit(X, y, X_valid=X_valid, y_valid=y_valid)
    assert model.booster.num_boosted_rounds() < 2000
    # half the training rows: a little further from the noise floor than the full fit
    assert rmse(model.predict(t.X_test), t.y_test) <= 1.3 * t.noise_floor


def test_xgboost_lulc_early_stopping(lulc_task):
    t = lulc_task
    X, y, X_valid, y_valid = _halves(t)
    model = model_class("xgboost")(t.spec, {"n_estimators": 500, "max_depth": 3, "early_stopping_rounds": 5})
    model.fit(X, y, X_valid=X_valid, y_valid=y_valid)
    assert model.booster.num_boosted_rounds() < 500
    np.testing.assert_allclose(model.predict(t.X_test).sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("kind", sorted(LULC_MODELS))
def test_unknown_class_code_is_a_config_error(lulc_task, kind):
    t = lulc_task
    y = t.y_train[:500].copy()
    y[0] = 99
    with pytest.raises(ConfigError, match=f"'{kind}'.*\\[99\\]"):
        model_class(kind)(t.spec, LULC_MODELS[kind]).fit(t.X_train.iloc[:500], y)


def test_missing_feature_column_is_a_config_error(lai_task):
    t = lai_task
    with pytest.raises(ConfigError, match="'ridge'.*'elevation'"):
        model_class("ridge")(t.spec).fit(t.X_train.drop(columns="elevation"), t.y_train)


def test_random_forest_gpu_mirrors_cpu_settings(lai_task, monkeypatch):
    import pipeline.backend as backend

    captured = {}

    class Fake:
        def __init__(self, **kwargs):
            captured.update(kwargs)

    class FakeModule:
        RandomForestRegressor = Fake
        RandomForestClassifier = Fake

    monkeypatch.setattr(backend, "resolve_backend", lambda choice: choice)
    monkeypatch.setattr(backend, "estimator_module", lambda b, kind: FakeModule if b == "gpu" else None)
    params = {"n_estimators": 7, "max_depth": 3, "min_samples_leaf": 2, "max_features": 0.3, "max_samples": 0.8,
              "n_bins": 64}
    RandomForestModel(lai_task.spec, params, device="cuda", seed=4)._new_estimator()
    monkeypatch.undo()
    cpu = RandomForestModel(lai_task.spec, params, device="cpu", seed=4)._new_estimator().get_params()
    for key in ("n_estimators", "max_depth", "min_samples_leaf", "max_features", "max_samples", "bootstrap",
                "random_state"):
        assert captured[key] == cpu[key], key
    assert captured["n_bins"] == 64 and captured["output_type"] == "numpy"


@pytest.mark.skipif(gpu_available(), reason="checks the message on a machine without a GPU")
def test_random_forest_on_cuda_without_gpu_says_so(lai_task):
    t = lai_task
    with pytest.raises(BackendError, match="no GPU"):
        RandomForestModel(t.spec, device="cuda").fit(t.X_train.iloc[:100], t.y_train[:100])
