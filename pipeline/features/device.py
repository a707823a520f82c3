"""The backend of a table and its arrays: host copies of device arrays, Zarr reads into device memory."""

from __future__ import annotations

import math
from pathlib import Path

import xarray as xr


def get_backend(backend=None):
    """A :class:`pipeline.backend.Backend` from ``None`` (CPU), ``"auto"|"cpu"|"gpu"`` or a Backend."""
    from pipeline.backend import resolve_backend

    if backend is None:
        return resolve_backend("cpu")
    if isinstance(backend, str):
        return resolve_backend(backend)
    return backend


def read_zarr_block_gpu(store_path: Path, da: xr.DataArray, key_dims, xp):
    """Read a block of a Zarr array straight into device memory (CuPy), decoded like xarray.

    Uses ``zarr.config.enable_gpu()`` so zarr returns CuPy arrays, with KvikIO's ``GDSStore``
    (GPUDirect Storage, POSIX fallback) when KvikIO is installed, else zarr's ``LocalStore``.
    The result is transposed to (time, lat, lon) on the device.
    """
    import zarr

    key, dims = key_dims
    from pipeline.backend import zarr_device_store

    store = zarr_device_store(store_path)
    with zarr.config.enable_gpu():
        arr = zarr.open_array(store=store, path=str(da.name), mode="r")
        block = xp.asarray(arr[key])
    enc = da.encoding
    fill = enc.get("_FillValue", da.attrs.get("_FillValue"))
    block = block.astype(xp.float32 if block.dtype.itemsize <= 4 else xp.float64, copy=False)
    if fill is not None and not (isinstance(fill, float) and math.isnan(fill)):
        block = xp.where(block == fill, xp.nan, block)
    if "scale_factor" in enc or "add_offset" in enc:
        block = block * enc.get("scale_factor", 1.0) + enc.get("add_offset", 0.0)
    order = [dims.index(d) for d in dims if d not in ("time", "lat", "lon")] + [dims.index(d) for d in ("time", "lat", "lon")]
    block = xp.transpose(block, order)
    return xp.ascontiguousarray(block.reshape(block.shape[-3:]))
