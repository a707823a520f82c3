"""Windowed readers for the strip-organised GeoTIFFs and the compressed GLOBE .npz.

Both TIFFs store one deflate-compressed strip per raster row, so a latitude band is read by
decompressing only its strips: a region never touches the other rows, and a global pass can go
band by band with bounded memory. The GLOBE mask is one deflate stream inside a zip member; a
deflate stream has no random access, so rows are streamed from the top and discarded until the
window starts (cheap: ~0.5 GB/s), and only the window is kept.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile
from numpy.lib import format as npy_format

from pipeline.errors import InputDataError


class StripTiff:
    """Random row access to a single-band, uncompressed or deflate-compressed, striped TIFF."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._tif = tifffile.TiffFile(self.path)
        page = self._tif.pages[0]
        if page.is_tiled or page.samplesperpixel != 1 or page.predictor not in (1, None):
            raise InputDataError(f"{self.path}: expected a single-band striped TIFF without predictor")
        if int(page.compression) not in (1, 8, 32946):
            raise InputDataError(f"{self.path}: unsupported TIFF compression {page.compression!r}")
        self.shape = page.shape
        self.dtype = np.dtype(page.dtype)
        self._deflate = int(page.compression) != 1
        self._rps = int(page.rowsperstrip) if page.rowsperstrip else self.shape[0]
        self._offsets = page.dataoffsets
        self._counts = page.databytecounts

    def close(self) -> None:
        self._tif.close()

    def __enter__(self) -> "StripTiff":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def read_rows(self, r0: int, r1: int, c0: int = 0, c1: int | None = None) -> np.ndarray:
        """Rows ``[r0, r1)`` and columns ``[c0, c1)`` in file (north-up) order."""
        c1 = self.shape[1] if c1 is None else c1
        out = np.empty((r1 - r0, c1 - c0), self.dtype)
        fh = self._tif.filehandle
        width = self.shape[1]
        for s in range(r0 // self._rps, (r1 - 1) // self._rps + 1):
            fh.seek(self._offsets[s])
            raw = fh.read(self._counts[s])
            buf = zlib.decompress(raw) if self._deflate else raw
            strip = np.frombuffer(buf, self.dtype).reshape(-1, width)
            s0 = s * self._rps
            a, b = max(r0, s0), min(r1, s0 + strip.shape[0])
            out[a - r0 : b - r0] = strip[a - s0 : b - s0, c0:c1]
        return out


def iter_npz_rows(path: Path, member: str, r0: int, r1: int, c0: int, c1: int,
                  block_rows: int = 600) -> Iterator[tuple[int, np.ndarray]]:
    """Stream rows ``[r0, r1)`` (columns ``[c0, c1)``) of a 2-D array stored in an .npz.

    Yields ``(first_row, block)`` with at most ``block_rows`` rows per block, so memory stays at
    one block whatever the window size.
    """
    with zipfile.ZipFile(path) as zf:
        try:
            fh = zf.open(member if member.endswith(".npy") else member + ".npy")
        except KeyError:
            raise InputDataError(f"{path}: no array {member!r} in the archive") from None
        with fh:
            version = npy_format.read_magic(fh)
            header = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
            shape, fortran, dtype = header(fh)
            if len(shape) != 2 or fortran:
                raise InputDataError(f"{path}:{member}: expected a C-ordered 2-D array, got shape {shape}")
            width = shape[1]
            row_bytes = width * dtype.itemsize
            # skip the rows above the window without keeping them
            skip = r0 * row_bytes
            while skip > 0:
                got = len(fh.read(min(skip, block_rows * row_bytes)))
                if got == 0:
                    raise InputDataError(f"{path}:{member}: truncated array")
                skip -= got
            row = r0
            while row < r1:
                n = min(block_rows, r1 - row)
                buf = fh.read(n * row_bytes)
                if len(buf) != n * row_bytes:
                    raise InputDataError(f"{path}:{member}: truncated array")
                yield row, np.frombuffer(buf, dtype).reshape(n, width)[:, c0:c1]
                row += n
