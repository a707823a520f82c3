"""What the stages of one run share: the config, the run directory, the cluster and loaded inputs."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.run.directory import RunDirectory

__all__ = ["RunState"]

log = logging.getLogger("pipeline.run")


@dataclass
class RunState:
    """The shared state of a run's stages.

    Attributes
    ----------
    cfg : pipeline.config.RunConfig
        The resolved config.
    cfg_dict : dict
        Its JSON dump (the keys hash parts of it).
    rd : RunDirectory
        The run directory and its manifest.
    notify : callable
        One line per event for the user (also logged).
    progress : callable, optional
        ``progress(label, done, total)`` of long steps.
    epoch : callable, optional
        Per-epoch events of the deep models.
    resume : bool
        Continue interrupted training from its checkpoints.
    keys : dict
        Stage (``train/lai``...) → key, filled as the run goes.
    """

    cfg: Any
    cfg_dict: dict
    rd: RunDirectory
    notify: Callable[[str], None]
    progress: Callable[[str, int, int], None] | None = None
    epoch: Callable[[dict], None] | None = None
    resume: bool = False
    keys: dict[str, str] = field(default_factory=dict)
    model_keys: dict[str, dict] = field(default_factory=dict)
    imported: dict[str, list[dict]] = field(default_factory=dict)
    _cache: dict[str, Any] = field(default_factory=dict)
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    @property
    def run_dir(self) -> Path:
        """The run directory."""
        return self.rd.path

    def say(self, message: str) -> None:
        """Tell the user and the log."""
        log.info(message)
        self.notify(message)

    def progress_of(self, label: str) -> Callable[[int, int], None] | None:
        """A ``progress(done, total)`` callback reporting under ``label`` (``None`` without a progress display)."""
        if self.progress is None:
            return None
        return lambda done, total: self.progress(label, done, total)

    def cached(self, name: str, make: Callable[[], Any]) -> Any:
        """A value computed once per run (opened stores, task tables)."""
        if name not in self._cache:
            self._cache[name] = make()
        return self._cache[name]

    def client(self):
        """The dask client, the cluster started on first use and closed at the end of the run."""
        if "client" not in self._cache:
            from pipeline.backend import resolve_backend
            from pipeline.cluster import plan_cluster, start_cluster

            backend = resolve_backend(self.cfg.backend)
            plan = plan_cluster(self.cfg.cluster, backend)
            self.say(f"starting the dask cluster: {plan.kind}, {plan.n_workers} worker(s) x "
                     f"{plan.threads_per_worker} thread(s)")
            self._cache["client"] = self._stack.enter_context(start_cluster(self.cfg.cluster, backend))
            self._cache["cluster_words"] = (f"{plan.kind}: {plan.n_workers} worker(s) x {plan.threads_per_worker} "
                                            f"thread(s), {plan.memory_limit} each")
        return self._cache["client"]

    def cluster_words(self) -> str:
        """The cluster in words (for the report), whether or not it was started."""
        if "cluster_words" in self._cache:
            return self._cache["cluster_words"]
        from pipeline.backend import resolve_backend
        from pipeline.cluster import plan_cluster

        plan = plan_cluster(self.cfg.cluster, resolve_backend(self.cfg.backend))
        return f"{plan.kind}: {plan.n_workers} worker(s) x {plan.threads_per_worker} thread(s)"

    def close(self) -> None:
        """Stop the cluster (if started)."""
        self._stack.close()
        self._cache.pop("client", None)
