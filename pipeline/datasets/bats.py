"""The IGBP → HTESSEL (IFS) vegetation type table: BATS-derived types 1..20 and their high/low split.

The shipped ``data/igbp_bats.csv`` maps every IGBP class to the vegetation type HTESSEL uses for
``tvh``/``tvl`` and says whether that type is high vegetation, low vegetation or neither (bare,
water, ice, urban); its header cites the IFS documentation table the codes come from. A user may
pass another CSV with the same columns; it is checked on load (every IGBP class once, type codes in
0..20, one high/low/none and one name per type) and a broken one fails with the file, row and fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.datasets.classes import N_IGBP, _cell_number, _data_file
from pipeline.errors import InputDataError
from pipeline.io import read_csv_table

DEFAULT_BATS_TABLE = _data_file("igbp_bats.csv")

#: Columns of a BATS table (``short_name`` is optional).
BATS_TABLE_COLUMNS = ("value", "bats_type", "bats_name", "vegetation")

#: The highest vegetation type code of HTESSEL (20: water and land mixtures); 0 means no type.
MAX_BATS_TYPE = 20

VEGETATION_KINDS = ("high", "low", "none")


def flag_word(text: str) -> str:
    """``text`` as one CF ``flag_meanings`` word: lower case, runs of other characters as ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "unnamed"


@dataclass(frozen=True)
class BatsTable:
    """IGBP class → HTESSEL vegetation type, and the type's vegetation kind.

    Attributes
    ----------
    frame : pandas.DataFrame
        Indexed by IGBP ``value`` 0..16; columns ``short_name``, ``bats_type`` (int, 0 = none),
        ``bats_name`` and ``vegetation`` (``high``, ``low`` or ``none``).
    path : Path
        The CSV it was read from.
    """

    frame: pd.DataFrame
    path: Path

    def classes(self, vegetation: str) -> list[int]:
        """The IGBP values whose vegetation type is ``vegetation`` (``high``, ``low`` or ``none``)."""
        return [int(v) for v in self.frame.index[self.frame["vegetation"] == vegetation]]

    def types(self, vegetation: str) -> dict[int, str]:
        """The vegetation type codes of kind ``vegetation`` used by the table → their names, by code."""
        sub = self.frame[self.frame["vegetation"] == vegetation]
        return dict(sorted(zip(sub["bats_type"].astype(int), sub["bats_name"])))

    def type_of(self, value: int) -> int:
        """The vegetation type code of IGBP class ``value``."""
        return int(self.frame.loc[int(value), "bats_type"])

    def flag_attrs(self, vegetation: str) -> dict:
        """CF ``flag_values``/``flag_meanings`` for ``tvh`` (``high``) or ``tvl`` (``low``), 0 = none.

        0 is the IFS convention for a cell without vegetation of that kind (ERA5's ``tvh``/``tvl``).
        """
        types = self.types(vegetation)
        values = np.asarray([0, *types], dtype=np.int16)
        meanings = [f"no_{vegetation}_vegetation", *(flag_word(n) for n in types.values())]
        return {"flag_values": values, "flag_meanings": " ".join(meanings)}


def _fail(path, row: int, value, col: str, what: str, fix: str):
    which = f" (value {value})" if value is not None else ""
    raise InputDataError(f"BATS table {path}: data row {row + 1}{which}, column '{col}' {what}; {fix}")


def _whole(path, k, value, col, v, fix):
    try:
        f = _cell_number(v)
    except (TypeError, ValueError):
        f = float("nan")
    if f is None or not np.isfinite(f) or f != int(f):
        _fail(path, k, value, col, "is empty" if f is None else f"holds {v!r}, which is not a whole number", fix)
    return int(f)


