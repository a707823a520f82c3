"""The aggregation method table, shared by :func:`apply_weights` and ``terrascale aggregate``."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import xarray as xr

from pipeline.aggregate.categorical import class_fractions, majority_class
from pipeline.aggregate.continuous import conservative_mean, subgrid_stats
from pipeline.errors import ConfigError
from pipeline.weights import read_weights

#: method name → aggregation function (each takes ``(da, grid, *, weights=..., ...)``)
METHODS: dict[str, Callable] = {
    "mean": conservative_mean,
    "fractions": class_fractions,
    "majority": majority_class,
    "std": subgrid_stats,
}
#: other names accepted by :func:`method_function`
_ALIASES = {"stats": "std"}


def method_function(method: str) -> Callable:
    """The aggregation function of a method name.

    Parameters
    ----------
    method : str
        ``mean``, ``fractions``, ``majority`` or ``std`` (alias ``stats``).

    Returns
    -------
    callable
        One of :func:`conservative_mean`, :func:`class_fractions`, :func:`majority_class`,
        :func:`subgrid_stats`.

    Raises
    ------
    ConfigError
        An unknown method, naming the known ones.
    """
    fn = METHODS.get(_ALIASES.get(method, method))
    if fn is None:
        raise ConfigError(f"unknown method {method!r}; use {', '.join(METHODS)}")
    return fn


def apply_weights(da: xr.DataArray, weights, *, method: str = "mean", **kwargs):
    """Aggregate with weights from a file (path or :func:`~pipeline.weights.read_weights` result).

    The weights index ``da`` as stored (flat C order over its last two dims, lat then lon), like
    CDO's.

    Parameters
    ----------
    da : xarray.DataArray
        The source field.
    weights : str, Path or SparseWeights
        A SCRIP/ESMF weights file or weights read from one.
    method : str
        A name of :data:`METHODS` (see :func:`method_function`).
    **kwargs
        Passed to the method's function.

    Returns
    -------
    xarray.DataArray or xarray.Dataset
        The method's result.
    """
    fn = method_function(method)
    if isinstance(weights, (str, Path)):
        weights = read_weights(weights)
    return fn(da, None, weights=weights, **kwargs)
