"""``data.source: demo``: the demo inputs of a run are reused only when they were generated with
the run's region, years, scenarios and seed; otherwise they are regenerated."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.config import load_config
from pipeline.datasets.demo import DEMO_ATTR
from pipeline.features import read_feature_table, run_features, table_meta
from pipeline.io import open_dataset


def _cfg(tmp_path, region, seed, scenarios="[ssp126]"):
    return load_config(None, [
        "run_name=demo", f"output.root={tmp_path / 'runs'}", "backend=cpu", "data.source=demo",
        f"data.region='{region}'", "data.years=2019:2020", f"data.scenarios={scenarios}", f"seed={seed}",
        "splits.kind=temporal", "splits.test_years=[2020,2020]",
    ])


def _check_table_from_inputs(run_dir, region_bounds, seed, scenarios):
    inputs = run_dir / "inputs"
    lai = open_dataset(inputs / "lai.zarr", chunks=None)
    recorded = json.loads(lai.attrs[DEMO_ATTR])
    assert recorded["region_bounds"] == list(region_bounds)
    assert recorded["seed"] == seed and recorded["scenarios"] == scenarios and recorded["years"] == [2019, 2020]
    meta = table_meta(run_dir / "features")
    # the table's grid is the inputs' grid, inside the requested box
    np.testing.assert_allclose(meta["grid"]["lat"], lai["lat"].values)
    np.testing.assert_allclose(meta["grid"]["lon"], lai["lon"].values)
    s, n, w, e = region_bounds
    assert s < min(meta["grid"]["lat"]) and max(meta["grid"]["lat"]) < n
    assert w < min(meta["grid"]["lon"]) and max(meta["grid"]["lon"]) < e
    # and its target values are the inputs' values
    df = read_feature_table(run_dir / "features")
    first = df[(df["time"] == df["time"].min()) & (df["scenario"] == scenarios[0])]
    truth = lai["lai"].sel(scenario=scenarios[0]).isel(time=0).values.ravel()
    np.testing.assert_allclose(first["lai"].to_numpy(), truth[first["cell"].to_numpy()], rtol=1e-6)
    return df


def test_demo_inputs_are_regenerated_when_region_or_seed_change(tmp_path):
    notes: list[str] = []
    cfg1 = _cfg(tmp_path, "40,41,-5,-4", seed=1)
    run_features(cfg1, notify=notes.append)
    df1 = _check_table_from_inputs(cfg1.run_dir, (40.0, 41.0, -5.0, -4.0), 1, ["ssp126"])

    # same settings: the inputs are reused, not rewritten
    stamp = (cfg1.run_dir / "inputs" / "lai.zarr").stat().st_mtime_ns
    notes.clear()
    run_features(cfg1, notify=notes.append)
    assert (cfg1.run_dir / "inputs" / "lai.zarr").stat().st_mtime_ns == stamp
    assert not any("regenerat" in m for m in notes)

    # another region and seed: the table must come from new inputs
    cfg2 = _cfg(tmp_path, "38,39,-3,-2", seed=2)
    notes.clear()
    run_features(cfg2, notify=notes.append)
    df2 = _check_table_from_inputs(cfg2.run_dir, (38.0, 39.0, -3.0, -2.0), 2, ["ssp126"])
    msg = " ".join(notes)
    assert "regenerat" in msg and "region" in msg and "seed" in msg and "years" not in msg
    assert not np.allclose(df1["lai"].to_numpy()[:100], df2["lai"].to_numpy()[:100])
    assert not list((cfg2.run_dir).glob(".inputs*"))  # no temporary left behind


def test_demo_inputs_are_regenerated_when_scenarios_change(tmp_path):
    cfg1 = _cfg(tmp_path, "40,41,-5,-4", seed=1)
    run_features(cfg1, notify=lambda m: None)
    notes: list[str] = []
    cfg2 = _cfg(tmp_path, "40,41,-5,-4", seed=1, scenarios="[ssp585]")
    run_features(cfg2, notify=notes.append)  # used to fail with "fix data.scenarios"
    _check_table_from_inputs(cfg2.run_dir, (40.0, 41.0, -5.0, -4.0), 1, ["ssp585"])
    assert "scenarios" in " ".join(notes)


def test_demo_inputs_without_a_record_are_regenerated(tmp_path):
    cfg = _cfg(tmp_path, "40,41,-5,-4", seed=1)
    run_features(cfg, notify=lambda m: None)
    # stores written by an older version: no generating parameters recorded
    import zarr

    for name in ("static", "lulc_coarse", "climate", "lai"):
        z = zarr.open_group(str(cfg.run_dir / "inputs" / f"{name}.zarr"), mode="r+")
        del z.attrs[DEMO_ATTR]
        zarr.consolidate_metadata(str(cfg.run_dir / "inputs" / f"{name}.zarr"))
    notes: list[str] = []
    run_features(cfg, notify=notes.append)
    assert "regenerat" in " ".join(notes)
    _check_table_from_inputs(cfg.run_dir, (40.0, 41.0, -5.0, -4.0), 1, ["ssp126"])


@pytest.mark.parametrize("bad", ["static.zarr"])
def test_demo_inputs_missing_a_store_are_regenerated(tmp_path, bad):
    import shutil

    cfg = _cfg(tmp_path, "40,41,-5,-4", seed=1)
    run_features(cfg, notify=lambda m: None)
    shutil.rmtree(cfg.run_dir / "inputs" / bad)
    run_features(cfg, notify=lambda m: None)
    _check_table_from_inputs(cfg.run_dir, (40.0, 41.0, -5.0, -4.0), 1, ["ssp126"])
