"""The registry (kind → class, task checks) and saving/loading every model safely."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import TypeAdapter

from pipeline.config import ModelEntry
from pipeline.errors import ConfigError, InputDataError
from pipeline.models import MODEL_CLASSES, create_model, load_model, model_class
from pipeline.models.forest import TRUSTED_SKOPS_TYPES, load_estimator
from pipeline.models.safe_files import MODEL_FILE
from tests.helpers.synthetic_tasks import make_lai_task, make_lulc_task

#: (kind, task, params) of every model this package implements, both tasks where it has two
CASES = [
    ("coarse_prior", "lulc", {"smoothing": 0.5}),
    ("parent_majority", "lulc", {}),
    ("climatology", "lai", {"min_count": 2}),
    ("bilinear", "lai", {}),
    ("xgboost", "lulc", {"n_estimators": 20, "max_depth": 3}),
    ("xgboost", "lai", {"n_estimators": 20, "max_depth": 3}),
    ("random_forest", "lulc", {"n_estimators": 5, "max_depth": 4}),
    ("random_forest", "lai", {"n_estimators": 5, "max_depth": 4}),
    ("ridge", "lai", {"alpha": 0.5}),
    ("logistic", "lulc", {"C": 0.5, "max_iter": 300}),
]
IDS = [f"{kind}-{task}" for kind, task, _ in CASES]


@pytest.fixture(scope="module", autouse=True)
def _one_xgboost_thread():
    # shared test machines: one XGBoost thread is faster than OpenMP threads spinning against others
    import xgboost as xgb

    with xgb.config_context(nthread=1):
        yield


@pytest.fixture(scope="module")
def tasks():
    return {"lai": make_lai_task(n_parents=40, seed=2), "lulc": make_lulc_task(n_parents=60, seed=2)}


@pytest.fixture(scope="module")
def fitted(tasks):
    """Every case fitted once, on a small table."""
    out = {}
    for (kind, task, params), case in zip(CASES, IDS, strict=True):
        t = tasks[task]
        out[case] = model_class(kind)(t.spec, params, name=f"my_{kind}", seed=3).fit(t.X_train, t.y_train)
    return out


@pytest.mark.parametrize("case", IDS)
def test_save_load_predicts_identically(tasks, fitted, case, tmp_path):
    model = fitted[case]
    t = tasks[model.spec.task]
    before = model.predict(t.X_test)
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert type(loaded) is type(model) and loaded.kind == model.kind and loaded.name == model.name
    assert loaded.params == model.params and loaded.spec == model.spec and loaded.seed == 3
    np.testing.assert_array_equal(loaded.predict(t.X_test), before)
    if model.spec.task == "lulc":
        np.testing.assert_allclose(before.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("case", IDS)
def test_tampered_state_file_is_refused(fitted, case, tmp_path):
    fitted[case].save(tmp_path / "m")
    files = json.loads((tmp_path / "m" / MODEL_FILE).read_text())["files"]
    assert files, "every model records at least one state file"
    victim = tmp_path / "m" / sorted(files)[0]
    victim.write_bytes(victim.read_bytes() + b" ")
    with pytest.raises(InputDataError, match="sha256"):
        load_model(tmp_path / "m")


def test_saving_again_replaces_the_model(fitted, tmp_path):
    # Model.save documents that an existing saved model is replaced atomically
    fitted["ridge-lai"].save(tmp_path / "m")
    fitted["ridge-lai"].save(tmp_path / "m")
    assert load_model(tmp_path / "m").kind == "ridge"


def test_skops_file_with_untrusted_type_is_refused(fitted, tmp_path):
    fitted["random_forest-lai"].save(tmp_path / "m")
    path = tmp_path / "m" / "forest.skops"
    assert load_estimator(path) is not None
    with pytest.raises(InputDataError, match="sklearn.tree._tree.Tree.*does not trust"):
        load_estimator(path, trusted=frozenset())
    assert "sklearn.tree._tree.Tree" in TRUSTED_SKOPS_TYPES


def test_damaged_skops_file_is_an_input_error(tmp_path):
    path = tmp_path / "x.skops"
    path.write_bytes(b"not a zip file")
    with pytest.raises(InputDataError, match="not a readable skops file"):
        load_estimator(path)


def test_baseline_state_with_pickled_objects_is_refused(fitted, tmp_path):
    model = fitted["coarse_prior-lulc"]
    np.savez(tmp_path / "state.npz", counts=np.array([{"a": 1}], dtype=object), global_counts=np.zeros(7))
    (tmp_path / "state.json").write_text(json.dumps({"zones": [], "groups": []}))
    with pytest.raises(InputDataError, match="cannot be read"):
        model._load(tmp_path)


@pytest.mark.parametrize("kind,task", [("ridge", "lulc"), ("logistic", "lai"), ("coarse_prior", "lai"),
                                       ("parent_majority", "lai"), ("climatology", "lulc"), ("bilinear", "lulc")])
def test_model_on_unsupported_task_is_a_config_error(tasks, kind, task):
    with pytest.raises(ConfigError, match=f"'{kind}'.*does not support the {task} task"):
        model_class(kind)(tasks[task].spec)
    with pytest.raises(ConfigError, match=f"'mine'.*\\({kind}\\).*{task}"):
        model_class(kind)(tasks[task].spec, name="mine")


def test_unknown_kind_lists_the_available_ones():
    with pytest.raises(ConfigError, match="unknown model kind 'gbm'") as err:
        model_class("gbm")
    for kind in MODEL_CLASSES:
        assert kind in str(err.value)


@pytest.mark.parametrize("kind,task,params", CASES, ids=IDS)
def test_create_model_from_a_config_entry(tasks, kind, task, params):
    entry = TypeAdapter(ModelEntry).validate_python({"kind": kind, "name": "from_config", "params": params})
    model = create_model(entry, tasks[task].spec, seed=9)
    assert model.kind == kind and model.name == "from_config" and model.seed == 9
    assert model.params == entry.params and model.describe()["params"] == entry.params.model_dump()


def test_unfitted_model_is_not_saved(tasks, tmp_path):
    with pytest.raises(ConfigError, match="not fitted"):
        model_class("ridge")(tasks["lai"].spec).save(tmp_path / "m")
