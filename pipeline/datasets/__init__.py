"""Embedded sample data: real rasters from registry packages and a semi-synthetic generator.

Real (read from the installed packages, never copied): MODIS MCD12C1 2019 IGBP land cover at
0.05°, Köppen-Geiger main climate classes at 1 km (Beck et al. 2018), the GLOBE 1 km land mask.
Synthetic (deterministic from a seed, labelled ``synthetic = "yes"``): monthly climate drivers,
land-use trajectories and monthly LAI for 1950-2020 and scenarios to 2100; the equations are in
:mod:`pipeline.datasets.synthetic`.

Tables (CSV, replaceable by the user, checked on load): the IGBP classes, the IGBP → PFT
crosswalk and the IGBP → HTESSEL vegetation type table (:func:`load_bats_table`: the IFS types
behind ``cvh``/``cvl``/``tvh``/``tvl``).

The names below are imported on first use, so that ``terrascale --help`` (which imports
:mod:`pipeline.cli.data`) does not pay for xarray, dask and scipy.
"""

from __future__ import annotations

from pipeline.datasets.bats import BatsTable, load_bats_table
from pipeline.datasets.checks import check_config
from pipeline.datasets.classes import ClassTable, load_class_table, load_pft_crosswalk
from pipeline.datasets.demo import check_store_set, is_demo_store_set, write_demo_stores
from pipeline.datasets.fractions import class_area_fractions, lulc_fractions_2019
from pipeline.datasets.loaders import (
    koppen_majority,
    land_fraction,
    load_igbp,
    load_koppen,
    load_land_mask,
)
from pipeline.datasets.regions import REGIONS, Region, parse_years, resolve_region
from pipeline.datasets.sources import SOURCES, DataSource
from pipeline.datasets.static import distance_to_coast, static_fields
from pipeline.datasets.synthetic import (
    SCENARIOS,
    coarse_predictors,
    generate_climate,
    generate_lai,
    generate_lulc,
    global_warming,
)

__all__ = [
    "BatsTable",
    "ClassTable",
    "DataSource",
    "REGIONS",
    "Region",
    "SCENARIOS",
    "SOURCES",
    "check_config",
    "check_store_set",
    "class_area_fractions",
    "coarse_predictors",
    "distance_to_coast",
    "generate_climate",
    "generate_lai",
    "generate_lulc",
    "global_warming",
    "is_demo_store_set",
    "koppen_majority",
    "land_fraction",
    "load_bats_table",
    "load_class_table",
    "load_igbp",
    "load_koppen",
    "load_land_mask",
    "load_pft_crosswalk",
    "lulc_fractions_2019",
    "parse_years",
    "resolve_region",
    "static_fields",
    "write_demo_stores",
]
