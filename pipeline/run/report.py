"""The report stage: the run's outputs gathered into a :class:`~pipeline.report.ReportContext`, rendered.

Every number comes from a file an earlier stage wrote (metrics, training and prediction records,
prediction stores, ESM files, the manifest); what is derived here is presentation: the maps of
one time step, a subsample for the hexbin, regional time series of the products, drift of the
scenario inputs against the training rows and the conservation of the LULC predictions.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.io import open_dataset
from pipeline.run.state import RunState
from pipeline.sphere import centre_grid_areas

__all__ = ["build_context", "stage_report"]

_HEXBIN_ROWS = 100_000
_DRIFT_ROWS = 50_000
#: coarse groups shown in the scenario time series (when present)
_SERIES_GROUPS = ("cropland", "broadleaf_forest", "needleleaf_forest", "grassland", "shrubland")


def _json(path: Path, default=None):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def stage_report(state: RunState) -> list[str]:
    """Build the context from the run directory and write ``report.html``."""
    from pipeline.report import render_report

    ctx = build_context(state)
    render_report(ctx, state.run_dir / "report.html")
    state.say(f"report: {state.run_dir / 'report.html'}")
    return ["report.html"]


def _timings(state: RunState, task: str, cluster: str):
    from pipeline.report import ModelTiming

    records = _json(state.run_dir / "models" / task / "training.json", [])
    predict = _json(state.run_dir / "predictions" / task / "predict.json", {}).get("predict_seconds", {})
    return [ModelTiming(model=r["name"], family=r["family"], fit_s=float(r["fit_seconds"]),
                        predict_s=float(predict.get(r["name"], float("nan"))), device=r.get("device", "cpu"),
                        cluster=cluster if r.get("how", "in-process") != "in-process" else "client process")
            for r in records]


def _learning_curves(state: RunState, task: str) -> pd.DataFrame | None:
    rows = []
    for r in _json(state.run_dir / "models" / task / "training.json", []):
        for h in r.get("history") or []:
            rows.append({"model": r["name"], "epoch": h.get("epoch"), "train_loss": h.get("train_loss"),
                         "valid_loss": h.get("valid_loss", float("nan"))})
    return pd.DataFrame(rows) if rows else None


def _metrics_parts(state: RunState, task: str) -> dict:
    from pipeline.report import ConfusionMatrix, Headline

    out_dir = state.run_dir / "metrics" / task
    summary = _json(out_dir / "evaluation.json", {})
    parts = {"metrics": pd.read_csv(out_dir / "metrics.csv"),
             "metric_directions": summary.get("metric_directions", {}),
             "metric_labels": summary.get("metric_labels", {})}
    if summary.get("headline"):
        parts["headline"] = Headline(**summary["headline"])
    for name in ("class_f1", "seasonal"):
        if (out_dir / f"{name}.csv").exists():
            parts[name] = pd.read_csv(out_dir / f"{name}.csv")
    parts["confusion"] = {m: ConfusionMatrix(np.asarray(c["labels"]), np.asarray(c["matrix"]))
                          for m, c in (summary.get("confusion") or {}).items()}
    return parts


def _lulc_task(state: RunState, cluster: str):
    from pipeline.evaluate import conservation_error
    from pipeline.features.splits import split_summary
    from pipeline.report import FieldMaps, TaskReport
    from pipeline.run.stages import LULC_EVAL_YEAR, eval_probabilities, lulc_data

    data = lulc_data(state)
    spec, frame = data.spec, data.frame
    parts = _metrics_parts(state, "lulc")
    ev = pd.read_parquet(state.run_dir / "predictions" / "lulc" / "eval.parquet")
    models = list(dict.fromkeys(parts["metrics"]["model"].astype(str)))
    ny, nx = spec.grid_shape
    cells = frame["cell"].to_numpy()
    truth = np.full(ny * nx, 255.0)
    truth[cells] = frame["igbp"].to_numpy()
    land = np.zeros(ny * nx, bool)
    land[cells] = frame["land_fraction"].to_numpy() > 0
    preds, conservation = {}, []
    parent, class_group, coarse = data.coarse_inputs()
    for m in models:
        probs = eval_probabilities(ev, m, spec.classes)
        p = np.full(ny * nx, 255.0)
        p[cells] = np.asarray(spec.classes)[probs.argmax(1)]
        preds[m] = p.reshape(ny, nx)
        err = conservation_error(parent, frame["area"].to_numpy(), probs, class_group, coarse)
        conservation.append({"model": m, "grid": "coarse input", "quantity": "group fractions (probabilities)",
                             "max_abs_error": err, "max_rel_error": err})
    maps = FieldMaps(kind="categorical", variable="IGBP class", units="", when=f"{LULC_EVAL_YEAR}",
                     lat=data.lat, lon=data.lon, land_mask=land.reshape(ny, nx), truth=truth.reshape(ny, nx),
                     predictions=preds)
    splits = split_summary(frame[["cell", "split"]], data.lat, data.lon)
    splits["years"] = str(LULC_EVAL_YEAR)
    return TaskReport(task="lulc", title="Land use / land cover downscaling (IGBP classes, 0.05°)",
                      metrics=parts["metrics"], headline=parts.get("headline"),
                      metric_directions=parts["metric_directions"], metric_labels=parts["metric_labels"],
                      timing=_timings(state, "lulc", cluster), splits=splits,
                      conservation=pd.DataFrame(conservation), conservation_tolerance=1e-6, maps=maps,
                      class_f1=parts.get("class_f1"), confusion=parts["confusion"],
                      learning_curves=_learning_curves(state, "lulc"), loss_label="cross-entropy")


def _lai_task(state: RunState, cluster: str):
    from pipeline.report import FieldMaps, ObsPred, TaskReport
    from pipeline.run.stages import lai_data

    data = lai_data(state)
    parts = _metrics_parts(state, "lai")
    models = list(dict.fromkeys(parts["metrics"]["model"].astype(str)))
    ny, nx = data.spec.grid_shape
    mp = pd.read_parquet(state.run_dir / "predictions" / "lai" / "map.parquet")
    cells = mp["cell"].to_numpy()

    def grid(values) -> np.ndarray:
        out = np.full(ny * nx, np.nan)
        out[cells] = values
        return out.reshape(ny, nx)

    land = np.zeros(ny * nx, bool)
    land[cells] = True
    when = pd.Timestamp(mp["time"].iloc[0]).strftime("%B %Y") if len(mp) else ""
    maps = FieldMaps(kind="continuous", variable="LAI (noise-free truth)", units="m² m⁻²", when=when,
                     lat=data.lat, lon=data.lon, land_mask=land.reshape(ny, nx), truth=grid(mp["lai"].to_numpy()),
                     predictions={m: grid(mp[f"pred__{m}"].to_numpy()) for m in models if f"pred__{m}" in mp})
    ev = pd.read_parquet(state.run_dir / "predictions" / "lai" / "eval.parquet")
    rng = np.random.default_rng(state.cfg.seed)
    take = np.sort(rng.choice(len(ev), size=min(_HEXBIN_ROWS, len(ev)), replace=False)) if len(ev) else np.arange(0)
    obs = ev[data.spec.target].to_numpy()[take]
    obs_pred = {m: ObsPred(obs, ev[f"pred__{m}"].to_numpy()[take]) for m in models if f"pred__{m}" in ev}
    meta = data.extra["meta"]
    splits = pd.DataFrame(meta.get("split_summary") or [])
    seasonal = parts.get("seasonal")
    if seasonal is not None and "zone" in seasonal:
        from pipeline.datasets.classes import KOPPEN_CLASSES

        def zone_name(z) -> str:  # the panel titles: "C temperate", not a code
            try:
                letter, name, _ = KOPPEN_CLASSES[int(float(z))]
            except (KeyError, ValueError):
                return str(z)
            return f"{letter} {name}"

        seasonal["zone"] = seasonal["zone"].map(zone_name)
    return TaskReport(task="lai", title="Leaf area index reconstruction (monthly, 0.05°)", metrics=parts["metrics"],
                      headline=parts.get("headline"), metric_directions=parts["metric_directions"],
                      metric_labels=parts["metric_labels"], timing=_timings(state, "lai", cluster),
                      splits=splits if len(splits) else None, maps=maps, obs_pred=obs_pred,
                      seasonal_cycles=seasonal, learning_curves=_learning_curves(state, "lai"), loss_label="MSE")


def _drift(state: RunState) -> pd.DataFrame | None:
    """Scenario inputs (after the observed years) against the training rows, per scenario."""
    from pipeline.evaluate import drift_table

    if "lai" not in state.cfg.tasks:
        return None
    from pipeline.run.stages import lai_data

    data = lai_data(state)
    frame, spec = data.frame, data.spec
    train = frame[(frame["split"].astype(str) == "train").to_numpy()
                  & np.isfinite(frame[spec.target].to_numpy(np.float64))]
    if train.empty:
        return None
    last = pd.DatetimeIndex(train["time"].to_numpy()).year.max()
    years = pd.DatetimeIndex(frame["time"].to_numpy()).year.to_numpy()
    from pipeline.train.tasks import scenario_rows

    cols = [c for c in spec.features if c not in ("year", "lat", "lon", "month_sin", "month_cos")]
    rng = np.random.default_rng(state.cfg.seed)
    t = train.iloc[np.sort(rng.choice(len(train), min(_DRIFT_ROWS, len(train)), replace=False))]
    out = []
    for s in data.extra["scenarios"]:
        rows = frame[scenario_rows(frame, str(s)) & (years > last)]
        if rows.empty:
            continue
        rows = rows.iloc[np.sort(rng.choice(len(rows), min(_DRIFT_ROWS, len(rows)), replace=False))]
        d = drift_table(t[cols], rows[cols])
        d["scenario"] = str(s)
        out.append(d)
    return pd.concat(out, ignore_index=True) if out else None


def _series(state: RunState) -> tuple[pd.DataFrame | None, str | None]:
    """Regional annual means of the products per scenario: LAI and the main group fractions."""

    rows, models = [], []
    lai_path = state.run_dir / "predictions" / "lai" / "lai.zarr"
    if lai_path.exists():
        lai = open_dataset(lai_path, chunks={})["lai"]
        w = centre_grid_areas(lai["lat"].values, lai["lon"].values)
        models.append(f"LAI: {lai.attrs.get('model') or _json(lai_path.parent / 'predict.json', {}).get('product_model')}")
        for s in lai["scenario"].values:
            x = lai.sel(scenario=s)
            for year, block in x.groupby("time.year"):
                v = np.asarray(block.values, np.float64)  # (months, lat, lon): one year at a time
                ok = np.isfinite(v)
                value = float(np.nansum(v * w) / np.sum(ok * w)) if ok.any() else float("nan")
                rows.append({"time": int(year), "scenario": str(s), "variable": "LAI (annual mean, m² m⁻²)",
                             "value": value})
    lulc_path = state.run_dir / "predictions" / "lulc" / "lulc.zarr"
    if lulc_path.exists():
        from pipeline.datasets import load_class_table

        table = load_class_table().frame
        prob = open_dataset(lulc_path, chunks={})["probability"]
        w = centre_grid_areas(prob["lat"].values, prob["lon"].values)
        models.append(f"LULC: {_json(lulc_path.parent / 'predict.json', {}).get('product_model')}")
        codes = np.asarray(prob["igbp_class"].values)
        for g in _SERIES_GROUPS:
            members = [i for i, c in enumerate(codes) if int(c) in table.index and table.loc[int(c), "group"] == g]
            if not members:
                continue
            for s in prob["scenario"].values:
                for t in range(prob.sizes["time"]):
                    p = np.asarray(prob.sel(scenario=s).isel(time=t).values, np.float64)  # (class, lat, lon)
                    valid = np.isfinite(p[0])
                    frac = np.nansum(p[members], axis=0)
                    value = float(np.sum(frac[valid] * w[valid]) / np.sum(w[valid])) if valid.any() else float("nan")
                    rows.append({"time": int(pd.Timestamp(prob["time"].values[t]).year), "scenario": str(s),
                                 "variable": f"{g.replace('_', ' ')} fraction", "value": value})
    return (pd.DataFrame(rows) if rows else None), ("; ".join(models) or None)


def _grid_maps(state: RunState) -> list:
    """One PFT fraction and the July LAI of the first scenario's last year on each ESM grid."""
    import xarray as xr

    from pipeline.report import GridMap

    out = []
    for f in sorted((state.run_dir / "esm").glob("*.nc")):
        with xr.open_dataset(f) as ds:
            grid = f.stem.split("_", 2)[-1] if f.stem.startswith("lulc_fractions_") else f.stem.split("_", 1)[-1]
            if "pft_fraction" in ds:
                da = ds["pft_fraction"].isel(scenario=0, time=-1)
                # the PFT with the largest regional share
                pdim = [d for d in da.dims if d.startswith("pft")][0]
                share = da.mean([d for d in da.dims if d != pdim], skipna=True)
                k = int(np.nanargmax(share.values))
                name = str(da[pdim].values[k]) if pdim in da.coords else str(k)
                when = pd.Timestamp(ds["time"].values[-1]).year
                out.append(_grid_map(GridMap, grid, f"{name} fraction, {when}", "fraction", "1", da.isel({pdim: k})))
            if "lai" in ds and "time" in ds["lai"].dims:
                times = pd.DatetimeIndex(ds["time"].values)
                july = np.flatnonzero(times.month == 7)
                t = int(july[-1]) if july.size else len(times) - 1
                da = ds["lai"].isel(scenario=0, time=t)
                out.append(_grid_map(GridMap, grid, f"LAI, {times[t].strftime('%B %Y')}", "lai", "m² m⁻²", da))
    return [m for m in out if m is not None]


