"""MLflow as the catalogue's tracking server and model registry (the ``track`` extra), when installed.

The only module of terrascale that imports :mod:`mlflow`, and only inside its functions: without
MLflow the catalogue works from the run manifests and the local registry
(:mod:`pipeline.catalog.registry`), which stays the record of promotions either way; MLflow
mirrors it. The tracking URI defaults to a SQLite database under the output root
(``sqlite:///<root>/catalog/mlflow.db``), its artefacts next to it (``<root>/catalog/mlartifacts``).

What is mirrored, by :func:`mirror_promotions`: each promoted entry as an MLflow run of the
experiment ``terrascale`` (parameters: kind, family, key, config sha256...; metrics: validation
score, fit time and the test metrics of ``metrics.csv``; artefacts: the model directory, the run
manifest and the resolved config), registered as a version of the registered model
``terrascale-<task>``; its stage as the version's tags (``stage``, ``promoted_by``,
``promoted_at``, ``reason``) and the production entry of a task as the alias ``production``.

Only the client process writes (the command line, or a library caller): never a dask worker,
whose concurrent writes would corrupt the SQLite file.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from pipeline.catalog.index import CATALOG_DIR, CatalogEntry
from pipeline.catalog.registry import PRODUCTION, Promotion
from pipeline.errors import ConfigError, MissingDependencyError

__all__ = ["EXPERIMENT", "PRODUCTION_ALIAS", "default_tracking_uri", "mirror_promotions", "mlflow_available",
           "registered_model_name"]

#: the MLflow experiment of the catalogue's entries
EXPERIMENT = "terrascale"
#: the alias of the registered model version in production
PRODUCTION_ALIAS = "production"
_ENTRY_TAG = "terrascale_entry"
_DB = "mlflow.db"
_ARTIFACTS = "mlartifacts"


def mlflow_available() -> bool:
    """Whether :mod:`mlflow` can be imported (the ``track`` extra is installed)."""
    try:
        return importlib.util.find_spec("mlflow") is not None
    except (ImportError, ValueError):
        return False


def default_tracking_uri(root: str | Path) -> str:
    """``sqlite:///<root>/catalog/mlflow.db`` with the root made absolute.

    Parameters
    ----------
    root : str or Path
        The output root.

    Returns
    -------
    str
        The SQLite tracking and registry URI.
    """
    return f"sqlite:///{(Path(root) / CATALOG_DIR / _DB).resolve().as_posix()}"


def registered_model_name(task: str) -> str:
    """The MLflow registered model of a task's entries: ``terrascale-<task>``."""
    return f"terrascale-{task}"


def _metric_key(text: str) -> str:
    # MLflow keys: alphanumerics, underscores, dashes, periods, spaces and slashes
    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", text)


def _refuse_on_worker() -> None:
    if "distributed" not in sys.modules:
        return
    try:
        from distributed import get_worker

        get_worker()
    except ValueError:  # not inside a dask task: the client process
        return
    raise RuntimeError("the MLflow catalogue is written by the client process only, never from a dask worker")


