"""The input stores of the features stage: where they are, opening them, writing the demo ones."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import xarray as xr

from pipeline.errors import InputDataError

#: File names of the input stores inside ``data.root`` (or ``<run_dir>/inputs`` for the demo).
STORE_FILES = {"static": "static.zarr", "lulc": "lulc_coarse.zarr", "climate": "climate.zarr", "target": "lai.zarr"}


def find_stores(root: str | Path) -> dict[str, Path]:
    """Paths of the four input stores in ``root``; :class:`InputDataError` naming what is missing."""
    root = Path(root)
    if not root.is_dir():
        raise InputDataError(f"data.root {root} is not a directory; point data.root at the directory with the input stores")
    paths = {k: root / f for k, f in STORE_FILES.items()}
    missing = [p.name for p in paths.values() if not p.exists()]
    if missing:
        have = sorted(p.name for p in root.iterdir()) or ["nothing"]
        raise InputDataError(
            f"{root} lacks {', '.join(missing)} (it holds: {', '.join(have)}); write the stores with "
            f"data.source: demo or point data.root at prepared stores named {', '.join(STORE_FILES.values())}"
        )
    return paths


def open_stores(paths: Mapping[str, Path]) -> dict[str, xr.Dataset]:
    """Open the input stores lazily with their own on-disk chunks."""
    from pipeline.io import open_dataset

    return {k: open_dataset(p, chunks={}) for k, p in paths.items()}


def input_stores(cfg) -> dict[str, Path]:
    """The input store paths of a run: ``data.root`` (stores) or ``<run_dir>/inputs`` (demo, written once)."""
    if cfg.data.source == "stores":
        return find_stores(cfg.data.root)
    inputs = Path(cfg.run_dir) / "inputs"
    if inputs.is_dir() and all((inputs / f).exists() for f in STORE_FILES.values()):
        return find_stores(inputs)
    try:
        from pipeline.datasets.demo import write_demo_stores
    except ImportError as err:
        raise InputDataError(
            f"data.source: demo needs pipeline.datasets.demo, which cannot be imported ({err}); "
            "use data.source: stores with data.root pointing at prepared stores"
        ) from None
    write_demo_stores(inputs, region=cfg.data.region, years=tuple(cfg.data.years),
                      scenarios=list(cfg.data.scenarios), seed=cfg.seed)
    return find_stores(inputs)