def _check_rows(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    values = [_whole(path, k, None, "value", v, f"give each IGBP value 0..{N_IGBP - 1} once")
              for k, v in enumerate(df["value"].tolist())]
    if sorted(values) != list(range(N_IGBP)):
        dup = sorted({v for v in values if values.count(v) > 1})
        missing = sorted(set(range(N_IGBP)) - set(values))
        extra = sorted(set(values) - set(range(N_IGBP)))
        said = "; ".join(p for p in (f"repeated {dup}" if dup else "", f"missing {missing}" if missing else "",
                                     f"not IGBP values {extra}" if extra else "") if p)
        raise InputDataError(f"BATS table {path}: column 'value' must list each IGBP value 0..{N_IGBP - 1} once ({said}); "
                             "give every IGBP class one row")
    types, names, kinds = [], [], []
    for k, row in enumerate(df.itertuples(index=False)):
        value = values[k]
        t = _whole(path, k, value, "bats_type", row.bats_type, f"write the IFS vegetation type 1..{MAX_BATS_TYPE} (0: none)")
        if not 0 <= t <= MAX_BATS_TYPE:
            _fail(path, k, value, "bats_type", f"holds {t}", f"IFS vegetation types are 1..{MAX_BATS_TYPE} (0: none)")
        name = row.bats_name.strip() if isinstance(row.bats_name, str) else ""
        if not name:
            _fail(path, k, value, "bats_name", "is empty", "give the type's name")
        kind = row.vegetation.strip().lower() if isinstance(row.vegetation, str) else ""
        if kind not in VEGETATION_KINDS:
            _fail(path, k, value, "vegetation", f"holds {row.vegetation!r}", "write high, low or none")
        if t == 0 and kind != "none":
            _fail(path, k, value, "vegetation", f"is {kind!r} for bats_type 0 (no vegetation type)",
                  "write none, or give the class a vegetation type")
        types.append(t)
        names.append(name)
        kinds.append(kind)
    seen: dict[int, tuple[str, str, int]] = {}
    for k, (t, name, kind) in enumerate(zip(types, names, kinds)):
        if t in seen and t != 0 and seen[t][:2] != (name, kind):
            first = seen[t]
            raise InputDataError(f"BATS table {path}: vegetation type {t} is '{first[0]}' ({first[1]}) in data row "
                                 f"{first[2] + 1} but '{name}' ({kind}) in data row {k + 1}; a type has one name and is "
                                 "either high, low or no vegetation")
        seen.setdefault(t, (name, kind, k))
    short = df["short_name"].astype(str).str.strip().tolist() if "short_name" in df.columns else [""] * len(values)
    out = pd.DataFrame({"value": values, "short_name": short, "bats_type": np.asarray(types, dtype=np.int64),
                        "bats_name": names, "vegetation": kinds})
    return out.set_index("value").sort_index()


def load_bats_table(path: "str | Path | None" = None) -> BatsTable:
    """Read and check the IGBP → HTESSEL vegetation type table.

    Parameters
    ----------
    path : str or Path, optional
        A CSV with columns ``value, bats_type, bats_name, vegetation`` (``short_name`` optional,
        whole-line ``#`` comments allowed); default: the shipped ``data/igbp_bats.csv``.

    Returns
    -------
    BatsTable

    Raises
    ------
    InputDataError
        ``BATS table FILE: ...`` naming the row and column at fault: a missing column, an IGBP
        value missing or repeated, a type code outside 0..20, a vegetation kind other than high,
        low or none, one type named or split two ways.
    """
    path = Path(path) if path is not None else DEFAULT_BATS_TABLE
    if path.is_dir():
        raise InputDataError(f"BATS table {path} is a directory; pass a CSV file")
    try:
        df = read_csv_table(path, "BATS table")
    except OSError as err:  # unreadable (permissions)
        raise InputDataError(f"BATS table {path} cannot be read ({err.strerror or err}); pass a readable CSV file") from None
    missing = [c for c in BATS_TABLE_COLUMNS if c not in df.columns]
    if missing:
        raise InputDataError(f"BATS table {path} lacks the column(s) {', '.join(missing)}; expected "
                             f"{', '.join(BATS_TABLE_COLUMNS)} (and optionally short_name)")
    if df.shape[0] == 0:
        raise InputDataError(f"BATS table {path} has no rows; give one row per IGBP value 0..{N_IGBP - 1}")
    return BatsTable(_check_rows(df, path), path)
