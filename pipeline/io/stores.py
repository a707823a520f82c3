"""Open and write NetCDF and Zarr, lazily and atomically, with CF and provenance attributes.
"""

from __future__ import annotations

import datetime as _dt
import glob as _glob
import json
import sys
from pathlib import Path

import numpy as np
import xarray as xr

from pipeline import __version__
from pipeline.errors import ConfigError, InputDataError
from pipeline.io.atomic import ZARR_METADATA_FILES, atomic_output, check_output, is_zarr_store, probe_writable
from pipeline.io.integrity import mark_complete
from pipeline.io.reading import DECODE_ERRORS, CheckedGetter, netcdf_lock

NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf")


ZARR_SUFFIX = ".zarr"


_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


_ZARR_META = ZARR_METADATA_FILES


def detect_format(path: str | Path) -> str:
    """Return ``"netcdf"`` or ``"zarr"`` for an existing path, else raise :class:`InputDataError`."""
    path = Path(path)
    if not path.exists():
        raise InputDataError(f"{path} does not exist; check the path (NetCDF file or Zarr store expected)")
    if path.is_dir():
        if any((path / m).exists() for m in _ZARR_META):
            return "zarr"
        raise InputDataError(
            f"{path} is a directory but not a Zarr store (no zarr.json or .zgroup inside); pass a NetCDF file or a Zarr store"
        )
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head[:3] == b"CDF" or head == _HDF5_MAGIC:
        return "netcdf"
    raise InputDataError(
        f"{path} is neither NetCDF nor Zarr (its first bytes are {head[:4]!r}); convert it with "
        "`cdo -f nc4 copy IN OUT.nc` or pass a .nc file or a .zarr store"
    )


def _expand(path_or_glob: str | Path) -> list[Path]:
    text = str(path_or_glob)
    # A file whose name holds [...] (or * or ?) is opened as named when it exists: a pattern
    # only when nothing has that exact name.
    if any(ch in text for ch in "*?[") and not Path(text).exists():
        paths = sorted(Path(p) for p in _glob.glob(text))
        if not paths:
            raise InputDataError(f"no file matches the pattern {text}; check the directory and the wildcard")
        return paths
    return [Path(text)]


def open_dataset(path_or_glob: str | Path, *, chunks: dict | str | None = "auto",
                 missing_chunks: str = "auto") -> xr.Dataset:
    """Open NetCDF (one file or a glob of many) or Zarr (v2/v3) lazily, dask-chunked, after checking it.

    Before anything is read, every input is checked to be whole: a NetCDF file as long as its
    header implies (:func:`pipeline.io.integrity.check_netcdf_complete`), a Zarr store with
    every chunk of every array present (:func:`pipeline.io.integrity.check_zarr_complete`: an
    error for stores terrascale wrote, a warning for others).
    After opening: data in sub-groups only, CF packing attributes stored as text, and lat/lon
    coordinates no stage can use (empty, NaN, infinite, beyond ±90°, curvilinear) are errors.
    Each variable's ``encoding["source"]`` names its file or store, for the messages of
    :func:`pipeline.io.read_values`.

    Parameters
    ----------
    path_or_glob
        A ``.nc`` file, a glob such as ``"lai_*.nc"`` (combined by coordinates), or a Zarr store.
        An existing path is opened as named even when it holds glob characters.
    chunks
        dask chunks passed to xarray; ``"auto"`` lets dask choose; ``None``: no dask.
    missing_chunks
        Missing chunks of a Zarr store: ``"auto"`` (refuse a store terrascale wrote, warn about
        others), ``"error"`` (refuse any) or ``"allow"`` (read them as fill values, e.g. to write
        a complete copy of a store whose writer skipped all-fill chunks).

    Returns
    -------
    xarray.Dataset
        Lazy dataset; nothing is read until computed.

    Raises
    ------
    InputDataError
        Naming the file, the variable and the fix.
    """
    from pipeline.io.coords import check_coordinates
    from pipeline.io.integrity import check_netcdf_complete, check_zarr_complete

    paths = _expand(path_or_glob)
    formats = {detect_format(p) for p in paths}
    if len(formats) > 1:
        raise InputDataError(f"{path_or_glob} mixes NetCDF and Zarr inputs; open them separately")
    fmt = formats.pop()
    for p in paths:
        if fmt == "netcdf":
            check_netcdf_complete(p)
        else:
            check_zarr_complete(p, policy=missing_chunks)
    source = str(path_or_glob) if len(paths) > 1 else str(paths[0])
    try:
        ds = _open(paths, fmt, chunks, source)
        if not ds.data_vars:
            _refuse_groups_only(paths[0], fmt)
        check_cf_attributes(ds, source)
        check_coordinates(ds, source)  # reads a non-index lat/lon (cells of an unstructured grid)
    except InputDataError:
        raise
    except (*DECODE_ERRORS, KeyError) as err:
        raise _open_error(path_or_glob, paths, fmt, err) from None
    except (TypeError, ArithmeticError):
        # dask sizes chunks by the decoded dtype: a text scale_factor fails there, before any check
        problem = next(filter(None, (_raw_text_attribute(p, fmt) for p in paths)), None)
        if problem:
            raise InputDataError(problem) from None
        raise
    for var in ds.variables.values():
        var.encoding["source"] = source
    return ds


