"""``terrascale models``: the table of model kinds (on an app of its own: the root app registers it)."""

from __future__ import annotations

import importlib.util

import pytest
import typer
from typer.testing import CliRunner

from pipeline.cli.models import register
from pipeline.errors import ConfigError
from pipeline.models import list_models, registry

OURS = {"coarse_prior": ("baseline", ["lulc"]), "parent_majority": ("baseline", ["lulc"]),
        "climatology": ("baseline", ["lai"]), "bilinear": ("baseline", ["lai"]),
        "xgboost": ("ml", ["lai", "lulc"]), "random_forest": ("ml", ["lai", "lulc"]),
        "ridge": ("ml", ["lai"]), "logistic": ("ml", ["lulc"])}


def _importable(where: str) -> bool:
    try:
        return importlib.util.find_spec(where.split(":")[0]) is not None
    except ImportError:  # a parent package that does not exist yet
        return False


@pytest.fixture(autouse=True)
def _implemented_kinds_only(monkeypatch):
    # the registry may name kinds whose modules another part of the project has not added yet
    present = {k: v for k, v in registry.MODEL_CLASSES.items() if _importable(v)}
    monkeypatch.setattr(registry, "MODEL_CLASSES", present)


@pytest.fixture
def app():
    app = typer.Typer()
    register(app)

    @app.callback()
    def _group():  # a group, so that the command is invoked by name as under the root app
        """Test app."""

    return app


def test_list_models_describes_every_kind():
    rows = {r["kind"]: r for r in list_models()}
    for kind, (family, tasks) in OURS.items():
        assert rows[kind]["family"] == family and rows[kind]["tasks"] == tasks, kind
        assert rows[kind]["description"]
    assert rows["xgboost"]["params"]["max_depth"] == 8
    assert rows["coarse_prior"]["params"] == {"smoothing": 1.0}


def test_models_command_prints_the_table(app):
    res = CliRunner().invoke(app, ["models"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for kind in OURS:
        assert kind in res.output
    assert "early_stopping_rounds: 20" in res.output and "min_count: 1" in res.output


def test_models_command_filters_by_task(app):
    res = CliRunner().invoke(app, ["models", "--task", "lai"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "climatology" in res.output and "ridge" in res.output
    assert "coarse_prior" not in res.output and "logistic" not in res.output


def test_models_command_refuses_an_unknown_task(app):
    res = CliRunner().invoke(app, ["models", "--task", "ndvi"])
    assert isinstance(res.exception, ConfigError) and "lulc, lai" in str(res.exception)
