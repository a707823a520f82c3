"""Flatten gridded fields into tables and back, and build the training table's features.

Row order (the contract between :func:`flatten`, :func:`flatten_dask`, the feature table and
:func:`unflatten`)
    One row per (outer index, valid cell). The *outer* dimensions are every dimension of the
    table's variables other than ``lat``/``lon`` (e.g. ``scenario``, ``time``), in the order
    of the target variable (or the first variable that has the most of them). Rows run through
    them in C order (the last outer dimension fastest), and within one outer index through the
    valid cells by ascending ``cell``, the flat C-order index ``i_lat * nlon + i_lon`` of the
    fine grid. The frame's index is a RangeIndex. A dask version is partitioned along the last
    outer dimension and its partitions, concatenated, give exactly the same rows in the same
    order.

Columns
    One per outer dimension (its coordinate: ``time`` as ``datetime64[ns]``, string coordinates
    such as ``scenario`` as categorical), ``cell`` (int32; int64 for grids over 2**31 cells),
    then one per variable, keeping its dtype; variables listed as categorical become a
    categorical column (pandas ``category`` / cudf ``CategoricalDtype``). ``unflatten`` uses
    only the outer-dimension columns and ``cell``, so rows can be filtered, reordered or dropped
    (missing-value policy ``drop``) and still be put back.

Backends
    CPU: numpy gathers (a numba kernel copying contiguous runs of valid cells, or the identity
    view when every cell is valid) into pandas columns without further copies. GPU
    (``backend.is_gpu``): the same code with CuPy gathers into cudf columns; the fine fields of
    the feature table are read from Zarr straight into device memory (``zarr.config.enable_gpu()``
    with KvikIO's ``GDSStore`` when installed, zarr's ``LocalStore`` otherwise), so the fine
    data never makes a host round trip. Only the small coarse (1°, 0.25°) fields are read on the
    host and copied to the device once per partition.

The feature table (:class:`FeatureBuilder`, configured by the ``features:`` section) is
described in the README section "features".

Modules (one concern each; everything public is re-exported here)
    ``device``     backend resolution, host copies, Zarr reads straight into device memory
    ``cells``      the cell index (valid cells in row order) and the gather
    ``columns``    date and categorical columns, frames without copies
    ``flatten``    grids → table (:func:`flatten`, :func:`flatten_dask`)
    ``unflatten``  table → grids (:func:`unflatten`)
    ``broadcast``  coarse → fine broadcasting (parent, nearest, bilinear)
    ``stores``     the input stores: finding, opening, writing the demo ones
    ``static``     static predictors
    ``drivers``    coarse climate drivers: month alignment, lagged means and sums
    ``builder``    :class:`FeatureBuilder`, the training table partition by partition
    ``missing``    the missing-value policy
    ``table``      the Parquet table on disk (write, read, metadata)
    ``stage``      the features stage of a run
"""

from __future__ import annotations

from pipeline.features.broadcast import Broadcast, make_broadcast
from pipeline.features.builder import FeatureBuilder
from pipeline.features.cells import CELL, SPATIAL_DIMS, CellIndex, make_cell_index
from pipeline.features.columns import categories_of, make_categorical, time_values
from pipeline.features.device import get_backend, read_zarr_block_gpu
from pipeline.features.flatten import flatten, flatten_dask
from pipeline.features.lulc import LulcTable, lulc_table
from pipeline.features.missing import apply_missing, fit_missing, missing_policies
from pipeline.features.stage import builder_from_config, make_run_dir, run_features
from pipeline.features.stores import STORE_FILES, find_stores, input_stores, open_stores
from pipeline.features.table import (
    META_FILE,
    PARQUET_DICTIONARY_LIMIT,
    read_feature_table,
    table_meta,
    write_feature_table,
    write_partition,
)
from pipeline.features.unflatten import unflatten

__all__ = [
    "CELL",
    "META_FILE",
    "PARQUET_DICTIONARY_LIMIT",
    "SPATIAL_DIMS",
    "STORE_FILES",
    "Broadcast",
    "LulcTable",
    "CellIndex",
    "FeatureBuilder",
    "apply_missing",
    "builder_from_config",
    "categories_of",
    "find_stores",
    "fit_missing",
    "flatten",
    "flatten_dask",
    "get_backend",
    "input_stores",
    "lulc_table",
    "make_broadcast",
    "make_categorical",
    "make_cell_index",
    "missing_policies",
    "open_stores",
    "read_feature_table",
    "read_zarr_block_gpu",
    "make_run_dir",
    "run_features",
    "table_meta",
    "time_values",
    "unflatten",
    "write_feature_table",
    "write_partition",
]
