"""Config loading and validation: repeated YAML keys, --set problems named as such, a directory,
and :func:`pipeline.datasets.check_config`, which runs the later stages' checks (region, years,
scenarios, seed, grids, backend, crosswalk) on a resolved config."""

from __future__ import annotations

from pathlib import Path

import pytest

import pipeline.backend
from pipeline.backend import GpuProbe
from pipeline.config import load_config
from pipeline.datasets import check_config
from pipeline.errors import ConfigError

DEMO = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"


@pytest.mark.parametrize("text, key, lines", [
    ("seed: 1\nseed: 2\n", "seed", (1, 2)),
    ("data:\n  region: iberia\n  years: 2011:2020\n  region: alps\n", "data.region", (2, 4)),
    ("models:\n  - name: a\n    kind: xgboost\n    kind: mlp\n", "models.0.kind", (3, 4)),
    ("grids: {fine: 0.05deg, fine: 1deg}\n", "grids.fine", (1, 1)),
    ("data:\n  region: iberia\ndata:\n  seed: 3\n", "data", (1, 3)),
])
def test_repeated_keys_are_refused_with_key_and_lines(tmp_path, text, key, lines):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert f"config file {path}: the key '{key}' appears twice (lines {lines[0]} and {lines[1]})" in msg


def test_merge_keys_may_be_overridden(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("base: &b {max_epochs: 3, batch_size: 8}\n")
    text = "training:\n  <<: {max_epochs: 3, batch_size: 8}\n  max_epochs: 5\n"
    path.write_text(text)
    assert load_config(path).training.max_epochs == 5


@pytest.mark.parametrize("overrides, expected, not_expected", [
    (["modles=[]"], "in --set modles=[]: unknown key 'modles' in top level", "invalid config"),
    (["training.max_epochs=many"], "in --set training.max_epochs=many: 'training.max_epochs'", "invalid config"),
    (["data.years=2020:2001"], "in --set data.years=2020:2001: 'data': Value error, years 2020:2001 runs backwards",
     "invalid config"),
    (["data={region: a, region: b}"], "--set override 'data={region: a, region: b}': the key 'region' appears twice",
     "demo.yaml"),
    (["seed"], "--set override 'seed' has no '='", "demo.yaml"),
])
def test_set_problems_are_named_as_set(overrides, expected, not_expected):
    with pytest.raises(ConfigError) as err:
        load_config(DEMO, overrides)
    msg = str(err.value)
    assert expected in msg and not_expected not in msg, msg


def test_file_problem_and_set_problem_together(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training: {max_epochs: many}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, ["data.region=alps", "modles=1"])
    msg = str(err.value)
    assert msg.startswith(f"invalid config {path}: 'training.max_epochs'")
    assert "in --set modles=1: unknown key" in msg and "--set data.region" not in msg


def test_a_directory_is_not_a_config(tmp_path):
    with pytest.raises(ConfigError, match=f"config file {tmp_path} is a directory; pass a YAML file"):
        load_config(tmp_path)


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(pipeline.backend, "probe_gpu", lambda: GpuProbe(False, 0, "no CUDA device (test)"))


def test_check_config_accepts_the_demo(no_gpu):
    check_config(load_config(DEMO), source=str(DEMO))


@pytest.mark.parametrize("overrides, expected", [
    (["data.region=atlantis"], "data.region: unknown region 'atlantis'"),
    (["data.region=50,40,0,10"], "data.region: region box south=50.0 north=40.0"),
    (["data.years=1900:1960"], "data.years: years 1900:1960 are outside the available periods"),
    (["data.scenarios=[ssp999]"], "data.scenarios: unknown scenario(s) ssp999"),
    (["seed=-1"], "seed must be a whole number from 0"),
    (["grids.targets=[1deg, Z9]"], "grids.targets.1: unknown grid spec 'Z9'"),
    (["grids.fine=0.7deg"], "grids.fine: the latitude range -90.0..90.0 is not a whole number of 0.7° cells"),
    (["grids.coarse=N33"], "grids.coarse: grid spec 'N33': no shipped point list for N33"),
    (["grids.targets=[0.0001deg]"], "grids.targets.0: aggregating onto 0.0001deg (6,480,000,000,000 cells) needs about"),
    (["backend=gpu"], "backend: gpu was requested but no GPU is usable: no CUDA device (test)"),
    (["aggregation.engine=cupy"], "aggregation.engine: 'cupy' needs a CUDA GPU"),
    (["aggregation.pft_crosswalk=/no/such.csv"], "aggregation.pft_crosswalk: PFT crosswalk /no/such.csv: does not exist"),
    (["data.source=stores", "data.root=/no/such/dir"], "data.root: /no/such/dir is not a directory"),
])
def test_check_config_runs_the_later_stages_checks(no_gpu, overrides, expected):
    cfg = load_config(DEMO, overrides)  # valid types: pydantic accepts it
    with pytest.raises(ConfigError) as err:
        check_config(cfg, source="configs/demo.yaml")
    msg = str(err.value)
    assert msg.startswith("invalid config configs/demo.yaml: ") and expected in msg, msg


def test_check_config_reports_every_problem(no_gpu):
    cfg = load_config(DEMO, ["data.region=atlantis", "seed=-1", "grids.targets=[Z9]", "backend=gpu",
                             "data.years=1900:1960"])
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    msg = str(err.value)
    for key in ("data.region:", "seed must", "data.years:", "grids.targets.0:", "backend: gpu"):
        assert key in msg, (key, msg)
