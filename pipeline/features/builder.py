"""The training table's features (:class:`FeatureBuilder`), built from the input stores one partition at a time.

The columns (static, coarse drivers, LULC neighbourhood, time, lags) are described in the
README section "features"; rows follow the contract of the :mod:`pipeline.features` docstring.
Every read of an input store's values goes through :meth:`FeatureBuilder._read` (that is,
:func:`pipeline.io.read_values`), so that a chunk that does not decode is one
:class:`~pipeline.errors.InputDataError` naming the store, the variable and the chunk.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.errors import ConfigError, InputDataError
from pipeline.features.broadcast import make_broadcast
from pipeline.features.cells import CELL, SPATIAL_DIMS, _grid_coords, make_cell_index
from pipeline.features.columns import (
    _datetime_column,
    _frame,
    make_categorical,
    time_values,
)
from pipeline.features.device import get_backend, read_zarr_block_gpu
from pipeline.features.drivers import _Coarse, climate_month_index, coarse_block
from pipeline.features.static import static_columns
from pipeline.features.stores import STORE_FILES
from pipeline.io import read_values, reading


def _sanitize(name: str) -> str:
    s = "".join(ch if ch.isalnum() else "_" for ch in str(name).strip().lower()).strip("_")
    return s or "group"


class FeatureBuilder:
    """Builds the training table from the input stores, one partition at a time.

    Rows: (scenario, time, valid cell) in the order of the :mod:`pipeline.features` docstring,
    for the target's scenarios in ``scenarios`` and times within ``years``, on the cells where
    the static ``features.mask_variable`` exceeds ``features.mask_min``.

    Parameters
    ----------
    stores
        ``{"static", "lulc", "climate", "target"}`` → dataset (lazy is best). ``lulc`` and
        ``climate`` are optional when no feature needs them.
    features, splits
        The ``features:`` and ``splits:`` config sections (``splits=None``: no split columns).
    target
        Target variable in ``stores["target"]`` (``lai``; ``lai_obs`` has no scenario dim, its
        drivers then come from the first scenario).
    scenarios, years
        Scenarios (in this order) and first/last year of the rows.
    seed
        Seed of the spatial fold assignment.
    backend
        CPU (pandas) or GPU (cudf) backend.
    paths
        Store paths (for messages, and for the GPU's direct Zarr → CuPy reads).
    """

    def __init__(self, stores: Mapping[str, xr.Dataset], features, splits=None, *, target: str = "lai",
                 scenarios: Sequence[str] | None = None, years: tuple[int, int] | None = None, seed: int = 0,
                 backend=None, paths: Mapping[str, Path] | None = None):
        self.be = get_backend(backend)
        self.features, self.splits_cfg, self.seed = features, splits, seed
        self.paths = {k: Path(v) for k, v in (paths or {}).items()}
        self.names = {k: (self.paths[k].name if k in self.paths else STORE_FILES.get(k, k)) for k in STORE_FILES}
        for k in ("static", "target"):
            if k not in stores:
                raise InputDataError(f"the {STORE_FILES[k]} store is needed to build features")
        self.stores = dict(stores)
        tds = self.stores["target"]
        if target not in tds.data_vars:
            raise InputDataError(
                f"target '{target}' is not in {self.names['target']}; it holds: {', '.join(map(str, tds.data_vars))}; "
                "set data.target to one of them"
            )
        self.target = target
        self.tda = tds[target]
        lat, lon = _grid_coords(tds, self.names["target"])
        self._check_same_grid(self.stores["static"], lat, lon)
        static = self.stores["static"]
        if features.mask_variable not in static.data_vars:
            raise InputDataError(
                f"mask variable '{features.mask_variable}' is not in {self.names['static']}; it holds: "
                f"{', '.join(map(str, static.data_vars))}; set features.mask_variable"
            )
        mvals = np.asarray(self._read("static", static[features.mask_variable].transpose(*SPATIAL_DIMS)), np.float64)
        self.index = make_cell_index(
            lat, lon, np.nan_to_num(mvals, nan=-np.inf) > features.mask_min,
            source=f"mask {features.mask_variable} > {features.mask_min:g} of {self.names['static']}",
        )
        self._setup_scenarios(scenarios)
        self._setup_times(years)
        self._setup_static()
        self._setup_coarse()
        self._setup_lulc()
        self._setup_splits()
        if self.be.is_gpu:  # per-cell arrays go to the device once, not per partition
            xp = self.be.xp
            self.static_cols = {n: (xp.asarray(v), c) for n, (v, c) in self.static_cols.items()}
        step = max(1, int(features.partition_rows) // self.index.nvalid)
        self.parts = [(s, a, min(a + step, self.nt)) for s in range(len(self.scenarios)) for a in range(0, self.nt, step)]

    # -- reads -------------------------------------------------------------------------------

    def _source(self, store_key: str, da=None) -> str:
        """The path of a store for messages (and for finding its bad chunk), else its name."""
        if store_key in self.paths:
            return str(self.paths[store_key])
        enc = getattr(da, "encoding", None) or {}
        return str(enc.get("source") or self.names.get(store_key, store_key))

    def _read(self, store_key: str, da, region=None):
        """The values of ``da`` (a variable of store ``store_key``, or a part of it) in host memory.

        ``region`` (dimension → index or (start, stop) in the stored variable) names the block
        in the message when a chunk does not decode.
        """
        return read_values(da, source=self._source(store_key, da), region=region)

    # -- set-up ------------------------------------------------------------------------------

    def _check_same_grid(self, ds, lat, lon):
        slat, slon = _grid_coords(ds, self.names["static"])
        if slat.shape != lat.shape or slon.shape != lon.shape or not (np.allclose(slat, lat) and np.allclose(slon, lon)):
            raise InputDataError(
                f"{self.names['static']} ({slat.size}x{slon.size}) and {self.names['target']} ({lat.size}x{lon.size}) "
                "are not on the same fine grid; regrid the static predictors to the target's grid"
            )

    def _setup_scenarios(self, scenarios):
        self.has_scenario = "scenario" in self.tda.dims
        wanted = list(scenarios) if scenarios else None
        if self.has_scenario:
            have = [str(s) for s in self.tda["scenario"].values]
            wanted = wanted or have
            missing = [s for s in wanted if s not in have]
            if missing:
                raise InputDataError(
                    f"scenario(s) {', '.join(missing)} not in {self.names['target']}; it has: {', '.join(have)}; fix data.scenarios"
                )
            self.scenarios = wanted
        else:
            self.scenarios = [None]
        self.driver_scenario = wanted[0] if wanted else None

    def _setup_times(self, years):
        if "time" not in self.tda.dims:
            raise InputDataError(f"target '{self.target}' in {self.names['target']} has no time dimension (dims {self.tda.dims})")
        t = time_values(self.tda["time"].values)
        sel = np.ones(t.size, bool)
        if years is not None:
            yr = pd.DatetimeIndex(t).year.to_numpy()
            sel = (yr >= years[0]) & (yr <= years[1])
        idx = np.flatnonzero(sel)
        if idx.size == 0:
            have = pd.DatetimeIndex(t).year
            raise InputDataError(
                f"no time step of '{self.target}' in {self.names['target']} falls in data.years {years[0]}:{years[1]} "
                f"(it covers {have.min()}-{have.max()}); fix data.years"
            )
        if not np.all(np.diff(t[idx]) > np.timedelta64(0, "ns")):
            raise InputDataError(f"the time axis of {self.names['target']} is not ascending; harmonise the store")
        self.t0 = int(idx[0])
        self.nt = int(idx.size)
        self.times = t[idx]
        self.years = pd.DatetimeIndex(self.times).year.to_numpy().astype(np.int16)
        self.months = pd.DatetimeIndex(self.times).month.to_numpy().astype(np.int8)

    def _setup_static(self):
        # One predictor at a time, read through _read (at most one fine field in memory, as before).
        static = self.stores["static"]
        self.static_cols: dict[str, tuple[np.ndarray, Any]] = {}
        for name in self.features.static:
            ds = static
            if name in static.data_vars and set(static[name].dims) == set(SPATIAL_DIMS):
                ds = static.assign({name: static[name].copy(data=self._read("static", static[name]))})
            self.static_cols.update(static_columns(ds, self.index, _OnlyStatic(self.features, name), self.names["static"]))

    def _driver(self, store_key: str, var: str, what: str):
        if store_key not in self.stores:
            raise InputDataError(f"{what} '{var}' needs the {STORE_FILES[store_key]} store")
        ds = self.stores[store_key]
        if var not in ds.data_vars:
            raise InputDataError(
                f"{what} '{var}' is not in {self.names[store_key]}; it holds: {', '.join(map(str, ds.data_vars))}"
            )
        return ds[var]

    def _setup_coarse(self):
        f = self.features
        self.coarse: list[_Coarse] = []
        self._bcache: dict = {}
        wanted = [(v, "value", 0) for v in f.coarse]
        wanted += [(v, "mean", L) for v in f.lag_variables for L in f.lags]
        wanted += [(v, "sum", L) for v in f.accumulate for L in f.lags]
        self.climate_index = None
        first = None
        for var, kind, L in wanted:
            da = self._driver("climate", var, "predictor" if kind == "value" else "lagged driver")
            rule = f.broadcast.get(var, f.coarse_broadcast)
            bc = self._broadcast("climate", rule, var)
            col = var if kind == "value" else f"{var}_{kind}{L}m"
            self.coarse.append(_Coarse(col, var, kind, L, bc))
            first = da if first is None else first
        self.max_lag = max((c.window for c in self.coarse), default=0)
        if first is not None:
            # after the loop, so that the monthly-axis check sees every lagged driver
            self.climate_index = climate_month_index(first, self.times, lagged=self.max_lag > 0,
                                                     store=self.names["climate"])

    def _broadcast(self, store_key, rule, var, neighbours=False):
        key = (store_key, rule, neighbours)
        if key not in self._bcache:
            self._bcache[key] = make_broadcast(self.index, self.stores[store_key], rule, var=var,
                                               store=self.names[store_key], neighbours=neighbours)
        return self._bcache[key]

    def _setup_lulc(self):
        f = self.features
        self.lulc = None
        if not f.lulc_variable:
            return
        da = self._driver("lulc", f.lulc_variable, "LULC variable")
        if "group" not in da.dims:
            raise InputDataError(f"'{f.lulc_variable}' in {self.names['lulc']} has no 'group' dimension (dims {da.dims})")
        rule = f.broadcast.get(f.lulc_variable, "parent")
        if rule == "bilinear":
            raise ConfigError(f"features.broadcast.{f.lulc_variable}: use parent or nearest for LULC fractions, not bilinear")
        bc = self._broadcast("lulc", rule, f.lulc_variable, neighbours=f.lulc_neighbourhood)
        groups = [_sanitize(g) for g in (da["group"].values if "group" in da.coords else range(da.sizes["group"]))]
        years = pd.DatetimeIndex(time_values(da["time"].values)).year.to_numpy() if "time" in da.dims else None
        if years is not None:
            pos = pd.Index(years).get_indexer(self.years.astype(np.int64))
            if (pos < 0).any():
                raise InputDataError(
                    f"{self.names['lulc']} has years {years.min()}-{years.max()} but the target needs "
                    f"{int(self.years[pos < 0].min())}-{int(self.years[pos < 0].max())}; extend it or narrow data.years"
                )
        else:
            pos = None
        cols = [f"lulc_{g}" + (f"_{lab}" if lab else "") for lab in bc.labels for g in groups]
        self.lulc = dict(da=da, bc=bc, groups=groups, pos=pos, columns=cols)

    def _setup_splits(self):
        from pipeline.features.splits import make_cell_split

        self.cell_split = None
        s = self.splits_cfg
        if s is None:
            return
        self.cell_split = make_cell_split(
            self.index.lat, self.index.lon, self.index.mask, kind=s.kind, block_size_deg=s.block_size_deg,
            n_folds=s.n_folds, test_fold=s.test_fold, buffer_deg=s.buffer_deg,
            test_years=tuple(s.test_years) if s.test_years else None, seed=self.seed,
        )
        self._check_split_nonempty()

    def _check_split_nonempty(self):
        """:class:`InputDataError` when the split leaves the table no train rows or no test rows."""
        from pipeline.features.splits import BUFFER, TEST, TRAIN, block_ids

        s, cs = self.splits_cfg, self.cell_split
        mask = self.index.mask
        places = cs.label[mask]
        years = np.unique(self.years).astype(np.int64)
        lo, hi = cs.test_years if cs.test_years is not None else (None, None)
        in_test = (years >= lo) & (years <= hi) if lo is not None else np.zeros(years.size, bool)
        table_years = f"{years.min()}-{years.max()}" if years.size > 1 else f"{years.min()}"
        yrs = f"the table's years {table_years} (data.years)"
        held = f"splits.test_years {lo}-{hi}" if lo is not None else ""
        lat, lon = self.index.lat, self.index.lon
        ilat, ilon = np.nonzero(mask)
        region = (f"the valid cells of the region (lat {lat[ilat].min():.2f}..{lat[ilat].max():.2f}, "
                  f"lon {lon[ilon].min():.2f}..{lon[ilon].max():.2f}; data.region)")
        nblocks = int(np.unique(block_ids(lat, lon, s.block_size_deg)[mask]).size) if cs.kind != "temporal" else 0
        blocks = (f"{nblocks} block(s) of splits.block_size_deg {s.block_size_deg:g}° for splits.n_folds {s.n_folds}"
                  + (f", splits.buffer_deg {s.buffer_deg:g}°" if s.buffer_deg else ""))
        reasons = {"train": [], "test": []}
        if cs.kind != "spatial":
            if in_test.all():
                reasons["train"].append(f"every one of {yrs} is in {held}; widen data.years or narrow splits.test_years")
            if not in_test.any():
                reasons["test"].append(f"{held} holds none of {yrs}; set splits.test_years within data.years")
        if cs.kind != "temporal":
            if not (places == TRAIN).any():
                where = "the test fold or its buffer" if (places == BUFFER).any() else "the test fold"
                reasons["train"].append(
                    f"{region} are all in {where} ({blocks}); lower splits.block_size_deg"
                    + (" or splits.buffer_deg" if s.buffer_deg else "") + ", or widen data.region")
            if not (places == TEST).any():
                reasons["test"].append(
                    f"{region} fall in {blocks}, none of them in splits.test_fold {s.test_fold}; "
                    "lower splits.block_size_deg or splits.test_fold, or widen data.region")
        for which in ("train", "test"):
            if reasons[which]:
                raise InputDataError(f"splits.kind {cs.kind} leaves no {which} rows: " + "; and ".join(reasons[which]))

    # -- schema ------------------------------------------------------------------------------

    @property
    def npartitions(self) -> int:
        return len(self.parts)

    @property
    def nrows(self) -> int:
        return len(self.scenarios) * self.nt * self.index.nvalid

    def categorical_columns(self) -> dict[str, list]:
        """Categorical columns and their categories."""
        out = {}
        if self.has_scenario:
            out["scenario"] = list(self.scenarios)
        for n, (_, cats) in self.static_cols.items():
            if cats is not None:
                out[n] = cats.tolist()
        if self.cell_split is not None:
            from pipeline.features.splits import SPLIT_LABELS

            out["split"] = list(SPLIT_LABELS)
        return out

    def meta(self):
        """An empty frame with the table's columns and dtypes (the dask ``meta``)."""
        return self.partition(0, _empty=True)

    # -- partitions --------------------------------------------------------------------------

    def _sel(self, da, scenario):
        if "scenario" in da.dims:
            name = scenario if scenario is not None else self.driver_scenario
            if name is None:
                return da.isel(scenario=0)
            have = [str(s) for s in da["scenario"].values]
            if name not in have:
                raise InputDataError(f"scenario '{name}' is not in the store of '{da.name}' (it has {', '.join(have)})")
            return da.isel(scenario=have.index(name))
        return da

    def _read_target(self, s: int, a: int, b: int):
        """Target block (nt, nlat, nlon) on the backend's device."""
        xp = self.be.xp
        da = self._sel(self.tda, self.scenarios[s]).isel(time=slice(self.t0 + a, self.t0 + b))
        da = da.transpose("time", *SPATIAL_DIMS)
        region = {"time": (self.t0 + a, self.t0 + b)}
        if self.has_scenario:
            region["scenario"] = [str(x) for x in self.tda["scenario"].values].index(self.scenarios[s])
        if self.be.is_gpu and "target" in self.paths and self.paths["target"].suffix == ".zarr":
            with reading(self._source("target"), self.target, region=region):
                return read_zarr_block_gpu(self.paths["target"], self.tda, self._target_key(s, a, b), xp)
        return xp.asarray(self._read("target", da, region))

    def _target_key(self, s, a, b):
        key = []
        for d in self.tda.dims:
            if d == "scenario":
                have = [str(x) for x in self.tda["scenario"].values]
                key.append(slice(have.index(self.scenarios[s]), have.index(self.scenarios[s]) + 1))
            elif d == "time":
                key.append(slice(self.t0 + a, self.t0 + b))
            else:
                key.append(slice(None))
        dims = [d for d in self.tda.dims]
        return tuple(key), dims

    def _coarse_block(self, c: _Coarse, scenario, ci: np.ndarray) -> np.ndarray:
        da = self._sel(self.stores["climate"][c.var], scenario).transpose("time", *SPATIAL_DIMS)
        # the months coarse_block reads (the window before the first one too), read here first
        lo, hi = max(0, int(ci.min()) - c.window), int(ci.max()) + 1
        part = da.isel(time=slice(lo, hi))
        part = part.copy(data=self._read("climate", part, {"time": (lo, hi)}))
        return coarse_block(part, c.kind, c.window, ci - lo)

    def partition(self, i: int, _empty: bool = False):
        """Partition ``i`` of the table as a pandas (CPU) or cudf (GPU) frame."""
        xp, xdf = self.be.xp, self.be.xdf
        s, a, b = self.parts[i]
        if _empty:
            b = a + 1
        scen = self.scenarios[s]
        nt, nv = b - a, self.index.nvalid
        full = (nt, nv)

        def rep(v_step):  # one value per time step → rows
            return xp.broadcast_to(xp.asarray(v_step).reshape(nt, 1), full).reshape(-1)

        def tile(v_cell):  # one value per cell → rows
            return xp.broadcast_to(xp.asarray(v_cell).reshape(1, nv), full).reshape(-1)

        cols: dict[str, Any] = {}
        if self.has_scenario:
            cols["scenario"] = make_categorical(xp.full(nt * nv, s, dtype=xp.int16), list(self.scenarios), xdf, xp)
        tv = self.times[a:b]
        cols["time"] = _datetime_column(rep(tv if xp is np else tv.view(np.int64)), xdf, xp)
        cells = tile(self.index.cells.astype(self.index.cell_dtype))
        cols[CELL] = cells
        cols[self.target] = self.index.gather(self._read_target(s, a, b), xp).reshape(-1)
        for n, (vals, cats) in self.static_cols.items():
            cols[n] = make_categorical(tile(vals), cats.tolist(), xdf, xp) if cats is not None else tile(vals)
        months = self.months[a:b].astype(np.float64)
        for name in self.features.time:
            if name == "month_sin":
                cols[name] = rep(np.sin(2 * np.pi * (months - 1) / 12).astype(np.float32))
            elif name == "month_cos":
                cols[name] = rep(np.cos(2 * np.pi * (months - 1) / 12).astype(np.float32))
            elif name == "year":
                cols[name] = rep(self.years[a:b])
            elif name == "month":
                cols[name] = rep(self.months[a:b])
        if self.coarse:
            ci = self.climate_index[a:b]
            for c in self.coarse:
                blk = xp.asarray(self._coarse_block(c, scen, ci).astype(np.float32, copy=False))
                cols[c.column] = c.bc.apply(blk, xp)[0].reshape(-1)
        if self.lulc is not None:
            L = self.lulc
            da = self._sel(L["da"], scen)
            da = da.transpose(*([d for d in ("time",) if d in da.dims]), "group", *SPATIAL_DIMS)
            if L["pos"] is not None:
                pos = L["pos"][a:b]
                uniq, inv = np.unique(pos, return_inverse=True)
                part = da.isel(time=xr.DataArray(uniq, dims="time"))
                blk = np.asarray(self._read("lulc", part, {"time": (int(uniq.min()), int(uniq.max()) + 1)}))[inv]
            else:
                blk = np.broadcast_to(np.asarray(self._read("lulc", da))[None], (nt,) + tuple(da.shape))
            blk = xp.asarray(blk.astype(np.float32, copy=False))
            ng = blk.shape[1]
            for g in range(ng):
                out = L["bc"].apply(blk[:, g], xp)  # (k, nt, nv)
                for k, lab in enumerate(L["bc"].labels):
                    cols[f"lulc_{L['groups'][g]}" + (f"_{lab}" if lab else "")] = out[k].reshape(-1)
            # keep the documented column order: all groups of one neighbour together
            order = L["columns"]
            for name in order:
                cols[name] = cols.pop(name)
        if self.cell_split is not None:
            from pipeline.features.splits import SPLIT_LABELS

            fold, split = self.cell_split.row_codes(cells, rep(self.years[a:b]), xp)
            cols["fold"] = fold
            cols["split"] = make_categorical(split, list(SPLIT_LABELS), xdf, xp)
        df = _frame(cols, xdf)
        return df.iloc[:0] if _empty else df

    # -- whole tables --------------------------------------------------------------------------

    def iter_partitions(self) -> Iterator:
        """Partitions in row order (one at a time; nothing else is held)."""
        for i in range(self.npartitions):
            yield self.partition(i)

    def to_frame(self):
        """The whole table in memory (small tables; use :meth:`to_dask` for large ones)."""
        parts = list(self.iter_partitions())
        if len(parts) == 1:
            return parts[0]
        return self.be.xdf.concat(parts, ignore_index=True)

    def to_dask(self):
        """The table as a dask DataFrame, one partition per :meth:`partition` call."""
        import dask.dataframe as dd

        return dd.from_map(_BuilderPartition(self), list(range(self.npartitions)), meta=self.meta(),
                           enforce_metadata=False)

    def grid_like(self) -> xr.Dataset:
        """A template for :func:`unflatten`: the fine grid and the table's outer coordinates."""
        coords = {"time": self.times, "lat": self.index.lat, "lon": self.index.lon}
        if self.has_scenario:
            coords = {"scenario": list(self.scenarios), **coords}
        return xr.Dataset(coords=coords)


class _BuilderPartition:
    """Picklable partition function of :meth:`FeatureBuilder.to_dask`."""

    def __init__(self, builder):
        self.builder = builder

    def __call__(self, i: int):
        return self.builder.partition(i)


class _OnlyStatic:
    """The ``features`` config seen by :func:`static_columns` with ``static`` narrowed to one name."""

    def __init__(self, features, name: str):
        self._features, self.static = features, [name]

    def __getattr__(self, key):
        return getattr(self._features, key)