def _open(paths: list[Path], fmt: str, chunks, source: str) -> xr.Dataset:
    # every dask chunk is read through CheckedGetter: a chunk that does not decode is one clear error
    kw = {"from_array_kwargs": {"getitem": CheckedGetter(source)}} if chunks is not None else {}
    if fmt == "zarr":
        if len(paths) > 1:
            return xr.open_mfdataset(paths, engine="zarr", chunks=chunks, combine="by_coords", **kw)
        return xr.open_zarr(paths[0], chunks=chunks, consolidated=_is_consolidated(paths[0]), **kw)
    if len(paths) > 1:
        return xr.open_mfdataset(paths, chunks=chunks, combine="by_coords", engine="netcdf4", **kw)
    return xr.open_dataset(paths[0], chunks=chunks, engine="netcdf4", **kw)


def _open_error(path_or_glob, paths: list[Path], fmt: str, err: BaseException) -> InputDataError:
    """The error of an open that failed: a text attribute, a corrupt coordinate chunk, or generic."""
    from pipeline.io.integrity import zarr_arrays
    from pipeline.io.reading import describe_region, locate_bad_chunk

    for p in paths:
        problem = _raw_text_attribute(p, fmt)
        if problem:
            return InputDataError(problem)
        if fmt == "zarr":
            for meta in zarr_arrays(p):  # coordinates are read at open: look for their bad chunk
                if len(meta.shape) == 1:
                    found = locate_bad_chunk(p, meta.name, budget_s=2.0)
                    if found:
                        return InputDataError(
                            f"{p}: variable '{meta.name}': chunk {found[0]} ({describe_region(found[1])}) cannot be "
                            f"decoded ({type(err).__name__}: {err}); the store is corrupt: re-create it")
    return InputDataError(
        f"{path_or_glob} cannot be read as {fmt} ({type(err).__name__}: {err}); the file may be truncated "
        "or corrupt: re-create or re-download it"
    )


def _netcdf_groups(path: Path) -> list[str]:
    import netCDF4

    try:
        with netcdf_lock(), netCDF4.Dataset(path, "r") as nc:
            out = []

            def walk(g, prefix):
                for name, sub in g.groups.items():
                    full = f"{prefix}/{name}" if prefix else name
                    if sub.variables:
                        out.append(full)
                    walk(sub, full)

            walk(nc, "")
            return out
    except OSError:
        return []


