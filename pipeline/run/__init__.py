"""The main job: ``terrascale run`` as cached, resumable stages in a run directory."""

from __future__ import annotations

__all__: list[str] = []
