"""Open and write NetCDF and Zarr, lazily and atomically, with CF and provenance attributes.

Reading: :func:`open_dataset` takes one NetCDF file, a glob of them, or a Zarr store (v2 or v3)
and returns a lazy, dask-chunked :class:`xarray.Dataset`. The format is decided from the bytes
on disk (NetCDF classic and HDF5 signatures, Zarr metadata files), not from the suffix, so a
mislabelled file gives a clear message rather than a backend's traceback.

Writing: :func:`write` writes to a temporary sibling and renames it into place. A crash mid-way
therefore never leaves a half-written store under the final name, where a later stage would
trust it. An existing path is replaced only by an output of the same kind (a file by a file, a
Zarr store by a Zarr store) and never when it is an input (:func:`check_output_path`, to call
before any work); temporaries left by killed writers are removed by the next write.
``compression_level`` compresses a NetCDF output (zlib + shuffle, chunks of whole maps:
:func:`netcdf_compression`); without it the encoding is left as the caller and the input made it.

Checks on read: :func:`open_dataset` refuses inputs that are not whole (a NetCDF file shorter
than its header implies, a Zarr store with a missing chunk, see :mod:`pipeline.io.integrity`),
data only in sub-groups, CF packing attributes stored as text and unusable lat/lon (empty, NaN,
±inf, beyond ±90°, curvilinear). Every read of values goes through :func:`read_values` (or the
:func:`reading` block): a chunk that does not decode is an :class:`~pipeline.errors.InputDataError`
naming the store, the variable and the chunk.

Validation (:func:`validate_dataset`, :func:`harmonise`) checks coordinates, bounds, units,
ranges and NaN fractions of an input; :func:`find_lat_lon` is the one latitude/longitude finder.

Modules: ``stores`` (open/write NetCDF and Zarr, provenance), ``atomic`` (temp-then-rename for
files and directories), ``netcdf`` (grid and weight files), ``coords`` (the lat/lon finder and
checks of its values), ``integrity`` (complete stores and files), ``reading`` (the read wrapper),
``validate`` (checks and harmonisation), ``tables`` (CSV tables).
"""

from __future__ import annotations

from pipeline.io.atomic import (
    atomic_output,
    check_not_input,
    check_output,
    expect_output,
    is_zarr_store,
    probe_writable,
    remove_path,
    remove_stale_temporaries,
    replace_atomically,
    temporary_sibling,
    write_text_atomically,
)
from pipeline.io.coords import (
    LAT_NAMES,
    LAT_UNITS,
    LON_NAMES,
    LON_UNITS,
    axis_gaps,
    axis_problems,
    check_coordinates,
    curvilinear_message,
    find_lat_lon,
    find_lat_lon_or_none,
    gap_message,
)
from pipeline.io.integrity import check_netcdf_complete, check_zarr_complete, missing_chunks
from pipeline.io.netcdf import open_netcdf
from pipeline.io.reading import DECODE_ERRORS, read_values, reading
from pipeline.io.stores import (
    NETCDF_CHUNK_BYTES,
    NETCDF_SUFFIXES,
    ZARR_SUFFIX,
    check_cf_attributes,
    check_compression_level,
    check_output_path,
    detect_format,
    netcdf_chunks,
    netcdf_compression,
    open_dataset,
    output_format,
    provenance_attrs,
    store_size,
    writable_encoding,
    write,
)
from pipeline.io.tables import read_csv_table
from pipeline.io.validate import (
    KNOWN_VARIABLES,
    ValidationResult,
    VarSpec,
    check_max_nan_fraction,
    derive_bounds,
    harmonise,
    is_unstructured,
    validate_dataset,
)

__all__ = [
    "DECODE_ERRORS",
    "atomic_output",
    "axis_gaps",
    "axis_problems",
    "NETCDF_CHUNK_BYTES",
    "check_cf_attributes",
    "check_compression_level",
    "netcdf_chunks",
    "netcdf_compression",
    "check_coordinates",
    "check_max_nan_fraction",
    "check_netcdf_complete",
    "check_zarr_complete",
    "curvilinear_message",
    "find_lat_lon_or_none",
    "gap_message",
    "missing_chunks",
    "read_values",
    "reading",
    "writable_encoding",
    "check_not_input",
    "check_output",
    "check_output_path",
    "expect_output",
    "is_zarr_store",
    "probe_writable",
    "remove_path",
    "remove_stale_temporaries",
    "KNOWN_VARIABLES",
    "LAT_NAMES",
    "LAT_UNITS",
    "LON_NAMES",
    "LON_UNITS",
    "NETCDF_SUFFIXES",
    "ValidationResult",
    "VarSpec",
    "ZARR_SUFFIX",
    "derive_bounds",
    "detect_format",
    "find_lat_lon",
    "harmonise",
    "is_unstructured",
    "open_dataset",
    "open_netcdf",
    "output_format",
    "provenance_attrs",
    "read_csv_table",
    "replace_atomically",
    "store_size",
    "temporary_sibling",
    "validate_dataset",
    "write",
    "write_text_atomically",
]
