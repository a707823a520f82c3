"""The local model registry: promotion records in ``<root>/catalog/registry.json``.

Every catalogue entry starts as a ``candidate``; a promotion moves it to ``production`` or
``archived`` and is recorded as an event with who (the user), when (UTC, ISO 8601) and why (a
reason, required). Only one entry per task is in production at a time: promoting another one
archives the previous one, and that is recorded too (same who and when, the reason naming the
successor). The file is an append-only list of events, rewritten atomically under a file lock,
so two promotions at once cannot lose one another; an entry's stage is that of its last event.
"""

from __future__ import annotations

import contextlib
import getpass
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from pipeline.catalog.index import CATALOG_DIR
from pipeline.errors import ConfigError, InputDataError

__all__ = ["CANDIDATE", "PRODUCTION", "ARCHIVED", "REGISTRY_FILE", "STAGES", "Promotion", "Registry", "current_user",
           "utc_now"]

CANDIDATE = "candidate"
PRODUCTION = "production"
ARCHIVED = "archived"
#: the stages of an entry, in the order of its life
STAGES: tuple[str, ...] = (CANDIDATE, PRODUCTION, ARCHIVED)
#: the registry file under ``<root>/catalog/``
REGISTRY_FILE = "registry.json"
_FORMAT = 1
#: stage → the stages an entry may be promoted to from it (``archived → production`` is a rollback)
_MOVES = {CANDIDATE: (PRODUCTION, ARCHIVED), PRODUCTION: (ARCHIVED,), ARCHIVED: (PRODUCTION,)}


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second (``2025-06-01T12:00:00Z``)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def current_user() -> str:
    """The login name of the user (``getpass.getuser()``), or ``"unknown"``."""
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):  # no login name in a bare container
        return "unknown"


@dataclass(frozen=True)
class Promotion:
    """One recorded change of stage.

    Attributes
    ----------
    entry : str
        The catalogue id ``<run_name>/<task>/<model>``.
    task : str
        Its task (one production entry per task).
    stage, previous : str
        The new and the former stage.
    by : str
        Who.
    at : str
        When (UTC, ISO 8601).
    reason : str
        Why.
    artefact_sha256 : str
        Digest of the model's recorded files at the time (``""`` when not verified, e.g. archiving).
    """

    entry: str
    task: str
    stage: str
    previous: str
    by: str
    at: str
    reason: str
    artefact_sha256: str = ""

    def to_dict(self) -> dict:
        """The event as a JSON-able dict."""
        return asdict(self)


class Registry:
    """The promotion records of the catalogue under ``root``.

    Parameters
    ----------
    root : str or Path
        The output root; the file is ``<root>/catalog/registry.json``.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.path = self.root / CATALOG_DIR / REGISTRY_FILE

    # -- reading -------------------------------------------------------------------------------

    def events(self) -> list[Promotion]:
        """Every recorded event, oldest first.

        Raises
        ------
        InputDataError
            When the file exists but is not a registry.
        """
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, UnicodeDecodeError, ValueError) as err:
            raise InputDataError(f"{self.path} cannot be read as the catalogue registry ({err}); restore it from "
                                 "a backup or remove it (every model becomes a candidate again)") from None
        events = data.get("events") if isinstance(data, dict) else None
        if not isinstance(events, list):
            raise InputDataError(f"{self.path} is not a catalogue registry (no 'events' list); restore it from a "
                                 "backup or remove it")
        try:
            return [Promotion(**e) for e in events]
        except TypeError as err:
            raise InputDataError(f"{self.path} holds an event that is not a promotion record ({err}); restore it "
                                 "from a backup or remove it") from None

    def stages(self) -> dict[str, str]:
        """Entry id → its current stage, for the entries with at least one event."""
        return {e.entry: e.stage for e in self.events()}

    def stage_of(self, entry: str) -> str:
        """The current stage of ``entry`` (``candidate`` when never promoted)."""
        return self.stages().get(entry, CANDIDATE)

    def history(self, entry: str) -> list[Promotion]:
        """The events of ``entry``, oldest first."""
        return [e for e in self.events() if e.entry == entry]

    def production(self, task: str) -> str | None:
        """The entry in production for ``task``, or ``None``."""
        return _production(self.events(), task)

    # -- writing -------------------------------------------------------------------------------

    def promote(self, entry: str, task: str, stage: str, *, reason: str, by: str | None = None,
                at: str | None = None, artefact_sha256: str = "") -> list[Promotion]:
        """Move ``entry`` to ``stage`` and record it (archiving the task's previous production entry).

        Parameters
        ----------
        entry : str
            The catalogue id.
        task : str
            Its task.
        stage : str
            ``production`` or ``archived``.
        reason : str
            Why (required, not blank).
        by : str, optional
            Who; :func:`current_user` by default.
        at : str, optional
            When; :func:`utc_now` by default.
        artefact_sha256 : str
            Digest of the verified model files, recorded with the event.

        Returns
        -------
        list of Promotion
            The recorded events: the archiving of the previous production entry (if any), then
            the promotion.

        Raises
        ------
        ConfigError
            A blank reason, an unknown stage, or a move the stages do not allow (e.g. an entry
            already in that stage).
        """
        reason = (reason or "").strip()
        if not reason:
            raise ConfigError("a promotion needs a reason: pass --reason 'why this model'")
        if stage not in STAGES:
            raise ConfigError(f"unknown stage {stage!r}; a model can be promoted to {PRODUCTION} or {ARCHIVED}")
        by = (by or "").strip() or current_user()
        at = at or utc_now()
        with self._locked():
            events = self.events()
            previous = {e.entry: e.stage for e in events}.get(entry, CANDIDATE)
            if stage not in _MOVES[previous]:
                allowed = " or ".join(_MOVES[previous])
                raise ConfigError(f"{entry} is {previous}; it can only be promoted to {allowed}")
            new: list[Promotion] = []
            if stage == PRODUCTION:
                old = _production(events, task)
                if old is not None and old != entry:
                    new.append(Promotion(entry=old, task=task, stage=ARCHIVED, previous=PRODUCTION, by=by, at=at,
                                         reason=f"replaced in production by {entry}: {reason}"))
            new.append(Promotion(entry=entry, task=task, stage=stage, previous=previous, by=by, at=at, reason=reason,
                                 artefact_sha256=artefact_sha256))
            self._write(events + new)
        return new

    def _write(self, events: list[Promotion]) -> None:
        from pipeline.io import write_text_atomically

        text = json.dumps({"format": _FORMAT, "events": [e.to_dict() for e in events]}, indent=1)
        write_text_atomically(self.path, text + "\n")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive lock on ``<root>/catalog/.registry.lock`` (POSIX; none elsewhere)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            import fcntl
        except ImportError:  # not POSIX: one writer at a time is the user's business
            yield
            return
        with open(self.path.parent / ".registry.lock", "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


def _production(events: list[Promotion], task: str) -> str | None:
    stage: dict[str, str] = {}
    for e in events:
        if e.task == task:
            stage[e.entry] = e.stage
    live = [entry for entry, s in stage.items() if s == PRODUCTION]
    return live[-1] if live else None
