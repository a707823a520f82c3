"""The features stage: a :class:`FeatureBuilder` from a run config, and the run that writes the table."""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.errors import InputDataError
from pipeline.features.builder import FeatureBuilder
from pipeline.features.device import get_backend
from pipeline.features.stores import input_stores, open_stores
from pipeline.features.table import check_feature_table_output, write_feature_table


def builder_from_config(cfg, *, backend=None, notify=None) -> FeatureBuilder:
    """A :class:`FeatureBuilder` for a run config (inputs found or generated, opened lazily).

    ``notify`` is told when the demo inputs are written or regenerated (see :func:`input_stores`).
    """
    be = get_backend(backend if backend is not None else cfg.backend)
    paths = input_stores(cfg, notify=notify)
    return FeatureBuilder(open_stores(paths), cfg.features, cfg.splits, target=cfg.data.target,
                          scenarios=cfg.data.scenarios, years=tuple(cfg.data.years), seed=cfg.seed,
                          backend=be, paths=paths)


def make_run_dir(run_dir: Path, root: Path) -> None:
    """Create the run directory, or one message naming ``output.root`` when it cannot be written."""
    # before any work: a file in the path or a read-only file system is one message, not a traceback
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputDataError(f"cannot create the run directory {run_dir} ({err.strerror or err}); set output.root "
                             f"(now {root}) to a writable directory") from None
    if not os.access(run_dir, os.W_OK):
        raise InputDataError(f"the run directory {run_dir} is not writable; set output.root (now {root}) to a "
                             "writable directory")


def run_features(cfg, *, backend=None, progress=None, notify=None) -> dict:
    """The features stage: build the table, write it to ``<run_dir>/features`` and the resolved config."""
    from pipeline.config import write_resolved_config

    make_run_dir(Path(cfg.run_dir), Path(cfg.run_dir).parent)
    out_dir = check_feature_table_output(Path(cfg.run_dir) / "features")  # before the inputs are generated or read
    builder = builder_from_config(cfg, backend=backend, notify=notify)
    meta = write_feature_table(builder, out_dir, progress=progress)
    write_resolved_config(cfg, cfg.run_dir)
    meta["path"] = str(Path(cfg.run_dir) / "features")
    meta["backend"] = builder.be.name
    return meta