def _refuse_groups_only(path: Path, fmt: str) -> None:
    """Raise when the root group is empty but sub-groups hold the data (xarray reads the root only)."""
    from pipeline.io.integrity import zarr_groups

    groups = _netcdf_groups(path) if fmt == "netcdf" else zarr_groups(path)
    if not groups:
        return
    listed = ", ".join(groups)
    g = groups[0]
    if fmt == "netcdf":
        how = (f"extract one into a flat file first, e.g. `ncks -G : -g {g} {path} OUT.nc` (NCO), or in Python "
               f"xarray.open_dataset({str(path)!r}, group='{g}').to_netcdf('OUT.nc'), and pass OUT.nc")
    else:
        how = (f"write that group as a store of its own (in Python: xarray.open_zarr({str(path)!r}, group='{g}')"
               ".to_zarr('OUT.zarr')) and pass OUT.zarr")
    raise InputDataError(f"{path}: the root group holds no variables; the data are in group(s) {listed}; {how}")


_PACKING = ("scale_factor", "add_offset", "_FillValue", "missing_value")


def _is_text(value) -> bool:
    if isinstance(value, (str, bytes)):
        return True
    return isinstance(value, np.ndarray) and value.dtype.kind in "USO"


def check_cf_attributes(ds: xr.Dataset, source: str) -> None:
    """Raise :class:`InputDataError` for a numeric variable whose scale_factor, add_offset,
    _FillValue or missing_value is stored as text: decoding would fail on the first read (or
    silently not mask)."""
    for name, var in ds.variables.items():
        dtype = var.encoding.get("dtype", var.dtype)
        for key in _PACKING:
            msg = _text_attribute_message(source, str(name), key, var.encoding.get(key, var.attrs.get(key)), dtype)
            if msg:
                raise InputDataError(msg)


_NCO_TYPES = {"f4": "f", "f8": "d", "i1": "b", "u1": "ub", "i2": "s", "u2": "us", "i4": "l", "u4": "ul",
              "i8": "ll", "u8": "ull"}


def _text_attribute_message(source, name: str, key: str, value, dtype) -> str | None:
    """The message for a CF packing attribute stored as text on a numeric variable, else None."""
    if value is None or not _is_text(value) or np.dtype(dtype).kind not in "biufc":
        return None
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    try:
        number = repr(float(text))
    except ValueError:
        number = "NUMBER"
    nc_type = "d" if key in ("scale_factor", "add_offset") else _NCO_TYPES.get(np.dtype(dtype).str[1:], "d")
    fix = (f"`ncatted -O -a {key},{name},o,{nc_type},{number} {source}`" if Path(str(source)).is_file()
           else f"rewrite the attribute as a number in the metadata of '{name}' in {source} (or re-create the store)")
    return (f"{source}: variable '{name}' has {key} {text!r} stored as text; CF needs a number "
            f"(of the variable's type for {key}): fix it with {fix}")


def _raw_text_attribute(path: Path, fmt: str) -> str | None:
    """A CF packing attribute stored as text, read from the file's own metadata (no decoding)."""
    if fmt == "netcdf":
        import netCDF4

        try:
            with netcdf_lock(), netCDF4.Dataset(path, "r") as nc:
                for name, v in nc.variables.items():
                    for key in _PACKING:
                        if key in v.ncattrs():
                            msg = _text_attribute_message(path, name, key, v.getncattr(key), v.dtype)
                            if msg:
                                return msg
        except (OSError, RuntimeError, TypeError, ValueError):
            return None
        return None
    return _zarr_text_attribute(path)