class _Tracker:
    """An MLflow client bound to one tracking URI and the ``terrascale`` experiment."""

    def __init__(self, root: Path, uri: str):
        from mlflow import MlflowClient

        self.root = root
        self.uri = uri
        if uri.startswith("sqlite:///"):
            Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        exp = self.client.get_experiment_by_name(EXPERIMENT)
        if exp is None:
            location = (root / CATALOG_DIR / _ARTIFACTS).resolve()
            location.mkdir(parents=True, exist_ok=True)
            self.experiment_id = self.client.create_experiment(EXPERIMENT, artifact_location=location.as_uri())
        else:
            self.experiment_id = exp.experiment_id

    def run_of(self, entry_id: str) -> str | None:
        """The MLflow run id of a catalogue entry, or ``None``."""
        runs = self.client.search_runs([self.experiment_id], filter_string=f"tags.{_ENTRY_TAG} = '{entry_id}'",
                                       max_results=1)
        return runs[0].info.run_id if runs else None

    def log_entry(self, entry: CatalogEntry, metrics: Sequence[Mapping]) -> str:
        """The MLflow run of ``entry``, created (parameters, metrics, artefacts) when missing."""
        from mlflow.entities import Metric, Param, RunTag

        found = self.run_of(entry.id)
        if found is not None:
            return found
        m = entry.manifest
        run = self.client.create_run(self.experiment_id, run_name=entry.id.replace("/", "-"),
                                     tags={_ENTRY_TAG: entry.id, "terrascale_run": entry.run_name,
                                           "terrascale_task": entry.task})
        run_id = run.info.run_id
        params = {"run_name": entry.run_name, "task": entry.task, "model": entry.model, "kind": entry.kind,
                  "family": entry.family, "key": entry.key, "path": entry.path,
                  "config_sha256": m.get("config_sha256"), "terrascale_version": m.get("terrascale_version"),
                  "git_commit": m.get("git_commit"), "backend": m.get("backend")}
        values = {"valid_score": entry.valid_score, "fit_seconds": entry.fit_seconds}
        for row in metrics:
            values[_metric_key(f"{row['split']}/{row['metric']}")] = row.get("value")
        ts = int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), ts, 0) for k, v in values.items() if _finite(v)],
            params=[Param(k, str(v)) for k, v in params.items() if v not in (None, "")],
            tags=[RunTag("mlflow.note.content", f"terrascale catalogue entry {entry.id}")])
        self.client.log_artifacts(run_id, str(entry.model_dir), artifact_path="model")
        for name in ("manifest.json", "config.resolved.yaml"):
            if (entry.run_dir / name).is_file():
                self.client.log_artifact(run_id, str(entry.run_dir / name))
        self.client.set_terminated(run_id)
        return run_id

    def version_of(self, task: str, run_id: str) -> str | None:
        """The registered model version made from ``run_id``, or ``None``."""
        name = registered_model_name(task)
        for mv in self.client.search_model_versions(f"run_id = '{run_id}'"):
            if mv.name == name:
                return str(mv.version)
        return None

    def register(self, entry: CatalogEntry, run_id: str) -> str:
        """The registered model version of ``entry``, created when missing."""
        name = registered_model_name(entry.task)
        found = self.version_of(entry.task, run_id)
        if found is not None:
            return found
        if not self.client.search_registered_models(filter_string=f"name = '{name}'"):
            self.client.create_registered_model(name, description=f"terrascale {entry.task} models")
        source = f"{self.client.get_run(run_id).info.artifact_uri}/model"
        mv = self.client.create_model_version(name, source, run_id=run_id, tags={_ENTRY_TAG: entry.id},
                                              description=f"terrascale catalogue entry {entry.id}")
        return str(mv.version)

    def set_stage(self, event: Promotion, version: str) -> None:
        """Tag the version with the event; move the ``production`` alias."""
        name = registered_model_name(event.task)
        for key, value in (("stage", event.stage), ("promoted_by", event.by), ("promoted_at", event.at),
                           ("reason", event.reason)):
            self.client.set_model_version_tag(name, version, key, value)
        if event.stage == PRODUCTION:
            self.client.set_registered_model_alias(name, PRODUCTION_ALIAS, version)
        else:
            current = self.client.get_registered_model(name).aliases.get(PRODUCTION_ALIAS)
            if current is not None and str(current) == version:
                self.client.delete_registered_model_alias(name, PRODUCTION_ALIAS)


def _finite(v) -> bool:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return False
    return f == f and f not in (float("inf"), float("-inf"))


def mirror_promotions(root: str | Path, promotions: Sequence[Promotion], entries: Mapping[str, CatalogEntry], *,
                      metrics: Mapping[str, Sequence[Mapping]] | None = None,
                      tracking_uri: str | None = None) -> str:
    """Record promotions in MLflow: the entries' runs and model versions (created when missing), stages, alias.

    Parameters
    ----------
    root : str or Path
        The output root.
    promotions : sequence of Promotion
        The events to mirror, in order (from :meth:`~pipeline.catalog.registry.Registry.promote`).
    entries : mapping of str to CatalogEntry
        Entry id → entry, for the entries still on disk; an event of an entry without one (a
        run since deleted) only updates an existing model version.
    metrics : mapping of str to sequence of mapping, optional
        Entry id → its rows of ``metrics.csv`` (``split``, ``metric``, ``value``).
    tracking_uri : str, optional
        The tracking and registry URI; :func:`default_tracking_uri` by default.

    Returns
    -------
    str
        The tracking URI used.

    Raises
    ------
    MissingDependencyError
        When MLflow is not installed.
    ConfigError
        When MLflow refuses (an unreachable server, a database of another version); the local
        registry already holds the promotion.
    """
    if not mlflow_available():
        raise MissingDependencyError("mlflow", "the MLflow catalogue", extra="track")
    _refuse_on_worker()
    from mlflow.exceptions import MlflowException

    root = Path(root)
    uri = tracking_uri or default_tracking_uri(root)
    quiet = [logging.getLogger(n) for n in ("alembic", "mlflow")]
    levels = [lg.level for lg in quiet]
    for lg in quiet:
        lg.setLevel(logging.WARNING)
    try:
        tracker = _Tracker(root, uri)
        for event in promotions:
            entry = entries.get(event.entry)
            if entry is not None:
                version = tracker.register(entry, tracker.log_entry(entry, (metrics or {}).get(entry.id, ())))
            else:
                run_id = tracker.run_of(event.entry)
                version = tracker.version_of(event.task, run_id) if run_id else None
                if version is None:
                    continue
            tracker.set_stage(event, version)
    except MlflowException as err:
        raise ConfigError(f"the promotion is recorded in {root / CATALOG_DIR}, but MLflow at {uri} refused it "
                          f"({err}); check --tracking-uri") from None
    finally:
        for lg, level in zip(quiet, levels):
            lg.setLevel(level)
    return uri
