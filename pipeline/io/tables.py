"""Small CSV tables shipped with or given to terrascale (class tables, crosswalks)."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from pipeline.errors import InputDataError


def read_csv_table(path: Path, what: str = "class table") -> pd.DataFrame:
    """Read a CSV table whose whole-line ``#`` comments are skipped; errors name ``what`` and the file."""
    # whole-line comments only: '#' also starts the hex colours inside rows
    try:
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if not ln.lstrip().startswith("#")]
        return pd.read_csv(io.StringIO("\n".join(lines)), skipinitialspace=True)
    except FileNotFoundError:
        raise InputDataError(f"{what} {path} does not exist; pass an existing CSV file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputDataError(f"{what} {path} is not a readable CSV file: {exc}") from None