def _zarr_text_attribute(store: Path) -> str | None:
    """A text CF attribute in the raw metadata of a store that xarray could not open, or None."""
    import base64
    import binascii

    from pipeline.io.integrity import zarr_arrays

    for meta in zarr_arrays(store):
        raw = {}
        for f in (".zattrs", "zarr.json"):
            try:
                doc = json.loads((meta.path / f).read_text())
            except (OSError, ValueError):
                continue
            raw.update(doc.get("attributes", {}) if f == "zarr.json" else doc)
        for key in _PACKING:
            value = raw.get(key)
            if not isinstance(value, str):
                continue
            if key == "_FillValue":  # xarray keeps a float fill value of Zarr v3 as base64 text
                try:
                    base64.b64decode(value, validate=True)
                    continue
                except (binascii.Error, ValueError):
                    pass
            return (f"{store}: variable '{meta.name}' has {key} {value!r} stored as text; CF needs a number: "
                    f"rewrite the attribute as a number in the metadata of '{meta.name}' (or re-create the store)")
    return None


def _is_consolidated(store: Path) -> bool:
    # Asking xarray to guess costs a warning and a second metadata read per open.
    if (store / ".zmetadata").exists():
        return True
    meta = store / "zarr.json"
    if meta.exists():
        try:
            return json.loads(meta.read_text()).get("consolidated_metadata") is not None
        except ValueError:
            return False
    return False


def provenance_attrs(
    attrs: dict, *, config_sha256: str | None = None, history: str | None = None, source: str | None = None
) -> dict:
    """Global attributes with CF-1.10 and terrascale provenance added (history line prepended)."""
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    stamp = now.isoformat().replace("+00:00", "Z")
    line = f"{stamp}: {history or ' '.join(['terrascale', *sys.argv[1:]])}"
    out = dict(attrs)
    out["Conventions"] = "CF-1.10"
    out["history"] = line + ("\n" + attrs["history"] if attrs.get("history") else "")
    out["source"] = source or attrs.get("source") or f"terrascale {__version__}"
    out["terrascale_version"] = __version__
    out["date_created"] = stamp
    if config_sha256:
        out["config_sha256"] = config_sha256
    return out


def output_format(path: str | Path) -> str:
    """``"netcdf"`` or ``"zarr"`` from an output path's suffix."""
    suffix = Path(path).suffix.lower()
    if suffix in NETCDF_SUFFIXES:
        return "netcdf"
    if suffix == ZARR_SUFFIX:
        return "zarr"
    raise InputDataError(f"output {path} has suffix '{suffix}'; use .nc for NetCDF or .zarr for Zarr")


def check_output_path(path: str | Path, *, inputs=()) -> Path:
    """Refuse an output path of :func:`write` that would lose data; call it before any work.

    An existing ``.nc`` output may be replaced only if it is a file, an existing ``.zarr``
    output only if it is a Zarr store (or an empty directory); neither may be one of
    ``inputs`` (same path, symlink or hard link) nor contain one.

    Parameters
    ----------
    path : str or Path
        Output ``.nc`` file or ``.zarr`` store.
    inputs : iterable of str or Path
        What the command reads (paths or glob patterns).

    Returns
    -------
    pathlib.Path
        ``path`` as a Path.

    Raises
    ------
    InputDataError
        With the path and the fix (see :func:`pipeline.io.atomic.check_output`).
    """
    zarr = output_format(path) == "zarr"
    return check_output(path, directory=zarr, kind="a Zarr store" if zarr else "a NetCDF file",
                        replaces=is_zarr_store if zarr else None, inputs=inputs)


