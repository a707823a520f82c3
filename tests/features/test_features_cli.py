"""`terrascale features CONFIG` end to end on a tiny synthetic store directory."""

from __future__ import annotations

import pandas as pd
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


def test_features_command_user_errors_are_one_line(tmp_path, synth_root):
    cfg_path = _config(tmp_path, synth_root)
    result = CliRunner().invoke(pipeline.cli.app, ["features", str(cfg_path), "--set", "features.coarse=[tas,tmax]"])
    assert result.exit_code == 2
    assert "tmax" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(pipeline.cli.app, ["features", str(cfg_path), "--set", f"data.root={tmp_path}"])
    assert result.exit_code == 2 and "lacks" in result.output
    assert not (tmp_path / "runs" / "tiny" / "features").exists()
