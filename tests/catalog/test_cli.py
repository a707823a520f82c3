"""``terrascale catalog``: list, show, compare, promote, export; bad inputs exit 2 with one message."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from pipeline.catalog import Registry, open_archive
from pipeline.cli.root import app
from tests.helpers.catalog_runs import make_run

runner = CliRunner()


def _cat(*args):
    return runner.invoke(app, ["catalog", *map(str, args)])


@pytest.fixture(autouse=True)
def _wide_console():
    """Tables at 200 columns, so that ids and cells are not folded (the console is made at import)."""
    from pipeline.cli.common import console, err_console

    saved = [(c, c._width) for c in (console, err_console)]
    for c, _ in saved:
        c.width = 200
    yield
    for c, width in saved:
        c._width = width


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "runs"
    make_run(root, "r1", {"lai": ["xgboost", "ridge"], "lulc": ["logistic"]})
    make_run(root, "r2", {"lai": ["xgboost"]}, score_offset=1.0)
    make_run(root, "bare", {})
    return root


def _one_error(res, *fragments):
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
    text = " ".join(res.output.split())
    for f in fragments:
        assert f in text, (f, res.output)
    assert "Traceback" not in res.output


def test_help_lists_the_catalog_commands():
    res = runner.invoke(app, ["catalog", "--help"])
    assert res.exit_code == 0
    for cmd in ("list", "show", "compare", "promote", "export"):
        assert cmd in res.output


def test_list(root):
    res = _cat("list", "--root", root)
    assert res.exit_code == 0, res.output
    for ident in ("r1/lai/xgboost", "r1/lai/ridge", "r1/lulc/logistic", "r2/lai/xgboost"):
        assert ident in res.output
    assert "boosting" in res.output and "candidate" in res.output
    res = _cat("list", "--root", root, "--task", "lulc", "--json")
    rows = json.loads(res.output)
    assert [r["id"] for r in rows] == ["r1/lulc/logistic"] and rows[0]["stage"] == "candidate"


def test_list_defaults_to_the_config_output_root(root, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"output:\n  root: {root}\n")
    res = _cat("list", "--config", config, "--json")
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.output)) == 4


def test_show(root):
    _cat("promote", "r1/lai/xgboost", "--root", root, "--reason", "best", "--by", "alice", "--no-mlflow")
    res = _cat("show", "r1/lai/xgboost", "--root", root)
    assert res.exit_code == 0, res.output
    for text in ("r1/lai/xgboost", "production", "boosting", "abc1234", "state.ubj", "alice", "best", "rmse",
                 "test (truth)", "artefact"):
        assert text in res.output, text
    data = json.loads(_cat("show", "r1/lai/xgboost", "--root", root, "--json").output)
    assert data["verified"] == "ok" and data["stage"] == "production" and len(data["metrics"]) == 2
    assert data["history"][0]["by"] == "alice"


def test_show_reports_a_changed_artefact(root):
    (root / "r1" / "models" / "lai" / "ridge" / "state.ubj").write_bytes(b"changed")
    data = json.loads(_cat("show", "r1/lai/ridge", "--root", root, "--json").output)
    assert "state.ubj does not match its recorded sha256" in data["verified"]


def test_compare(root):
    res = _cat("compare", "r1", "r2", "--root", root, "--task", "lai")
    assert res.exit_code == 0, res.output
    assert "r1" in res.output and "r2" in res.output and "rmse" in res.output
    assert "0.25 [0.2, 0.3]" in res.output and "1.25 [1.2, 1.3]" in res.output
    csv = _cat("compare", "r1", "r2", "--root", root, "--csv").output.splitlines()
    assert csv[0] == "run,task,model,family,split,metric,value,lo,hi" and len(csv) == 1 + 6 + 2


def test_promote_and_archive_previous(root):
    res = _cat("promote", "r1/lai/xgboost", "--root", root, "--reason", "first", "--by", "alice", "--no-mlflow")
    assert res.exit_code == 0, res.output
    assert "candidate → production" in res.output
    res = _cat("promote", "r2/lai/xgboost", "--root", root, "--reason", "better", "--no-mlflow")
    assert res.exit_code == 0, res.output
    assert "r1/lai/xgboost: production → archived" in res.output
    assert Registry(root).production("lai") == "r2/lai/xgboost"
    listed = {r["id"]: r["stage"] for r in json.loads(_cat("list", "--root", root, "--json").output)}
    assert listed["r1/lai/xgboost"] == "archived" and listed["r2/lai/xgboost"] == "production"
    only = json.loads(_cat("list", "--root", root, "--stage", "production", "--json").output)
    assert [r["id"] for r in only] == ["r2/lai/xgboost"]


def test_export_then_open(root, tmp_path):
    out = tmp_path / "m.tar.gz"
    res = _cat("export", "r1", "--task", "lulc", "--root", root, "-o", out)
    assert res.exit_code == 0, res.output
    assert "exported r1/lulc/logistic" in res.output
    model_dir, manifest = open_archive(out, tmp_path / "opened")
    assert (model_dir / "model.json").is_file() and manifest["export"]["entry"] == "r1/lulc/logistic"


def test_export_default_name(root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = _cat("export", "r2/lai/xgboost", "--root", root)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r2-lai-xgboost.tar.gz").is_file()


def test_bad_inputs_exit_2_with_one_message(root, tmp_path):
    _one_error(_cat("show", "r1/lai/xgbost", "--root", root), "no catalogue entry 'r1/lai/xgbost'",
               "did you mean r1/lai/xgboost")
    _one_error(_cat("list", "--root", tmp_path / "nowhere"), "does not exist")
    _one_error(_cat("list", "--root", root, "--stage", "staging"), "--stage 'staging'")
    state = root / "r1" / "models" / "lai" / "xgboost" / "state.ubj"
    state.write_bytes(b"tampered")
    _one_error(_cat("promote", "r1/lai/xgboost", "--root", root, "--reason", "x", "--no-mlflow"),
               "state.ubj does not match its recorded sha256")
    _one_error(_cat("promote", "r1/lai/ridge", "--root", root, "--reason", " ", "--no-mlflow"), "needs a reason")
    _one_error(_cat("export", "bare", "--root", root, "-o", tmp_path / "x.tar.gz"), "run bare",
               "has no trained model")
    _one_error(_cat("export", "r1", "--root", root, "-o", tmp_path / "x.tar.gz"), "run r1 has 3 trained models")
    _one_error(_cat("compare", "r1", "r9", "--root", root), "no run 'r9'")
    _one_error(_cat("compare", "r1", "bare", "--root", root), "run bare", "has no metrics")
    assert not (tmp_path / "x.tar.gz").exists()


def test_promote_needs_a_reason_option(root):
    res = _cat("promote", "r1/lai/xgboost", "--root", root)
    assert res.exit_code == 2 and "--reason" in res.output