def write(
    ds: xr.Dataset,
    path: str | Path,
    *,
    config_sha256: str | None = None,
    history: str | None = None,
    source: str | None = None,
    encoding: dict | None = None,
    compression_level: int | None = None,
) -> Path:
    """Write a dataset to NetCDF or Zarr (by suffix) atomically, with provenance attributes.

    The data go to a hidden temporary sibling first, which is renamed onto ``path`` only after
    the write finished; an existing output is replaced only then, and only when it is of the
    same kind (see :func:`check_output_path`): a user's directory named like the output is
    never deleted. Stale temporaries of ``path`` left by killed writers are removed first.

    Parameters
    ----------
    ds
        Dataset to write (dask-backed arrays are streamed chunk by chunk).
    path
        Output ``.nc`` file or ``.zarr`` store.
    config_sha256, history, source
        Provenance recorded in the global attributes.
    encoding
        Per-variable encoding passed to xarray; with ``compression_level`` it is merged over the
        variables' own encoding (``_FillValue``, ``dtype`` ...) and the compression settings.
    compression_level
        NetCDF only: zlib level 0..9 (with the shuffle filter and chunks of whole 2-D fields,
        :func:`netcdf_compression`) for every numeric variable; 0 writes uncompressed. ``None``
        (default) leaves the encoding as it is. Zarr stores are compressed by zarr's default
        codec whatever the level.

    Returns
    -------
    pathlib.Path
        The final path.

    Raises
    ------
    InputDataError
        When ``path`` exists and is not of the same kind, or cannot be written.
    ConfigError
        A ``compression_level`` outside 0..9.
    """
    path = Path(path)
    fmt = output_format(path)
    if compression_level is not None:
        check_compression_level(compression_level)
    zarr = fmt == "zarr"
    out = ds.copy(deep=False)
    out.attrs = provenance_attrs(ds.attrs, config_sha256=config_sha256, history=history, source=source)
    with atomic_output(path, directory=zarr, kind="a Zarr store" if zarr else "a NetCDF file",
                       replaces=is_zarr_store if zarr else None) as tmp:
        probe_writable(tmp, path)
        for var in out.variables.values():  # copies of the caller's variables (copy above): theirs keep theirs
            var.encoding = writable_encoding(var.encoding, fmt, inherited=True)
        encoding = {k: writable_encoding(v, fmt) for k, v in (encoding or {}).items()} or None
        if compression_level is not None and fmt == "netcdf":
            encoding = _compressed_encoding(out, encoding or {}, compression_level)
        if fmt == "netcdf":
            out.to_netcdf(tmp, engine="netcdf4", encoding=encoding)
        else:
            # every chunk is written, all-fill ones too: a chunk missing from a terrascale store
            # is then always a lost one (open_dataset refuses such stores)
            out.to_zarr(tmp, mode="w", encoding=encoding, consolidated=False, zarr_format=3, write_empty_chunks=True)
            mark_complete(tmp)
    return path


#: Bytes of one compressed NetCDF chunk at most: whole 2-D fields of ESM grids fit (a 1° field of
#: float64 is 0.5 MB), a 0.05° global field is cut into bands of rows.
NETCDF_CHUNK_BYTES = 4 * 2**20


def check_compression_level(level) -> int:
    """``level`` as an int if it is a zlib level 0..9, else a :class:`~pipeline.errors.ConfigError`."""
    if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 0 <= int(level) <= 9:
        raise ConfigError(f"the compression level must be a whole number 0..9 (zlib; 0: uncompressed), got {level!r}")
    return int(level)


