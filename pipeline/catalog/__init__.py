"""The model catalogue: trained models indexed from run manifests, their promotions and provenance.

A catalogue entry is one trained model of one run, named ``<run_name>/<task>/<model>``; the
index is read from the run manifests under an output root (``<root>/<run_name>/manifest.json``,
written by :mod:`pipeline.run` and only read here). Promotions (candidate → production →
archived, with who, when and why; one production entry per task) are recorded in
``<root>/catalog/registry.json`` and, when MLflow is installed (the ``track`` extra), mirrored to
its tracking server and model registry (``sqlite:///<root>/catalog/mlflow.db`` by default).

Modules
-------
``checksums``
    sha256 of files, directories and input stores (1 MiB blocks); verification of a model directory.
``index``
    :func:`scan` of an output root into :class:`CatalogEntry` objects; entry and run look-ups.
``metrics``
    A run's ``metrics/<task>/metrics.csv`` tables; several runs side by side.
``registry``
    The local promotion records.
``tracking``
    MLflow (the only importer of :mod:`mlflow` in terrascale, inside its functions).
``promotion``
    Promotion: find, verify, record, mirror.
``archive``
    :func:`export_model` and :func:`open_archive`: one model as a verified ``.tar.gz``.
"""

from __future__ import annotations

from pipeline.catalog.archive import ARCHIVE_INFO, CHECKSUMS_FILE, archive_name, export_model, open_archive
from pipeline.catalog.checksums import (
    directory_sha256,
    file_checksums,
    file_sha256,
    files_digest,
    input_checksums,
    verify_files,
)
from pipeline.catalog.index import (
    CATALOG_DIR,
    Catalog,
    CatalogEntry,
    entry_id,
    find_entry,
    read_manifest,
    resolve_run,
    scan,
    select_entry,
)
from pipeline.catalog.metrics import METRICS_COLUMNS, compare_runs, read_metrics
from pipeline.catalog.promotion import promote, verify_entry
from pipeline.catalog.registry import ARCHIVED, CANDIDATE, PRODUCTION, STAGES, Promotion, Registry
from pipeline.catalog.tracking import default_tracking_uri, mirror_promotions, mlflow_available

__all__ = [
    "ARCHIVED",
    "ARCHIVE_INFO",
    "CANDIDATE",
    "CATALOG_DIR",
    "CHECKSUMS_FILE",
    "METRICS_COLUMNS",
    "PRODUCTION",
    "STAGES",
    "Catalog",
    "CatalogEntry",
    "Promotion",
    "Registry",
    "archive_name",
    "compare_runs",
    "default_tracking_uri",
    "directory_sha256",
    "entry_id",
    "export_model",
    "file_checksums",
    "file_sha256",
    "files_digest",
    "find_entry",
    "input_checksums",
    "mirror_promotions",
    "mlflow_available",
    "open_archive",
    "promote",
    "read_manifest",
    "read_metrics",
    "resolve_run",
    "scan",
    "select_entry",
    "verify_entry",
    "verify_files",
]
