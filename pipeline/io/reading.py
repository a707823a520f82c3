"""The one wrapper around reads of user data: a chunk that does not decode becomes one clear error.

Every read of an input's values goes through :func:`reading`: the dask arrays of
:func:`pipeline.io.open_dataset` read each chunk with :class:`CheckedGetter` (so ``aggregate``'s
row chunks, ``features``' partitions and ``validate``'s statistics are covered however they
compute), and explicit reads (also of arrays opened without dask) use :func:`read_values`. A
decode failure there (a Blosc/Zstd/zlib stream that does not decompress, a chunk of the wrong
length, an HDF5 error from netCDF4) is an :class:`InputDataError` naming the store, the variable
and the chunk, instead of a codec's traceback.

To name the chunk, the failing read is repeated chunk by chunk on the stored array (Zarr through
zarr-python, NetCDF-4 through netCDF4, raw bytes, no CF decoding), within the region the caller
read and a few seconds; this runs only after a failure.
"""

from __future__ import annotations

import contextlib
import itertools
import lzma
import math
import struct
import time
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import xarray as xr

from pipeline.errors import InputDataError, TerrascaleError

#: Exceptions a codec, zarr, netCDF4/HDF5 or the file system raise for bytes that do not decode.
#: Blosc raises RuntimeError (and SystemError for some headers), Zstd RuntimeError, zlib
#: ``zlib.error``, gzip/bz2 OSError or EOFError, a chunk of the wrong length ValueError (zarr's
#: own errors derive from ValueError), netCDF4 RuntimeError/OSError ("NetCDF: HDF error").
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError, ValueError, RuntimeError, SystemError, EOFError, zlib.error, lzma.LZMAError, struct.error,
)

#: Seconds spent at most, after a failed read, on finding the chunk that does not decode.
LOCATE_BUDGET_S = 10.0

Region = Mapping[str, "tuple[int, int] | slice | int"]


def _ranges(region: Region | None) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for dim, r in (region or {}).items():
        if isinstance(r, slice):
            if r.start is None and r.stop is None:
                continue
            out[str(dim)] = (int(r.start or 0), int(r.stop) if r.stop is not None else -1)
        elif isinstance(r, (int, np.integer)):
            out[str(dim)] = (int(r), int(r) + 1)
        else:
            a, b = r
            out[str(dim)] = (int(a), int(b))
    return out


def describe_region(region: Mapping[str, tuple[int, int]]) -> str:
    """``"time 0:3, lat 6:12"`` (index ranges, stop exclusive)."""
    return ", ".join(f"{d} {a}:{b}" if b >= 0 else f"{d} {a}:" for d, (a, b) in region.items())


