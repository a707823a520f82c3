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
(:func:`demo_parameters`), so a reader can tell whether stores match the settings of a run.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

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


def write_demo_stores(out_dir, *, region=DEFAULT_REGION, years=DEFAULT_YEARS, scenarios=DEFAULT_SCENARIOS,
                      seed: int = 0, lulc_res: float = 0.25, climate_res: float = 1.0,
                      class_table=None, progress=None) -> dict[str, Path]:
    """Write the four demo Zarr stores for a region and year range.

    Parameters
    ----------
    out_dir : str or Path
        Directory for the stores (created if needed; existing stores are replaced atomically,
        other entries are left alone; a non-store in the place of a store is refused before
        any work).
    region : str, Region or tuple
        Region name (``global``, ``europe``, ``iberia``, ``africa``, ``alps``) or a box
        ``"south,north,west,east"``; snapped outward to the climate grid.
    years : (int, int) or str
        Inclusive years within 1950-2100, e.g. ``(2011, 2030)`` or ``"2011:2030"``.
    scenarios : sequence of str or str
        Future scenarios (``ssp126``, ``ssp245``, ``ssp370``, ``ssp585``); historical years are
        the same in all of them.
    seed : int
        Seed of every synthetic field.
    lulc_res, climate_res : float
        Coarse land-use and climate grid resolutions (degrees); ``climate_res`` must be a whole
        multiple of ``lulc_res``, and both of 0.05°.
    class_table : str or Path, optional
        Replacement IGBP class table CSV.
    progress : callable, optional
        Called with a message before each store is written.

    Returns
    -------
    dict of str to pathlib.Path
        Store name (``static``, ``lulc_coarse``, ``climate``, ``lai``) → path of the store.
    """
    from pipeline.io import check_output_path, write

    years = parse_years(years)
    scenarios = check_scenarios(scenarios)
    lulc_res, climate_res = check_resolutions(lulc_res, climate_res)
    reg = resolve_region(region)
    snapped = cwin_region(window(reg, climate_res))
    table = load_class_table(class_table)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputDataError(f"output {out_dir} exists and is a file, but the demo stores are written into a "
                             "directory; choose another output path or remove it yourself")
    for name in STORE_NAMES:  # all four before any work: a user's directory in the way is refused, not deleted
        check_output_path(out_dir / f"{name}.zarr")
    out_dir.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda msg: None)
    params = demo_parameters(region=reg, years=years, scenarios=scenarios, seed=seed, lulc_res=lulc_res,
                             climate_res=climate_res, class_table=class_table)
    info = {"region": reg.name, "region_bounds_snapped": list(snapped.bounds),
            "years": f"{years[0]}:{years[1]}", "scenarios": ",".join(scenarios), "seed": int(seed),
            DEMO_ATTR: json.dumps(params, sort_keys=True)}
    history = f"terrascale data demo --region {reg.name} --years {years[0]}:{years[1]} --seed {seed}"
    paths: dict[str, Path] = {}
    t0 = time.perf_counter()

    say("static predictors (0.05°, real rasters)")
    static = static_fields(snapped, table)
    static.attrs.update(title="terrascale static predictors: real GLOBE, Köppen-Geiger and MODIS rasters", **info)
    paths["static"] = write(static, out_dir / "static.zarr", history=history)

    say(f"land-use fractions ({lulc_res:g}°)")
    lu19 = lulc_fractions_2019(snapped, lulc_res, table, igbp=static)
    lulc = generate_lulc(lu19, years, scenarios, seed, lulc_res)
    lulc["igbp_fraction_2019"] = lu19["igbp_fraction_2019"]
    lulc["valid_area"] = lu19["valid_area"]
    lulc.attrs.update(info)
    paths["lulc_coarse"] = write(lulc, out_dir / "lulc_coarse.zarr", history=history)

    say(f"climate drivers ({climate_res:g}°)")
    climate = generate_climate(static, years, scenarios, seed, climate_res)
    climate.attrs.update(info)
    paths["climate"] = write(climate, out_dir / "climate.zarr", history=history)

    say("monthly LAI (0.05°)")
    lai = generate_lai(static, years, scenarios, seed, climate_res, table)
    lai.attrs.update(info)
    paths["lai"] = write(lai, out_dir / "lai.zarr", history=history)
    say(f"done in {time.perf_counter() - t0:.1f} s")
    return paths