def _grid_map(GridMap, grid, label, kind, units, da):
    da = da.load()
    if set(da.dims) == {"lat", "lon"}:
        da = da.transpose("lat", "lon")
        return GridMap(grid=grid, label=label, kind=kind, units=units, lat=da["lat"].values, lon=da["lon"].values,
                       values=da.values)
    if da.ndim == 1 and "lat" in da.coords and "lon" in da.coords:
        return GridMap(grid=grid, label=label, kind=kind, units=units, lat=np.asarray(da["lat"].values),
                       lon=np.asarray(da["lon"].values), values=da.values)
    return None


def _provenance(state: RunState, cluster: str):
    import pipeline
    from pipeline.config import config_sha256
    from pipeline.datasets import SOURCES
    from pipeline.report import DataSourceRef, Provenance

    m = state.rd.manifest
    walls = {}
    for name, rec in (m.get("stages") or {}).items():
        if rec.get("wall_s") is not None:
            walls[name] = float(rec["wall_s"])
    notes = []
    if state.cfg.data.source == "demo":
        notes.append("Land cover (MODIS 2019), Köppen zones and the land mask are real data; the climate drivers, "
                     "the LAI and the LULC scenarios are semi-synthetic (generated from them), so the skill "
                     "figures show the method, not the world.")
    if "lulc" in state.cfg.tasks:
        notes.append("LULC metrics are computed on the land cells (land fraction > 0) of the test blocks of the "
                     "2019 map; open ocean is left out because every model gets it right.")
    return Provenance(config_sha256=config_sha256(state.cfg), terrascale_version=pipeline.__version__,
                      git_commit=m.get("git_commit"), config_path=m.get("config_path"),
                      data_sources=[DataSourceRef.from_source(s) for s in SOURCES.values()],
                      packages=m.get("packages", {}), backend=str(m.get("backend", "")), cluster=cluster,
                      stage_wall_s=walls, created=time.strftime("%Y-%m-%dT%H:%M:%S"), notes=notes)


