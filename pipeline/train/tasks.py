"""The two tasks of a run as tables and specs: what the models of each task train and are scored on.

LULC (:func:`lulc_task`)
    One row per valid fine cell of the truth year's map (``static.zarr`` ``igbp``, MODIS 2019) with
    its parent's coarse group fractions of that year (``lulc_fraction_2019``), the fine static
    predictors, and the split columns: spatial blocks only (one map, no time), the same blocks,
    folds, test fold and buffer as the LAI table.
LAI (:func:`lai_task`)
    The feature table of ``terrascale features`` (every scenario, month and land cell, target the
    noise-free ``lai``) plus the satellite-era observations ``lai_obs`` (noise, gaps) as the
    training target: a user trains on what a satellite saw and is scored against it and against
    the truth. ``area`` and ``block`` columns are added for the area-weighted metrics and the
    block bootstrap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.errors import InputDataError
from pipeline.models.base import TaskSpec
from pipeline.sphere import centre_grid_areas
from pipeline.train.stage import NON_FEATURE_COLUMNS

__all__ = ["LAI_OBS", "LULC_TRUTH", "TaskData", "lai_task", "lulc_task", "scenario_rows", "task_columns"]

#: the observed LAI variable of ``lai.zarr`` (the training target of the LAI task)
LAI_OBS = "lai_obs"
#: the coarse fractions of the truth year (the year of the fine map)
LULC_TRUTH = "lulc_fraction_2019"
#: columns a task table carries for evaluation and bookkeeping, never predictors
_BOOKKEEPING = ("block", "area", "parent", "lai", LAI_OBS)


@dataclass
class TaskData:
    """A task's table and the roles of its columns.

    Attributes
    ----------
    spec : TaskSpec
        The task (target, features, classes ...).
    frame : pandas.DataFrame
        Every row of the task (``split`` says which are training, test, buffer or excluded).
    lat, lon : numpy.ndarray
        Fine cell centres (``cell`` indexes them in C order).
    extra : dict
        Task-specific facts (LULC: ``groups``, ``coarse_shape``, ``coarse_lat``, ``coarse_lon``).
    """

    spec: TaskSpec
    frame: pd.DataFrame
    lat: np.ndarray
    lon: np.ndarray
    extra: dict

    def coarse_inputs(self, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """LULC: the rows' ``parent``, each class's group index and the (n_parent, G) coarse fractions.

        What :mod:`pipeline.evaluate.fractions` compares a prediction with; ``rows`` (boolean)
        selects rows, the coarse fractions are those of the parents of the selected rows (NaN elsewhere).
        """
        spec, frame = self.spec, self.frame
        sel = slice(None) if rows is None else rows
        groups = list(spec.group_columns)
        class_group = np.array([groups.index(g) for g in spec.class_groups])
        parent = frame[spec.parent].to_numpy()[sel]
        coarse = np.full((int(np.prod(self.extra["coarse_shape"])), len(groups)), np.nan)
        for i, g in enumerate(groups):
            coarse[parent, i] = frame[spec.group_columns[g]].to_numpy(np.float64)[sel]
        return parent, class_group, coarse


def scenario_rows(frame: pd.DataFrame, name: str | None) -> np.ndarray:
    """Boolean rows of scenario ``name`` (every row for ``None`` or a table without scenarios).

    Compared through the category codes: a string compare of millions of rows takes seconds.
    """
    if not name or "scenario" not in frame:
        return np.ones(len(frame), bool)
    col = frame["scenario"]
    if isinstance(col.dtype, pd.CategoricalDtype):
        cats = [str(c) for c in col.cat.categories]
        return col.cat.codes.to_numpy() == (cats.index(name) if name in cats else -2)
    return col.astype(str).to_numpy() == name


def task_columns(frame: pd.DataFrame, target: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The predictor and categorical columns of a task table (everything but identity, target and bookkeeping)."""
    drop = {*NON_FEATURE_COLUMNS, *_BOOKKEEPING, target}
    features = tuple(c for c in frame.columns if c not in drop)
    categorical = tuple(c for c in features if isinstance(frame[c].dtype, pd.CategoricalDtype))
    return features, categorical


def _block_column(lat: np.ndarray, lon: np.ndarray, cells: np.ndarray, block_size_deg: float) -> np.ndarray:
    from pipeline.features.splits import block_ids

    return np.asarray(block_ids(lat, lon, block_size_deg)).ravel()[cells].astype(np.int32)


