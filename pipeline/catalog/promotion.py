"""Promotion of a catalogue entry: find it, verify its artefact, record the move, mirror it to MLflow."""

from __future__ import annotations

from pathlib import Path

from pipeline.catalog.checksums import files_digest, verify_files
from pipeline.catalog.index import find_entry, scan
from pipeline.catalog.metrics import read_metrics
from pipeline.catalog.registry import ARCHIVED, PRODUCTION, Promotion, Registry
from pipeline.catalog.tracking import mirror_promotions, mlflow_available
from pipeline.errors import InputDataError

__all__ = ["promote", "verify_entry"]


def verify_entry(entry) -> str:
    """Check a model directory against the checksums its run manifest recorded.

    Parameters
    ----------
    entry : CatalogEntry
        The entry.

    Returns
    -------
    str
        :func:`~pipeline.catalog.checksums.files_digest` of its recorded files.

    Raises
    ------
    InputDataError
        Naming the file that is missing, changed or not recorded.
    """
    verify_files(entry.model_dir, entry.files, what=f"model {entry.id}")
    return files_digest(entry.files)


def promote(root: str | Path, ident: str, stage: str = PRODUCTION, *, reason: str, by: str | None = None,
            mlflow: bool | None = None, tracking_uri: str | None = None) -> list[Promotion]:
    """Promote a catalogue entry to ``production`` (or ``archived``) and record who, when and why.

    An entry promoted to production is verified first: every file of its model directory must
    match the sha256 its run manifest recorded. The task's previous production entry is
    archived in the same record. An entry can be archived even when its run directory is gone,
    as long as the registry has a record of it.

    Parameters
    ----------
    root : str or Path
        The output root.
    ident : str
        The entry id ``<run_name>/<task>/<model>``.
    stage : str
        ``production`` (default) or ``archived``.
    reason : str
        Why (required).
    by : str, optional
        Who; the login name by default.
    mlflow : bool, optional
        Mirror the record to MLflow; by default when MLflow is installed.
    tracking_uri : str, optional
        MLflow's tracking and registry URI (default ``sqlite:///<root>/catalog/mlflow.db``).

    Returns
    -------
    list of Promotion
        The recorded events (the previous production entry archived, then this one).

    Raises
    ------
    InputDataError
        An unknown entry (close matches listed) or, for production, an artefact that does not
        match its manifest (the file named).
    ConfigError
        A blank reason or a move the stages do not allow.
    """
    catalog = scan(root)
    registry = Registry(root)
    try:
        entry = find_entry(catalog, ident)
    except InputDataError:
        history = registry.history(ident) if stage == ARCHIVED else []
        if not history:
            raise
        # a recorded entry whose run directory is gone can still be taken out of production
        entry_id, task, digest = ident, history[-1].task, ""
    else:
        entry_id, task = entry.id, entry.task
        digest = verify_entry(entry) if stage == PRODUCTION else ""
    events = registry.promote(entry_id, task, stage, reason=reason, by=by, artefact_sha256=digest)
    if mlflow is None:
        mlflow = mlflow_available()
    if mlflow:
        entries = {e.id: e for e in catalog.entries if e.id in {ev.entry for ev in events}}
        metrics = {}
        for e in entries.values():
            df = read_metrics(e.run_dir, e.task)
            metrics[e.id] = df[df["model"] == e.model].to_dict("records")
        mirror_promotions(root, events, entries, metrics=metrics, tracking_uri=tracking_uri)
    return events
