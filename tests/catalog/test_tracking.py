"""MLflow mirroring (the ``track`` extra): tested only where MLflow is installed; never needed otherwise."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pipeline.catalog import Registry, default_tracking_uri, mlflow_available, promote
from pipeline.errors import MissingDependencyError
from tests.helpers.catalog_runs import make_run
from tests.helpers.optional import has, requires_mlflow


def test_default_tracking_uri_is_sqlite_under_the_root(tmp_path):
    uri = default_tracking_uri(tmp_path / "runs")
    assert uri == f"sqlite:///{(tmp_path / 'runs' / 'catalog' / 'mlflow.db').as_posix()}"
    assert mlflow_available() == has("mlflow")


def test_importing_the_catalogue_does_not_import_mlflow():
    code = "import sys, pipeline.catalog, pipeline.cli.catalog; print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.skipif(has("mlflow"), reason="MLflow is installed")
def test_asking_for_mlflow_without_it_names_the_extra(tmp_path):
    make_run(tmp_path, "r1")
    with pytest.raises(MissingDependencyError, match=r"terrascale\[track\]"):
        promote(tmp_path, "r1/lai/xgboost", reason="x", mlflow=True)
    # the local record is kept: MLflow only mirrors it
    assert Registry(tmp_path).production("lai") == "r1/lai/xgboost"


def test_without_mlflow_the_default_is_the_local_registry_only(tmp_path):
    if has("mlflow"):
        pytest.skip("MLflow is installed")
    make_run(tmp_path, "r1")
    promote(tmp_path, "r1/lai/xgboost", reason="x")
    assert not (tmp_path / "catalog" / "mlflow.db").exists()


@pytest.mark.slow
@requires_mlflow
def test_promotions_are_mirrored_to_mlflow(tmp_path):
    from mlflow import MlflowClient

    make_run(tmp_path, "r1")
    make_run(tmp_path, "r2")
    promote(tmp_path, "r1/lai/xgboost", reason="first", by="alice", mlflow=True)
    promote(tmp_path, "r2/lai/xgboost", reason="second", by="bob", mlflow=True)
    uri = default_tracking_uri(tmp_path)
    assert (tmp_path / "catalog" / "mlflow.db").is_file()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    prod = client.get_model_version_by_alias("terrascale-lai", "production")
    assert prod.tags["terrascale_entry"] == "r2/lai/xgboost" and prod.tags["promoted_by"] == "bob"
    versions = {v.tags["terrascale_entry"]: v for v in client.search_model_versions("name = 'terrascale-lai'")}
    assert versions["r1/lai/xgboost"].tags["stage"] == "archived"
    run = client.get_run(prod.run_id)
    assert run.data.params["family"] == "boosting" and "test _truth_/rmse" in run.data.metrics
    # archiving the production entry after its run was deleted clears the alias
    import shutil

    shutil.rmtree(tmp_path / "r2")
    promote(tmp_path, "r2/lai/xgboost", "archived", reason="run deleted", mlflow=True)
    assert "production" not in client.get_registered_model("terrascale-lai").aliases
    assert client.get_model_version("terrascale-lai", prod.version).tags["stage"] == "archived"
