"""Named regions, bounding boxes and the years the sample data covers."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pipeline.errors import ConfigError

#: First and last year of the generator: historical 1950-2020, scenarios 2021-2100.
FIRST_YEAR, LAST_HISTORICAL_YEAR, LAST_YEAR = 1950, 2020, 2100
#: Satellite era of the "observed" LAI copy.
SATELLITE_ERA = (2000, 2020)


@dataclass(frozen=True)
class Region:
    """A latitude-longitude box in degrees (lon in [-180, 180], south < north, west < east)."""

    name: str
    south: float
    north: float
    west: float
    east: float
    description: str = ""

    def snapped(self, res: float) -> "Region":
        """The smallest box on the ``res``° grid that contains this one."""
        def down(x: float) -> float:
            return math.floor(x / res + 1e-9) * res

        def up(x: float) -> float:
            return math.ceil(x / res - 1e-9) * res

        return Region(self.name, max(-90.0, down(self.south)), min(90.0, up(self.north)),
                      max(-180.0, down(self.west)), min(180.0, up(self.east)), self.description)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return (self.south, self.north, self.west, self.east)


REGIONS: dict[str, Region] = {
    r.name: r
    for r in (
        Region("global", -90, 90, -180, 180, "the whole globe"),
        Region("europe", 34, 72, -25, 45, "Europe incl. Iceland and western Russia"),
        Region("iberia", 36, 44, -10, 4, "Iberian Peninsula and Balearic Islands (demo default)"),
        Region("africa", -35, 38, -18, 52, "Africa and Madagascar"),
        Region("alps", 43, 49, 4, 17, "the Alps and their forelands"),
    )
}


def resolve_region(region: "str | Region | tuple[float, float, float, float]") -> Region:
    """Turn a region name, a ``"south,north,west,east"`` string or a 4-tuple into a :class:`Region`.

    Parameters
    ----------
    region : str, Region or tuple
        A name from :data:`REGIONS`, a bounding box string like ``"40,42,-6,-3"``
        (south, north, west, east in degrees) or a ``(south, north, west, east)`` tuple.

    Raises
    ------
    ConfigError
        Unknown name (the message lists the known ones) or an invalid box.
    """
    if isinstance(region, Region):
        return region
    if isinstance(region, str) and region.strip().lower() in REGIONS:
        return REGIONS[region.strip().lower()]
    if isinstance(region, str) and "," in region:
        try:
            box = tuple(float(v) for v in region.split(","))
        except ValueError:
            box = ()
        if len(box) != 4:
            raise ConfigError(f"region box {region!r} must be 'south,north,west,east' in degrees, e.g. '40,42,-6,-3'")
        region = box
    if isinstance(region, tuple) and len(region) == 4:
        s, n, w, e = (float(v) for v in region)
        if not (-90 <= s < n <= 90 and -180 <= w < e <= 180):
            raise ConfigError(
                f"region box south={s} north={n} west={w} east={e} is invalid: need "
                "-90 <= south < north <= 90 and -180 <= west < east <= 180"
            )
        return Region(f"box({s:g},{n:g},{w:g},{e:g})", s, n, w, e, "user bounding box")
    raise ConfigError(
        f"unknown region {region!r}; known regions: {', '.join(REGIONS)} "
        "(or a box 'south,north,west,east' in degrees)"
    )


def parse_years(years: "str | tuple[int, int]") -> tuple[int, int]:
    """Parse ``"A:B"`` (or a pair) into an inclusive year range inside 1950-2100.

    Raises
    ------
    ConfigError
        Malformed text, reversed range, or years outside the generator's periods.
    """
    if isinstance(years, str):
        parts = years.replace("-", ":").split(":") if years.count(":") == 1 or years.count("-") == 1 else [years]
        try:
            a, b = (int(parts[0]), int(parts[1])) if len(parts) == 2 else (int(parts[0]),) * 2
        except ValueError:
            raise ConfigError(f"years {years!r} must look like 'A:B', e.g. '2011:2030'") from None
    else:
        a, b = (int(v) for v in years)
    if a > b:
        raise ConfigError(f"years {a}:{b} are reversed; write the first year first, e.g. '{b}:{a}'")
    if a < FIRST_YEAR or b > LAST_YEAR:
        raise ConfigError(
            f"years {a}:{b} are outside the available periods: historical {FIRST_YEAR}-{LAST_HISTORICAL_YEAR} "
            f"and scenarios {LAST_HISTORICAL_YEAR + 1}-{LAST_YEAR}"
        )
    return a, b
