"""The demo data set: real static maps plus semi-synthetic drivers and LAI, as Zarr stores.

:func:`write_demo_stores` is the contract later stages (features, aggregation) build on::

    static.zarr       0.05°  land_fraction, koppen, distance_to_coast, igbp            (lat, lon)
    lulc_coarse.zarr  0.25°  lulc_fraction (scenario, time[yearly], group, lat, lon),
                             lulc_fraction_2019, igbp_fraction_2019 (real), valid_area
    climate.zarr      1°     tas, pr, rsds (scenario, time[monthly], lat, lon)
    lai.zarr          0.05°  lai (scenario, time, lat, lon) truth, lai_obs (time, lat, lon)
                             observed copy, NaN outside 2000-2020 and in cloud/snow gaps

The region is snapped outward to the climate grid so that every grid nests in every coarser one.
Every store records the generating parameters as JSON in its ``terrascale_demo`` attribute
(:func:`demo_parameters`), so a reader can tell whether stores match the settings of a run, and
whether they belong together (:func:`check_store_set`, which every reader of a set calls). The
four stores are written as one set: into a temporary directory that replaces the output
directory with one rename (:func:`write_demo_stores`), so an interrupted run never leaves new and
old stores mixed.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from pipeline.datasets.classes import load_class_table
from pipeline.datasets.fractions import coarsen_factor, cwin_region, lulc_fractions_2019
from pipeline.datasets.loaders import FINE_RES, window
from pipeline.datasets.regions import parse_years, resolve_region
from pipeline.datasets.static import static_fields
from pipeline.datasets.synthetic import (
    check_scenarios,
    generate_climate,
    generate_lai,
    generate_lulc,
)
from pipeline.errors import ConfigError, InputDataError

DEFAULT_REGION = "iberia"
DEFAULT_YEARS = (2011, 2030)
DEFAULT_SCENARIOS = ("ssp126", "ssp585")
STORE_NAMES = ("static", "lulc_coarse", "climate", "lai")
#: Store attribute holding the generating parameters (JSON, see :func:`demo_parameters`).
DEMO_ATTR = "terrascale_demo"
#: What the output directory of :func:`write_demo_stores` is, for messages.
DEMO_STORES_KIND = f"a directory of demo stores ({', '.join(f'{n}.zarr' for n in STORE_NAMES)})"
#: Largest seed (stored as a 64-bit integer attribute).
MAX_SEED = 2**63 - 1


def check_resolutions(lulc_res, climate_res) -> tuple[float, float]:
    """The coarse resolutions as floats, or a :class:`ConfigError` naming the option at fault."""
    import math

    out = []
    for opt, v in (("--lulc-res", lulc_res), ("--climate-res", climate_res)):
        try:
            x = float(v)
        except (TypeError, ValueError):
            x = float("nan")
        if not (math.isfinite(x) and x > 0):
            raise ConfigError(f"{opt} must be a positive number of degrees (e.g. 0.25 or 1), got {v!r}")
        out.append(x)
    try:
        coarsen_factor(FINE_RES, out[0])
    except ConfigError:
        raise ConfigError(f"--lulc-res {out[0]:g} must be a whole multiple of the {FINE_RES:g}° grid, "
                          "e.g. 0.25 or 0.5") from None
    try:
        coarsen_factor(out[0], out[1])
    except ConfigError:
        raise ConfigError(f"--climate-res {out[1]:g} must be a whole multiple of --lulc-res {out[0]:g}, "
                          "e.g. 1 with 0.25") from None
    return out[0], out[1]


def demo_parameters(*, region=DEFAULT_REGION, years=DEFAULT_YEARS, scenarios=DEFAULT_SCENARIOS, seed: int = 0,
                    lulc_res: float = 0.25, climate_res: float = 1.0, class_table=None) -> dict:
    """The parameters that determine the demo stores' content, normalised (checked like the writer does).

    Two calls of :func:`write_demo_stores` with equal parameters write the same data. The region
    is given by its snapped bounds (the same box by name or by numbers is the same region), the
    class table by the SHA-256 of its file (``None``: the packaged one).
    """
    years = parse_years(years)
    scenarios = check_scenarios(scenarios)
    seed = check_seed(seed, what="seed")  # the config's key: write_demo_stores checked --seed already
    lulc_res, climate_res = check_resolutions(lulc_res, climate_res)  # the LULC grid must nest in the climate grid
    snapped = cwin_region(window(resolve_region(region), climate_res))
    table_sha = None
    if class_table is not None:
        try:
            table_sha = hashlib.sha256(Path(class_table).read_bytes()).hexdigest()
        except OSError:
            table_sha = None  # load_class_table reports the unreadable file
    return {"region_bounds": [float(b) for b in snapped.bounds], "years": [int(years[0]), int(years[1])],
            "scenarios": list(scenarios), "seed": int(seed), "lulc_res": float(lulc_res),
            "climate_res": float(climate_res), "class_table_sha256": table_sha}


def check_seed(seed, what: str = "--seed") -> int:
    """The seed as an int, or a :class:`ConfigError` naming ``what``: a whole number 0 .. 2**63 - 1.

    numpy's generators take no negative seed; the seed is stored as a 64-bit attribute.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        try:
            ok = not isinstance(seed, bool) and float(seed) == int(float(seed))
        except (TypeError, ValueError, OverflowError):
            ok = False
        if not ok:
            raise ConfigError(f"{what} must be a whole number >= 0, e.g. 0 or 42, got {seed!r}")
        seed = int(float(seed))
    if not 0 <= int(seed) <= MAX_SEED:
        raise ConfigError(f"{what} must be a whole number from 0 to {MAX_SEED}, e.g. 0 or 42, got {seed}")
    return int(seed)


