"""A trained model as one portable archive: the model directory, its run manifest and resolved config.

An archive (``.tar.gz``) holds one top-level directory ``<run_name>-<task>-<model>/`` with::

    export.json            what was exported: entry id, task, model, kind, family, who, when
    manifest.json          the run manifest, as the run wrote it
    config.resolved.yaml   the run's resolved config
    metrics.csv            the task's metric table, when the run was evaluated
    model/                 the model directory (its files as the manifest recorded them)
    SHA256SUMS             sha256 of every other file, ``sha256sum -c`` format

:func:`export_model` verifies the model against its manifest before writing;
:func:`open_archive` extracts into a temporary directory, verifies every checksum (and the model
files against the manifest inside), and only then moves the result into place, so a tampered or
truncated archive never leaves a model that a later ``predict`` would trust.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path, PurePosixPath
from typing import Any

from pipeline.catalog.checksums import BLOCK_SIZE, file_sha256, files_digest, verify_files
from pipeline.catalog.index import MANIFEST, entries_of, entry_id, read_manifest
from pipeline.catalog.registry import current_user, utc_now
from pipeline.errors import InputDataError

__all__ = ["ARCHIVE_INFO", "CHECKSUMS_FILE", "archive_name", "export_model", "open_archive"]

#: the checksums file of an archive
CHECKSUMS_FILE = "SHA256SUMS"
#: what was exported, at the top of an archive
ARCHIVE_INFO = "export.json"
_CONFIG = "config.resolved.yaml"
_METRICS = "metrics.csv"
_MODEL = "model"
_FORMAT = 1


def archive_name(run_name: str, task: str, model: str) -> str:
    """The archive's top-level directory and default file stem: ``<run_name>-<task>-<model>``."""
    return f"{run_name}-{task}-{model}"


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _add_file(tar: tarfile.TarFile, name: str, path: Path) -> None:
    # a plain file member whatever ``path`` is (a link is followed), without the owner's names
    st = path.stat()
    info = tarfile.TarInfo(name)
    info.size = st.st_size
    info.mtime = int(st.st_mtime)
    info.mode = 0o644
    with open(path, "rb") as fh:
        tar.addfile(info, fh)


def export_model(run_dir: str | Path, task: str, model: str, out_path: str | Path) -> Path:
    """Write one trained model, its run manifest and resolved config as a ``.tar.gz`` archive.

    Parameters
    ----------
    run_dir : str or Path
        The run directory.
    task : str
        ``lulc`` or ``lai``.
    model : str
        The model's name in the run (``xgboost``...).
    out_path : str or Path
        The archive to write (replaced atomically when it exists), or an existing directory to
        write ``<run_name>-<task>-<model>.tar.gz`` into.

    Returns
    -------
    Path
        The archive written.

    Raises
    ------
    InputDataError
        A run without a manifest or without any trained model, a model the run did not train
        (the trained ones listed), a model directory that does not match its manifest (the file
        named), or a run without its resolved config.
    """
    from pipeline.io import atomic_output

    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    run_name = run_dir.name
    entries = entries_of(run_dir, manifest)
    if not entries:
        raise InputDataError(f"run {run_name} ({run_dir}) has no trained model in its {MANIFEST}; nothing to "
                             "export: run its train stage first (`terrascale run CONFIG --stages train`)")
    found = [e for e in entries if e.task == task and e.model == model]
    if not found:
        ids = ", ".join(e.id for e in entries)
        raise InputDataError(f"run {run_name} has no trained model {entry_id(run_name, task, model)}; it has {ids}")
    entry = found[0]
    verify_files(entry.model_dir, entry.files, what=f"model {entry.id}")
    config = run_dir / _CONFIG
    if not config.is_file():
        raise InputDataError(f"{config} does not exist: the run's resolved config is part of an export; run "
                             "`terrascale run CONFIG` again to write it")
    top = archive_name(run_name, task, model)
    out = Path(out_path)
    if out.is_dir():
        out = out / f"{top}.tar.gz"
    metrics = run_dir / "metrics" / task / _METRICS
    info = {"format": _FORMAT, "entry": entry.id, "run_name": run_name, "task": task, "model": model,
            "kind": entry.kind, "family": entry.family, "path": _MODEL, "config": _CONFIG,
            "manifest": MANIFEST, "files_sha256": files_digest(entry.files), "exported_at": utc_now(),
            "exported_by": current_user(), "exported_with": _version()}
    info_bytes = (json.dumps(info, indent=1) + "\n").encode("utf-8")
    sums: dict[str, str] = {ARCHIVE_INFO: hashlib.sha256(info_bytes).hexdigest()}
    with atomic_output(out, directory=False, kind="a model archive", inputs=[run_dir]) as tmp:
        with tarfile.open(tmp, "w:gz", compresslevel=6) as tar:
            _add_bytes(tar, f"{top}/{ARCHIVE_INFO}", info_bytes)
            for name, src in ((MANIFEST, run_dir / MANIFEST), (_CONFIG, config), (_METRICS, metrics)):
                if src.is_file():
                    sums[name] = file_sha256(src)
                    _add_file(tar, f"{top}/{name}", src)
            for rel, sha in sorted(entry.files.items()):
                name = f"{_MODEL}/{PurePosixPath(Path(rel).as_posix())}"
                sums[name] = sha
                _add_file(tar, f"{top}/{name}", entry.model_dir / rel)
            text = "".join(f"{sha}  {name}\n" for name, sha in sorted(sums.items()))
            _add_bytes(tar, f"{top}/{CHECKSUMS_FILE}", text.encode("utf-8"))
    return out