def _chunk_indices(shape, chunks, dims, region, budget_end) -> Iterator[tuple[int, ...]]:
    """Chunk indices overlapping ``region`` (whole extent for dimensions not in it), C order."""
    spans = []
    for d, s, c in zip(dims, shape, chunks):
        a, b = region.get(d, (0, s))
        b = s if b < 0 else min(b, s)
        a = max(0, a)
        spans.append(range(a // c, math.ceil(b / c)) if c and b > a else range(0))
    for idx in itertools.product(*spans):
        if time.monotonic() > budget_end:
            return
        yield idx


def _locate_zarr(store: Path, var: str, region, budget_end) -> tuple[str, dict] | None:
    import zarr

    from pipeline.io.integrity import array_meta

    meta = array_meta(store / var, var)
    if meta is None or not meta.shape:
        return None
    try:
        arr = zarr.open_array(str(store), path=var, mode="r")
    except Exception:  # noqa: BLE001  (a probe: the caller reports the original error)
        return None
    for idx in _chunk_indices(meta.shape, meta.chunks, meta.dims, region, budget_end):
        where = meta.region(idx)
        try:
            arr[tuple(slice(a, b) for a, b in where.values())]
        except DECODE_ERRORS:
            return f"{var}/{meta.key(idx)}", where
    return None


@contextlib.contextmanager
def netcdf_lock() -> Iterator[None]:
    """Hold xarray's netCDF-C and HDF5 locks: neither library may be entered by two threads at once,
    and dask threads may be reading the same files through xarray."""
    try:
        from xarray.backends.locks import HDF5_LOCK, NETCDFC_LOCK
    except ImportError:  # pragma: no cover  (xarray moved them: run unlocked, as single-threaded code does)
        yield
        return
    with NETCDFC_LOCK, HDF5_LOCK:
        yield


def _locate_netcdf(path: Path, var: str, region, budget_end) -> tuple[str, dict] | None:
    import netCDF4

    with netcdf_lock():
        try:
            nc = netCDF4.Dataset(path, "r")
        except Exception:  # noqa: BLE001  (a probe: the caller reports the original error)
            return None
        with nc:
            if var not in nc.variables:
                return None
            v = nc.variables[var]
            v.set_auto_maskandscale(False)
            shape, dims, chunking = tuple(v.shape), tuple(v.dimensions), v.chunking()
            if not shape or not isinstance(chunking, (list, tuple)):
                return None  # contiguous data: the block read is all there is to name
            for idx in _chunk_indices(shape, tuple(chunking), dims, region, budget_end):
                where = {d: (i * c, min((i + 1) * c, s)) for d, i, c, s in zip(dims, idx, chunking, shape)}
                try:
                    v[tuple(slice(a, b) for a, b in where.values())]
                except DECODE_ERRORS:
                    return "HDF5 chunk", where
    return None


def locate_bad_chunk(source: str | Path, var: str, region: Region | None = None, *,
                     budget_s: float = LOCATE_BUDGET_S) -> tuple[str, dict[str, tuple[int, int]]] | None:
    """The first chunk of ``var`` in ``source`` that does not decode, or ``None``.

    Parameters
    ----------
    source : str or Path
        A Zarr store or a NetCDF-4 file.
    var : str
        The stored variable.
    region : mapping, optional
        Dimension → (start, stop), slice or index: where to look first; then, while the budget
        lasts, the rest of the array (a caller's indices may be relative to a subset).
    budget_s : float
        Seconds to spend at most.

    Returns
    -------
    (str, dict) or None
        The chunk's key (``lai/c/1/0/0``; ``HDF5 chunk`` for NetCDF-4) and its index ranges.
    """
    path = Path(str(source))
    end = time.monotonic() + budget_s
    rng = _ranges(region)
    try:
        if path.is_dir():
            locate = _locate_zarr
        elif path.is_file():
            locate = _locate_netcdf
        else:
            return None
        found = locate(path, str(var), rng, end)
        if found is None and rng:
            found = locate(path, str(var), {}, end)
        return found
    except DECODE_ERRORS:
        return None


def read_error(source, var, err: BaseException, region: Region | None = None) -> InputDataError:
    """The :class:`InputDataError` for a read of ``var`` in ``source`` that failed with ``err``."""
    what = f"{type(err).__name__}: {err}"
    src = str(source) if source is not None else "the input"
    name = f"variable '{var}'" if var is not None else "a variable"
    if isinstance(err, PermissionError):
        return InputDataError(f"{src}: {name} cannot be read ({what}); give yourself read permission on the files")
    rng = _ranges(region)
    found = locate_bad_chunk(source, str(var), rng) if source is not None and var is not None else None
    is_store = source is not None and Path(str(source)).is_dir()
    kind, fix = ("store", "re-create it") if is_store else ("file", "re-download or re-create it")
    if found is not None:
        key, where = found
        return InputDataError(f"{src}: {name}: chunk {key} ({describe_region(where)}) cannot be decoded ({what}); "
                              f"the {kind} is corrupt: {fix}")
    at = f" (block {describe_region(rng)})" if rng else ""
    return InputDataError(f"{src}: {name} cannot be read{at} ({what}); the {kind} is corrupt or truncated: {fix}")


@contextlib.contextmanager
def reading(source, var=None, *, region: Region | None = None) -> Iterator[None]:
    """Turn a decode failure of the reads inside the block into one :class:`InputDataError`.

    Keep the block to the read itself: any error of :data:`DECODE_ERRORS` raised in it is
    reported as unreadable input.

    Parameters
    ----------
    source : str or Path
        The store or file read (named in the message; searched for the bad chunk).
    var : str, optional
        The variable read.
    region : mapping, optional
        Dimension → (start, stop), slice or index of the stored variable being read.

    Raises
    ------
    InputDataError
        Naming the source, the variable, the chunk (or the block) and the fix.
    """
    try:
        yield
    except TerrascaleError:
        raise
    except DECODE_ERRORS as err:
        raise read_error(source, var, err, region) from None


def _backend_origin(a) -> tuple[str | None, str | None]:
    """The variable name and file or store behind xarray's lazily indexed array ``a`` (what dask reads).

    Walks xarray's adapter chain (``.array``) down to the backend wrapper: a zarr ``Array``
    (``.path``, ``.store.root``) or netCDF4's wrapper (``.variable_name``, ``.datastore._filename``).
    """
    x = a
    for _ in range(10):
        name = getattr(x, "variable_name", None)
        if name is not None:  # netCDF4
            return str(name), getattr(getattr(x, "datastore", None), "_filename", None)
        if type(x).__name__ == "Array" and hasattr(x, "path") and hasattr(x, "store"):  # zarr
            root = getattr(x.store, "root", None)
            return str(x.path).strip("/").split("/")[-1] or None, str(root) if root is not None else None
        nxt = getattr(x, "array", None)
        if nxt is None:
            nxt = getattr(x, "_array", None)
        if nxt is None or nxt is x:
            break
        x = nxt
    return None, None


def _dims_of(source, var) -> tuple[str, ...] | None:
    """Dimension names of the stored variable ``var`` (Zarr metadata or netCDF4), or None."""
    path = Path(str(source))
    if path.is_dir():
        from pipeline.io.integrity import array_meta

        meta = array_meta(path / str(var), str(var))
        return meta.dims if meta is not None else None
    try:
        import netCDF4

        with netcdf_lock(), netCDF4.Dataset(path, "r") as nc:
            return tuple(nc.variables[str(var)].dimensions)
    except (OSError, KeyError, RuntimeError, ValueError):
        return None


class CheckedGetter:
    """The dask ``getitem`` of the arrays :func:`pipeline.io.open_dataset` opens: one chunk read.

    dask calls it for every chunk with the chunk's slices of the stored variable; a decode
    failure there becomes the :class:`InputDataError` of :func:`reading`, naming the store (or
    file), the variable and the chunk, wherever the values are computed (aggregate, features,
    validate, a user's own code).

    Parameters
    ----------
    source : str
        The file, store or pattern opened (named when the array does not tell its own file).
    """

    def __init__(self, source: str):
        self.source = str(source)

    def __dask_tokenize__(self):
        return ("terrascale.CheckedGetter", self.source)

    def __call__(self, a, b, asarray=True, lock=None):
        from dask.array.core import getter

        try:
            return getter(a, b, asarray=asarray, lock=lock)
        except TerrascaleError:
            raise
        except DECODE_ERRORS as err:
            var, path = _backend_origin(a)
            source = self.source
            if path is not None and Path(path).resolve() != Path(self.source).resolve():
                source = path  # one file of a glob

            region = None
            dims = _dims_of(source, var) if var is not None else None
            if dims is not None and isinstance(b, tuple) and len(b) == len(dims):
                region = {d: (s.start or 0, s.stop if s.stop is not None else -1) if isinstance(s, slice) else s
                          for d, s in zip(dims, b) if isinstance(s, (slice, int, np.integer))}
            raise read_error(source, var, err, region) from None


def _is_device_array(a) -> bool:
    return hasattr(a, "__cuda_array_interface__")


def read_values(da, *, source=None, var=None, region: Region | None = None):
    """The values of ``da`` in memory, read through :func:`reading`.

    Parameters
    ----------
    da : xarray.DataArray or array
        Lazy (dask, backend) or in-memory data. A dask array is computed (its chunks keep their
        array type: a CuPy-backed one stays on the device); an in-memory NumPy or CuPy array is
        returned as is, without a copy.
    source : str or Path, optional
        The store or file; default ``da.encoding["source"]`` (set by :func:`pipeline.io.open_dataset`).
    var : str, optional
        The variable's name; default ``da.name``.
    region : mapping, optional
        What part of the stored variable ``da`` is, dimension → (start, stop) (or a slice or an
        index), e.g. ``{"lat": (r0, r1)}``: named in the message and searched first.

    Returns
    -------
    numpy.ndarray or cupy.ndarray

    Raises
    ------
    InputDataError
        When the values cannot be read or decoded.
    """
    encoding = getattr(da, "encoding", None) or {}
    source = source if source is not None else encoding.get("source")
    var = var if var is not None else getattr(da, "name", None)
    if isinstance(da, np.ndarray) or _is_device_array(da):
        return da  # already in memory: nothing to read
    with reading(source, var, region=region):
        data = da.data if isinstance(da, (xr.DataArray, xr.Variable)) else da
        computed = False
        if hasattr(data, "__dask_graph__") and data.__dask_graph__() is not None:
            data, computed = data.compute(), True
        if isinstance(data, np.ndarray) or _is_device_array(data):
            return data
        if computed or not hasattr(da, "values"):
            return np.asarray(data)
        return np.asarray(da.values)
