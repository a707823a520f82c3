"""Temp-then-rename writes for files and directories: a crash never leaves a half-written output
under the final name, and a write never deletes what it was not asked to replace.

Rules every writer follows (through :func:`atomic_output`, or the pieces it is made of):

* :func:`check_output` before any work: an existing path is replaced only by an output of the
  same shape and kind (a file by a file; a directory only when it is empty or recognised as a
  previous output of the same kind, e.g. a Zarr store by a Zarr store), and never when it is
  one of the inputs. Anything else is an :class:`~pipeline.errors.InputDataError` naming the
  path, so that a mistyped ``-o`` cannot delete a user's directory or the input itself.
* The data go to a hidden sibling ``.NAME.tmp-PID-RANDOM`` (:func:`temporary_sibling`), which
  is registered as in flight while it exists (:func:`register_temporary`), then renamed onto
  the target (:func:`replace_atomically`).
* Temporaries left by a process that no longer runs (``kill -9``, a power cut) are removed by
  the next write of the same target (:func:`remove_stale_temporaries`); those of a live
  process, or of another target, are never touched.
* An interrupt handler (the command line's, :mod:`pipeline.cli.interrupts`) calls
  :func:`cleanup_in_flight` to remove the registered temporaries and put back an old output
  that was moved aside, before it ends the process.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from pipeline.errors import InputDataError

#: Files whose presence makes a directory a Zarr store (v3, v2 group, v2 array, consolidated v2).
ZARR_METADATA_FILES = ("zarr.json", ".zgroup", ".zarray", ".zmetadata")

# Reentrant: the interrupt handler runs on the main thread, possibly while that same thread is
# inside replace_atomically (between two renames); a watchdog thread must wait for the swap.
_LOCK = threading.RLock()
_TEMPORARIES: dict[Path, Path] = {}  # temporary -> target
_ASIDES: dict[Path, Path] = {}  # old output moved aside during a directory swap -> target
_EXPECTED: list[Path] = []  # outputs a command announced (expect_output), for the interrupt message
_WRITTEN: list[Path] = []  # targets at or under an expected output replaced by this process


def _mark_written(path: Path) -> None:
    # Only for announced outputs: a library process writing many files keeps no list of them.
    if any(e == path or e in path.parents for e in _EXPECTED) and path not in _WRITTEN:
        _WRITTEN.append(path)


def is_zarr_store(path: str | Path) -> bool:
    """Whether ``path`` is a directory holding Zarr metadata (v2 or v3).

    Parameters
    ----------
    path : str or Path
        Path to look at.

    Returns
    -------
    bool
        ``True`` for a Zarr store (group or array).
    """
    path = Path(path)
    return path.is_dir() and any((path / m).exists() for m in ZARR_METADATA_FILES)


def _listing(path: Path) -> str:
    try:
        names = sorted(os.listdir(path))
    except OSError:
        return "entries that cannot be listed"
    shown = ", ".join(names[:3])
    return shown + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def check_output(
    path: str | Path,
    *,
    directory: bool,
    kind: str,
    replaces: Callable[[Path], bool] | None = None,
    inputs: Iterable[str | Path] = (),
) -> Path:
    """Refuse an output path whose replacement would lose something; call it before any work.

    Parameters
    ----------
    path : str or Path
        The output (file or directory) about to be written.
    directory : bool
        Whether the output is a directory (a Zarr store, a Parquet table) rather than a file.
    kind : str
        What the output is, for messages, e.g. ``"a Zarr store"``.
    replaces : callable, optional
        For a directory output: whether an existing directory is a previous output of the same
        kind, which may be replaced. An empty directory may always be replaced; without
        ``replaces`` no other one is.
    inputs : iterable of str or Path
        Paths (or glob patterns) the command reads; the output may be none of them, nor a
        directory containing one of them.

    Returns
    -------
    pathlib.Path
        ``path`` as a Path.

    Raises
    ------
    InputDataError
        When the output is an input, or an existing path of another shape or kind.
    """
    path = Path(path)
    check_not_input(path, inputs)
    fix = "choose another output path or remove it yourself"
    if not os.path.lexists(path):
        return path
    if not path.exists():  # a dangling symlink: os.replace swaps the link itself, nothing is lost
        return path
    if path.is_dir():
        if not directory:
            what = "an empty directory" if not os.listdir(path) else f"a directory (it holds {_listing(path)})"
            raise InputDataError(f"output {path} exists and is {what}, but the output is a file, which would replace "
                                 f"it; {fix}")
        if os.listdir(path) and not (replaces is not None and replaces(path)):
            raise InputDataError(f"output {path} exists and is a directory that is not {kind} (it holds "
                                 f"{_listing(path)}); terrascale replaces only an earlier output of the same "
                                 f"kind: {fix}")
    elif directory:
        raise InputDataError(f"output {path} exists and is a file, but the output is {kind} (a directory), which would "
                             f"replace it; {fix}")
    return path


def _expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    out = []
    for inp in inputs:
        if inp is None:
            continue
        text = str(inp)
        if Path(text).exists():  # a name with [...] that exists is that file (as open_dataset reads it)
            out.append(Path(text))
        elif any(ch in text for ch in "*?["):
            out.extend(Path(p) for p in glob.glob(text))
        else:
            out.append(Path(text))
    return out


def check_not_input(path: str | Path, inputs: Iterable[str | Path]) -> None:
    """Refuse an output that is one of the inputs (same path, symlink or hard link) or contains one.

    Parameters
    ----------
    path : str or Path
        The output about to be written.
    inputs : iterable of str or Path
        Input paths or glob patterns; those that do not exist are ignored.

    Raises
    ------
    InputDataError
        Naming the input and the output.
    """
    path = Path(path)
    if not path.exists():
        return  # nothing there can be an input
    out_real = path.resolve()
    for inp in _expand_inputs(inputs):
        if not inp.exists():
            continue
        try:
            same = os.path.samefile(inp, path)
        except OSError:
            same = False
        if same or inp.resolve() == out_real:
            raise InputDataError(f"output {path} is the input {inp} (the same file); writing it would replace the "
                                 "input: choose another output path")
        if path.is_dir() and out_real in inp.resolve().parents:
            raise InputDataError(f"output {path} contains the input {inp}; replacing it would delete the input: "
                                 "choose another output path")


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
    """Remove a file, a symlink (not what it points to) or a directory tree, if it exists."""
    path = Path(path)
    if path.is_symlink():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists():
        path.unlink()


def replace_atomically(tmp: Path, path: Path, *, replaces: Callable[[Path], bool] | None = None) -> None:
    """Move the finished temporary ``tmp`` (file or directory) onto ``path``.

    A file is replaced in one ``os.replace``. An existing directory at ``path`` is first moved
    aside to a hidden sibling ``.NAME.old-PID-RANDOM``, ``tmp`` renamed onto ``path``, then the
    old one removed; an interrupt in between puts the old one back (:func:`cleanup_in_flight`).

    Parameters
    ----------
    tmp : Path
        The finished temporary, a sibling of ``path``.
    path : Path
        The target.
    replaces : callable, optional
        Whether an existing, non-empty directory at ``path`` may be replaced by the directory
        ``tmp``; by default only a Zarr store by a Zarr store. Writers check with
        :func:`check_output` before any work; this is the last guard.

    Raises
    ------
    FileNotFoundError
        When ``tmp`` does not exist (``path`` is left as it is).
    InputDataError
        When ``path`` is of another shape (file/directory) or kind than ``tmp``.
    """
    tmp, path = Path(tmp), Path(path)
    if not os.path.lexists(tmp):  # a writer's bug, not the user's: before looking at the target
        raise FileNotFoundError(errno.ENOENT, "no temporary to move into place", str(tmp))
    fix = "choose another output path or remove it yourself"
    if path.exists() and tmp.is_dir() != path.is_dir():
        raise InputDataError(f"output {path} exists and is a {'directory' if path.is_dir() else 'file'}; the output is "
                             f"a {'directory' if tmp.is_dir() else 'file'}: {fix}")
    if path.is_dir():
        if replaces is None:
            replaces = is_zarr_store if is_zarr_store(tmp) else (lambda p: False)
        if os.listdir(path) and not replaces(path):
            raise InputDataError(f"output {path} exists and is a directory that is not an earlier output of the same "
                                 f"kind (it holds {_listing(path)}); {fix}")
    # A symlink (to a directory, or dangling) is moved aside like a directory: the link, not what
    # it points to.
    if path.is_dir() or (tmp.is_dir() and path.is_symlink()):
        # os.replace cannot replace a non-empty directory: move the old one aside first, and
        # back again if the new one cannot take its place. It stays registered until removed,
        # so that an interrupt during its removal still removes it.
        old = path.with_name(f".{path.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        with _LOCK:
            _ASIDES[old] = path
        try:
            with _LOCK:
                os.replace(path, old)
                try:
                    os.replace(tmp, path)
                except BaseException:
                    if os.path.lexists(old):  # not already put back by cleanup_in_flight
                        os.replace(old, path)
                    raise
                _mark_written(path)
            remove_path(old)
        finally:
            with _LOCK:
                _ASIDES.pop(old, None)
    else:
        with _LOCK:
            os.replace(tmp, path)
            _mark_written(path)


def register_temporary(tmp: Path, target: Path) -> None:
    """Record ``tmp`` as an in-flight temporary of ``target`` (removed by :func:`cleanup_in_flight`)."""
    with _LOCK:
        _TEMPORARIES[Path(tmp)] = Path(target)


def unregister_temporary(tmp: Path) -> None:
    """Forget ``tmp`` (renamed into place or removed)."""
    with _LOCK:
        _TEMPORARIES.pop(Path(tmp), None)


def expect_output(path: str | Path) -> None:
    """Announce an output of the running command, so that an interrupt message can name it."""
    with _LOCK:
        if Path(path) not in _EXPECTED:
            _EXPECTED.append(Path(path))


def _settled_remove(path: Path, deadline: float) -> None:
    # Worker threads still finishing a chunk of a Zarr write can recreate part of a removed
    # store (its writer creates parent directories); remove again until nothing comes back.
    while True:
        with contextlib.suppress(OSError):
            remove_path(path)
        if time.monotonic() > deadline:
            return
        time.sleep(0.05)
        if not os.path.lexists(path):
            return


def cleanup_in_flight(*, budget_s: float = 1.0) -> dict[Path, bool]:
    """Remove every registered temporary and put back outputs moved aside; for an interrupt handler.

    Safe to call from a signal handler on the main thread (also in the middle of
    :func:`replace_atomically`) or from another thread, once, just before the process ends.

    Parameters
    ----------
    budget_s : float
        Seconds spent at most waiting for removed temporaries to stay removed.

    Returns
    -------
    dict of Path to bool
        Each output the process was writing, has written under an announced output, or
        announced (:func:`expect_output`), with ``True`` if it was replaced by this process;
        targets inside another temporary are left out.
    """
    deadline = time.monotonic() + budget_s
    # A watchdog thread waits here for a directory swap of the main thread to finish.
    acquired = _LOCK.acquire(timeout=budget_s)
    try:
        temporaries, asides = dict(_TEMPORARIES), dict(_ASIDES)
        done = set(_WRITTEN)
        for old, target in asides.items():
            if not os.path.lexists(old):
                continue  # not moved aside yet
            if os.path.lexists(target):
                _mark_written(target)  # the swap was done: the new output is in place, complete
                done.add(target)
            else:
                # Moved aside and the new one not yet in place: the old one goes back.
                with contextlib.suppress(OSError):
                    os.replace(old, target)
        for tmp in temporaries:
            _settled_remove(tmp, deadline)
        for old in asides:
            if os.path.lexists(old):
                with contextlib.suppress(OSError):
                    remove_path(old)
        report = {}
        for target in [*_WRITTEN, *asides.values(), *temporaries.values()]:
            if any(t in target.parents for t in temporaries):
                continue  # an output inside another temporary (the demo stores of a run's inputs)
            report[target] = target in done
        for target in _EXPECTED:  # announced, and nothing at or under it written or in flight
            if not any(r == target or target in r.parents for r in report):
                report[target] = False
        return report
    finally:
        if acquired:
            _LOCK.release()


_TEMP_RE = r"^\.{name}\.(tmp|old)-(\d+)-[0-9a-f]{{8}}$"


def _pid_running(pid: int) -> bool:
    if pid <= 0:
        return True  # not a pid we wrote: leave it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it runs, as another user
        return True
    return True


def remove_stale_temporaries(path: str | Path) -> list[Path]:
    """Remove temporaries of ``path`` left by processes that no longer run.

    A temporary ``.NAME.tmp-PID-RANDOM`` (or an old output moved aside, ``.NAME.old-PID-RANDOM``)
    whose PID is not a running process was left by a killed writer (``kill -9``, a crash of the
    machine). Those of live processes (this one included) and of other targets are kept. An old
    output moved aside while the target itself is missing (killed between the two renames of a
    directory swap) is put back instead of removed.

    Parameters
    ----------
    path : str or Path
        The target about to be written.

    Returns
    -------
    list of Path
        The temporaries removed.
    """
    path = Path(path)
    if os.name != "posix":
        return []  # os.kill(pid, 0) is no liveness probe elsewhere (on Windows it kills)
    pattern = re.compile(_TEMP_RE.format(name=re.escape(path.name)))
    removed = []
    try:
        names = sorted(os.listdir(path.parent))
    except OSError:
        return []
    for name in names:
        m = pattern.match(name)
        if m is None:
            continue
        pid = int(m.group(2))
        if pid == os.getpid() or _pid_running(pid):
            continue
        stale = path.parent / name
        try:
            if m.group(1) == "old" and not os.path.lexists(path):
                os.replace(stale, path)  # the only copy of the earlier output
                continue
            remove_path(stale)
        except OSError:
            continue
        removed.append(stale)
    return removed


@contextlib.contextmanager
def atomic_output(
    path: str | Path,
    *,
    directory: bool,
    kind: str,
    replaces: Callable[[Path], bool] | None = None,
    inputs: Iterable[str | Path] = (),
) -> Iterator[Path]:
    """Write an output through a registered temporary sibling, renamed onto ``path`` at the end.

    Checks ``path`` (:func:`check_output`), removes stale temporaries of it, yields the
    temporary's path (not created: write a file or a directory there), then replaces ``path``
    with it when the block ends without an exception; otherwise removes the temporary.

    Parameters
    ----------
    path : str or Path
        The target.
    directory, kind, replaces, inputs
        As for :func:`check_output`.

    Yields
    ------
    pathlib.Path
        The temporary to write.
    """
    path = check_output(path, directory=directory, kind=kind, replaces=replaces, inputs=inputs)
    remove_stale_temporaries(path)
    tmp = temporary_sibling(path)
    # Registered before it exists: an interrupt at any point after this removes it.
    register_temporary(tmp, path)
    try:
        yield tmp
        replace_atomically(tmp, path, replaces=replaces)
    except BaseException:
        remove_path(tmp)
        raise
    finally:
        unregister_temporary(tmp)


def write_text_atomically(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary sibling renamed into place.

    Raises
    ------
    InputDataError
        When ``path`` is a directory.
    """
    with atomic_output(path, directory=False, kind="a text file") as tmp:
        tmp.write_text(text)


def temporary_sibling(path: str | Path) -> Path:
    """A hidden, unique temporary name next to ``path`` (``.NAME.tmp-PID-RANDOM``).

    The pid and a random part keep two writers of the same target (two runs of one run name)
    apart, and tell a later writer whether the one that left it still runs
    (:func:`remove_stale_temporaries`); the temporary lives in the target's directory so that
    the final rename is atomic.
    """
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
