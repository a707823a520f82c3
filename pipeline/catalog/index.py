"""The catalogue's index: trained models found in the run manifests under an output root.

Each ``<root>/<run_name>/manifest.json`` (written by :mod:`pipeline.run`, only read here) lists
its trained models under ``models: {task: {model: record}}``; every such record is one
:class:`CatalogEntry`, named ``<run_name>/<task>/<model>``. Nothing is cached: the index is read
again from the manifests each time, so it is never out of date.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.errors import InputDataError

__all__ = [
    "CATALOG_DIR",
    "MANIFEST",
    "Catalog",
    "CatalogEntry",
    "entry_id",
    "find_entry",
    "read_manifest",
    "entries_of",
    "resolve_run",
    "scan",
    "select_entry",
    "suggest",
]

#: the run manifest's file name (as written by ``pipeline.run``)
MANIFEST = "manifest.json"
#: the catalogue's own directory under the output root (registry, MLflow database)
CATALOG_DIR = "catalog"


def entry_id(run_name: str, task: str, model: str) -> str:
    """The catalogue id of a model: ``<run_name>/<task>/<model>``."""
    return f"{run_name}/{task}/{model}"


@dataclass(frozen=True)
class CatalogEntry:
    """One trained model of one run.

    Attributes
    ----------
    run_name, task, model : str
        Where it comes from; :attr:`id` joins them. The run name is the run directory's name (the
        manifest's ``run_name``, unless the directory was copied under another name).
    run_dir : Path
        The run directory.
    path : str
        The model directory relative to ``run_dir`` (``models/lai/xgboost``).
    kind, family : str
        The model kind (registry name) and family (``baseline``, ``boosting``...).
    key : str
        The model's cache key in the run.
    fit_seconds, valid_score : float or None
        Training time and validation score (RMSE for LAI, log loss for LULC: lower is better).
    files : dict of str to str
        Relative file path inside the model directory → sha256, as recorded by the run.
    manifest : dict
        The whole run manifest.
    """

    run_name: str
    task: str
    model: str
    run_dir: Path
    path: str
    kind: str = ""
    family: str = ""
    key: str = ""
    fit_seconds: float | None = None
    valid_score: float | None = None
    files: dict[str, str] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def id(self) -> str:
        """``<run_name>/<task>/<model>``."""
        return entry_id(self.run_name, self.task, self.model)

    @property
    def model_dir(self) -> Path:
        """The model directory."""
        return self.run_dir / self.path

    @property
    def created(self) -> str:
        """When the run was created (from its manifest), or ``""``."""
        return str(self.manifest.get("created") or "")

    @property
    def config_sha256(self) -> str:
        """The sha256 of the run's resolved config, or ``""``."""
        return str(self.manifest.get("config_sha256") or "")

    def summary(self) -> dict[str, Any]:
        """The entry as a JSON-able dict (without the manifest)."""
        return {"id": self.id, "run_name": self.run_name, "task": self.task, "model": self.model,
                "run_dir": str(self.run_dir), "path": self.path, "kind": self.kind, "family": self.family,
                "key": self.key, "fit_seconds": self.fit_seconds, "valid_score": self.valid_score,
                "created": self.created, "config_sha256": self.config_sha256,
                "terrascale_version": self.manifest.get("terrascale_version"),
                "git_commit": self.manifest.get("git_commit"), "files": dict(self.files)}


