"""Class → PFT crosswalk tables: read (CSV of any class scheme), check and turn into a matrix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import ConfigError, InputDataError
from pipeline.io import read_csv_table


def crosswalk_matrix(crosswalk, classes):
    """class→PFT table → (pft names, matrix (n_classes, n_pft)); rows must sum to 1."""
    import pandas as pd

    from pipeline.aggregate.crosswalk import check_crosswalk, read_crosswalk

    if isinstance(crosswalk, (str, Path)):
        table = read_crosswalk(crosswalk)
    elif isinstance(crosswalk, dict):
        table = pd.DataFrame.from_dict({int(k): v for k, v in crosswalk.items()}, orient="index").fillna(0.0)
        table = check_crosswalk(table, "(dict)")
    elif isinstance(crosswalk, pd.DataFrame):
        table = check_crosswalk(crosswalk, "(DataFrame)")
    else:
        raise ConfigError("crosswalk must be a CSV path, a dict {class: {pft: fraction}} or a pandas DataFrame")
    missing = [c for c in classes if c not in table.index]
    if missing:
        raise ConfigError(f"crosswalk has no row for classes {missing}; add them (fractions per PFT summing to 1)")
    return [str(c) for c in table.columns], table.loc[classes].to_numpy(dtype=np.float64)


def check_crosswalk(df: pd.DataFrame, source: str) -> pd.DataFrame:
    """Check a class → PFT table (index: class codes, one column per PFT): numbers >= 0, rows summing to 1."""
    try:
        df = df.astype(np.float64)
        df.index = df.index.astype(np.int64)
    except (ValueError, TypeError):
        raise InputDataError(f"PFT crosswalk {source}: class codes must be integers and PFT columns numbers") from None
    if df.shape[1] == 0:
        raise InputDataError(f"PFT crosswalk {source} has no PFT column; give one numeric column per PFT")
    if (df < 0).any().any():
        raise InputDataError(f"PFT crosswalk {source}: fractions must be >= 0")
    sums = df.sum(axis=1)
    bad = sums.index[(sums - 1).abs() > 1e-6].tolist()
    if bad:
        raise InputDataError(
            f"PFT crosswalk {source}: the rows for class value(s) {bad} sum to {sums[bad].round(4).tolist()}, not 1; "
            "make each row's PFT fractions sum to 1"
        )
    return df


def read_crosswalk(path: "str | Path") -> pd.DataFrame:
    """Read a class → PFT crosswalk CSV of any class scheme.

    The first column holds the class codes; text columns (labels such as ``short_name``) are
    ignored; every numeric column is one PFT. Rows are checked by :func:`check_crosswalk`.
    """
    path = Path(path)
    df = read_csv_table(path, "PFT crosswalk")
    key = df.columns[0]
    labels = [c for c in df.columns[1:] if not pd.api.types.is_numeric_dtype(df[c])]
    return check_crosswalk(df.set_index(key).drop(columns=labels), str(path))
