"""sha256 checksums of files, directories (Zarr stores, model directories) and input stores.

Everything is read in 1 MiB blocks, so a checksum never holds a whole file in memory. A
directory's digest is taken over its files in sorted order of their relative POSIX paths: for
each file, its relative path, a NUL byte, its size in bytes, a NUL byte, then its bytes. Two
directories have the same digest exactly when they hold the same files with the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from pathlib import Path

from pipeline.errors import InputDataError
from pipeline.models.safe_files import file_sha256  # the one sha256 of a file: saved models use it too

__all__ = ["BLOCK_SIZE", "directory_sha256", "file_checksums", "file_sha256", "files_digest", "input_checksums",
           "verify_files"]

#: bytes read at a time
BLOCK_SIZE = 1 << 20


def _stream(path: Path, h) -> None:
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(BLOCK_SIZE), b""):
            h.update(block)


def file_checksums(directory: str | Path) -> dict[str, str]:
    """Relative POSIX path → sha256 of every file under ``directory`` (a model's ``files`` record)."""
    return {rel: file_sha256(path) for rel, path in _files(Path(directory))}


def _files(directory: Path) -> Iterator[tuple[str, Path]]:
    """(relative POSIX path, path) of every file under ``directory``, sorted by relative path."""
    found = [(p.relative_to(directory).as_posix(), p) for p in directory.rglob("*") if p.is_file()]
    yield from sorted(found)


def directory_sha256(directory: str | Path) -> str:
    """One sha256 over a directory's files (a Zarr store, a model directory).

    Parameters
    ----------
    directory : str or Path
        The directory.

    Returns
    -------
    str
        The hex digest over the files' relative paths, sizes and bytes, in sorted path order
        (the module's docstring gives the exact framing).
    """
    directory = Path(directory)
    h = hashlib.sha256()
    for rel, path in _files(directory):
        h.update(rel.encode("utf-8") + b"\0" + str(path.stat().st_size).encode() + b"\0")
        _stream(path, h)
    return h.hexdigest()


def files_digest(files: Mapping[str, str]) -> str:
    """One sha256 over a ``{relative path: sha256}`` mapping (a model's recorded files).

    Parameters
    ----------
    files : mapping of str to str
        Relative file path → hex digest, as in a manifest's model record.

    Returns
    -------
    str
        The sha256 of the sorted ``"<sha256>  <path>\\n"`` lines (``sha256sum`` format).
    """
    text = "".join(f"{sha}  {rel}\n" for rel, sha in sorted(files.items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def input_checksums(paths: Mapping[str, str | Path]) -> dict[str, str]:
    """The sha256 of each input store of a run (for the manifest's provenance).

    Parameters
    ----------
    paths : mapping of str to str or Path
        Input name (``climate``, ``lulc_coarse``...) → a file or a directory (a Zarr store).

    Returns
    -------
    dict of str to str
        Input name → hex digest: :func:`file_sha256` of a file, :func:`directory_sha256` of a
        directory; in the order of ``paths``.

    Raises
    ------
    InputDataError
        When a path does not exist.
    """
    out: dict[str, str] = {}
    for name, path in paths.items():
        path = Path(path)
        if path.is_dir():
            out[name] = directory_sha256(path)
        elif path.is_file():
            out[name] = file_sha256(path)
        else:
            raise InputDataError(f"input {name!r}: {path} does not exist (or is not a file or directory); "
                                 "cannot record its checksum")
    return out


def verify_files(directory: str | Path, files: Mapping[str, str], *, what: str, strict: bool = True) -> None:
    """Check that ``directory`` holds exactly the recorded files with the recorded sha256.

    Parameters
    ----------
    directory : str or Path
        The directory (a model directory, an extracted archive).
    files : mapping of str to str
        Relative path → recorded hex digest.
    what : str
        What the directory is, for the message (``"model demo/lai/xgboost"``).
    strict : bool
        Also refuse a file present in ``directory`` but not in ``files``.

    Raises
    ------
    InputDataError
        Naming the first file that is missing, changed or (``strict``) not recorded.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InputDataError(f"{what}: {directory} does not exist; it was moved or deleted after it was recorded")
    if not files:
        raise InputDataError(f"{what}: no file checksums are recorded for {directory}; it cannot be verified "
                             "(train it again with this version of terrascale)")
    for rel, sha in sorted(files.items()):
        path = directory / rel
        if not path.is_file():
            raise InputDataError(f"{what}: {path} is missing (recorded with sha256 {sha[:12]}…); the artefact is "
                                 "incomplete, train or copy it again")
        actual = file_sha256(path)
        if actual != sha:
            raise InputDataError(f"{what}: {path} does not match its recorded sha256 (recorded {sha[:12]}…, found "
                                 f"{actual[:12]}…); it changed after it was recorded, train or copy it again")
    if strict:
        extra = [rel for rel, _ in _files(directory) if rel not in files]
        if extra:
            raise InputDataError(f"{what}: {directory / extra[0]} is not among the recorded files"
                                 f"{f' (and {len(extra) - 1} more)' if len(extra) > 1 else ''}; remove it or "
                                 "train the model again")
