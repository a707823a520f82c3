"""The feature table on disk: Parquet partitions plus ``features.json``, written atomically, read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from pipeline.errors import InputDataError
from pipeline.features.device import get_backend
from pipeline.features.missing import apply_missing, fit_missing, missing_policies
from pipeline.io import atomic_output, check_output

if TYPE_CHECKING:
    from pipeline.features.builder import FeatureBuilder

_FEATURE_TABLE_VERSION = 1

META_FILE = "features.json"

#: Largest dictionary page of a Parquet column chunk before the writer falls back to plain
#: encoding (pyarrow's default is 1 MiB). See :func:`write_partition`.
PARQUET_DICTIONARY_LIMIT = 64 * 1024


def write_partition(part, path: str | Path) -> None:
    """Write one partition (pandas frame) as a Parquet file, without a second copy of it.

    The file is what ``part.to_parquet(path, index=False)`` writes (same Arrow schema with the
    pandas metadata, snappy, default row groups), except the dictionary-page limit. The Arrow
    table shares the frame's buffers (``Table.from_pandas`` copies no primitive column; NaN of
    float columns become nulls through a validity bitmap, so only the bitmaps are new). The
    transient of the write is the writer's encoding: with pyarrow's default 1 MiB dictionary
    limit every column starts dictionary-encoded and a high-cardinality column (``cell``, the
    float values) keeps its hash table and buffered pages until the dictionary overflows,
    which measured 2.2x the partition (21.6 MiB for a 9.8 MiB partition) and a larger file.
    With :data:`PARQUET_DICTIONARY_LIMIT` (64 KiB) such columns fall back to plain encoding
    early while low-cardinality ones (time, categoricals, fold, year, ...) keep their
    dictionary; the writer then holds about 2.4 MiB for the same partition, and the file is
    smaller. Readers see no difference (encodings are not part of the schema).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(part, pd.DataFrame):  # cudf and others: their own writer
        part.to_parquet(path, index=False)
        return
    table = pa.Table.from_pandas(part, preserve_index=False)
    if part.attrs:  # as pandas' to_parquet does
        meta = dict(table.schema.metadata or {})
        meta[b"PANDAS_ATTRS"] = json.dumps(part.attrs).encode()
        table = table.replace_schema_metadata(meta)
    try:
        pq.write_table(table, str(path), compression="snappy", dictionary_pagesize_limit=PARQUET_DICTIONARY_LIMIT)
    finally:
        del table


FEATURE_TABLE_KIND = f"a feature table (Parquet partitions and {META_FILE}, written by terrascale)"