def _version() -> str:
    from pipeline import __version__

    return str(__version__)


def _safe_members(tar: tarfile.TarFile, archive: Path) -> tuple[str, list[tarfile.TarInfo]]:
    """The archive's top-level directory and members, refusing anything but plain files and directories under it."""
    members = tar.getmembers()
    tops = set()
    for m in members:
        p = PurePosixPath(m.name)
        if p.is_absolute() or ".." in p.parts or not p.parts or not (m.isfile() or m.isdir()):
            raise InputDataError(f"{archive}: member {m.name!r} is not a plain file or directory inside the archive; "
                                 "this is not a terrascale model archive")
        tops.add(p.parts[0])
    if len(tops) != 1:
        raise InputDataError(f"{archive} is not a terrascale model archive (it should hold one top-level directory, "
                             f"it holds {', '.join(sorted(tops)) or 'nothing'})")
    return tops.pop(), members


def _read_sums(path: Path, archive: Path) -> dict[str, str]:
    sums = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InputDataError(f"{archive}: {CHECKSUMS_FILE} cannot be read ({err})") from None
    for line in lines:
        sha, sep, name = line.partition("  ")
        if not sep or len(sha) != 64:
            raise InputDataError(f"{archive}: {CHECKSUMS_FILE} has a malformed line {line!r}")
        sums[name] = sha
    return sums


