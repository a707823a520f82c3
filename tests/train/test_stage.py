"""The train stage (`terrascale train`) on a tiny synthetic feature table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from pipeline.config import load_config
from pipeline.config.sections import TrainingConfig
from pipeline.errors import ConfigError, InputDataError
from pipeline.features import read_feature_table, run_features, table_meta
from pipeline.models import load_model
from pipeline.train import lai_task_spec, split_rows, train_models
from tests.helpers.feature_stores import write_synthetic_stores

MODELS = [
    {"kind": "ridge", "name": "ridge"},
    {"kind": "xgboost", "name": "xgb", "params": {"n_estimators": 20}},
    {"kind": "logistic", "name": "logit"},  # LULC only: skipped for LAI
]


def _write_config(path, root, out, models, **training):
    cfg = {
        "run_name": "tiny",
        "backend": "cpu",
        "seed": 3,
        "data": {"source": "stores", "root": str(root), "years": "2001:2002"},
        "splits": {"kind": "both", "block_size_deg": 0.5, "n_folds": 3, "buffer_deg": 0.1, "test_years": [2002, 2002]},
        "features": {"partition_rows": 20000, "missing": {"tas": {"action": "mean"}}},
        "models": models,
        "training": {"sample_rows": 5000, "max_epochs": 2, "validation_fraction": 0.2, **training},
        "output": {"root": str(out)},
    }
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def featured(tmp_path_factory):
    """A run directory with a feature table, and the path of its config."""
    tmp = tmp_path_factory.mktemp("train_stage")
    write_synthetic_stores(tmp / "stores")
    path = _write_config(tmp / "tiny.yaml", tmp / "stores", tmp / "runs", MODELS)
    run_features(load_config(path))
    return path


def test_lai_task_spec_roles(featured):
    cfg = load_config(featured)
    meta = table_meta(cfg.run_dir / "features")
    spec = lai_task_spec(meta)
    assert spec.task == "lai" and spec.target == meta["target"] == "lai"
    assert not {"scenario", "time", "cell", "fold", "split", "lai"} & set(spec.features)
    assert "year" in spec.features and "koppen" in spec.categorical and "scenario" not in spec.categorical
    assert spec.grid_shape == (len(meta["grid"]["lat"]), len(meta["grid"]["lon"]))


def test_split_rows_validation_is_whole_training_blocks(featured):
    cfg = load_config(featured)
    df = read_feature_table(cfg.run_dir / "features")
    spec = lai_task_spec(table_meta(cfg.run_dir / "features"))
    train, valid = split_rows(df, spec, TrainingConfig(validation_fraction=0.2), seed=1)
    assert len(valid) and (valid["split"] == "train").all() and (train["split"] == "train").all()
    assert not set(train.index) & set(valid.index)
    assert len(train) + len(valid) == int((df["split"] == "train").sum())
    # whole folds: no fold is shared between the two sets
    assert not set(train["fold"].unique()) & set(valid["fold"].unique())
    assert (valid["fold"] >= 0).all()
    test_rows = df.index[df["split"] == "test"]
    assert len(test_rows) and not set(test_rows) & (set(valid.index) | set(train.index))
    again = split_rows(df, spec, TrainingConfig(validation_fraction=0.2), seed=1)[1]
    pd.testing.assert_index_equal(again.index, valid.index)
    one_fold = df[df["fold"].isin([-1, int(valid["fold"].iloc[0])])]
    assert split_rows(one_fold, spec, TrainingConfig(validation_fraction=0.5), seed=1)[1].empty
    none_train, none_valid = split_rows(df, spec, TrainingConfig(validation_fraction=0), seed=1)
    assert none_valid.empty and len(none_train) == int((df["split"] == "train").sum())


def test_train_models_saves_loadable_models(featured):
    cfg = load_config(featured)
    lines = []
    results = train_models(cfg, notify=lines.append)
    assert [r["name"] for r in results] == ["ridge", "xgb"]
    assert any("logit" in m and "does not support the lai task" in m for m in lines), lines
    saved = json.loads((cfg.run_dir / "models" / "lai" / "training.json").read_text())
    assert saved == results
    df = read_feature_table(cfg.run_dir / "features")
    some = df[df["split"] == "test"].head(50)
    for r in results:
        assert r["rows"] == 5000 and r["valid_rows"] > 0 and r["task"] == "lai"
        assert r["valid_score"] is not None and 0 <= r["valid_score"] < 2
        model = load_model(r["path"])
        pred = model.predict(some)
        assert pred.shape == (len(some),) and np.isfinite(pred).all()


def test_train_models_deep_and_whole_table(featured, tmp_path):
    pytest.importorskip("torch")
    base = load_config(featured)
    path = _write_config(tmp_path / "mlp.yaml", base.data.root, base.output.root,
                         [{"kind": "mlp", "name": "mlp", "params": {"hidden": [16]}}], sample_rows=10_000_000)
    cfg = load_config(path)
    lines = []
    (r,) = train_models(cfg, notify=lines.append)
    assert any("using the whole table" in m for m in lines), lines
    assert r["family"] == "deep" and r["rows"] + r["valid_rows"] == int(
        (read_feature_table(cfg.run_dir / "features")["split"] == "train").sum())
    assert load_model(r["path"]).fitted


def test_train_models_on_a_given_table(featured, tmp_path):
    """A table and spec passed in (how the LULC table will come) take the same path."""
    cfg = load_config(featured).model_copy(update={"run_name": "given"})
    src = load_config(featured).run_dir / "features"
    df = read_feature_table(src)
    df = df[df["scenario"] == df["scenario"].cat.categories[0]].reset_index(drop=True)
    (r,) = train_models(cfg, models=["ridge"], table=df, spec=lai_task_spec(table_meta(src)))
    assert r["valid_rows"] > 0 and r["rows"] + r["valid_rows"] == int((df["split"] == "train").sum())
    assert (cfg.run_dir / "models" / "lai" / "training.json").exists() and load_model(r["path"]).fitted


def test_train_models_user_errors(featured, tmp_path):
    cfg = load_config(featured)
    with pytest.raises(ConfigError, match="nope.*ridge, xgb, logit"):
        train_models(cfg, models=["nope"])
    other = cfg.model_copy(update={"run_name": "empty"})
    with pytest.raises(InputDataError, match="terrascale features"):
        train_models(other)


def _one_line_error(res, *words):
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    out = " ".join(res.output.split())
    assert out.count("error:") == 1
    for w in words:
        assert w in out, (w, out)


def test_train_cli(featured):
    from pipeline.cli import app

    res = CliRunner().invoke(app, ["train", str(featured), "--model", "ridge", "--set", "training.sample_rows=2000"])
    assert res.exit_code == 0, (res.output, res.exception)
    assert "ridge" in res.output and "2,000" in res.output and "valid RMSE" in res.output
    records = json.loads((featured.parent / "runs" / "tiny" / "models" / "lai" / "training.json").read_text())
    assert [r["name"] for r in records][-1] == "ridge" and records[-1]["rows"] == 2000
    assert len({r["name"] for r in records}) == len(records)
    _one_line_error(CliRunner().invoke(app, ["train", str(featured), "--model", "nope"]), "nope", "not in the config")
    _one_line_error(CliRunner().invoke(app, ["train", str(featured), "--set", "run_name=missing"]),
                    "terrascale features")
