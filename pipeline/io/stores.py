"""Open and write NetCDF and Zarr, lazily and atomically, with CF and provenance attributes.
"""

from __future__ import annotations

import datetime as _dt
import glob as _glob
import json
import sys
from pathlib import Path

import xarray as xr

from pipeline import __version__
from pipeline.errors import InputDataError
from pipeline.io.atomic import ZARR_METADATA_FILES, atomic_output, check_output, is_zarr_store, probe_writable

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
    if any(ch in text for ch in "*?["):
        paths = sorted(Path(p) for p in _glob.glob(text))
        if not paths:
            raise InputDataError(f"no file matches the pattern {text}; check the directory and the wildcard")
        return paths
    return [Path(text)]


def open_dataset(path_or_glob: str | Path, *, chunks: dict | str | None = "auto") -> xr.Dataset:
    """Open NetCDF (one file or a glob of many) or Zarr (v2/v3) lazily, dask-chunked.

    Parameters
    ----------
    path_or_glob
        A ``.nc`` file, a glob such as ``"lai_*.nc"`` (combined by coordinates), or a Zarr store.
    chunks
        dask chunks passed to xarray; ``"auto"`` lets dask choose.

    Returns
    -------
    xarray.Dataset
        Lazy dataset; nothing is read until computed.
    """
    paths = _expand(path_or_glob)
    formats = {detect_format(p) for p in paths}
    if len(formats) > 1:
        raise InputDataError(f"{path_or_glob} mixes NetCDF and Zarr inputs; open them separately")
    fmt = formats.pop()
    try:
        if fmt == "zarr":
            if len(paths) > 1:
                return xr.open_mfdataset(paths, engine="zarr", chunks=chunks, combine="by_coords")
            return xr.open_zarr(paths[0], chunks=chunks, consolidated=_is_consolidated(paths[0]))
        if len(paths) > 1:
            return xr.open_mfdataset(paths, chunks=chunks, combine="by_coords", engine="netcdf4")
        return xr.open_dataset(paths[0], chunks=chunks, engine="netcdf4")
    except InputDataError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise InputDataError(
            f"{path_or_glob} cannot be read as {fmt} ({type(err).__name__}: {err}); the file may be truncated "
            "or corrupt: re-create or re-download it"
        ) from None


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
        Per-variable encoding passed to xarray.

    Returns
    -------
    pathlib.Path
        The final path.

    Raises
    ------
    InputDataError
        When ``path`` exists and is not of the same kind, or cannot be written.
    """
    path = Path(path)
    fmt = output_format(path)
    zarr = fmt == "zarr"
    out = ds.copy(deep=False)
    out.attrs = provenance_attrs(ds.attrs, config_sha256=config_sha256, history=history, source=source)
    with atomic_output(path, directory=zarr, kind="a Zarr store" if zarr else "a NetCDF file",
                       replaces=is_zarr_store if zarr else None) as tmp:
        probe_writable(tmp, path)
        if fmt == "netcdf":
            out.to_netcdf(tmp, engine="netcdf4", encoding=encoding)
        else:
            _drop_stale_chunk_encoding(out)
            out.to_zarr(tmp, mode="w", encoding=encoding, consolidated=False, zarr_format=3)
    return path


def _drop_stale_chunk_encoding(ds: xr.Dataset) -> None:
    # Chunk encodings inherited from an input store conflict with new dask chunks on write.
    for var in ds.variables.values():
        for key in ("chunks", "preferred_chunks", "shards"):
            var.encoding.pop(key, None)


def store_size(path: str | Path) -> int:
    """Bytes on disk of a file, or of every file under a directory (a Zarr store, a Parquet table)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
