"""``terrascale run`` end to end on a tiny config: outputs, conservation, caching, refusals."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from pipeline.cli.root import app
from pipeline.sphere import box_areas
from tests.helpers.run_configs import write_tiny_config

runner = CliRunner()


def _run(*args):
    return runner.invoke(app, ["run", *map(str, args)])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One complete run of the tiny config (module scope: the other tests read or copy it)."""
    root = tmp_path_factory.mktemp("tiny")
    config = write_tiny_config(root)
    result = _run(config)
    assert result.exit_code == 0, result.output
    return config, root / "runs" / "tiny", result.output


def test_run_writes_every_output(tiny_run):
    _, run_dir, output = tiny_run
    for rel in ("config.resolved.yaml", "manifest.json", "logs/run.log", "features/features.json",
                "features/lulc.parquet", "models/lulc/training.json", "models/lai/training.json",
                "predictions/lulc/lulc.zarr", "predictions/lai/lai.zarr", "metrics/lulc/metrics.csv",
                "metrics/lai/metrics.csv", "report.html"):
        assert (run_dir / rel).exists(), rel
    esm = sorted(p.name for p in (run_dir / "esm").glob("*.nc"))
    assert esm == ["lai_1deg.nc", "lai_N32.nc", "lulc_fractions_1deg.nc", "lulc_fractions_N32.nc"]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert all(r["status"] == "complete" for r in manifest["stages"].values())
    assert set(manifest["stages"]) >= {"prepare", "features", "train/lulc", "train/lai", "predict/lulc",
                                       "predict/lai", "aggregate/lulc", "aggregate/lai", "evaluate/lulc",
                                       "evaluate/lai", "report"}
    # every model file is recorded with its checksum
    assert manifest["models"]["lai"]["xgboost"]["files"]
    assert "report:" in output


def test_esm_fractions_conserve_the_fine_predictions(tiny_run):
    """The 1° IGBP fractions equal the area-weighted aggregate of the fine probabilities and sum to 1."""
    _, run_dir, _ = tiny_run
    prob = xr.open_zarr(run_dir / "predictions/lulc/lulc.zarr", consolidated=False)["probability"].load()
    with xr.open_dataset(run_dir / "esm/lulc_fractions_1deg.nc") as ds:
        esm = ds["igbp_fraction"].load()
        assert "lat_bnds" in ds or "lat_bounds" in ds or any("bnds" in v for v in ds.variables)
    lat, lon = prob["lat"].values, prob["lon"].values
    # the 0.05° cells nest in the 1° cells: each target value is the area-weighted mean of its cells
    area = box_areas(lat[:, None] - 0.025, lat[:, None] + 0.025, lon[None, :] - 0.025, lon[None, :] + 0.025)
    p = prob.isel(scenario=0, time=0).values  # (class, lat, lon)
    for j, tlat in enumerate(esm["lat"].values):
        for i, tlon in enumerate(esm["lon"].values):
            inside = (np.abs(lat - tlat) < 0.5)[:, None] & (np.abs(lon - tlon) < 0.5)[None, :]
            valid = inside & np.isfinite(p[0])
            if not valid.any():
                continue
            expected = (p[:, valid] * area[valid]).sum(axis=1) / area[valid].sum()
            got = esm.isel(scenario=0, time=0).transpose("igbp_class", "lat", "lon").values[:, j, i]
            np.testing.assert_allclose(got, expected, atol=1e-6)
            assert abs(got.sum() - 1.0) < 1e-6


def test_report_and_metrics_name_every_model(tiny_run):
    _, run_dir, _ = tiny_run
    html = (run_dir / "report.html").read_text()
    for name in ("coarse_prior", "climatology", "xgboost", "mlp"):
        assert name in html
    import pandas as pd

    lai = pd.read_csv(run_dir / "metrics/lai/metrics.csv")
    assert {"climatology", "xgboost", "mlp"} <= set(lai["model"])
    assert {"rmse", "r2", "kge"} <= set(lai["metric"])
    lulc = pd.read_csv(run_dir / "metrics/lulc/metrics.csv")
    assert {"coarse_prior", "xgboost", "mlp"} <= set(lulc["model"])
    # class fractions of the product model on each ESM grid against the 2019 map's
    esm = lulc[lulc["metric"] == "class_fraction_mae"]
    assert sorted(esm["split"].str.split(" ").str[0]) == ["1deg", "N32"]
    assert ((esm["value"] >= 0) & (esm["value"] < 0.5)).all()


def test_second_run_reuses_everything(tiny_run, tmp_path):
    config, run_dir, _ = tiny_run
    copy = tmp_path / "runs" / "tiny"
    shutil.copytree(run_dir, copy)
    result = _run(config, "-o", copy)
    assert result.exit_code == 0, result.output
    # the summary is wrapped to the terminal's width, at a place that depends on the run's path
    assert "ran none" in " ".join(result.output.split())


