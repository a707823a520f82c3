"""Class → PFT crosswalk tables: read (CSV of any class scheme), check and turn into a matrix.

Layout of a crosswalk CSV (whole-line ``#`` comments allowed)::

    value,short_name,tree,grass,crop
    1,ENF,1.0,0,0
    10,GRA,0,1.0,0

* the first column holds the class codes (whole numbers, each class once);
* label columns are ignored: a column whose header is a label name (:data:`LABEL_COLUMNS`, e.g.
  ``short_name``, ``name``) or whose every value is text that is not a number;
* every other column is one PFT: every cell a number >= 0 (write 0 for "none"; an empty cell is
  an error, not a silent NaN that would blank the PFT in every target cell), and the PFT
  fractions of a row sum to 1.

Every problem is an :class:`~pipeline.errors.InputDataError` that starts with
``PFT crosswalk FILE:`` and names the row (by its class) and the column.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError, InputDataError
from pipeline.io import read_csv_table

#: Headers (compared without case) of columns that label a class rather than give a PFT fraction.
LABEL_COLUMNS = frozenset({"short_name", "name", "label", "long_name", "class_name", "description", "abbreviation",
                           "colour", "color", "group", "comment", "notes"})

#: Largest deviation of a row's sum from 1.
SUM_TOLERANCE = 1e-6


def crosswalk_matrix(crosswalk, classes):
    """class→PFT table → (pft names, matrix (n_classes, n_pft)); rows must sum to 1."""
    if isinstance(crosswalk, (str, Path)):
        table, source = read_crosswalk(crosswalk), str(crosswalk)
    elif isinstance(crosswalk, dict):
        # a dict may leave out the PFTs a class has none of: those are 0
        table = pd.DataFrame.from_dict({k: v for k, v in crosswalk.items()}, orient="index").fillna(0.0)
        source = "(dict)"
        table = check_crosswalk(table, source)
    elif isinstance(crosswalk, pd.DataFrame):
        source = "(DataFrame)"
        table = check_crosswalk(crosswalk, source)
    else:
        raise ConfigError("crosswalk must be a CSV path, a dict {class: {pft: fraction}} or a pandas DataFrame")
    missing = [c for c in classes if c not in table.index]
    if missing:
        # ConfigError: the classes declared for the data (--classes, flag_values) and the table disagree
        raise ConfigError(f"PFT crosswalk {source}: no row for the classes {missing} of the data; add a row for each "
                          "(fractions per PFT summing to 1), or leave them out of the declared classes")
    return [str(c) for c in table.columns], table.loc[classes].to_numpy(dtype=np.float64)


def _number(v) -> float | None:
    """``v`` as a float, None when it is empty (NaN); raises ValueError for text that is not a number."""
    if isinstance(v, str):
        v = v.strip()
        if not v:
            return None
        return float(v)
    if v is None:
        return None
    f = float(v)
    return None if np.isnan(f) else f


def _is_text(v) -> bool:
    """Whether ``v`` is non-empty text that is not a number."""
    if not isinstance(v, str) or not v.strip():
        return False
    try:
        float(v)
    except ValueError:
        return True
    return False


def _class_codes(index, source: str) -> list[int]:
    codes = []
    for k, v in enumerate(index):
        try:
            f = _number(v)
        except (TypeError, ValueError):
            f = float("nan")
        if f is None:
            raise InputDataError(f"PFT crosswalk {source}: data row {k + 1} has no class code in its first column; "
                                 "give every row its class code")
        if not (np.isfinite(f) and f == int(f)):
            raise InputDataError(f"PFT crosswalk {source}: data row {k + 1} has the class code {v!r} in its first "
                                 "column; class codes are whole numbers")
        codes.append(int(f))
    seen: dict[int, list[int]] = {}
    for k, c in enumerate(codes):
        seen.setdefault(c, []).append(k + 1)
    dup = {c: rows for c, rows in seen.items() if len(rows) > 1}
    if dup:
        c, rows = next(iter(dup.items()))
        more = f" (and {len(dup) - 1} more class(es) repeated)" if len(dup) > 1 else ""
        raise InputDataError(f"PFT crosswalk {source}: class {c} has {len(rows)} rows (data rows "
                             f"{', '.join(map(str, rows))}){more}; give each class exactly one row")
    return codes


def check_crosswalk(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check a class → PFT table (index: class codes, one column per PFT) and return it as floats.

    Parameters
    ----------
    df : pandas.DataFrame
        Index: class codes; columns: PFTs; cells: fractions.
    source : str
        The file (or ``(dict)``, ``(DataFrame)``) for messages.

    Returns
    -------
    pandas.DataFrame
        Index int64 class codes, float64 columns, rows summing to 1.

    Raises
    ------
    InputDataError
        ``PFT crosswalk SOURCE: ...`` naming the row (class) and column of a bad cell: class codes
        not whole numbers or repeated, an empty or non-numeric cell, a negative fraction, a row
        not summing to 1, no row, no PFT column.
    """
    if df.shape[0] == 0:
        raise InputDataError(f"PFT crosswalk {source}: has no rows; add one row per class (class code, then the "
                             "fraction of each PFT)")
    if df.shape[1] == 0:
        raise InputDataError(f"PFT crosswalk {source}: has no PFT column; give one numeric column per PFT after the "
                             "class code")
    codes = _class_codes(df.index, source)
    dup_cols = [c for c in df.columns if list(df.columns).count(c) > 1]
    if dup_cols:
        raise InputDataError(f"PFT crosswalk {source}: the column {dup_cols[0]!r} appears more than once; give each "
                             "PFT one column")
    out = np.empty(df.shape, dtype=np.float64)
    for j, col in enumerate(df.columns):
        for i, v in enumerate(df.iloc[:, j].tolist()):
            try:
                f = _number(v)
            except (TypeError, ValueError):
                raise InputDataError(f"PFT crosswalk {source}: the cell of class {codes[i]}, column {col!r} holds "
                                     f"{v!r}, which is not a number; write the PFT fraction (0 for none)") from None
            if f is None:
                raise InputDataError(f"PFT crosswalk {source}: the cell of class {codes[i]}, column {col!r} is empty; "
                                     "write the PFT fraction (0 for none): an empty cell would make this PFT NaN "
                                     "wherever the class occurs")
            if not np.isfinite(f) or f < 0:
                raise InputDataError(f"PFT crosswalk {source}: the cell of class {codes[i]}, column {col!r} is {f!r}; "
                                     "fractions must be finite numbers >= 0")
            out[i, j] = f
    table = pd.DataFrame(out, index=pd.Index(codes, dtype=np.int64), columns=[str(c) for c in df.columns])
    sums = table.sum(axis=1)
    bad = sums.index[(sums - 1).abs() > SUM_TOLERANCE].tolist()
    if bad:
        raise InputDataError(
            f"PFT crosswalk {source}: the rows for class value(s) {bad} sum to {sums[bad].round(4).tolist()}, not 1; "
            "make each row's PFT fractions sum to 1"
        )
    return table


