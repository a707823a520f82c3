"""Temp-then-rename writes for files and directories: a crash never leaves a half-written output
under the final name.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from pipeline.errors import InputDataError


def probe_writable(tmp: Path, path: Path) -> None:
    """Create and remove ``tmp`` next to ``path``: an :class:`InputDataError` if the output cannot be written."""
    # Fail before any work, with a message about the output, rather than with a backend's
    # traceback half-way through (an unreadable input during the write is a different error).
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.touch()
        tmp.unlink()
    except OSError as err:
        raise InputDataError(f"cannot write {path} ({err.strerror or err}); choose a writable output path") from None


def remove_path(path: Path) -> None:
    """Remove a file or a directory tree, if it exists."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def replace_atomically(tmp: Path, path: Path) -> None:
    """Move the finished temporary ``tmp`` (file or directory) onto ``path``.

    A file is replaced in one ``os.replace``. An existing directory at ``path`` is first moved
    aside to a hidden sibling, ``tmp`` renamed onto ``path``, then the old one removed.
    """
    if path.is_dir():
        # os.replace cannot replace a non-empty directory: move the old one aside first, and
        # back again if the new one cannot take its place.
        old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(path, old)
        try:
            os.replace(tmp, path)
        except BaseException:
            os.replace(old, path)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary sibling renamed into place."""
    tmp = temporary_sibling(path)
    tmp.write_text(text)
    os.replace(tmp, path)


def temporary_sibling(path: Path) -> Path:
    """A hidden, unique temporary name next to ``path`` (``.NAME.tmp-PID-RANDOM``).

    The pid and a random part keep two writers of the same target (two runs of one run name)
    apart; the temporary lives in the target's directory so that the final rename is atomic.
    """
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
