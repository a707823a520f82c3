"""`terrascale features CONFIG` end to end on a tiny synthetic store directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import pipeline.cli
from pipeline.config import config_sha256, load_config
from pipeline.features import read_feature_table, table_meta


def _config(tmp_path, root, **splits):
    cfg = {
        "run_name": "tiny",
        "backend": "cpu",
        "data": {"source": "stores", "root": str(root), "years": "2001:2002"},
        "splits": {"kind": "both", "block_size_deg": 0.5, "n_folds": 3, "buffer_deg": 0.1,
                   "test_years": [2002, 2002], **splits},
        "features": {"partition_rows": 20000, "missing": {"tas": {"action": "mean"}}},
        "output": {"root": str(tmp_path / "runs")},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_features_command_writes_table_and_prints_summary(tmp_path, synth_root):
    cfg_path = _config(tmp_path, synth_root)
    result = CliRunner().invoke(pipeline.cli.app, ["features", str(cfg_path), "--set", "seed=4"])
    assert result.exit_code == 0, result.output
    run_dir = tmp_path / "runs" / "tiny"
    out = result.output
    meta = table_meta(run_dir / "features")
    assert f"{meta['rows']:,} rows x {len(meta['columns'])} columns" in out
    assert "memory" in out and "Parquet partition" in out
    for label in ("train", "test", "buffer", "excluded"):
        assert label in out
    df = read_feature_table(run_dir / "features")
    assert len(df) == meta["rows"] and not df["lai"].isna().any()
    assert isinstance(df["split"].dtype, pd.CategoricalDtype) and isinstance(df["koppen"].dtype, pd.CategoricalDtype)
    summary = {r["split"]: r["rows"] for r in meta["split_summary"]}
    assert summary == df["split"].value_counts().to_dict()
    assert meta["missing"]["columns"]["tas"]["action"] == "mean" and meta["missing"]["columns"]["tas"]["value"] > 200
    resolved = load_config(run_dir / "config.resolved.yaml")
    assert resolved.seed == 4 and (run_dir / "config.sha256").read_text().strip() == config_sha256(resolved)
    # same seed: same folds on a second run; the old table is replaced atomically
    again = CliRunner().invoke(pipeline.cli.app, ["features", str(cfg_path), "--set", "seed=4"])
    assert again.exit_code == 0, again.output
    pd.testing.assert_series_equal(read_feature_table(run_dir / "features")["fold"], df["fold"])
    assert sorted(p.name for p in (tmp_path / "runs" / "tiny").iterdir()) == ["config.resolved.yaml", "config.sha256", "features"]


def _assert_user_error(res, *words):
    """A user error: exit 2 through SystemExit (no other exception escaped), message names ``words``."""
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    out = " ".join(res.output.split())
    for w in words:
        assert w in out, (w, out)


@pytest.mark.parametrize("overrides, words", [
    (["features.coarse=[tas,tmax]"], ["error:", "tmax"]),
    (["data.root={tmp}"], ["error:", "lacks"]),
    (["splits.test_years=[2030,2031]"], ["error:", "leaves no test rows", "splits.test_years 2030-2031"]),
    (["splits.kind=temporal", "splits.test_years=[2001,2002]"], ["error:", "leaves no train rows"]),
])
def test_features_command_user_errors_are_one_line(tmp_path, synth_root, overrides, words):
    cfg_path = _config(tmp_path, synth_root)
    args = ["features", str(cfg_path)]
    for o in overrides:
        args += ["--set", o.format(tmp=tmp_path)]
    res = CliRunner().invoke(pipeline.cli.app, args)
    _assert_user_error(res, *words)
    assert not (tmp_path / "runs" / "tiny" / "features").exists()


def test_features_console_script_user_error_is_one_stderr_line(tmp_path, synth_root):
    cfg_path = _config(tmp_path, synth_root)
    exe = Path(sys.executable).with_name("terrascale")
    res = subprocess.run([str(exe), "features", str(cfg_path), "--set", "splits.test_years=[2030,2031]"],
                         capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "400"})
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and "Traceback" not in res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error:") and "leaves no test rows" in lines[0]


@pytest.mark.parametrize("root", ["afile", "afile/sub", "afile/sub/deeper"])
def test_output_root_through_a_file_is_one_message(tmp_path, synth_root, root):
    (tmp_path / "afile").write_text("a user's file")
    cfg_path = _config(tmp_path, synth_root)
    res = CliRunner().invoke(pipeline.cli.app, ["features", str(cfg_path), "--set", f"output.root={tmp_path / root}"])
    _assert_user_error(res, "error:", "cannot create the run directory", "output.root")
    assert (tmp_path / "afile").read_text() == "a user's file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_output_root_is_one_message(tmp_path, synth_root):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    cfg_path = _config(tmp_path, synth_root)
    res = CliRunner().invoke(pipeline.cli.app, ["features", str(cfg_path), "--set", f"output.root={ro / 'x'}"])
    _assert_user_error(res, "error:", "output.root")
