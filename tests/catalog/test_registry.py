"""Promotions: who, when and why recorded; one production model per task; tampered artefacts refused."""

from __future__ import annotations

import json
import re

import pytest

from pipeline.catalog import ARCHIVED, CANDIDATE, PRODUCTION, Registry, files_digest, promote, scan
from pipeline.errors import ConfigError, InputDataError
from tests.helpers.catalog_runs import make_run

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
def root(tmp_path):
    make_run(tmp_path, "r1", {"lai": ["xgboost", "ridge"], "lulc": ["logistic"]})
    make_run(tmp_path, "r2", {"lai": ["xgboost"]})
    return tmp_path


def test_promote_records_who_when_why(root):
    (event,) = promote(root, "r1/lai/xgboost", reason="best RMSE on the test blocks", by="alice", mlflow=False)
    assert (event.entry, event.task, event.previous, event.stage) == ("r1/lai/xgboost", "lai", CANDIDATE, PRODUCTION)
    assert event.by == "alice" and event.reason == "best RMSE on the test blocks" and ISO_UTC.match(event.at)
    entry = {e.id: e for e in scan(root).entries}["r1/lai/xgboost"]
    assert event.artefact_sha256 == files_digest(entry.files)
    reg = Registry(root)
    assert reg.stage_of("r1/lai/xgboost") == PRODUCTION and reg.production("lai") == "r1/lai/xgboost"
    assert reg.stage_of("r1/lai/ridge") == CANDIDATE
    stored = json.loads((root / "catalog" / "registry.json").read_text())
    assert stored["events"][0]["by"] == "alice"


def test_the_login_name_is_the_default_who(root, monkeypatch):
    import getpass

    monkeypatch.setattr(getpass, "getuser", lambda: "bob")
    (event,) = promote(root, "r1/lai/ridge", reason="try it", mlflow=False)
    assert event.by == "bob"


def test_promoting_another_model_archives_the_previous_production_one(root):
    promote(root, "r1/lai/xgboost", reason="first", by="alice", mlflow=False)
    promote(root, "r1/lulc/logistic", reason="only lulc model", by="alice", mlflow=False)
    archived, promoted = promote(root, "r2/lai/xgboost", reason="retrained on 2020", by="carol", mlflow=False)
    assert (archived.entry, archived.previous, archived.stage, archived.by) == (
        "r1/lai/xgboost", PRODUCTION, ARCHIVED, "carol")
    assert "replaced in production by r2/lai/xgboost: retrained on 2020" == archived.reason
    assert archived.at == promoted.at and promoted.entry == "r2/lai/xgboost"
    reg = Registry(root)
    assert reg.production("lai") == "r2/lai/xgboost" and reg.production("lulc") == "r1/lulc/logistic"
    assert [e.stage for e in reg.history("r1/lai/xgboost")] == [PRODUCTION, ARCHIVED]
    assert sum(s == PRODUCTION for s in reg.stages().values()) == 2  # one per task


def test_rollback_and_archiving(root):
    promote(root, "r1/lai/xgboost", reason="first", mlflow=False)
    promote(root, "r2/lai/xgboost", reason="second", mlflow=False)
    promote(root, "r1/lai/xgboost", reason="second one drifts: roll back", mlflow=False)
    reg = Registry(root)
    assert reg.production("lai") == "r1/lai/xgboost" and reg.stage_of("r2/lai/xgboost") == ARCHIVED
    (event,) = promote(root, "r1/lai/xgboost", ARCHIVED, reason="retired", mlflow=False)
    assert event.previous == PRODUCTION and reg.production("lai") is None


def test_promote_refuses_a_tampered_artefact_naming_the_file(root):
    state = root / "r1" / "models" / "lai" / "xgboost" / "state.ubj"
    state.write_bytes(state.read_bytes() + b"!")
    with pytest.raises(InputDataError, match=r"model r1/lai/xgboost: .*state.ubj does not match its recorded sha256"):
        promote(root, "r1/lai/xgboost", reason="x", mlflow=False)
    assert not (root / "catalog" / "registry.json").exists()
    # a tampered model may still be archived (taken out of use)
    (event,) = promote(root, "r1/lai/xgboost", ARCHIVED, reason="artefact changed on disk", mlflow=False)
    assert event.stage == ARCHIVED and event.artefact_sha256 == ""


def test_bad_promotions_are_config_errors(root):
    with pytest.raises(ConfigError, match="needs a reason"):
        promote(root, "r1/lai/xgboost", reason="   ", mlflow=False)
    with pytest.raises(ConfigError, match="unknown stage 'staging'"):
        promote(root, "r1/lai/xgboost", "staging", reason="x", mlflow=False)
    with pytest.raises(ConfigError, match="r1/lai/xgboost is candidate; it can only be promoted to production or "
                                          "archived"):
        promote(root, "r1/lai/xgboost", CANDIDATE, reason="x", mlflow=False)
    promote(root, "r1/lai/xgboost", reason="x", mlflow=False)
    with pytest.raises(ConfigError, match="r1/lai/xgboost is production; it can only be promoted to archived"):
        promote(root, "r1/lai/xgboost", reason="again", mlflow=False)
    with pytest.raises(InputDataError, match=r"no catalogue entry 'r1/lai/xgb'.*did you mean r1/lai/xgboost"):
        promote(root, "r1/lai/xgb", reason="x", mlflow=False)


def test_a_damaged_registry_is_named(root):
    (root / "catalog").mkdir()
    (root / "catalog" / "registry.json").write_text("[1, 2")
    with pytest.raises(InputDataError, match=r"registry.json cannot be read as the catalogue registry"):
        Registry(root).events()


def test_a_production_entry_whose_run_is_gone_can_still_be_archived(root):
    import shutil

    promote(root, "r1/lai/xgboost", reason="first", mlflow=False)
    shutil.rmtree(root / "r1")
    (event,) = promote(root, "r1/lai/xgboost", ARCHIVED, reason="run deleted", mlflow=False)
    assert (event.task, event.previous, event.stage) == ("lai", PRODUCTION, ARCHIVED)
    assert Registry(root).production("lai") is None
    with pytest.raises(InputDataError, match="no catalogue entry 'r1/lai/ridge'"):
        promote(root, "r1/lai/ridge", ARCHIVED, reason="never recorded", mlflow=False)