def is_demo_store_set(path: str | Path) -> bool:
    """Whether ``path`` is a directory of demo stores and nothing else, so that it may be replaced.

    Parameters
    ----------
    path : str or Path
        Directory to look at (``terrascale data demo -o DIR``, ``<run_dir>/inputs``).

    Returns
    -------
    bool
        ``True`` when every entry is one of the store names of :data:`STORE_NAMES` and a Zarr
        store, or a hidden temporary of one (left by an interrupted write).
    """
    from pipeline.io import is_zarr_store

    path = Path(path)
    try:
        names = os.listdir(path)
    except OSError:
        return False
    stores = {f"{n}.zarr" for n in STORE_NAMES}
    for name in names:
        if name in stores and is_zarr_store(path / name):
            continue
        if name.startswith(".") and any(name.startswith(f".{s}.tmp-") for s in stores):
            continue
        return False
    return True


def _recorded(label: str, store) -> tuple[str, object]:
    """(label, parameters) of one store: the parsed ``terrascale_demo`` attribute, None without one."""
    import xarray as xr

    if isinstance(store, xr.Dataset):
        attrs = store.attrs
    else:
        attrs = _store_attrs(Path(store))
    raw = attrs.get(DEMO_ATTR)
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            pass  # kept as text: it can still be compared
    return label, raw


def _store_attrs(path: Path) -> dict:
    """The global attributes of a Zarr store (read from its metadata file) or NetCDF file; {} if unreadable."""
    # the metadata JSON directly: no array is opened, and zarr warns about files it does not know
    try:
        if (path / "zarr.json").is_file():
            return dict(json.loads((path / "zarr.json").read_text()).get("attributes") or {})
        if (path / ".zattrs").is_file():
            return dict(json.loads((path / ".zattrs").read_text()))
        if path.is_file():
            import xarray as xr

            with xr.open_dataset(path, decode_times=False) as ds:
                return dict(ds.attrs)
    except (OSError, ValueError, KeyError, RuntimeError):
        pass  # unreadable: the reader that opens the store reports it
    return {}


def _describe(params) -> str:
    if not isinstance(params, dict):
        return "no recorded demo parameters" if params is None else f"{params!r}"
    b = params.get("region_bounds")
    years = params.get("years")
    parts = [f"region {','.join(f'{v:g}' for v in b)}" if isinstance(b, list) else None,
             f"years {years[0]}:{years[1]}" if isinstance(years, list) and len(years) == 2 else None,
             f"scenarios {','.join(params['scenarios'])}" if isinstance(params.get("scenarios"), list) else None,
             f"seed {params.get('seed')}" if "seed" in params else None]
    return ", ".join(p for p in parts if p) or json.dumps(params, sort_keys=True)