def _duplicate_headers(columns) -> list[str]:
    # pandas renames a repeated header 'tree' to 'tree.1', 'tree.2' ...
    names = set(map(str, columns))
    return [m[1] for c in map(str, columns) if (m := re.fullmatch(r"(.+)\.(\d+)", c)) and m[1] in names]


def read_crosswalk(path: "str | Path") -> pd.DataFrame:
    """Read a class → PFT crosswalk CSV of any class scheme (layout: the module docstring).

    Parameters
    ----------
    path : str or Path
        The CSV file.

    Returns
    -------
    pandas.DataFrame
        Index: int64 class codes; one float64 column per PFT; rows summing to 1.

    Raises
    ------
    InputDataError
        ``PFT crosswalk FILE: ...`` with the row and column of the problem.
    """
    path = Path(path)
    if path.is_dir():
        raise InputDataError(f"PFT crosswalk {path}: is a directory; pass a CSV file")
    try:
        df = read_csv_table(path, "PFT crosswalk")
    except InputDataError as err:  # the table reader says 'PFT crosswalk FILE does not exist ...'
        msg = str(err)
        head = f"PFT crosswalk {path} "
        raise InputDataError(f"PFT crosswalk {path}: {msg[len(head):]}" if msg.startswith(head) else msg) from None
    except OSError as err:  # unreadable (permissions)
        raise InputDataError(f"PFT crosswalk {path}: cannot be read ({err.strerror or err}); pass a readable CSV "
                             "file") from None
    source = str(path)
    dup = _duplicate_headers(df.columns)
    if dup:
        raise InputDataError(f"PFT crosswalk {source}: the column {dup[0]!r} appears more than once in the header; "
                             "give each PFT one column")
    if df.shape[0] == 0:
        raise InputDataError(f"PFT crosswalk {source}: has no rows (only a header); add one row per class (class "
                             "code, then the fraction of each PFT)")
    key = df.columns[0]
    labels = [c for c in df.columns[1:] if str(c).strip().lower() in LABEL_COLUMNS
              or (not pd.api.types.is_numeric_dtype(df[c])
                  and all(_is_text(v) for v in df[c].tolist() if not (isinstance(v, float) and np.isnan(v)))
                  and df[c].notna().any())]
    table = df.set_index(key).drop(columns=labels)
    if table.shape[1] == 0:
        raise InputDataError(f"PFT crosswalk {source}: has no PFT column (only the class codes"
                             + (f" and the label column(s) {', '.join(map(str, labels))}" if labels else "")
                             + "); give one numeric column per PFT")
    return check_crosswalk(table, source)