def build_context(state: RunState):
    """The :class:`~pipeline.report.ReportContext` of the run in ``state``."""
    from pipeline.evaluate import OUTSIDE_THRESHOLD, PSI_THRESHOLD
    from pipeline.report import ReportContext

    cfg = state.cfg
    cluster = state.cluster_words()
    tasks = []
    for task in cfg.tasks:
        tasks.append(_lulc_task(state, cluster) if task == "lulc" else _lai_task(state, cluster))
    series, series_model = _series(state)
    lat0, lat1 = (tasks[0].maps.lat.min(), tasks[0].maps.lat.max()) if tasks and tasks[0].maps else (np.nan, np.nan)
    lon0, lon1 = (tasks[0].maps.lon.min(), tasks[0].maps.lon.max()) if tasks and tasks[0].maps else (np.nan, np.nan)
    region = f"{cfg.data.region}, {lat0:.1f}-{lat1:.1f}° N, {lon0:.1f}-{lon1:.1f}° E, {cfg.grids.fine}"
    period = f"{cfg.data.years[0]}-{cfg.data.years[1]}, scenarios {', '.join(cfg.data.scenarios)}"
    drift = _drift(state)
    return ReportContext(run_name=cfg.run_name, tasks=tasks, provenance=_provenance(state, cluster), region=region,
                         period=period, drift=drift,
                         drift_rule=f"PSI > {PSI_THRESHOLD:g} or more than {100 * OUTSIDE_THRESHOLD:g} % of rows "
                                    "outside the training range",
                         scenario_series=series, scenario_model=series_model, grid_maps=_grid_maps(state),
                         title=cfg.report.title)