def check_store_set(stores) -> dict | None:
    """Check that demo stores belong together: equal ``terrascale_demo`` parameters in all of them.

    A set of stores written by different runs (an interrupted or failed ``data demo``, stores
    copied together by hand) would silently pair the climate of one region, years or seed with
    the LAI of another. Every reader of a store set calls this before using the stores.

    Parameters
    ----------
    stores : mapping or iterable
        Store name → path (or opened :class:`xarray.Dataset`), or paths.

    Returns
    -------
    dict or None
        The common generating parameters, or ``None`` when no store records any (prepared
        stores that are not demo output: nothing to compare).

    Raises
    ------
    InputDataError
        Naming the stores that differ and how, or those without parameters among demo stores.
    """
    if isinstance(stores, Mapping):
        items = [(str(s) if not hasattr(s, "attrs") else str(k), s) for k, s in stores.items()]
    else:
        items = [(str(s) if not hasattr(s, "attrs") else f"store {i + 1}", s) for i, s in enumerate(stores)]
    found = [_recorded(label, s) for label, s in items]
    if not found or all(p is None for _, p in found):
        return None
    groups: dict[str, list[str]] = {}
    shown: dict[str, object] = {}
    for label, params in found:
        key = json.dumps(params, sort_keys=True, default=str)
        groups.setdefault(key, []).append(label)
        shown[key] = params
    if len(groups) == 1:
        first = found[0][1]
        return first if isinstance(first, dict) else None
    desc = "; ".join(f"{', '.join(labels)}: {_describe(shown[k])}" for k, labels in groups.items())
    raise InputDataError(f"the input stores do not belong together (their {DEMO_ATTR} parameters differ): {desc}; "
                         "write the whole set again with one `terrascale data demo -o DIR` (or point data.root at "
                         "stores written together)")