@dataclass
class Catalog:
    """The entries found under an output root.

    Attributes
    ----------
    root : Path
        The output root.
    entries : list of CatalogEntry
        Sorted by id.
    skipped : list of str
        One line per run directory whose manifest could not be read (the others are listed).
    """

    root: Path
    entries: list[CatalogEntry]
    skipped: list[str] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        """The entries' ids."""
        return [e.id for e in self.entries]


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    """The run manifest of ``run_dir``.

    Parameters
    ----------
    run_dir : str or Path
        A run directory.

    Returns
    -------
    dict
        The parsed ``manifest.json``.

    Raises
    ------
    InputDataError
        When it is missing, not JSON, or not a JSON object.
    """
    f = Path(run_dir) / MANIFEST
    try:
        data = json.loads(f.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputDataError(f"{f} does not exist: {run_dir} is not a terrascale run directory (run "
                             "`terrascale run CONFIG` first, or pass the right --root)") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise InputDataError(f"{f} cannot be read as a run manifest ({err})") from None
    if not isinstance(data, dict):
        raise InputDataError(f"{f} is not a run manifest (not a JSON object)")
    return data


def _manifests(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob(f"*/{MANIFEST}") if p.parent.name != CATALOG_DIR)


def _num(value) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def entries_of(run_dir: Path, manifest: dict[str, Any]) -> list[CatalogEntry]:
    """The entries of one run: one per model of its manifest's ``models``.

    Parameters
    ----------
    run_dir : Path
        The run directory (its name is the entries' run name).
    manifest : dict
        Its manifest (:func:`read_manifest`).

    Returns
    -------
    list of CatalogEntry
        Sorted by task, then model.

    Raises
    ------
    InputDataError
        When ``models`` or one of its records is not a JSON object.
    """
    out = []
    run_name = run_dir.name  # the manifest's run_name, unless the directory was copied under another name
    models = manifest.get("models") or {}
    if not isinstance(models, dict):
        raise InputDataError(f"{run_dir / MANIFEST}: 'models' is not a JSON object")
    for task, recs in sorted(models.items()):
        if not isinstance(recs, dict):
            raise InputDataError(f"{run_dir / MANIFEST}: models.{task} is not a JSON object")
        for model, rec in sorted(recs.items()):
            if not isinstance(rec, dict):
                raise InputDataError(f"{run_dir / MANIFEST}: models.{task}.{model} is not a JSON object")
            files = rec.get("files") or {}
            out.append(CatalogEntry(
                run_name=run_name, task=str(task), model=str(model), run_dir=run_dir,
                path=str(rec.get("path") or f"models/{task}/{model}"), kind=str(rec.get("kind") or ""),
                family=str(rec.get("family") or ""), key=str(rec.get("key") or ""),
                fit_seconds=_num(rec.get("fit_seconds")), valid_score=_num(rec.get("valid_score")),
                files={str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {},
                manifest=manifest))
    return out


def scan(root: str | Path) -> Catalog:
    """Index every trained model under an output root.

    Parameters
    ----------
    root : str or Path
        The output root (``output.root`` of the configs, ``runs`` by default).

    Returns
    -------
    Catalog
        The entries, sorted by id, and the run directories that were skipped (unreadable
        manifest), each with the reason.

    Raises
    ------
    InputDataError
        When ``root`` is not a directory.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputDataError(f"output root {root} does not exist or is not a directory; pass --root with the "
                             "output.root of your runs (default: runs)")
    entries: list[CatalogEntry] = []
    skipped: list[str] = []
    for f in _manifests(root):
        try:
            entries.extend(entries_of(f.parent, read_manifest(f.parent)))
        except InputDataError as err:
            skipped.append(f"{f.parent.name}: {err}")
    entries.sort(key=lambda e: e.id)
    return Catalog(root=root, entries=entries, skipped=skipped)


def suggest(name: str, known: list[str], plural: str) -> str:
    """``did you mean ...?`` with the close matches of ``name`` in ``known``, else the available ones.

    Parameters
    ----------
    name : str
        What the user typed.
    known : list of str
        What exists.
    plural : str
        The word for them (``"runs"``).

    Returns
    -------
    str
        A clause for an error message.
    """
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    if close:
        return f"did you mean {', '.join(close)}?"
    if not known:
        return f"there are no {plural}"
    shown = ", ".join(known[:10]) + (f" and {len(known) - 10} more" if len(known) > 10 else "")
    return f"available {plural}: {shown}"


def find_entry(catalog: Catalog, ident: str) -> CatalogEntry:
    """The entry named ``ident`` (``<run_name>/<task>/<model>``).

    Parameters
    ----------
    catalog : Catalog
        From :func:`scan`.
    ident : str
        The entry id.

    Returns
    -------
    CatalogEntry

    Raises
    ------
    InputDataError
        When no entry has that id; the message lists close matches or the available ids.
    """
    for e in catalog.entries:
        if e.id == ident:
            return e
    hint = suggest(ident, catalog.ids, "catalogue entries")
    if not catalog.entries:
        hint = f"no trained model is recorded in the run manifests under {catalog.root} (run `terrascale run` first)"
    form = "" if ident.count("/") == 2 else " (an id is RUN/TASK/MODEL)"
    raise InputDataError(f"no catalogue entry {ident!r} under {catalog.root}{form}; {hint}")


def resolve_run(root: str | Path, run: str | Path) -> Path:
    """The run directory named ``run``: a run name under ``root`` or the path of a run directory.

    Parameters
    ----------
    root : str or Path
        The output root.
    run : str or Path
        A run name (``demo``) or a directory holding a ``manifest.json``.

    Returns
    -------
    Path
        The run directory.

    Raises
    ------
    InputDataError
        When neither is a run directory; the message lists close run names or the available ones.
    """
    root = Path(root)
    for candidate in (root / str(run), Path(run)):
        if (candidate / MANIFEST).is_file():
            return candidate
    known = [p.parent.name for p in _manifests(root)]
    raise InputDataError(f"no run {str(run)!r} under {root} (no {MANIFEST}); {suggest(str(run), known, 'runs')}")


def select_entry(root: str | Path, ident: str, *, task: str | None = None, model: str | None = None) -> CatalogEntry:
    """One entry named by its id, or by a run name (with ``task``/``model`` where the run has several).

    Parameters
    ----------
    root : str or Path
        The output root.
    ident : str
        ``<run_name>/<task>/<model>``, ``<run_name>/<task>`` or ``<run_name>`` (a run name or a run
        directory).
    task, model : str, optional
        Narrow a run down to one model.

    Returns
    -------
    CatalogEntry

    Raises
    ------
    InputDataError
        An unknown run (close run names listed), a run without any trained model, no model of
        that task or name (the run's models listed), or several left (they are listed: name one).
    """
    parts = ident.split("/")
    if len(parts) == 3 and not (Path(root) / ident).is_dir() and not Path(ident).is_dir():
        run, task, model = parts
    elif len(parts) == 2 and not (Path(root) / ident).is_dir() and not Path(ident).is_dir():
        run, task = parts
    else:
        run = ident
    run_dir = resolve_run(root, run)
    manifest = read_manifest(run_dir)
    entries = entries_of(run_dir, manifest)
    name = run_dir.name
    if not entries:
        raise InputDataError(f"run {name} ({run_dir}) has no trained model in its {MANIFEST}; run its train stage "
                             "first (`terrascale run CONFIG --stages train`)")
    chosen = [e for e in entries if (task is None or e.task == task) and (model is None or e.model == model)]
    if not chosen:
        wanted = entry_id(name, task or "*", model or "*")
        raise InputDataError(f"run {name} has no trained model {wanted}; "
                             f"{suggest(wanted, [e.id for e in entries], 'models of the run')}")
    if len(chosen) > 1:
        raise InputDataError(f"run {name} has {len(chosen)} trained models: {', '.join(e.id for e in chosen)}; "
                             "name one as RUN/TASK/MODEL (or pass --task and --model)")
    return chosen[0]
