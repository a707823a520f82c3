"""Config loading, overrides, sha256 round trip and the messages for bad configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.config import (
    config_sha256,
    dump_config,
    load_config,
    write_resolved_config,
)
from pipeline.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "configs" / "demo.yaml"


def test_demo_config_validates():
    cfg = load_config(DEMO)
    assert cfg.run_name == "demo"
    assert cfg.data.region == "iberia"
    assert cfg.data.years == (2016, 2025)
    assert cfg.tasks == ["lulc", "lai"]
    # every model family of the registry is in the demo
    from pipeline.models import model_class

    assert {model_class(m.kind).family for m in cfg.models} == {"baseline", "ml", "deep"}
    assert {m.kind for m in cfg.models} >= {"xgboost", "random_forest", "logistic", "ridge", "mlp", "unet"}


def test_every_shipped_config_validates():
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        load_config(path)


def test_round_trip_keeps_sha256(tmp_path):
    cfg = load_config(DEMO)
    written = write_resolved_config(cfg, tmp_path / "run")
    again = load_config(written)
    assert again == cfg
    assert config_sha256(again) == config_sha256(cfg)
    assert (tmp_path / "run" / "config.sha256").read_text().strip() == config_sha256(cfg)
    assert dump_config(again) == dump_config(cfg)


def test_sha256_changes_with_a_setting():
    base = load_config(DEMO)
    changed = load_config(DEMO, ["seed=43"])
    assert config_sha256(base) != config_sha256(changed)


def test_defaults_and_explicit_defaults_hash_the_same(tmp_path):
    short = tmp_path / "short.yaml"
    short.write_text("run_name: x\n")
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text("run_name: x\nseed: 0\nbackend: auto\n")
    assert config_sha256(load_config(short)) == config_sha256(load_config(explicit))


def test_overrides_nested_list_and_yaml_values():
    cfg = load_config(DEMO, ["data.region=europe", "data.years=2001:2010", "models.5.params.max_depth=4",
                              "grids.targets=[F32, 1deg]", "cluster.n_workers=1"])
    assert cfg.data.region == "europe"
    assert cfg.data.years == (2001, 2010)
    assert cfg.models[5].params.max_depth == 4
    assert cfg.grids.targets == ["F32", "1deg"]
    assert cfg.cluster.n_workers == 1


def test_unknown_key_names_key_section_and_allowed(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"data": {"region": "iberia", "regoin": "x"}}))
    with pytest.raises(ConfigError) as exc:
        load_config(bad)
    msg = str(exc.value)
    assert "unknown key 'regoin'" in msg and "section 'data'" in msg
    assert "allowed keys: " in msg and "region" in msg and str(bad) in msg


def test_unknown_top_level_key():
    with pytest.raises(ConfigError, match=r"unknown key 'modles' in top level; allowed keys: .*models"):
        load_config(DEMO, ["modles=[]"])


def test_wrong_type_names_the_path():
    with pytest.raises(ConfigError, match=r"'training.max_epochs'.*got 'many'"):
        load_config(DEMO, ["training.max_epochs=many"])


def test_every_problem_reported_at_once():
    with pytest.raises(ConfigError) as exc:
        load_config(DEMO, ["training.max_epochs=many", "splits.n_folds=1", "backend=tpu"])
    msg = str(exc.value)
    assert "max_epochs" in msg and "n_folds" in msg and "backend" in msg


def test_missing_file():
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("no/such/config.yaml")


def test_invalid_yaml(tmp_path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(bad)


def test_cross_field_checks():
    with pytest.raises(ConfigError, match="runs backwards"):
        load_config(DEMO, ["data.years=2020:2001"])
    with pytest.raises(ConfigError, match="test_fold"):
        load_config(DEMO, ["splits.test_fold=7"])
    with pytest.raises(ConfigError, match="needs 'address'"):
        load_config(DEMO, ["cluster.kind=address"])


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="has no '='"):
        load_config(DEMO, ["seed"])
    with pytest.raises(ConfigError, match="not an index"):
        load_config(DEMO, ["models.9.name=x"])


def test_override_with_invalid_yaml_value():
    with pytest.raises(ConfigError, match=r"override 'seed=\[': the value is not valid YAML"):
        load_config(DEMO, ["seed=["])


def test_override_through_a_plain_list_item():
    with pytest.raises(ConfigError, match=r"'data.scenarios.0' is a value, not a section"):
        load_config(DEMO, ["data.scenarios.0.x=1"])


def test_config_file_not_utf8(tmp_path):
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes("report:\n  title: r\xe9sum\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="cannot be read as UTF-8"):
        load_config(bad)


def test_reversed_test_years():
    with pytest.raises(ConfigError, match=r"test_years \[2020, 2016\] runs backwards"):
        load_config(DEMO, ["splits.test_years=[2020, 2016]"])


def test_resolved_config_into_unwritable_place(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError, match="cannot write the resolved config"):
        write_resolved_config(load_config(DEMO), blocker / "run")


def test_model_entries_are_typed_by_kind():
    cfg = load_config(DEMO)
    kinds = [m.kind for m in cfg.models]
    assert "xgboost" in kinds and type(cfg.models[kinds.index("xgboost")].params).__name__ == "XGBoostParams"
    with pytest.raises(ConfigError, match="unknown model kind 'xgbost'; available kinds: coarse_prior"):
        load_config(DEMO, ["models.5.kind=xgbost"])
    with pytest.raises(ConfigError, match=r"unknown key 'max_dept' in 'models.5 \(xgboost model 'xgboost'\).params'; "
                                          r"allowed keys: .*max_depth"):
        load_config(DEMO, ["models.5.params.max_dept=4"])
    with pytest.raises(ConfigError, match=r"models.3 \(climatology model 'clim'\).params.min_count"):
        load_config(DEMO, ["models.3.name=clim", "models.3.params.min_count=0"])
    with pytest.raises(ConfigError, match="hidden"):
        load_config(DEMO, ["models.7.params.hidden=[0]"])
