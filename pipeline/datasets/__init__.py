"""Embedded sample data: real rasters from registry packages and a semi-synthetic generator.

Real (read from the installed packages, never copied): MODIS MCD12C1 2019 IGBP land cover at
0.05°, Köppen-Geiger main climate classes at 1 km (Beck et al. 2018), the GLOBE 1 km land mask.
Synthetic (deterministic from a seed, labelled ``synthetic = "yes"``): monthly climate drivers,
land-use trajectories and monthly LAI for 1950-2020 and scenarios to 2100; the equations are in
:mod:`pipeline.datasets.synthetic`.

The names below are imported on first use, so that ``terrascale --help`` (which imports
:mod:`pipeline.datasets.commands`) does not pay for xarray, dask and scipy.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "classes": ("ClassTable", "load_class_table", "load_pft_crosswalk"),
    "demo": ("write_demo_stores",),
    "fractions": ("class_area_fractions", "lulc_fractions_2019"),
    "loaders": ("koppen_majority", "land_fraction", "load_igbp", "load_koppen", "load_land_mask"),
    "regions": ("REGIONS", "Region", "parse_years", "resolve_region"),
    "sources": ("SOURCES", "DataSource"),
    "static": ("distance_to_coast", "static_fields"),
    "synthetic": ("SCENARIOS", "coarse_predictors", "generate_climate", "generate_lai", "generate_lulc",
                  "global_warming"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(f"pipeline.datasets.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pipeline.datasets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
