"""The index of trained models from run manifests; look-ups with close matches; metric tables."""

from __future__ import annotations

import pytest

from pipeline.catalog import compare_runs, find_entry, read_metrics, scan, select_entry
from pipeline.errors import InputDataError
from tests.helpers.catalog_runs import make_run


def test_scan_lists_every_model_of_every_run(tmp_path):
    make_run(tmp_path, "r1", {"lai": ["xgboost", "ridge"], "lulc": ["logistic"]})
    make_run(tmp_path, "r2", {"lai": ["xgboost"]})
    make_run(tmp_path, "empty", {})
    (tmp_path / "catalog").mkdir()  # the catalogue's own directory is not a run
    cat = scan(tmp_path)
    assert cat.ids == ["r1/lai/ridge", "r1/lai/xgboost", "r1/lulc/logistic", "r2/lai/xgboost"]
    e = find_entry(cat, "r1/lai/xgboost")
    assert (e.kind, e.family, e.path, e.key) == ("xgboost", "boosting", "models/lai/xgboost", "key-lai-xgboost")
    assert e.model_dir == tmp_path / "r1" / "models" / "lai" / "xgboost"
    assert e.valid_score == pytest.approx(0.5) and e.fit_seconds == pytest.approx(1.5)
    assert set(e.files) == {"model.json", "state.ubj", "sub/extra.npz"}
    assert e.summary()["git_commit"] == "abc1234" and e.config_sha256 and e.created.startswith("2025")


def test_a_broken_manifest_is_skipped_with_its_reason(tmp_path):
    make_run(tmp_path, "good")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("{not json")
    cat = scan(tmp_path)
    assert cat.ids == ["good/lai/ridge", "good/lai/xgboost"]
    assert len(cat.skipped) == 1 and cat.skipped[0].startswith("bad: ")


def test_unknown_entry_lists_close_matches_or_the_available_ones(tmp_path):
    make_run(tmp_path, "r1")
    cat = scan(tmp_path)
    with pytest.raises(InputDataError, match=r"no catalogue entry 'r1/lai/xgbost'.*did you mean r1/lai/xgboost"):
        find_entry(cat, "r1/lai/xgbost")
    with pytest.raises(InputDataError, match=r"available catalogue entries: r1/lai/ridge, r1/lai/xgboost"):
        find_entry(cat, "zzzzzzzzzzzzzzzzzzz")


def test_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(InputDataError, match=r"output root .*nope does not exist.*--root"):
        scan(tmp_path / "nope")


def test_select_entry_by_id_or_by_run(tmp_path):
    make_run(tmp_path, "r1", {"lai": ["xgboost", "ridge"], "lulc": ["logistic"]})
    make_run(tmp_path, "bare", {})
    assert select_entry(tmp_path, "r1/lai/ridge").id == "r1/lai/ridge"
    assert select_entry(tmp_path, "r1", task="lulc").id == "r1/lulc/logistic"
    assert select_entry(tmp_path, "r1/lulc").id == "r1/lulc/logistic"
    assert select_entry(tmp_path, str(tmp_path / "r1"), task="lai", model="xgboost").id == "r1/lai/xgboost"
    with pytest.raises(InputDataError, match=r"run r1 has 2 trained models: r1/lai/ridge, r1/lai/xgboost"):
        select_entry(tmp_path, "r1", task="lai")
    with pytest.raises(InputDataError, match=r"run bare .* has no trained model"):
        select_entry(tmp_path, "bare")
    with pytest.raises(InputDataError, match=r"no run 'r2'.*did you mean r1\?"):
        select_entry(tmp_path, "r2/lai/xgboost")
    with pytest.raises(InputDataError, match=r"run r1 has no trained model r1/lai/mlp"):
        select_entry(tmp_path, "r1/lai/mlp")


def test_read_and_compare_metrics(tmp_path):
    make_run(tmp_path, "r1", {"lai": ["xgboost", "ridge"], "lulc": ["logistic"]})
    make_run(tmp_path, "r2", {"lai": ["xgboost"]}, score_offset=1.0)
    one = read_metrics(tmp_path / "r1")
    assert list(one.columns) == ["task", "model", "family", "split", "metric", "value", "lo", "hi"]
    assert set(one["task"]) == {"lai", "lulc"} and len(read_metrics(tmp_path / "r1", "lai")) == 4
    both = compare_runs(tmp_path, ["r1", "r2"], task="lai", metric="rmse")
    assert list(both["run"]) == ["r1", "r1", "r2"]
    r2 = both[both["run"] == "r2"].iloc[0]
    assert (r2["model"], r2["split"], r2["value"], r2["lo"]) == ("xgboost", "test (truth)", 1.25, 1.2)
    with pytest.raises(InputDataError, match=r"no metric row has metric 'nse'.*available: r2, rmse"):
        compare_runs(tmp_path, ["r1", "r2"], task="lai", metric="nse")
    with pytest.raises(InputDataError, match=r"no run 'r3'.*did you mean r[12], r[12]\?"):
        compare_runs(tmp_path, ["r1", "r3"])


def test_compare_refuses_a_run_that_was_not_evaluated(tmp_path):
    make_run(tmp_path, "r1")
    make_run(tmp_path, "raw", metrics=False)
    with pytest.raises(InputDataError, match=r"run raw .* has no metrics/<task>/metrics.csv; run its evaluate stage"):
        compare_runs(tmp_path, ["r1", "raw"])


def test_a_metrics_table_without_its_columns_is_named(tmp_path):
    run = make_run(tmp_path, "r1")
    (run / "metrics" / "lai" / "metrics.csv").write_text("model,value\nx,1\n")
    with pytest.raises(InputDataError, match=r"metrics.csv lacks the column\(s\) task, family, split, metric, lo, hi"):
        read_metrics(run)