def is_feature_table(path: str | Path) -> bool:
    """Whether ``path`` is a feature table directory written by :func:`write_feature_table`.

    Parameters
    ----------
    path : str or Path
        Directory to look at.

    Returns
    -------
    bool
        ``True`` when it holds a readable ``features.json`` listing its partitions.
    """
    meta = Path(path) / META_FILE
    try:
        record = json.loads(meta.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and "partitions" in record and "version" in record


def check_feature_table_output(out_dir: str | Path) -> Path:
    """Refuse ``out_dir`` unless it is absent, empty or an earlier feature table; before any work.

    Parameters
    ----------
    out_dir : str or Path
        Directory the table is written to.

    Returns
    -------
    pathlib.Path
        ``out_dir`` as a Path.

    Raises
    ------
    InputDataError
        When a file or another directory is in the way (it is never deleted).
    """
    return check_output(out_dir, directory=True, kind=FEATURE_TABLE_KIND, replaces=is_feature_table)


def write_feature_table(builder: FeatureBuilder, out_dir: str | Path, *, progress=None) -> dict:
    """Write the table as Parquet partitions into ``out_dir`` atomically (temp dir + rename).

    Files ``part-00000.parquet``, … hold the partitions in row order (after the missing-value
    policy); ``features.json`` holds the schema, categories, missing-value record, split
    summary, the grid and the row-order contract. Nothing is left under ``out_dir`` if writing
    fails. An existing ``out_dir`` is replaced only when it is an earlier feature table (or
    empty); anything else is refused before any work (:func:`check_feature_table_output`).
    Returns the metadata dict.
    """
    from pipeline.features.splits import SplitSummary

    out_dir = check_feature_table_output(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    meta0 = builder.meta()
    cats = builder.categorical_columns()
    policies = missing_policies(list(meta0.columns), builder.features, builder.target, cats)
    needs_fit = any(p["action"] == "mean" for p in policies.values())
    record = fit_missing(builder.iter_partitions(), policies) if needs_fit else fit_missing([], policies)
    summary = SplitSummary(builder.index.lat, builder.index.lon) if builder.cell_split is not None else None
    nmiss = dict.fromkeys(policies, 0)
    rows = mem = 0
    files = []
    # the temporary is removed if anything fails, and renamed onto out_dir when all went well
    with atomic_output(out_dir, directory=True, kind=FEATURE_TABLE_KIND, replaces=is_feature_table) as tmp:
        tmp.mkdir()
        for i in range(builder.npartitions):
            part, counts = apply_missing(builder.partition(i), record)
            for c, n in counts.items():
                nmiss[c] += n
            if summary is not None:
                summary.add(part)
            name = f"part-{i:05d}.parquet"
            write_partition(part, tmp / name)
            files.append(name)
            rows += len(part)
            mem += int(part.memory_usage(deep=True).sum())
            if progress is not None:
                progress(i + 1, builder.npartitions)
            del part
        for c in record["columns"]:
            record["columns"][c]["n_missing"] = nmiss[c]
        meta = {
            "version": _FEATURE_TABLE_VERSION,
            "target": builder.target,
            "rows": rows,
            "rows_before_missing_policy": builder.nrows,
            "columns": {c: str(t) for c, t in meta0.dtypes.items()},
            "categories": {k: [_jsonable(x) for x in v] for k, v in cats.items()},
            "memory_bytes": mem,
            "partitions": files,
            "missing": record,
            "splits": builder.cell_split.settings if builder.cell_split is not None else None,
            "split_summary": summary.table().to_dict(orient="records") if summary is not None else None,
            "row_order": "scenario, time (C order), then cell = i_lat * nlon + i_lon ascending",
            "grid": {"lat": builder.index.lat.tolist(), "lon": builder.index.lon.tolist()},
            "times": [str(t) for t in pd.DatetimeIndex(builder.times)],
            "scenarios": [s for s in builder.scenarios if s is not None],
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1, default=_jsonable))
    return meta


def _jsonable(x):
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x if isinstance(x, (int, float, str, bool, type(None))) else str(x)


def read_feature_table(path: str | Path, *, backend=None, lazy: bool = False):
    """Read a table written by :func:`write_feature_table` in row order.

    ``lazy=True`` returns a dask DataFrame (one partition per file) for partition-by-partition
    training; otherwise a pandas (CPU) or cudf (GPU) frame.
    """
    path = Path(path)
    meta_path = path / META_FILE
    if not meta_path.exists():
        raise InputDataError(f"{path} is not a feature table (no {META_FILE}); run `terrascale features CONFIG` first")
    meta = json.loads(meta_path.read_text())
    files = [str(path / f) for f in meta["partitions"]]
    be = get_backend(backend)
    # Parquet keeps only the categories a file uses: restore the table's full category lists
    xdf = pd if lazy and not be.is_gpu else be.xdf
    dtypes = {c: xdf.CategoricalDtype(categories=v) for c, v in meta["categories"].items()}
    if lazy:
        import dask.dataframe as dd

        ddf = dd.read_parquet(files)
        return ddf.astype({c: d for c, d in dtypes.items() if c in ddf.columns})
    if be.is_gpu:
        df = be.xdf.read_parquet(files)
    else:
        df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True) if files else pd.DataFrame()
    for c, d in dtypes.items():
        if c in df.columns:
            df[c] = df[c].astype(d)
    return df


def table_meta(path: str | Path) -> dict:
    """The ``features.json`` metadata of a written table."""
    return json.loads((Path(path) / META_FILE).read_text())