def test_changed_model_parameter_recomputes_only_its_task(tiny_run, tmp_path):
    """One LAI-only parameter change: train/lai onwards and the report run again, LULC is reused."""
    config, run_dir, _ = tiny_run
    copy = tmp_path / "runs" / "tiny"
    shutil.copytree(run_dir, copy)
    # models[1] is the LAI climatology baseline
    result = _run(config, "-o", copy, "--set", "models.1.params.min_count=2")
    assert result.exit_code == 0, result.output
    manifest = json.loads((copy / "manifest.json").read_text())
    text = " ".join(result.output.split())
    ran = text.split("ran ", 1)[1].split(";", 1)[0]
    assert set(ran.split(", ")) == {"train/lai", "predict/lai", "aggregate/lai", "evaluate/lai", "report"}
    assert "climatology fitted" in text or "fitting climatology" in text
    assert "xgboost" not in result.output.split("train/lai: running", 1)[1].split("predict/lai", 1)[0].replace(
        "xgboost reused", "")
    assert manifest["stages"]["train/lulc"]["status"] == "complete"


def test_stage_whose_inputs_are_missing_is_refused(tmp_path):
    config = write_tiny_config(tmp_path)
    result = runner.invoke(app, ["predict", str(config)])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "needs the outputs of train/lulc" in text and "--stages train" in text


def test_run_directory_of_another_config_is_refused(tiny_run, tmp_path):
    config, run_dir, _ = tiny_run
    copy = tmp_path / "runs" / "tiny"
    shutil.copytree(run_dir, copy)
    result = _run(config, "-o", copy, "--set", "data.years=2018:2020", "--stages", "prepare")
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "another config" in text and "data" in text and "--force" in text
    forced = _run(config, "-o", copy, "--set", "data.years=2018:2020", "--stages", "prepare", "--force")
    assert forced.exit_code == 0, forced.output


@pytest.mark.parametrize("override, words", [
    (["data.source=stores", "data.root=/nonexistent/stores"], ["/nonexistent/stores", "data.root"]),
    (["grids.targets=[\"1deg:100,-10,110,0\"]"], ["has no cell over the region", "grids.targets"]),
])
def test_bad_run_inputs_are_one_message(tmp_path, override, words):
    config = write_tiny_config(tmp_path)
    args = [a for o in override for a in ("--set", o)]
    result = _run(config, *args, "--stages", "prepare")
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "Traceback" not in text
    for w in words:
        assert w in text, text


def test_scenario_outside_the_data_is_refused(tiny_run, tmp_path):
    """A scenario the prepared stores do not hold: one message naming it."""
    config, run_dir, _ = tiny_run
    inputs = run_dir / "inputs"
    result = _run(config, "-o", tmp_path / "runs" / "other", "--set", "data.source=stores", "--set",
                  f"data.root={inputs}", "--set", "data.scenarios=[ssp245]", "--stages", "prepare")
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "ssp245" in text and "data.scenarios" in text


def test_same_config_and_seed_give_identical_predictions(tiny_run, tmp_path):
    """Reproducibility on the CPU: retraining and predicting again gives the same numbers, bit for bit."""
    config, run_dir, _ = tiny_run
    copy = tmp_path / "runs" / "tiny"
    shutil.copytree(run_dir, copy)
    result = _run(config, "-o", copy, "--stages", "train,predict", "--force")
    assert result.exit_code == 0, result.output
    for store, var in (("predictions/lulc/lulc.zarr", "probability"), ("predictions/lai/lai.zarr", "lai")):
        a = xr.open_zarr(run_dir / store, consolidated=False)[var].values
        b = xr.open_zarr(copy / store, consolidated=False)[var].values
        np.testing.assert_array_equal(a, b)


def test_predict_with_an_exported_model_archive(tiny_run, tmp_path):
    """`terrascale predict --model ARCHIVE`: the archived model predicts exactly as it did in its own run."""
    import pandas as pd

    from pipeline.catalog import export_model

    config, run_dir, _ = tiny_run
    archive = export_model(run_dir, "lai", "xgboost", tmp_path / "xgb.tar.gz")
    other = tmp_path / "elsewhere" / "tiny"
    shutil.copytree(run_dir, other, ignore=shutil.ignore_patterns("models", "predictions", "checkpoints"))
    result = runner.invoke(app, ["predict", str(config), "--model", str(archive), "-o", str(other)])
    assert result.exit_code == 0, result.output
    assert "checksums verified" in " ".join(result.output.split())
    assert json.loads((other / "predictions/lai/predict.json").read_text())["product_model"] == "xgboost"
    a = pd.read_parquet(run_dir / "predictions/lai/map.parquet")["pred__xgboost"].to_numpy()
    b = pd.read_parquet(other / "predictions/lai/map.parquet")["pred__xgboost"].to_numpy()
    np.testing.assert_array_equal(a, b)


def test_from_manifest_reruns_the_recorded_config(tiny_run, tmp_path):
    """`--from-manifest` re-runs exactly the recorded config: in a copy of the run, nothing changes."""
    _, run_dir, _ = tiny_run
    copy = tmp_path / "runs" / "tiny"
    shutil.copytree(run_dir, copy)
    result = runner.invoke(app, ["run", "--from-manifest", str(copy / "manifest.json"), "-o", str(copy)])
    assert result.exit_code == 0, result.output
    assert "ran none" in " ".join(result.output.split())
    bad = runner.invoke(app, ["run", "--from-manifest", str(copy / "config.resolved.yaml")])
    assert bad.exit_code == 2 and "manifest" in bad.output