def lulc_task(static: xr.Dataset, coarse: xr.Dataset, splits, *, seed: int = 0, fractions: str = LULC_TRUTH,
              static_columns=("koppen", "land_fraction", "distance_to_coast", "lat", "lon")) -> TaskData:
    """The LULC task on the truth year: rows, spec and spatial-block splits.

    Parameters
    ----------
    static : xarray.Dataset
        ``static.zarr`` (``igbp`` truth and the static predictors).
    coarse : xarray.Dataset
        ``lulc_coarse.zarr`` (``fractions``: coarse group fractions of the truth year).
    splits : pipeline.config.SplitsConfig
        Blocks, folds, test fold and buffer (the temporal part does not apply: one map).
    seed : int
        Seed of the fold assignment (the run's seed, as for the LAI table).
    fractions : str
        Variable of the truth year's coarse fractions.
    static_columns : sequence of str
        Fine predictors.

    Returns
    -------
    TaskData
    """
    from pipeline.datasets import load_class_table
    from pipeline.features import lulc_table
    from pipeline.features.splits import SPLIT_LABELS, make_cell_split

    if fractions not in coarse:
        raise InputDataError(f"lulc_coarse.zarr has no {fractions!r} (the coarse fractions of the fine map's year); "
                             f"it holds {', '.join(map(str, coarse.data_vars))}")
    table = lulc_table(static, coarse[fractions], static_columns=static_columns)
    frame = table.frame
    valid = np.zeros(table.grid_shape, bool)
    valid.ravel()[frame["cell"].to_numpy()] = True
    cut = make_cell_split(table.lat, table.lon, valid, kind="spatial", block_size_deg=splits.block_size_deg,
                          n_folds=splits.n_folds, test_fold=splits.test_fold, buffer_deg=splits.buffer_deg, seed=seed)
    cells = frame["cell"].to_numpy()
    fold, place = cut.row_codes(cells, None)
    frame["fold"] = np.asarray(fold, np.int8)
    frame["split"] = pd.Categorical.from_codes(np.asarray(place, np.int8), categories=list(SPLIT_LABELS))
    frame["block"] = _block_column(table.lat, table.lon, cells, splits.block_size_deg)
    classes_table = load_class_table().frame
    present = set(np.unique(frame["igbp"].to_numpy()).tolist())
    # a class never seen in the map (water inland of the region's cells, say) cannot be learnt
    classes = tuple(int(v) for v in classes_table.index if int(v) in present)
    groups = tuple(str(classes_table.loc[c, "group"]) for c in classes)
    unknown = sorted(set(groups) - set(table.group_columns))
    if unknown:
        raise InputDataError(f"the class table's group(s) {', '.join(unknown)} have no coarse fraction in "
                             f"lulc_coarse.zarr {fractions} (groups: {', '.join(table.groups)})")
    features, categorical = task_columns(frame, "igbp")
    spec = TaskSpec(task="lulc", target="igbp", features=features, categorical=categorical, classes=classes,
                    class_groups=groups, group_columns=dict(table.group_columns), time="time",
                    grid_shape=tuple(table.grid_shape))
    extra = {"groups": table.groups, "coarse_shape": table.coarse_shape, "coarse_lat": table.coarse_lat,
             "coarse_lon": table.coarse_lon, "static_columns": tuple(static_columns)}
    return TaskData(spec, frame, table.lat, table.lon, extra)


def lai_task(frame: pd.DataFrame, meta: dict, lai_store: xr.Dataset, splits, *, obs: str = LAI_OBS,
             source: str = "lai.zarr") -> TaskData:
    """The LAI task: the feature table with the observed LAI attached as the training target.

    ``lai_obs`` (time, lat, lon) has no scenario: it is the satellite record, attached to the rows
    of the first scenario whose month it covers (the history, identical in every scenario); other
    rows get NaN (nothing observed) and are never training rows.

    Parameters
    ----------
    frame : pandas.DataFrame
        The feature table (:func:`pipeline.features.read_feature_table`), target ``lai``.
    meta : dict
        Its ``features.json`` (grid, scenarios).
    lai_store : xarray.Dataset
        ``lai.zarr`` with ``obs``.
    splits : pipeline.config.SplitsConfig
        For the bootstrap blocks (``block_size_deg``).
    obs : str
        The observed variable.
    source : str
        Store name in messages.

    Returns
    -------
    TaskData
    """
    if obs not in lai_store:
        raise InputDataError(f"{source} has no {obs!r} (the observed LAI the LAI models learn); it holds "
                             f"{', '.join(map(str, lai_store.data_vars))}")
    lat = np.asarray(meta["grid"]["lat"], np.float64)
    lon = np.asarray(meta["grid"]["lon"], np.float64)
    da = lai_store[obs].transpose("time", "lat", "lon")
    if da.sizes["lat"] != lat.size or da.sizes["lon"] != lon.size:
        raise InputDataError(f"{source} {obs} is on a {da.sizes['lat']}x{da.sizes['lon']} grid, the feature table "
                             f"on {lat.size}x{lon.size}; rebuild the features from the same stores")
    obs_times = pd.DatetimeIndex(np.asarray(da["time"].values, "datetime64[ns]"))
    times = pd.DatetimeIndex(frame["time"].to_numpy())
    first = str(meta["scenarios"][0]) if meta.get("scenarios") else None
    in_first = scenario_rows(frame, first)
    pos = obs_times.get_indexer(times)
    take = in_first & (pos >= 0)
    values = np.full(len(frame), np.nan, np.float32)
    if take.any():
        used = np.unique(pos[take])
        block = np.asarray(da.isel(time=used).values, np.float32).reshape(used.size, -1)  # only the months in the table
        row = np.searchsorted(used, pos[take])
        values[take] = block[row, frame["cell"].to_numpy()[take]]
    frame = frame.assign(**{obs: values})
    cells = frame["cell"].to_numpy()
    frame["area"] = centre_grid_areas(lat, lon).ravel()[cells]
    frame["block"] = _block_column(lat, lon, cells, splits.block_size_deg)
    features, categorical = task_columns(frame, obs)
    spec = TaskSpec(task="lai", target=obs, features=features, categorical=categorical, land_cover="igbp",
                    time="time", grid_shape=(lat.size, lon.size))
    return TaskData(spec, frame, lat, lon, {"truth": meta["target"], "scenarios": list(meta.get("scenarios") or [])})
