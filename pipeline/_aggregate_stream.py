"""Aggregation internals: engine choice, binding a source field and the streamed row chunks.

:func:`_prepare` checks the input, picks the array module and the kernels (:func:`_kernels`,
:func:`_xp_for`) and binds the weights; :func:`_chunks` cuts the source rows into chunks and
:func:`_read` reads one as a (lead, rows, lon) array of the backend.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

import kernels
from kernels.gpu import is_device_array as _is_cupy
from pipeline._aggregate_plan import _bind, _Plan
from pipeline.errors import BackendError, ConfigError, InputDataError
from pipeline.weights import SparseWeights

#: default number of source values per streamed chunk
CHUNK_VALUES = 32 * 2**20


def _kernels(engine: str, sample):
    """The kernel module for ``engine`` (see :func:`kernels.get_engine`) and the engine's name."""
    if engine == "auto":
        engine = "cupy" if _is_cupy(sample) else "numba"
    if engine not in kernels.ENGINES:
        raise ConfigError(f"unknown aggregation engine {engine!r}; use auto, {', '.join(kernels.ENGINES)}")
    try:
        return kernels.get_engine(engine), engine
    except ImportError as err:
        raise ConfigError(f"aggregation engine {engine!r} is not usable here ({err}); use engine='numpy' or 'numba'") from None


def _chunks(da, plan: _Plan, nb: int, chunk_rows: int | None):
    """Row ranges [r0, r1) to stream: ``chunk_rows`` rows, or a memory budget; dask-backed arrays
    are cut on their own chunk boundaries along latitude (merged up to the budget)."""
    ny, nx = plan.ny, plan.nx
    if chunk_rows is not None and (isinstance(chunk_rows, bool) or not isinstance(chunk_rows, (int, np.integer))
                                   or chunk_rows < 1):
        raise ConfigError(f"chunk_rows must be a positive whole number of source rows (or None: ~{CHUNK_VALUES:,} "
                          f"values per chunk), got {chunk_rows!r}")
    rows = chunk_rows or max(1, CHUNK_VALUES // max(1, nb * nx))
    chunks = getattr(da, "chunks", None)
    if chunks is not None and not chunk_rows:
        dask_bounds = np.concatenate([[0], np.cumsum(chunks[da.dims.index(plan.lat_dim)])]).astype(int)
        bounds = [0]
        for prev, b in zip(dask_bounds[1:-1], dask_bounds[2:]):
            if b - bounds[-1] > rows:
                bounds.append(int(prev))
        bounds.append(ny)
    else:
        bounds = list(range(0, ny, rows)) + [ny]
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _read(da, plan: _Plan, lead: tuple[str, ...], r0: int, r1: int, xp):
    """Rows [r0, r1) of ``da`` as a (nb, rows, nx) array of the backend (no copy if avoidable)."""
    sub = da.isel({plan.lat_dim: slice(r0, r1)}).transpose(*lead, plan.lat_dim, plan.lon_dim)
    a = sub.data
    if hasattr(a, "compute") and not isinstance(a, np.ndarray) and not _is_cupy(a):
        a = a.compute()
    if not (isinstance(a, np.ndarray) or _is_cupy(a)):
        a = np.asarray(sub.values)
    if xp is not np and not _is_cupy(a):
        a = xp.asarray(a)
    return a.reshape((-1, r1 - r0, plan.nx))


def _lead(da, plan):
    lead = tuple(d for d in da.dims if d not in (plan.lat_dim, plan.lon_dim))
    nb = int(np.prod([da.sizes[d] for d in lead])) if lead else 1
    return lead, nb


def _xp_for(engine, da):
    if engine == "cupy" or (engine == "auto" and _is_cupy(da.variable._data)):
        from kernels.gpu import device_array_module

        try:
            return device_array_module()
        except Exception as err:  # noqa: BLE001  (no CuPy, no driver or no device)
            raise BackendError(f"engine 'cupy' needs CuPy and a CUDA GPU ({type(err).__name__}: {err}); "
                               "use engine='numba' (CPU) or install terrascale[gpu]") from None
    return np


def _prepare(da, grid, weights, engine, name):
    if not isinstance(da, xr.DataArray):
        raise InputDataError(f"{name}: expected an xarray.DataArray, got {type(da).__name__}")
    from_file = isinstance(weights, SparseWeights)
    if grid is None and weights is None:
        raise ConfigError("give a target grid (e.g. '1deg', 'N128') or weights")
    xp = _xp_for(engine, da)
    K, engine_used = _kernels(engine, da.variable._data if engine == "auto" else None)
    plan = _bind(da, weights, grid, name=name, from_file=from_file, xp=xp)
    return plan, K, xp