def netcdf_chunks(shape: tuple[int, ...], itemsize: int, *, target_bytes: int = NETCDF_CHUNK_BYTES) -> tuple[int, ...]:
    """NetCDF chunk sizes for a variable of ``shape``: whole trailing dimensions up to ``target_bytes``.

    Dimensions are taken whole from the last one (lon, or the cell dimension) backwards while the
    chunk stays within ``target_bytes``; the first that does not fit is cut to fit, the ones before
    it are 1. A chunk is then a stack of whole maps (or a band of rows of a huge one), which is how
    ESM inputs are read, and the compressor sees the spatial structure that makes it effective.
    """
    chunks = [1] * len(shape)
    size = max(1, int(itemsize))
    for k in range(len(shape) - 1, -1, -1):
        n = max(1, int(shape[k]))
        if size * n <= target_bytes:
            chunks[k] = n
            size *= n
            continue
        chunks[k] = max(1, min(n, target_bytes // size))
        break
    return tuple(chunks)


def netcdf_compression(var: xr.Variable, level: int) -> dict:
    """The NetCDF encoding that compresses ``var`` at zlib ``level`` (empty for what cannot be compressed).

    Text (variable-length strings), scalars and empty variables are written as they are: HDF5
    filters need fixed-size, chunked data.
    """
    level = check_compression_level(level)
    if var.ndim == 0 or var.size == 0 or var.dtype.kind not in "biufcmM":
        return {}
    if level == 0:
        return {"zlib": False}
    itemsize = 8 if var.dtype.kind in "mM" else var.dtype.itemsize
    return {"zlib": True, "complevel": level, "shuffle": True,
            "chunksizes": netcdf_chunks(tuple(var.shape), itemsize)}


def _compressed_encoding(ds: xr.Dataset, given: dict, level: int) -> dict:
    """Per-variable NetCDF encoding: the variable's own (inherited) keys, compression, then ``given``.

    xarray replaces a variable's encoding by the one passed to ``to_netcdf``, so the inherited
    keys (``_FillValue``, ``dtype``, ``units`` of times ...) are carried over here; inherited
    chunk layouts and ``contiguous`` are dropped (the shape may have changed, and contiguous
    storage cannot be compressed).
    """
    out = {}
    for name, var in ds.variables.items():
        own = {k: v for k, v in var.encoding.items() if k not in ("chunksizes", "contiguous", "original_shape")}
        out[name] = {**own, **netcdf_compression(var, level), **given.get(name, {})}
    return out


#: Encoding keys of CF (de)coding, valid for every output format.
_CF_ENCODING = frozenset({"_FillValue", "dtype", "scale_factor", "add_offset", "units", "calendar", "missing_value"})

#: Per output format, the encoding keys its writer accepts (netCDF4: the library's variable options;
#: Zarr v3: the codec pipeline and chunking).
_FORMAT_ENCODING = {
    "netcdf": frozenset({"zlib", "complevel", "shuffle", "fletcher32", "contiguous", "chunksizes", "compression",
                         "significant_digits", "quantize_mode", "original_shape"}),
    "zarr": frozenset({"chunks", "shards", "compressors", "filters", "serializer", "chunk_key_encoding",
                       "write_empty_chunks"}),
}

#: Encoding keys an input leaves on its variables that describe how *it* was stored; the codecs,
#: chunk layout and key encoding of a Zarr v2 or v3 input (or the chunking of a NetCDF input)
#: do not fit the Zarr v3 output (a v2 Blosc compressor is not a v3 codec; dask chunks change).
_INHERITED_ZARR_DROP = frozenset({"chunks", "preferred_chunks", "shards", "compressors", "filters", "serializer",
                                  "chunk_key_encoding"})


def writable_encoding(encoding: dict, fmt: str, *, inherited: bool = False) -> dict:
    """The part of a variable's ``encoding`` the writer of ``fmt`` (``"netcdf"`` or ``"zarr"``) can take.

    Parameters
    ----------
    encoding : dict
        A variable's encoding (from its input) or an encoding given to :func:`write`.
    fmt : str
        ``"netcdf"`` (netCDF4 engine) or ``"zarr"`` (Zarr v3).
    inherited : bool
        ``encoding`` came with an input: for Zarr, its codecs and chunk layout are dropped too
        (the output gets zarr's default codecs and the data's chunks).

    Returns
    -------
    dict
        CF keys (``_FillValue``, ``dtype``, ``scale_factor``, ...) and the keys ``fmt`` accepts;
        anything else (``compressor`` of Zarr v2, ``dimension_separator``, ``zlib`` for Zarr,
        ``compressors`` for NetCDF, ...) is left out.
    """
    keep = _CF_ENCODING | _FORMAT_ENCODING[fmt]
    if fmt == "zarr" and inherited:
        keep = keep - _INHERITED_ZARR_DROP
    return {k: v for k, v in encoding.items() if k in keep}


def store_size(path: str | Path) -> int:
    """Bytes on disk of a file, or of every file under a directory (a Zarr store, a Parquet table)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
