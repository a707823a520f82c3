"""The missing-value policy of the feature table: per-column policies, fitted means, applying them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence

from pipeline.errors import ConfigError, InputDataError
from pipeline.features.cells import CELL

#: Columns that are never filled or dropped.
_STRUCTURAL = {"scenario", "time", CELL, "fold", "split"}


def missing_policies(columns: Sequence[str], features, target: str | None = None, categorical: Iterable[str] = ()) -> dict[str, dict]:
    """The policy of every value column: ``features.missing[col]``, the target ``drop``, else the default.

    Raises :class:`ConfigError` for a policy naming a column the table does not have, or a
    ``mean`` policy on a categorical column.
    """
    cols = [c for c in columns if c not in _STRUCTURAL]
    unknown = [c for c in features.missing if c not in cols]
    if unknown:
        raise ConfigError(
            f"features.missing names column(s) {', '.join(unknown)} that the table does not have; its columns are: {', '.join(cols)}"
        )
    cats = set(categorical)
    out = {}
    for c in cols:
        if c in features.missing:
            pol = features.missing[c]
        elif c == target:
            pol = type(features.missing_default)(action="drop")
        else:
            pol = features.missing_default
        if pol.action == "mean" and c in cats:
            raise ConfigError(f"features.missing.{c}: 'mean' is not defined for the categorical column '{c}'; use drop, constant or keep")
        out[c] = {"action": pol.action, "value": pol.value}
    return out


def _frames(source) -> Iterator:
    if hasattr(source, "npartitions") and hasattr(source, "partitions"):
        for i in range(source.npartitions):
            yield source.partitions[i].compute()
    elif hasattr(source, "columns"):
        yield source
    else:
        yield from source


def fit_missing(source, policies: Mapping[str, dict]) -> dict:
    """Resolve ``mean`` policies to numbers: the mean over the training rows.

    ``source`` is a frame, a dask frame or an iterable of frames (read one at a time). Training
    rows are those with ``split == "train"`` when the table has a split column, else all rows.
    Returns the record (``{"columns": {col: {"action", "value"}}}``) that a model stores with
    itself and :func:`apply_missing` applies.
    """
    record = {"columns": {c: dict(p) for c, p in policies.items()}, "mean_over": "all rows"}
    means = [c for c, p in policies.items() if p["action"] == "mean"]
    if means:
        sums = dict.fromkeys(means, 0.0)
        counts = dict.fromkeys(means, 0)
        for df in _frames(source):
            rows = df
            if "split" in df.columns:
                rows = df[df["split"] == "train"]
                record["mean_over"] = "training rows (split == 'train')"
            for c in means:
                col = rows[c].astype("float64")  # float32 partial sums would lose digits
                sums[c] += float(col.sum())
                counts[c] += int(col.count())
        for c in means:
            if counts[c] == 0:
                raise InputDataError(f"column '{c}' has no value in the training rows, so its mean (features.missing.{c}: mean) is undefined")
            record["columns"][c]["value"] = sums[c] / counts[c]
    return record


def apply_missing(df, record: Mapping):
    """Apply a missing-value record to one frame; returns ``(frame, {col: n_missing})``.

    ``drop`` removes rows with a missing value in that column, ``constant``/``mean`` fill with
    the recorded value, ``keep`` leaves NaN (for models that accept it). The index is reset.
    """
    counts = {}
    drop = None
    fills = {}
    for c, p in record["columns"].items():
        if c not in df.columns:
            continue
        na = df[c].isna()
        n = int(na.sum())
        counts[c] = n
        if not n:
            continue
        if p["action"] == "drop":
            drop = na if drop is None else (drop | na)
        elif p["action"] in ("constant", "mean"):
            fills[c] = p["value"]
    if fills:
        df = df.copy(deep=False) if hasattr(df, "copy") else df
        for c, v in fills.items():
            col = df[c]
            if str(col.dtype) == "category" and v not in list(col.cat.categories.to_numpy() if hasattr(col.cat.categories, "to_numpy") else col.cat.categories):
                raise ConfigError(f"features.missing.{c}: value {v!r} is not a category of '{c}' ({list(col.cat.categories)})")
            df[c] = col.fillna(v)
    if drop is not None:
        df = df[~drop].reset_index(drop=True)
    return df, counts