def write_demo_stores(out_dir, *, region=DEFAULT_REGION, years=DEFAULT_YEARS, scenarios=DEFAULT_SCENARIOS,
                      seed: int = 0, lulc_res: float = 0.25, climate_res: float = 1.0,
                      class_table=None, progress=None) -> dict[str, Path]:
    """Write the four demo Zarr stores for a region and year range, as one set.

    Every option and the class table are checked before anything is written. The four stores
    are written into one hidden temporary directory next to ``out_dir``, which then replaces
    ``out_dir`` with one rename: an interrupted or failed run leaves the earlier set as it was,
    never a mix of new and old stores.

    Parameters
    ----------
    out_dir : str or Path
        Directory of the stores. It must not exist, be empty or hold demo stores only (an
        earlier set, replaced as a whole); a directory with anything else in it, or a file, is
        refused before any work.
    region : str, Region or tuple
        Region name (``global``, ``europe``, ``iberia``, ``africa``, ``alps``) or a box
        ``"south,north,west,east"``; snapped outward to the climate grid. It must hold land
        with vegetation (else there is no LAI to generate).
    years : (int, int) or str
        Inclusive years within 1950-2100, e.g. ``(2011, 2030)`` or ``"2011:2030"``.
    scenarios : sequence of str or str
        Future scenarios (``ssp126``, ``ssp245``, ``ssp370``, ``ssp585``); historical years are
        the same in all of them.
    seed : int
        Seed of every synthetic field, 0 .. 2**63 - 1.
    lulc_res, climate_res : float
        Coarse land-use and climate grid resolutions (degrees); ``climate_res`` must be a whole
        multiple of ``lulc_res``, and both of 0.05°.
    class_table : str or Path, optional
        Replacement IGBP class table CSV (checked cell by cell: :func:`load_class_table`).
    progress : callable, optional
        Called with a message before each store is written.

    Returns
    -------
    dict of str to pathlib.Path
        Store name (``static``, ``lulc_coarse``, ``climate``, ``lai``) → path of the store.
    """
    from pipeline.io import atomic_output, write

    years = parse_years(years)
    scenarios = check_scenarios(scenarios)
    seed = check_seed(seed)
    lulc_res, climate_res = check_resolutions(lulc_res, climate_res)
    reg = resolve_region(region)
    snapped = cwin_region(window(reg, climate_res))
    table = load_class_table(class_table)
    out_dir = Path(out_dir)
    say = progress or (lambda msg: None)
    params = demo_parameters(region=reg, years=years, scenarios=scenarios, seed=seed, lulc_res=lulc_res,
                             climate_res=climate_res, class_table=class_table)
    info = {"region": reg.name, "region_bounds_snapped": list(snapped.bounds),
            "years": f"{years[0]}:{years[1]}", "scenarios": ",".join(scenarios), "seed": int(seed),
            DEMO_ATTR: json.dumps(params, sort_keys=True)}
    history = f"terrascale data demo --region {reg.name} --years {years[0]}:{years[1]} --seed {seed}"
    _check_out_dir(out_dir)
    t0 = time.perf_counter()
    # checks out_dir first (a user's directory or a file is refused, not deleted), then yields the
    # temporary that replaces it as a whole at the end
    with atomic_output(out_dir, directory=True, kind=DEMO_STORES_KIND, replaces=is_demo_store_set) as tmp:
        tmp.mkdir(parents=True)
        say("static predictors (0.05°, real rasters)")
        static = static_fields(snapped, table)
        _check_land(static, table, reg)
        static.attrs.update(title="terrascale static predictors: real GLOBE, Köppen-Geiger and MODIS rasters", **info)
        write(static, tmp / "static.zarr", history=history)

        say(f"land-use fractions ({lulc_res:g}°)")
        lu19 = lulc_fractions_2019(snapped, lulc_res, table, igbp=static)
        lulc = generate_lulc(lu19, years, scenarios, seed, lulc_res)
        lulc["igbp_fraction_2019"] = lu19["igbp_fraction_2019"]
        lulc["valid_area"] = lu19["valid_area"]
        lulc.attrs.update(info)
        write(lulc, tmp / "lulc_coarse.zarr", history=history)

        say(f"climate drivers ({climate_res:g}°)")
        climate = generate_climate(static, years, scenarios, seed, climate_res)
        climate.attrs.update(info)
        write(climate, tmp / "climate.zarr", history=history)

        say("monthly LAI (0.05°)")
        lai = generate_lai(static, years, scenarios, seed, climate_res, table)
        lai.attrs.update(info)
        write(lai, tmp / "lai.zarr", history=history)
    say(f"done in {time.perf_counter() - t0:.1f} s")
    return {name: out_dir / f"{name}.zarr" for name in STORE_NAMES}


def _check_out_dir(out_dir: Path) -> None:
    """Refuse an output directory holding anything besides demo stores, naming those entries."""
    from pipeline.io import is_zarr_store

    here = Path.cwd().resolve()
    if out_dir.resolve() == here or out_dir.resolve() in here.parents:
        raise InputDataError(f"output {out_dir} is the current directory (or holds it); the demo stores are written "
                             "as one set that replaces the whole output directory: pass a subdirectory, e.g. "
                             "-o demo-data")
    if not out_dir.is_dir() or is_demo_store_set(out_dir):
        return
    stores = {f"{n}.zarr" for n in STORE_NAMES}
    other = sorted(n for n in os.listdir(out_dir) if not (n in stores and is_zarr_store(out_dir / n)))
    shown = ", ".join(other[:5]) + (f" and {len(other) - 5} more" if len(other) > 5 else "")
    raise InputDataError(f"output {out_dir} holds {shown} besides demo stores; the demo stores are written as one "
                         "set that replaces the whole directory: choose another output path or remove it yourself")


def _check_land(static, table, reg) -> None:
    """A region without vegetated land has no LAI: every LAI value would be NaN, which validate rejects."""
    _, hi, _ = table.lai_lookup()
    if not np.isfinite(hi[static["igbp"].values]).any():
        raise ConfigError(f"region {reg.name} ({reg.south:g},{reg.north:g},{reg.west:g},{reg.east:g}) holds no land "
                          "with vegetation, so the demo LAI would be empty; choose a region with land, e.g. iberia "
                          "or a box 'south,north,west,east' over a continent")