def _verify_extracted(base: Path, archive: Path) -> dict[str, Any]:
    """Check every file of an extracted archive against its checksums; the export info."""
    sums_file = base / CHECKSUMS_FILE
    if not sums_file.is_file():
        raise InputDataError(f"{archive} has no {CHECKSUMS_FILE}; it is not a terrascale model archive")
    sums = _read_sums(sums_file, archive)
    present = sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())
    for name in present:
        if name == CHECKSUMS_FILE:
            continue
        if name not in sums:
            raise InputDataError(f"{archive}: {name} is not listed in {CHECKSUMS_FILE}; the archive was altered "
                                 "after export, export it again")
        if file_sha256(base / name) != sums[name]:
            raise InputDataError(f"{archive}: {name} does not match its sha256 in {CHECKSUMS_FILE}; the archive was "
                                 "altered or damaged after export, copy or export it again")
    missing = sorted(set(sums) - set(present))
    if missing:
        raise InputDataError(f"{archive}: {missing[0]} is listed in {CHECKSUMS_FILE} but missing from the archive; "
                             "copy or export it again")
    for name in (ARCHIVE_INFO, MANIFEST, _CONFIG):
        if name not in sums:
            raise InputDataError(f"{archive} has no {name}; it is not a terrascale model archive")
    try:
        info = json.loads((base / ARCHIVE_INFO).read_text(encoding="utf-8"))
        manifest = json.loads((base / MANIFEST).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise InputDataError(f"{archive}: {ARCHIVE_INFO} or {MANIFEST} is not JSON ({err})") from None
    if not isinstance(info, dict) or not isinstance(manifest, dict):
        raise InputDataError(f"{archive}: {ARCHIVE_INFO} and {MANIFEST} must be JSON objects")
    task, model = info.get("task"), info.get("model")
    rec = (manifest.get("models") or {}).get(task, {}).get(model) if isinstance(manifest.get("models"), dict) else None
    if not isinstance(rec, dict):
        raise InputDataError(f"{archive}: its {MANIFEST} records no model {task}/{model}; export it again")
    verify_files(base / _MODEL, rec.get("files") or {}, what=f"{archive}: model {info.get('entry')}")
    return {"info": info, "manifest": manifest}


def open_archive(archive: str | Path, dest_dir: str | Path) -> tuple[Path, dict[str, Any]]:
    """Extract and verify a model archive written by :func:`export_model`.

    Parameters
    ----------
    archive : str or Path
        The ``.tar.gz`` file.
    dest_dir : str or Path
        Where to extract (created when missing); the archive's top-level directory
        ``<run_name>-<task>-<model>/`` goes there, replacing an earlier extraction of it.

    Returns
    -------
    model_dir : Path
        The extracted model directory (``<dest_dir>/<run_name>-<task>-<model>/model``), ready for
        ``pipeline.models.load_model``; the resolved config is ``model_dir.parent /
        "config.resolved.yaml"``.
    manifest : dict
        The run manifest, plus the key ``export``: the archive's ``export.json`` (``entry``,
        ``task``, ``model``, ``kind``, ``family``, ``exported_at``, ``exported_by``...) with
        ``dir`` and ``config_path`` (absolute paths of the extraction and its resolved config).

    Raises
    ------
    InputDataError
        A file that is not a readable tar archive, a member outside the archive's directory or
        not a plain file, or any file whose sha256 is not the recorded one (the file named):
        nothing is left under ``dest_dir`` then.
    """
    from pipeline.io import atomic_output

    archive = Path(archive)
    if not archive.is_file():
        raise InputDataError(f"model archive {archive} does not exist; pass a file written by "
                             "`terrascale catalog export`")
    dest_dir = Path(dest_dir)
    try:
        tar = tarfile.open(archive, "r:*", bufsize=BLOCK_SIZE)
    except (OSError, tarfile.TarError) as err:
        raise InputDataError(f"{archive} is not a readable model archive ({err}); pass a file written by "
                             "`terrascale catalog export`") from None
    with tar:
        top, members = _safe_members(tar, archive)
        dest_dir.mkdir(parents=True, exist_ok=True)
        target = dest_dir / top
        with atomic_output(target, directory=True, kind="an opened model archive",
                           replaces=lambda p: (p / ARCHIVE_INFO).is_file(), inputs=[archive]) as tmp:
            tmp.mkdir()
            try:
                for m in members:
                    rel = PurePosixPath(m.name).relative_to(top)
                    if m.isdir():
                        (tmp / rel).mkdir(parents=True, exist_ok=True)
                        continue
                    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                    src = tar.extractfile(m)
                    with src, open(tmp / rel, "wb") as fh:
                        for block in iter(lambda: src.read(BLOCK_SIZE), b""):
                            fh.write(block)
            except (OSError, EOFError, tarfile.TarError, ValueError) as err:
                raise InputDataError(f"{archive} is damaged: it cannot be extracted ({err}); copy or export it "
                                     "again") from None
            checked = _verify_extracted(tmp, archive)
    manifest = dict(checked["manifest"])
    manifest["export"] = dict(checked["info"], dir=str(target.resolve()),
                              config_path=str((target / _CONFIG).resolve()))
    return target / _MODEL, manifest
