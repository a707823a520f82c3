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
    """Open the input stores lazily with their own on-disk chunks, after checking they belong together."""
    from pipeline.datasets import check_store_set
    from pipeline.io import open_dataset

    check_store_set(paths)  # a mixed set of demo stores (an interrupted rewrite) is refused, naming them
    return {k: open_dataset(p, chunks={}) for k, p in paths.items()}


#: Config key of each generating parameter of the demo stores (for messages).
_DEMO_KEYS = {"region_bounds": "data.region", "years": "data.years", "scenarios": "data.scenarios", "seed": "seed"}


def _recorded_demo_parameters(inputs: Path) -> tuple[dict | None, str]:
    """The generating parameters recorded in the demo stores of ``inputs``, or ``None`` and why not."""
    import json

    from pipeline.datasets.demo import DEMO_ATTR

    missing = [f for f in STORE_FILES.values() if not (inputs / f).exists()]
    if missing:
        return None, f"{', '.join(missing)} missing"
    found = {}
    for f in STORE_FILES.values():
        try:
            import zarr

            raw = dict(zarr.open_group(str(inputs / f), mode="r").attrs).get(DEMO_ATTR)
            found[f] = json.loads(raw) if isinstance(raw, str) else raw
        except Exception as err:  # noqa: BLE001  (a probe: unreadable stores are regenerated, not reported)
            return None, f"{f} unreadable ({type(err).__name__})"
    if any(v is None for v in found.values()):
        return None, "no generating parameters recorded in the stores"
    first = next(iter(found.values()))
    if any(v != first for v in found.values()):
        return None, "the stores were generated with different parameters"
    return first, ""


def _describe_changes(old: dict, new: dict) -> str:
    out = []
    for k in new:
        if old.get(k) != new[k]:
            fmt = (lambda v: f"{v[0]}:{v[1]}") if k == "years" else (
                (lambda v: ",".join(v) if v else "-") if k == "scenarios" else str)
            out.append(f"{_DEMO_KEYS.get(k, k)} {fmt(old[k]) if k in old else '(none)'} -> {fmt(new[k])}")
    return "; ".join(out)


def input_stores(cfg, *, notify=None) -> dict[str, Path]:
    """The input store paths of a run: ``data.root`` (stores) or ``<run_dir>/inputs`` (demo).

    The demo stores are reused only when the generating parameters recorded in them (region
    bounds, years, scenarios, seed, resolutions, see
    :func:`pipeline.datasets.demo.demo_parameters`) equal the config's; otherwise they are
    regenerated into a temporary directory that then replaces ``<run_dir>/inputs`` atomically,
    and ``notify`` (default: a logging warning) is told why.
    """
    from pipeline.io import check_output

    if cfg.data.source == "stores":
        return find_stores(cfg.data.root)
    try:
        from pipeline.datasets.demo import demo_parameters, write_demo_stores
    except ImportError as err:
        raise InputDataError(
            f"data.source: demo needs pipeline.datasets.demo, which cannot be imported ({err}); "
            "use data.source: stores with data.root pointing at prepared stores"
        ) from None
    if notify is None:
        import logging

        notify = logging.getLogger("pipeline.features").warning
    kwargs = dict(region=cfg.data.region, years=tuple(cfg.data.years), scenarios=list(cfg.data.scenarios), seed=cfg.seed,
                  climate_res=demo_resolution(cfg.grids.coarse, "grids.coarse"))
    if demo_resolution(cfg.grids.fine, "grids.fine") != DEMO_FINE_RES:
        raise InputDataError(f"grids.fine is {cfg.grids.fine}, but the embedded sample data is on a {DEMO_FINE_RES:g}° grid; "
                             f"set grids.fine: {DEMO_FINE_RES:g}deg (or data.source: stores with your own fine stores)")
    wanted = demo_parameters(**kwargs)  # validates region, years and scenarios first
    inputs = Path(cfg.run_dir) / "inputs"
    if inputs.exists():
        recorded, why = _recorded_demo_parameters(inputs)
        if recorded == wanted:
            return find_stores(inputs)
        check_output(inputs, directory=True, kind=DEMO_INPUTS_KIND, replaces=is_demo_inputs)  # never a user's directory
        notify(f"regenerating the demo inputs in {inputs}: "
               + (why if recorded is None else f"they were generated with other settings ({_describe_changes(recorded, wanted)})"))
    else:
        notify(f"writing the demo inputs to {inputs}")
    write_demo_atomically(inputs, write_demo_stores, kwargs)
    return find_stores(inputs)


#: resolution (degrees) of the embedded rasters, the demo's fine grid
DEMO_FINE_RES = 0.05


def demo_resolution(spec: str, key: str) -> float:
    """The resolution of a regular ``<degrees>deg`` grid spec (the demo's fine and climate grids)."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*deg\s*", str(spec))
    if not m:
        raise InputDataError(f"{key} is {spec!r}; the demo data needs a regular grid written '<degrees>deg', e.g. 1deg")
    return float(m.group(1))


DEMO_INPUTS_KIND = f"a directory of demo input stores ({', '.join(STORE_FILES.values())})"


def is_demo_inputs(path: str | Path) -> bool:
    """Whether ``path`` holds demo input stores and nothing else, so that it may be regenerated.

    The rule of :func:`pipeline.datasets.is_demo_store_set` (the demo writer's own), applied to
    ``<run_dir>/inputs``.
    """
    from pipeline.datasets import is_demo_store_set

    return is_demo_store_set(path)


def write_demo_atomically(inputs: Path, write_demo_stores, kwargs: dict) -> None:
    """Write the demo stores into a hidden sibling of ``inputs``, then move it onto ``inputs``.

    An existing ``inputs`` is replaced only when it holds demo stores only
    (:func:`is_demo_inputs`); a directory with anything else in it is refused, never deleted.
    """
    from pipeline.io import atomic_output

    with atomic_output(inputs, directory=True, kind=DEMO_INPUTS_KIND, replaces=is_demo_inputs) as tmp:
        write_demo_stores(tmp, **kwargs)
