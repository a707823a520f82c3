"""Pick one field out of a variable with extra dimensions: ``--select DIM=LABEL`` and ``--select 'DIM[i]'``.

The aggregation functions keep leading dimensions (time, scenario, member ...) for the mean and
the statistics, but a class map is aggregated one field at a time, and a big stack may not fit
in memory. ``terrascale aggregate --select`` (repeatable) chooses one position along a dimension:

* ``DIM=LABEL``: the position whose coordinate value is ``LABEL``. Times are dates
  (``time=2019-01-01``; a shorter date such as ``time=2019-07`` when exactly one time matches),
  numbers are compared as numbers (``level=850``), text as text (``scenario=ssp126``);
* ``DIM[i]``: the position ``i`` (from 0; negative from the end), for any dimension, also one
  without coordinate values (quote it in the shell: ``--select 'time[0]'``).

The selected dimension is dropped; its coordinate value stays as a scalar coordinate of the
output (CF: ``coordinates``), so the output says which field it holds.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.errors import ConfigError, InputDataError
from pipeline.grids import source_axes

_INDEX_RE = re.compile(r"^\s*(?P<dim>[^\[\]=]+?)\s*\[\s*(?P<i>[+-]?\d+)\s*\]\s*$")
_LABEL_RE = re.compile(r"^\s*(?P<dim>[^\[\]=]+?)\s*=(?P<label>.*)$")


def grid_dims(da: xr.DataArray) -> tuple[str, str]:
    """The latitude and longitude dimensions of ``da`` (the last two when they cannot be recognised)."""
    try:
        axes = source_axes(da)
        return axes.lat_dim, axes.lon_dim
    except InputDataError:
        return (da.dims[-2], da.dims[-1]) if da.ndim >= 2 else (None, None)


def extra_dims(da: xr.DataArray) -> list[str]:
    """The dimensions of ``da`` besides latitude and longitude that hold more than one field."""
    lat, lon = grid_dims(da)
    return [str(d) for d in da.dims if d not in (lat, lon) and da.sizes[d] > 1]


def label_text(value) -> str:
    """A coordinate value as a user types it after ``--select DIM=`` (dates as ``YYYY-MM-DD``)."""
    if isinstance(value, (np.datetime64, pd.Timestamp)):
        ts = pd.Timestamp(value)
        return ts.strftime("%Y-%m-%d") if ts == ts.normalize() else ts.isoformat()
    if isinstance(value, (np.floating, float)) and float(value) == int(value):
        return str(int(value))
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)


def example_selection(da: xr.DataArray, dim: str) -> str:
    """``DIM=FIRST_LABEL`` (or ``'DIM[0]'`` without coordinate values), for messages."""
    if dim in da.coords and da[dim].ndim == 1:
        return f"{dim}={label_text(da[dim].values[0])}"
    return f"'{dim}[0]'"


def _labels_shown(coord: xr.DataArray) -> str:
    vals = [label_text(v) for v in coord.values[:4]]
    more = f" ... ({coord.size} values)" if coord.size > 4 else ""
    return ", ".join(vals) + more


def _matches(coord: xr.DataArray, label: str, item: str) -> np.ndarray:
    """Positions of ``coord`` whose value is ``label``."""
    values = coord.values
    kind = values.dtype.kind
    if kind == "M":
        try:
            ts = pd.Timestamp(label.strip())
        except (ValueError, TypeError):
            raise ConfigError(f"--select {item}: {label!r} is not a date; {coord.name} holds dates such as "
                              f"{_labels_shown(coord)}") from None
        if len(label.strip()) < len("YYYY-MM-DD"):  # a shorter date ('2019-07'): the times it names
            texts = pd.DatetimeIndex(values).strftime("%Y-%m-%dT%H:%M:%S")
            return np.flatnonzero([t.startswith(label.strip()) for t in texts])
        return np.flatnonzero(pd.DatetimeIndex(values) == ts)
    if kind in "iuf":
        try:
            x = float(label)
        except ValueError:
            raise ConfigError(f"--select {item}: {label!r} is not a number; {coord.name} holds numbers such as "
                              f"{_labels_shown(coord)}") from None
        return np.flatnonzero(np.isclose(values.astype(np.float64), x, rtol=1e-9, atol=1e-9))
    texts = [label_text(v) for v in values]  # text, and cftime dates compared by their text
    hit = np.flatnonzero([t == label.strip() for t in texts])
    if hit.size == 0:
        hit = np.flatnonzero([t.startswith(label.strip()) for t in texts])
    return hit


def select_fields(da: xr.DataArray, selections, *, source: str = "input") -> tuple[xr.DataArray, dict]:
    """Apply ``--select`` items to ``da``.

    Parameters
    ----------
    da : xarray.DataArray
        The variable.
    selections : iterable of str
        ``DIM=LABEL`` or ``DIM[i]`` items (see the module docstring).
    source : str
        The file, for messages.

    Returns
    -------
    (xarray.DataArray, dict)
        The selected variable, and the selected dimension → scalar coordinate (a DataArray, to be
        kept on the output; None for a dimension without coordinate values).

    Raises
    ------
    ConfigError
        A malformed item, an unknown dimension, a grid dimension, a repeated dimension, a label
        that matches no position or more than one, an index out of range.
    """
    chosen: dict[str, int] = {}
    lat, lon = grid_dims(da)
    for item in selections or ():
        item = str(item)
        m = _INDEX_RE.match(item) or _LABEL_RE.match(item)
        if m is None:
            raise ConfigError(f"--select {item!r}: write DIM=VALUE (e.g. time=2019-01-01) or DIM[INDEX] "
                              "(e.g. 'time[0]')")
        dim = m["dim"].strip()
        if dim not in da.dims:
            raise ConfigError(f"--select {item}: {da.name} of {source} has no dimension {dim!r}; its dimensions are "
                              f"{', '.join(map(str, da.dims))}")
        if dim in (lat, lon):
            raise ConfigError(f"--select {item}: {dim!r} is a grid dimension of {da.name}, which is aggregated, not "
                              "selected; select along the other dimensions only")
        if dim in chosen:
            raise ConfigError(f"--select {item}: dimension {dim!r} is selected twice; give one --select per dimension")
        n = da.sizes[dim]
        if m.re is _INDEX_RE:
            i = int(m["i"])
            if not -n <= i < n:
                raise ConfigError(f"--select {item}: {dim} has {n} positions (0..{n - 1}); choose one of them")
            chosen[dim] = i % n
            continue
        label = m["label"]
        if dim not in da.coords or da[dim].ndim != 1:
            raise ConfigError(f"--select {item}: {dim} has no coordinate values to match {label!r}; select by "
                              f"position instead, e.g. --select '{dim}[0]'")
        hit = _matches(da[dim], label, item)
        if hit.size != 1:
            what = "matches no" if hit.size == 0 else f"matches {hit.size}"
            raise ConfigError(f"--select {item}: {label!r} {what} {dim} value{'s' if hit.size != 1 else ''} of "
                              f"{da.name} in {source} ({_labels_shown(da[dim])}); give one exact value, or a position "
                              f"such as '{dim}[0]'")
        chosen[dim] = int(hit[0])
    if not chosen:
        return da, {}
    out = da.isel(chosen)
    kept = {d: (out.coords[d] if d in out.coords else None) for d in chosen}
    return out, kept
