"""The run directory: its layout, its manifest (what each stage wrote, under which key) and its log.

Layout (README, "The run directory")::

    config.resolved.yaml  config.sha256  manifest.json  logs/run.log
    inputs/  features/  models/<task>/<name>/  checkpoints/  predictions/  esm/  metrics/  report.html

``manifest.json`` is rewritten atomically after every stage and every model: a stage is trusted by
a later run only when its record says ``complete`` under the key the later run computes, and its
outputs exist.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError

__all__ = ["IDENTITY_SECTIONS", "MANIFEST", "RunDirectory"]

#: the manifest's file name
MANIFEST = "manifest.json"
#: config sections that make a run directory another experiment's: its inputs, region and grids
IDENTITY_SECTIONS = ("data", "grids")
_LOG = "logs/run.log"


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


class RunDirectory:
    """One run directory and its manifest.

    Parameters
    ----------
    path : Path
        ``<output.root>/<run_name>``.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.manifest: dict[str, Any] = self._read()

    # -- manifest ------------------------------------------------------------------------------

    def _read(self) -> dict:
        f = self.path / MANIFEST
        try:
            data = json.loads(f.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            raise ConfigError(f"{f} cannot be read ({err}); it is not a terrascale manifest. Remove it or use "
                              "another output.root/run_name") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{f} is not a terrascale manifest (not a JSON object); remove it or use another "
                              "output.root/run_name")
        return data

    def save(self) -> None:
        """Write the manifest atomically."""
        from pipeline.io import write_text_atomically

        self.manifest["updated"] = _now()
        write_text_atomically(self.path / MANIFEST, json.dumps(self.manifest, indent=1, default=str))

    # -- ownership -----------------------------------------------------------------------------

    def claim(self, cfg_dict: dict, identity: str, *, force: bool, config_path: str | None) -> None:
        """Take the directory for this config, refusing one written by another experiment unless ``force``.

        Parameters
        ----------
        cfg_dict : dict
            The resolved config.
        identity : str
            Digest of :data:`IDENTITY_SECTIONS` of the config.
        force : bool
            Take it anyway, forgetting every stage record (the stages recompute).
        config_path : str, optional
            The config file, for the manifest.
        """
        recorded = self.manifest.get("identity")
        if recorded and recorded != identity:
            old = self.manifest.get("identity_sections", {})
            changed = [s for s in IDENTITY_SECTIONS if old.get(s) != cfg_dict.get(s)]
            if not force:
                raise ConfigError(
                    f"{self.path} holds a run of another config ({', '.join(changed) or 'data/grids'} differ"
                    f"{': written by ' + self.manifest['config_path'] if self.manifest.get('config_path') else ''}); "
                    "set another run_name or output.root, or pass --force to recompute it in place")
            self.manifest["stages"] = {}
            self.manifest["models"] = {}
        self.manifest.update({"identity": identity,
                              "identity_sections": {s: cfg_dict.get(s) for s in IDENTITY_SECTIONS},
                              "config_path": config_path})
        self.manifest.setdefault("created", _now())
        self.manifest.setdefault("stages", {})
        self.manifest.setdefault("models", {})

    # -- records -------------------------------------------------------------------------------

    def record(self, name: str) -> dict | None:
        """The stage record ``name`` (``train/lai``, ``predict/lulc``...), or ``None``."""
        return self.manifest.get("stages", {}).get(name)

    def set_record(self, name: str, record: dict) -> None:
        """Store a stage record and write the manifest."""
        self.manifest.setdefault("stages", {})[name] = record
        self.save()

    def is_complete(self, name: str, key: str) -> bool:
        """Whether stage ``name`` finished under ``key`` and its outputs are still there."""
        rec = self.record(name)
        if not rec or rec.get("status") != "complete" or rec.get("key") != key:
            return False
        return all((self.path / p).exists() for p in rec.get("outputs", []))

    # -- log -----------------------------------------------------------------------------------

    def open_log(self) -> logging.Handler:
        """Attach a file handler writing ``logs/run.log`` to the ``pipeline`` logger (remove it when done)."""
        log = self.path / _LOG
        log.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger = logging.getLogger("pipeline")
        logger.addHandler(handler)
        if logger.level == logging.NOTSET or logger.level > logging.INFO:
            logger.setLevel(logging.INFO)
        return handler
