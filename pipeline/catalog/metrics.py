"""The metric tables of runs (``metrics/<task>/metrics.csv``), alone or side by side."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.catalog.index import read_manifest, resolve_run
from pipeline.errors import InputDataError

__all__ = ["METRICS_COLUMNS", "compare_runs", "read_metrics"]

#: the columns of a run's ``metrics/<task>/metrics.csv``
METRICS_COLUMNS: tuple[str, ...] = ("task", "model", "family", "split", "metric", "value", "lo", "hi")


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise InputDataError(f"{path} cannot be read as a metrics table ({err}); run the evaluate stage again") from None
    missing = [c for c in METRICS_COLUMNS if c not in df.columns]
    if missing:
        raise InputDataError(f"{path} lacks the column(s) {', '.join(missing)} of a metrics table "
                             f"({', '.join(METRICS_COLUMNS)}); run the evaluate stage again")
    df = df[list(METRICS_COLUMNS)].copy()
    for col in ("task", "model", "family", "split", "metric"):
        df[col] = df[col].astype(str)
    for col in ("value", "lo", "hi"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def read_metrics(run_dir: str | Path, task: str | None = None) -> pd.DataFrame:
    """The metrics of one run: every ``metrics/<task>/metrics.csv`` of it, concatenated.

    Parameters
    ----------
    run_dir : str or Path
        The run directory.
    task : str, optional
        Only this task's table.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`METRICS_COLUMNS`; empty when the run has not been evaluated.

    Raises
    ------
    InputDataError
        When a table exists but cannot be read or lacks columns.
    """
    run_dir = Path(run_dir)
    files = sorted((run_dir / "metrics").glob("*/metrics.csv"))
    if task is not None:
        files = [f for f in files if f.parent.name == task]
    frames = [_read_csv(f) for f in files]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=float if c in ("value", "lo", "hi") else object)
                             for c in METRICS_COLUMNS})
    return pd.concat(frames, ignore_index=True)


def compare_runs(root: str | Path, runs: list[str], *, task: str | None = None, split: str | None = None,
                 metric: str | None = None) -> pd.DataFrame:
    """The metric tables of several runs, one below the other, with a ``run`` column.

    Parameters
    ----------
    root : str or Path
        The output root.
    runs : list of str
        Run names under ``root`` (or run directories).
    task, split, metric : str, optional
        Keep only these rows.

    Returns
    -------
    pandas.DataFrame
        Columns ``run`` then :data:`METRICS_COLUMNS`, in the order of ``runs``.

    Raises
    ------
    InputDataError
        An unknown run (close run names listed), a run without any metrics table (or none of
        the selected ``task``), or a filter that leaves no row.
    """
    if not runs:
        raise InputDataError("compare needs at least one run name")
    frames = []
    for run in runs:
        run_dir = resolve_run(root, run)
        read_manifest(run_dir)  # a run directory, not any folder with a metrics table
        name = run_dir.name
        df = read_metrics(run_dir, task)
        if df.empty:
            what = f"metrics/{task}/metrics.csv" if task else "metrics/<task>/metrics.csv"
            raise InputDataError(f"run {name} ({run_dir}) has no {what}; run its evaluate stage first "
                                 "(`terrascale evaluate CONFIG`)")
        df.insert(0, "run", name)
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    for col, want in (("split", split), ("metric", metric)):
        if want is not None:
            kept = out[out[col] == want]
            if kept.empty:
                have = ", ".join(sorted(out[col].unique()))
                raise InputDataError(f"no metric row has {col} {want!r} in the runs {', '.join(runs)}; "
                                     f"available: {have}")
            out = kept
    return out.reset_index(drop=True)
