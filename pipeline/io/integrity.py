"""Is an input whole? Every chunk of a Zarr store present, a NetCDF file as long as its header says.

Both defects read silently as data otherwise: a missing Zarr chunk decodes as the fill value (a
year of NaN LAI, an all-"water" class map), and a truncated NetCDF-3 file reads zeros or garbage
past its end (coordinates then look unsorted). The checks read metadata and list files only, so
they run on every open (:func:`pipeline.io.open_dataset`).

* :func:`zarr_arrays` parses the array metadata of a store (v2 ``.zarray``, v3 ``zarr.json``):
  shape, chunk (or shard) shape, dimension names and chunk key encoding.
* :func:`missing_chunks` lists each array's chunk files once (one ``os.walk``/``scandir`` per
  array) and reports the chunk keys that are not there; :func:`check_zarr_complete` raises for
  a store terrascale wrote (marked complete: every chunk, all-fill ones too) and warns for
  other stores, whose writer may have skipped all-fill chunks on purpose (zarr's default).
* :func:`netcdf_expected_size` parses a NetCDF classic/64-bit-offset/CDF-5 header (numrecs, the
  ``begin`` offset and shape of every variable) or an HDF5 superblock (its end-of-file address)
  and :func:`check_netcdf_complete` compares the size on disk with it.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import InputDataError

#: What to do about a store whose chunks are missing, in the messages of every check.
MISSING_CHUNKS_FIX = (
    "re-create the store; if the missing chunks only held fill values (a writer with zarr's "
    "write_empty_chunks=False skips them), write a complete copy with "
    "`terrascale validate STORE --allow-missing-chunks -o COMPLETE.zarr` and use that"
)

_METADATA_NAMES = frozenset({"zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"})

#: File in the root of a store written by :func:`pipeline.io.write`: every chunk is there.
COMPLETE_MARKER = ".terrascale-complete"
# zarr lists every entry of a group and warns about one it does not know; the marker is ours, and
# only that exact warning is silenced (a user's unknown entries are still reported)
warnings.filterwarnings("ignore", message=r"Object at \.terrascale-complete is not recognized", category=UserWarning)


@dataclass(frozen=True)
class ZarrArrayMeta:
    """The layout of one Zarr array on disk (what :func:`missing_chunks` and chunk reads need).

    ``chunks`` is the shape of one stored object: the shard shape of a sharded array, whose
    inner chunks live inside the shard files. ``prefix`` is ``"c"`` for the v3 default chunk key
    encoding (``c/0/0/1``) and empty for v2 keys (``0.0.1``); ``separator`` is ``"."`` or ``"/"``.
    """

    name: str
    path: Path
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dims: tuple[str, ...]
    separator: str
    prefix: str
    sharded: bool = False

    @property
    def grid(self) -> tuple[int, ...]:
        """Number of chunks along each dimension."""
        return tuple(math.ceil(s / c) if c else 0 for s, c in zip(self.shape, self.chunks))

    @property
    def nchunks(self) -> int:
        """Number of chunk (or shard) objects a complete array has."""
        return math.prod(self.grid)

    def key(self, index: tuple[int, ...]) -> str:
        """The store key of chunk ``index``, relative to the array (``c/0/1`` or ``0.1``)."""
        parts = [str(i) for i in index]
        if self.prefix:
            return self.separator.join([self.prefix, *parts])
        return self.separator.join(parts) if parts else "0"

    def region(self, index: tuple[int, ...]) -> dict[str, tuple[int, int]]:
        """Index ranges (start, stop) per dimension covered by chunk ``index``."""
        return {d: (i * c, min((i + 1) * c, s)) for d, i, c, s in zip(self.dims, index, self.chunks, self.shape)}


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # unreadable metadata is the opener's to report, with its own message


def array_meta(path: str | Path, name: str | None = None) -> ZarrArrayMeta | None:
    """The layout of the Zarr array at ``path`` (a directory with ``.zarray`` or an array ``zarr.json``).

    Parameters
    ----------
    path : str or Path
        The array's directory inside a store.
    name : str, optional
        Its name in messages; default the directory name.

    Returns
    -------
    ZarrArrayMeta or None
        ``None`` when ``path`` is no array, its metadata cannot be read, or its chunk grid is
        not a regular one (nothing to check then).
    """
    path = Path(path)
    name = name or path.name
    v2 = _read_json(path / ".zarray") if (path / ".zarray").is_file() else None
    if v2 is not None:
        try:
            shape, chunks = tuple(int(s) for s in v2["shape"]), tuple(int(c) for c in v2["chunks"])
        except (KeyError, TypeError, ValueError):
            return None
        attrs = _read_json(path / ".zattrs") or {}
        dims = tuple(attrs.get("_ARRAY_DIMENSIONS") or (f"dim_{i}" for i in range(len(shape))))
        return ZarrArrayMeta(name, path, shape, chunks, dims, v2.get("dimension_separator") or ".", "")
    v3 = _read_json(path / "zarr.json") if (path / "zarr.json").is_file() else None
    if v3 is None or v3.get("node_type") != "array":
        return None
    grid = v3.get("chunk_grid") or {}
    if grid.get("name") != "regular":
        return None
    try:
        shape = tuple(int(s) for s in v3["shape"])
        chunks = tuple(int(c) for c in grid["configuration"]["chunk_shape"])
    except (KeyError, TypeError, ValueError):
        return None
    enc = v3.get("chunk_key_encoding") or {"name": "default"}
    conf = enc.get("configuration") or {}
    if enc.get("name") == "v2":
        separator, prefix = conf.get("separator", "."), ""
    else:
        separator, prefix = conf.get("separator", "/"), "c"
    names = v3.get("dimension_names") or [None] * len(shape)
    dims = tuple(n if n is not None else f"dim_{i}" for i, n in enumerate(names))
    codecs = v3.get("codecs") or []
    sharded = bool(codecs) and isinstance(codecs[0], dict) and codecs[0].get("name") == "sharding_indexed"
    return ZarrArrayMeta(name, path, shape, chunks, dims, separator, prefix, sharded)


def _root_dirs(store: str | Path) -> list[os.DirEntry]:
    """The directories directly under ``store``, by name (none when it cannot be listed)."""
    try:
        return sorted((e for e in os.scandir(store) if e.is_dir()), key=lambda e: e.name)
    except OSError:
        return []


def zarr_arrays(store: str | Path) -> list[ZarrArrayMeta]:
    """The arrays directly under the root group of ``store`` (those xarray opens), by name."""
    out = []
    for entry in _root_dirs(store):
        if not entry.name.startswith("."):
            meta = array_meta(entry.path, entry.name)
            if meta is not None:
                out.append(meta)
    return out


def zarr_groups(store: str | Path) -> list[str]:
    """Names of the sub-groups directly under the root group of ``store``."""
    out = []
    for entry in _root_dirs(store):
        p = Path(entry.path)
        if (p / ".zgroup").is_file() or (_read_json(p / "zarr.json") or {}).get("node_type") == "group":
            out.append(entry.name)
    return out


def _present_chunks(meta: ZarrArrayMeta) -> set[tuple[int, ...]]:
    """Indices of the chunk files present: one directory walk, keys parsed, out-of-grid ignored."""
    grid, ndim = meta.grid, len(meta.shape)
    found: set[tuple[int, ...]] = set()

    def add(parts: list[str], path: str) -> None:
        # an empty shard file reads as fill values without an error: as good as missing
        if meta.sharded and os.path.getsize(path) == 0:
            return
        if meta.prefix:
            if not parts or parts[0] != meta.prefix:
                return
            parts = parts[1:]
        if len(parts) != ndim or not all(p.isdigit() for p in parts):
            return
        idx = tuple(int(p) for p in parts)
        if all(i < n for i, n in zip(idx, grid)):
            found.add(idx)

    if meta.separator == "/":
        root = meta.path / meta.prefix if meta.prefix else meta.path
        for dirpath, _dirs, files in os.walk(root):
            rel = os.path.relpath(dirpath, meta.path)
            head = [] if rel == "." else rel.split(os.sep)
            for f in files:
                if f not in _METADATA_NAMES:
                    add(head + [f], os.path.join(dirpath, f))
    else:
        with os.scandir(meta.path) as it:
            for entry in it:
                if entry.name not in _METADATA_NAMES and entry.is_file():
                    add(entry.name.split(meta.separator), entry.path)
    return found


def missing_chunks(store: str | Path, *, limit: int = 3) -> dict[str, tuple[int, list[str]]]:
    """Chunks (or shards) of the arrays of ``store`` whose files are not there.

    Parameters
    ----------
    store : str or Path
        A Zarr store (v2 or v3, any chunk key encoding, sharded or not).
    limit : int
        How many missing keys to name per array.

    Returns
    -------
    dict
        Array name → (number of missing chunks, the first ``limit`` missing keys relative to the
        store, e.g. ``lai/c/1/0/0``); arrays with every chunk present are left out.
    """
    out: dict[str, tuple[int, list[str]]] = {}
    for meta in zarr_arrays(store):
        total = meta.nchunks
        if total == 0:
            continue
        if not meta.shape:  # a 0-d array: one chunk, key "c" (v3 default) or "0"
            key = meta.prefix or "0"
            if not (meta.path / key).is_file():
                out[meta.name] = (1, [f"{meta.name}/{key}"])
            continue
        present = _present_chunks(meta)
        if len(present) == total:
            continue
        first = []
        for idx in itertools.product(*(range(n) for n in meta.grid)):
            if idx not in present:
                first.append(f"{meta.name}/{meta.key(idx)}")
                if len(first) >= limit:
                    break
        out[meta.name] = (total - len(present), first)
    return out


def is_marked_complete(store: str | Path) -> bool:
    """Whether :func:`pipeline.io.write` wrote ``store`` (every chunk, all-fill ones too).

    The mark is a file (:data:`COMPLETE_MARKER`) in the store's root, not an attribute: a copy
    of the store made by another writer (which may skip all-fill chunks) does not carry it.
    """
    return (Path(store) / COMPLETE_MARKER).is_file()


def mark_complete(store: str | Path) -> None:
    """Mark a store that was just written with every chunk (see :func:`is_marked_complete`)."""
    (Path(store) / COMPLETE_MARKER).write_text("every chunk of every array was written (write_empty_chunks)\n")


def _describe_missing(store, gone: dict[str, tuple[int, list[str]]]) -> str:
    totals = {m.name: m.nchunks for m in zarr_arrays(store)}
    parts = []
    for name, (count, first) in gone.items():
        more = f" and {count - len(first)} more" if count > len(first) else ""
        parts.append(f"variable '{name}' lacks {count} of its {totals.get(name, '?')} chunks ({', '.join(first)}{more})")
    return "; ".join(parts)


def check_zarr_complete(store: str | Path, *, policy: str = "auto") -> None:
    """Refuse (or warn about) a Zarr store with a missing chunk, which would read as fill values.

    Parameters
    ----------
    store : str or Path
        The store.
    policy : str
        ``"error"``: any missing chunk is an :class:`InputDataError`. ``"auto"``: an error for a
        store terrascale wrote (:func:`is_marked_complete`: every chunk written, so a missing
        one is lost), an :class:`IncompleteStoreWarning` for other stores (zarr's writers skip
        chunks that hold only the fill value by default, so a gap may be deliberate).
        ``"allow"``: no check.

    Raises
    ------
    InputDataError
        Naming the store, each variable with missing chunks, the first missing keys and the fix.
    """
    if policy not in ("auto", "error", "allow"):
        raise ValueError(f"policy must be auto, error or allow, not {policy!r}")
    if policy == "allow":
        return
    gone = missing_chunks(store)
    if not gone:
        return
    listed = _describe_missing(store, gone)
    if policy == "error" or is_marked_complete(store):
        raise InputDataError(f"{store}: the store is incomplete: {listed}; a missing chunk would be read as fill "
                             f"values; {MISSING_CHUNKS_FIX}")
    warnings.warn(IncompleteStoreWarning(
        f"{store}: {listed}; they are read as fill values (NaN or the _FillValue): fine if the writer skipped "
        "chunks holding only fill values (zarr's default), wrong if chunk files were lost: then re-create the store"
    ), stacklevel=3)


class IncompleteStoreWarning(UserWarning):
    """A Zarr store not written by terrascale lacks chunks (read as fill values)."""


# -- NetCDF ---------------------------------------------------------------------------------

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

# nc_type code -> bytes per value (netCDF classic format specification; 7..11 are CDF-5 only)
_NC_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 8}
_NC_DIMENSION, _NC_VARIABLE, _NC_ATTRIBUTE = 10, 11, 12


class _HeaderEnd(Exception):
    """The header stops before its end: the file is cut inside the header."""


class _Header:
    """A cursor over the big-endian header bytes of a NetCDF classic file."""

    def __init__(self, fh, version: int):
        self.fh = fh
        self.big = version == 5  # CDF-5: 64-bit counts, dimension lengths and sizes
        self.offset64 = version in (2, 5)

    def read(self, n: int) -> bytes:
        b = self.fh.read(n)
        if len(b) < n:
            raise _HeaderEnd
        return b

    def u32(self) -> int:
        return struct.unpack(">I", self.read(4))[0]

    def u64(self) -> int:
        return struct.unpack(">Q", self.read(8))[0]

    def count(self) -> int:
        return self.u64() if self.big else self.u32()

    def name(self) -> str:
        n = self.count()
        raw = self.read(n + (-n) % 4)
        return raw[:n].decode("utf-8", "replace")

    def skip_attributes(self) -> None:
        tag, n = self.u32(), self.count()
        if tag not in (0, _NC_ATTRIBUTE):
            raise ValueError(f"bad attribute list tag {tag}")
        for _ in range(n):
            self.name()
            nc_type = self.u32()
            nelems = self.count()
            size = nelems * _NC_SIZES.get(nc_type, 1)
            self.read(size + (-size) % 4)


def _classic_expected_size(path: Path, version: int) -> tuple[int | None, str]:
    """Bytes a NetCDF classic file must have (numrecs, begin and shape of each variable)."""
    with open(path, "rb") as fh:
        fh.seek(4)
        h = _Header(fh, version)
        try:
            numrecs = h.count()
            tag, ndims = h.u32(), h.count()
            if tag not in (0, _NC_DIMENSION):
                return None, "bad dimension list"
            dims = []
            for _ in range(ndims):
                h.name()
                dims.append(h.count())
            h.skip_attributes()
            tag, nvars = h.u32(), h.count()
            if tag not in (0, _NC_VARIABLE):
                return None, "bad variable list"
            variables = []
            for _ in range(nvars):
                h.name()
                ids = [h.count() for _ in range(h.count())]
                h.skip_attributes()
                nc_type = h.u32()
                h.count()  # vsize: capped at 2**32-1 for large variables, so recomputed from the shape
                begin = h.u64() if h.offset64 else h.u32()
                variables.append((ids, _NC_SIZES.get(nc_type, 1), begin))
        except _HeaderEnd:
            return -1, "the header itself is cut off"
        except (ValueError, IndexError):
            return None, "header not understood"
    streaming = numrecs == (2**64 - 1 if h.big else 2**32 - 1)
    layout = []  # (is a record variable, bytes per record or in all, begin)
    for ids, tsize, begin in variables:
        shape = [dims[i] if i < len(dims) else 0 for i in ids]
        is_record = bool(shape) and shape[0] == 0
        layout.append((is_record, math.prod(shape[1:] if is_record else shape) * tsize, begin))
    per_record = [n for rec, n, _ in layout if rec]
    # a single record variable's records are not padded to 4 bytes (netCDF classic format spec)
    recsize = per_record[0] if len(per_record) == 1 else sum(n + (-n) % 4 for n in per_record)
    end = 0
    for is_record, nbytes, begin in layout:
        if not nbytes:
            continue
        if not is_record:
            end = max(end, begin + nbytes)
        elif numrecs and not streaming:
            end = max(end, begin + (numrecs - 1) * recsize + nbytes)
    return end, ""


def _hdf5_expected_size(path: Path) -> int | None:
    """The end-of-file address of an HDF5 superblock at offset 0 (plus its base address)."""
    with open(path, "rb") as fh:
        head = fh.read(128)
    if head[:8] != _HDF5_MAGIC or len(head) < 16:
        return None
    version = head[8]
    if version in (0, 1):
        osize = head[13]
        start = 24 if version == 0 else 28
    elif version in (2, 3):
        osize = head[9]
        start = 12
    else:
        return None
    fmt = {4: ">I", 8: ">Q"}.get(osize)
    if fmt is None or len(head) < start + 3 * osize:
        return None
    fmt = "<" + fmt[1:]  # HDF5 addresses are little-endian
    base = struct.unpack(fmt, head[start:start + osize])[0]
    eof_at = start + 2 * osize  # base, (free-space info | superblock extension), end of file
    eof = struct.unpack(fmt, head[eof_at:eof_at + osize])[0]
    if eof == 2 ** (8 * osize) - 1:  # the undefined address
        return None
    return base + eof


def netcdf_expected_size(path: str | Path) -> tuple[int | None, str]:
    """The size in bytes the header of a NetCDF file implies, and a note when it cannot tell.

    Parameters
    ----------
    path : str or Path
        A NetCDF classic (CDF-1), 64-bit offset (CDF-2), CDF-5 or NetCDF-4/HDF5 file.

    Returns
    -------
    (int or None, str)
        The least number of bytes the file must have (``-1`` when the header itself is cut
        off), or ``None`` and why not (unknown format, a header not understood, streaming
        record count).
    """
    path = Path(path)
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic[:3] == b"CDF" and len(magic) == 4 and magic[3] in (1, 2, 5):
        return _classic_expected_size(path, magic[3])
    if magic == _HDF5_MAGIC[:4]:
        return _hdf5_expected_size(path), ""
    return None, "not a NetCDF file"


def check_netcdf_complete(path: str | Path) -> None:
    """Raise :class:`InputDataError` when a NetCDF file is shorter than its header says.

    A cut-off NetCDF-3 file opens without complaint and reads zeros past its end; this check
    says so before any value is read (and before sortedness checks blame the coordinates).
    """
    path = Path(path)
    expected, _why = netcdf_expected_size(path)
    if expected is None:
        return
    size = path.stat().st_size
    if expected == -1:
        raise InputDataError(f"{path} is truncated: {size} bytes, cut inside its header (a truncated or corrupt "
                             "copy); re-download or re-create it")
    if size < expected:
        raise InputDataError(f"{path} is truncated: {size} bytes, its header implies {expected} (a truncated or "
                             "corrupt copy); re-download or re-create it")
