"""The work of each stage of ``terrascale run``; :mod:`pipeline.run.runner` decides which ones run.

Every function takes the :class:`~pipeline.run.state.RunState` and returns the run-directory
paths it wrote (relative), which the runner records in the manifest with the stage's key.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.catalog import file_checksums
from pipeline.errors import ConfigError, InputDataError
from pipeline.io import open_dataset
from pipeline.run.state import RunState

__all__ = [
    "LULC_EVAL_YEAR",
    "input_paths",
    "lai_data",
    "lulc_data",
    "product_model",
    "stage_aggregate",
    "stage_evaluate",
    "stage_features",
    "stage_predict",
    "stage_prepare",
    "stage_train",
]

#: the year of the fine truth map (MODIS 2019): the LULC task is trained and tested on it
LULC_EVAL_YEAR = 2019
#: the LAI map month shown in the report (July of the last test year)
_MAP_MONTH = 7


def _attrs(state: RunState, what: str) -> dict:
    import pipeline
    from pipeline.config import config_sha256

    return {"title": f"terrascale {what}", "source": f"terrascale run {state.cfg.run_name}",
            "terrascale_version": pipeline.__version__, "config_sha256": config_sha256(state.cfg),
            "Conventions": "CF-1.10",
            "history": f"{time.strftime('%Y-%m-%dT%H:%M:%S')}: terrascale run (stage {what})"}


# -- prepare / features ---------------------------------------------------------------------------


def input_paths(state: RunState) -> dict[str, Path]:
    """The input stores (found or, for the demo, generated)."""
    from pipeline.features.stores import input_stores

    return state.cached("input_paths", lambda: input_stores(state.cfg, notify=state.say))


def _open(state: RunState, kind: str, *, load: bool = False):
    def make():
        ds = open_dataset(input_paths(state)[kind], chunks={})
        return ds.load() if load else ds

    return state.cached(f"store:{kind}:{load}", make)


def stage_prepare(state: RunState) -> list[str]:
    """Open (the demo: generate) the inputs and check they belong together and cover the run."""
    from pipeline.datasets import check_store_set

    paths = input_paths(state)
    check_store_set(paths)
    lulc = _open(state, "lulc")
    cfg = state.cfg
    if "scenario" in lulc.dims:
        have = [str(s) for s in lulc["scenario"].values]
        missing = [s for s in cfg.data.scenarios if s not in have]
        if missing:
            raise InputDataError(f"scenario(s) {', '.join(missing)} of data.scenarios are not in {paths['lulc']} "
                                 f"(it has {', '.join(have)}); set data.scenarios to some of them")
    if "time" in lulc.dims:
        years = pd.DatetimeIndex(lulc["time"].values).year
        lo, hi = cfg.data.years
        if lo < years.min() or hi > years.max():
            raise InputDataError(f"data.years {lo}:{hi} lie outside the years of {paths['lulc']} "
                                 f"({years.min()}-{years.max()}); set data.years within them")
    _check_targets_overlap(state, _open(state, "static"), paths["static"])
    from pipeline.catalog import input_checksums

    # what the run was made from, for the catalogue and for a re-run from the manifest to compare against
    state.rd.manifest["input_checksums"] = input_checksums(paths)
    state.rd.save()
    return [str(p.relative_to(state.run_dir)) for p in paths.values() if _inside(p, state.run_dir)]


def _check_targets_overlap(state: RunState, static, source: Path) -> None:
    """Refuse an ESM target grid none of whose cells overlaps the region (its files would be empty)."""
    from pipeline.grids import parse_grid
    from pipeline.sphere import edges_from_centres

    lat_e = edges_from_centres(np.asarray(static["lat"].values, np.float64), clip=(-90.0, 90.0), single_cell_width=1.0)
    lon_e = edges_from_centres(np.asarray(static["lon"].values, np.float64), single_cell_width=1.0)
    s, n = float(lat_e.min()), float(lat_e.max())
    w, e = float(lon_e.min()), float(lon_e.max())
    for spec in state.cfg.grids.targets:
        lat0, lat1, lon0, lon1 = (np.asarray(a, np.float64).ravel() for a in parse_grid(spec).boxes())
        lat_ok = (lat1 > s) & (lat0 < n)
        lon_ok = np.zeros_like(lat_ok)
        for shift in (-360.0, 0.0, 360.0):
            lon_ok |= (lon1 + shift > w) & (lon0 + shift < e)
        if not (lat_ok & lon_ok).any():
            raise ConfigError(f"grids.targets grid {spec!r} has no cell over the region of {source} "
                              f"({s:g}..{n:g}° N, {w:g}..{e:g}° E); choose a target grid that covers it")


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def stage_features(state: RunState) -> list[str]:
    """The LAI feature table (``features/``) and the LULC table of the truth year (``features/lulc.parquet``)."""
    from pipeline.features import run_features
    from pipeline.io import atomic_output

    out = []
    if "lai" in state.cfg.tasks:
        meta = run_features(state.cfg, progress=state.progress_of("features"), notify=state.say)
        state.say(f"features: {meta['rows']:,} LAI rows x {len(meta['columns'])} columns")
        out.append("features/features.json")
    if "lulc" in state.cfg.tasks:
        data = lulc_data(state)
        path = state.run_dir / "features" / "lulc.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path, directory=False, kind="a LULC table") as tmp:
            data.frame.to_parquet(tmp, index=False)
        state.say(f"features: {len(data.frame):,} LULC rows (the {LULC_EVAL_YEAR} map) x {data.frame.shape[1]} columns")
        out.append("features/lulc.parquet")
    return out


def lulc_data(state: RunState):
    """The LULC task (:func:`pipeline.train.tasks.lulc_task`) of the run (rebuilt from the inputs: 1 s)."""
    from pipeline.train.tasks import lulc_task

    return state.cached("lulc_data", lambda: lulc_task(_open(state, "static", load=True), _open(state, "lulc", load=True),
                                                       state.cfg.splits, seed=state.cfg.seed))


def lai_data(state: RunState):
    """The LAI task (:func:`pipeline.train.tasks.lai_task`): the feature table with ``lai_obs``."""
    from pipeline.features import META_FILE, read_feature_table, table_meta
    from pipeline.train.tasks import lai_task

    def make():
        path = state.run_dir / "features"
        if not (path / META_FILE).exists():
            raise InputDataError(f"no feature table in {path}; run the features stage first "
                                 "(`terrascale run CONFIG --stages features`)")
        meta = table_meta(path)
        frame = read_feature_table(path, backend="cpu")
        data = lai_task(frame, meta, _open(state, "target"), state.cfg.splits)
        data.extra["meta"] = meta
        return data

    return state.cached("lai_data", make)


def task_data(state: RunState, task: str):
    """The table of ``task``."""
    return lulc_data(state) if task == "lulc" else lai_data(state)


# -- train ----------------------------------------------------------------------------------------


def stage_train(state: RunState, task: str, todo: list, keys: dict[str, str]) -> list[str]:
    """Fit the task's models whose key changed (``todo``), keep the others; write ``models/<task>/training.json``."""
    from pipeline.backend import resolve_backend
    from pipeline.io import write_text_atomically
    from pipeline.train.stage import fit_model, sample_training_rows, split_rows

    cfg = state.cfg
    out_dir = state.run_dir / "models" / task
    records = {r["name"]: r for r in _read_json(out_dir / "training.json", [])}
    if task in state.imported:
        return _install_imported(state, task, todo, keys, records)
    data = task_data(state, task)
    spec, frame = data.spec, data.frame
    if todo:
        train_df, valid_df = split_rows(frame, spec, cfg.training, seed=cfg.seed)
        if task == "lai":
            train_df = train_df[np.isfinite(train_df[spec.target].to_numpy(np.float64))]
            valid_df = valid_df[np.isfinite(valid_df[spec.target].to_numpy(np.float64))]
        if train_df.empty:
            raise InputDataError(f"the {task} table has no training rows with an observed target")
        rows = sample_training_rows(train_df, cfg.training.sample_rows, cfg.seed, state.say)
        images = None
        device = "cuda" if resolve_backend(cfg.backend).name == "gpu" else "cpu"
        use_cluster = _cluster_fit_available()
        for entry in todo:
            name = entry.name or entry.kind
            ckpt = state.run_dir / "checkpoints" / task / f"{name}-{keys[name]}"
            if not state.resume and ckpt.exists():
                import shutil

                shutil.rmtree(ckpt)  # only our own checkpoint directory: a fresh fit was asked for
            state.say(f"train/{task}: fitting {name} ({entry.kind})"
                      f"{f', validated on {len(valid_df):,}' if len(valid_df) else ''}")
            fit_rows = rows
            if entry.kind == "unet":
                # a U-Net learns from images: whole time steps, not rows scattered over the grid
                if images is None:
                    images = sample_time_steps(train_df, cfg.training.sample_rows, cfg.seed)
                fit_rows = images
            rec = fit_model(entry, spec, fit_rows, valid_df, cfg, out_dir=out_dir, checkpoint_dir=ckpt,
                            client=state.client() if use_cluster and _wants_cluster(entry) else None,
                            progress=state.epoch, device=device)
            rec["key"] = keys[name]
            rec["path"] = str(Path(rec["path"]).relative_to(state.run_dir))
            records[name] = rec
            state.rd.manifest.setdefault("models", {}).setdefault(task, {})[name] = {
                "key": keys[name], "path": rec["path"], "kind": entry.kind, "family": rec["family"],
                "fit_seconds": rec["fit_seconds"], "valid_score": rec["valid_score"],
                "files": file_checksums(state.run_dir / rec["path"])}
            state.rd.save()  # a model finished survives an interrupt of the next one
            score = "" if rec["valid_score"] is None else f", validation {_score_name(task)} {rec['valid_score']:.4g}"
            state.say(f"train/{task}: {name} fitted on {rec['rows']:,} rows in {rec['fit_seconds']:.1f} s "
                      f"({rec.get('how', 'in-process')}"
                      f"){score}")
    names = [e.name or e.kind for e in _entries(state, task)]
    kept = [records[n] for n in names if n in records]
    write_text_atomically(out_dir / "training.json", json.dumps(kept, indent=1, default=str))
    return [f"models/{task}/training.json"] + [f"models/{task}/{n}" for n in names]


def _install_imported(state: RunState, task: str, todo: list, keys: dict, records: dict) -> list[str]:
    """Put verified model archives in place of trained models (``terrascale predict --model ARCHIVE``)."""
    import shutil

    from pipeline.io import atomic_output, write_text_atomically
    from pipeline.models.persist import load_model

    out_dir = state.run_dir / "models" / task
    out_dir.mkdir(parents=True, exist_ok=True)
    for m in todo:
        name = m["name"]
        with atomic_output(out_dir / name, directory=True, kind="a saved model",
                           replaces=lambda p: (p / "model.json").is_file()) as tmp:
            shutil.copytree(m["dir"], tmp)
        model = load_model(out_dir / name)  # its checksums are checked once more where it will be used
        rec = m["record"]
        records[name] = {"name": name, "kind": model.kind, "family": model.family, "task": task,
                         "fit_seconds": rec.get("fit_seconds", float("nan")), "rows": None, "valid_rows": None,
                         "path": f"models/{task}/{name}", "valid_score": rec.get("valid_score"),
                         "history": list(getattr(model, "history", None) or []), "device": "cpu",
                         "how": f"imported from {m['archive']}", "key": keys[name]}
        state.rd.manifest.setdefault("models", {}).setdefault(task, {})[name] = {
            "key": keys[name], "path": f"models/{task}/{name}", "kind": model.kind, "family": model.family,
            "fit_seconds": rec.get("fit_seconds"), "valid_score": rec.get("valid_score"),
            "files": file_checksums(out_dir / name), "imported_from": m["archive"], "entry": m.get("entry")}
        state.rd.save()
        state.say(f"train/{task}: {name} imported from {m['archive']}")
    names = [m["name"] for m in state.imported[task]]
    write_text_atomically(out_dir / "training.json",
                          json.dumps([records[n] for n in names if n in records], indent=1, default=str))
    return [f"models/{task}/training.json"] + [f"models/{task}/{n}" for n in names]


def sample_time_steps(frame: pd.DataFrame, n_rows: int | None, seed: int) -> pd.DataFrame:
    """Whole (scenario, time) steps of ``frame`` drawn with ``seed`` until about ``n_rows`` rows (all without a limit)."""
    if n_rows is None or len(frame) <= n_rows or "time" not in frame:
        return frame
    keys = ["scenario", "time"] if "scenario" in frame else ["time"]
    groups = frame.groupby(keys, observed=True, sort=True).indices
    order = np.random.default_rng(seed).permutation(len(groups))
    items = list(groups.values())
    chosen, total = [], 0
    for i in order:
        chosen.append(items[i])
        total += len(items[i])
        if total >= n_rows:
            break
    return frame.iloc[np.sort(np.concatenate(chosen))]


def _score_name(task: str) -> str:
    return "RMSE" if task == "lai" else "log loss"


def _cluster_fit_available() -> bool:
    try:
        import pipeline.train.on_cluster  # noqa: F401
    except ImportError:
        return False
    return True


def _wants_cluster(entry) -> bool:
    # the cluster pays off where the work spreads: boosted trees over the workers, the MLP as DDP ranks
    return entry.kind in ("xgboost", "mlp")


def _entries(state: RunState, task: str) -> list:
    from pipeline.train.stage import task_entries

    return task_entries(state.cfg, task)  # imported models take the other path (_install_imported)


def _read_json(path: Path, default):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


# -- predict --------------------------------------------------------------------------------------


def product_model(state: RunState, task: str) -> str:
    """The model whose predictions become the task's products: ``predict.models[task]`` or the best
    non-baseline model on the validation blocks (the first non-baseline model without validation)."""
    records = _read_json(state.run_dir / "models" / task / "training.json", [])
    if not records:
        raise InputDataError(f"no trained {task} model in {state.run_dir / 'models' / task}; run the train stage first")
    names = [r["name"] for r in records]
    chosen = state.cfg.predict.models.get(task)
    if chosen:
        if chosen not in names:
            raise ConfigError(f"predict.models.{task} is {chosen!r}, not a trained {task} model "
                              f"(trained: {', '.join(names)})")
        return chosen
    candidates = [r for r in records if r["family"] != "baseline"] or records
    scored = [r for r in candidates if r.get("valid_score") is not None]
    best = min(scored, key=lambda r: r["valid_score"]) if scored else candidates[0]
    return best["name"]


def _load(state: RunState, task: str, name: str):
    from pipeline.models.persist import load_model

    return load_model(state.run_dir / "models" / task / name)


def stage_predict(state: RunState, task: str) -> list[str]:
    """Every model on the evaluation rows; the product model on every year and scenario (streamed)."""
    return _predict_lulc(state) if task == "lulc" else _predict_lai(state)


def probability_column(model: str, cls) -> str:
    """The column of ``predictions/lulc/eval.parquet`` holding ``model``'s probability of class ``cls``."""
    return f"p__{model}__{cls}"


def eval_probabilities(ev: pd.DataFrame, model: str, classes) -> np.ndarray:
    """``model``'s class probabilities from the LULC evaluation predictions: (rows, classes)."""
    return np.stack([ev[probability_column(model, c)].to_numpy() for c in classes], axis=1)


def _predict_lulc(state: RunState) -> list[str]:
    from pipeline.io import atomic_output
    from pipeline.predict.fields import predict_lulc_fields

    data = lulc_data(state)
    spec, frame = data.spec, data.frame
    out = state.run_dir / "predictions" / "lulc"
    out.mkdir(parents=True, exist_ok=True)
    records = _read_json(state.run_dir / "models" / "lulc" / "training.json", [])
    cols = {"cell": frame["cell"].to_numpy(), "igbp": frame["igbp"].to_numpy()}
    timing = {}
    for r in records:
        model = _load(state, "lulc", r["name"])
        t0 = time.perf_counter()
        probs = np.asarray(model.predict(frame), np.float32)
        timing[r["name"]] = time.perf_counter() - t0
        for k, c in enumerate(spec.classes):
            cols[probability_column(r["name"], c)] = probs[:, k]
    with atomic_output(out / "eval.parquet", directory=False, kind="LULC evaluation predictions") as tmp:
        pd.DataFrame(cols).to_parquet(tmp, index=False)
    name = product_model(state, "lulc")
    model = _load(state, "lulc", name)
    cfg = state.cfg
    years = list(range(cfg.data.years[0], cfg.data.years[1] + 1))
    valid = np.zeros(spec.grid_shape, bool)
    valid.ravel()[frame["cell"].to_numpy()] = True
    state.say(f"predict/lulc: {name} downscales {len(cfg.data.scenarios)} scenario(s) x {len(years)} year(s)")

    predict_lulc_fields(model, spec, _open(state, "static", load=True), _open(state, "lulc"), out / "lulc.zarr",
                        scenarios=cfg.data.scenarios, years=years, valid=valid,
                        static_columns=data.extra["static_columns"], allocation=cfg.predict.lulc_allocation,
                        attrs={**_attrs(state, "predict"), "model": name}, progress=state.progress_of("predict/lulc"))
    _write_json(out / "predict.json", {"product_model": name, "predict_seconds": timing, "years": years,
                                       "scenarios": list(cfg.data.scenarios)})
    return ["predictions/lulc/eval.parquet", "predictions/lulc/lulc.zarr", "predictions/lulc/predict.json"]


def _write_json(path: Path, value) -> None:
    from pipeline.io import write_text_atomically

    write_text_atomically(path, json.dumps(value, indent=1, default=str))


def _lai_eval_rows(state: RunState) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows every LAI model predicts: the test years of the first scenario (whole months, so the U-Net
    sees whole images), and the map month."""
    data = lai_data(state)
    frame = data.frame
    meta = data.extra["meta"]
    first = str(meta["scenarios"][0]) if meta.get("scenarios") else None
    years = pd.DatetimeIndex(frame["time"].to_numpy()).year.to_numpy()
    ty = state.cfg.splits.test_years
    observed = np.isfinite(frame[data.spec.target].to_numpy(np.float64))
    from pipeline.train.tasks import scenario_rows

    in_scen = scenario_rows(frame, first)
    if ty is not None:
        in_years = (years >= ty[0]) & (years <= ty[1])
    else:
        in_years = years == years[observed].max() if observed.any() else years == years.max()
    rows = frame[in_scen & in_years]
    return rows, data.frame.iloc[:0]


def _predict_lai(state: RunState) -> list[str]:
    from pipeline.io import atomic_output
    from pipeline.predict.fields import predict_lai_fields

    data = lai_data(state)
    spec = data.spec
    rows, _ = _lai_eval_rows(state)
    if rows.empty:
        raise InputDataError("no LAI rows in the test years (splits.test_years) of the first scenario; set "
                             "splits.test_years within data.years")
    out = state.run_dir / "predictions" / "lai"
    out.mkdir(parents=True, exist_ok=True)
    records = _read_json(state.run_dir / "models" / "lai" / "training.json", [])
    keep_test = (rows["split"].astype(str) == "test").to_numpy()
    times = pd.DatetimeIndex(rows["time"].to_numpy())
    map_time = times[times.month == _MAP_MONTH].max() if (times.month == _MAP_MONTH).any() else times.max()
    keep_map = (times == map_time)
    base_cols = [c for c in ("scenario", "time", "cell", "split", "area", "block", "koppen", "igbp", "lai",
                             spec.target) if c in rows]
    test = rows.loc[keep_test, base_cols].reset_index(drop=True)
    maps = rows.loc[keep_map, base_cols].reset_index(drop=True)
    timing = {}
    for r in records:
        model = _load(state, "lai", r["name"])
        t0 = time.perf_counter()
        pred = np.asarray(model.predict(rows), np.float32)
        timing[r["name"]] = time.perf_counter() - t0
        test[f"pred__{r['name']}"] = pred[keep_test]
        maps[f"pred__{r['name']}"] = pred[keep_map]
    for name, df in (("eval.parquet", test), ("map.parquet", maps)):
        with atomic_output(out / name, directory=False, kind="LAI evaluation predictions") as tmp:
            df.to_parquet(tmp, index=False)
    name = product_model(state, "lai")
    model = _load(state, "lai", name)
    meta = data.extra["meta"]
    lulc_store = state.run_dir / "predictions" / "lulc" / "lulc.zarr"
    use_lulc = "lulc" in state.cfg.tasks and lulc_store.exists() and "igbp" in spec.features
    state.say(f"predict/lai: {name} predicts {meta['rows']:,} rows (every scenario and month)"
              + (f"; land cover after {LULC_EVAL_YEAR} from the downscaled LULC maps" if use_lulc else ""))

    predict_lai_fields(model, state.run_dir / "features", out / "lai.zarr", lat=data.lat, lon=data.lon,
                       scenarios=meta["scenarios"], times=meta["times"],
                       lulc_store=lulc_store if use_lulc else None, observed_until=LULC_EVAL_YEAR if use_lulc else None,
                       attrs={**_attrs(state, "predict"), "model": name}, progress=state.progress_of("predict/lai"))
    _write_json(out / "predict.json", {"product_model": name, "predict_seconds": timing, "eval_rows": int(len(rows)),
                                       "map_time": str(map_time), "land_cover_from_lulc": bool(use_lulc)})
    return ["predictions/lai/eval.parquet", "predictions/lai/map.parquet", "predictions/lai/lai.zarr",
            "predictions/lai/predict.json"]


# -- aggregate ------------------------------------------------------------------------------------


def stage_aggregate(state: RunState, task: str) -> list[str]:
    """The task's fine products on every ESM grid of ``grids.targets`` (``esm/``)."""

    from pipeline.predict import esm

    cfg = state.cfg
    agg = cfg.aggregation
    out = []
    lulc_path = state.run_dir / "predictions" / "lulc" / "lulc.zarr"
    for grid in cfg.grids.targets:
        safe = grid.replace(":", "_").replace("/", "_")
        if task == "lulc":
            prob = open_dataset(lulc_path, chunks={})["probability"]
            ds = esm.lulc_esm(prob, grid, crosswalk=agg.pft_crosswalk, global_output=agg.global_output,
                              engine=agg.engine, chunk_rows=agg.chunk_rows)
            path = state.run_dir / "esm" / f"lulc_fractions_{safe}.nc"
        else:
            lai = open_dataset(state.run_dir / "predictions" / "lai" / "lai.zarr", chunks={})["lai"]
            land = None
            if "lulc" in cfg.tasks and lulc_path.exists():
                land = open_dataset(lulc_path, chunks={})["probability"]
            ds = esm.lai_esm(lai, grid, land_cover=land, crosswalk=agg.pft_crosswalk,
                             global_output=agg.global_output, engine=agg.engine, chunk_rows=agg.chunk_rows)
            path = state.run_dir / "esm" / f"lai_{safe}.nc"
        path.parent.mkdir(parents=True, exist_ok=True)
        ds.attrs.update({k: v for k, v in _attrs(state, "aggregate").items() if k not in ds.attrs or k == "history"})
        esm.write_esm(ds, path, compression_level=agg.compression_level)
        state.say(f"aggregate/{task}: {path.relative_to(state.run_dir)} ({_size(path)})")
        out.append(str(path.relative_to(state.run_dir)))
    return out


def _size(path: Path) -> str:
    n = path.stat().st_size
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.0f} KiB"


# -- evaluate -------------------------------------------------------------------------------------


def _families(state: RunState, task: str) -> dict[str, str]:
    return {r["name"]: r["family"] for r in _read_json(state.run_dir / "models" / task / "training.json", [])}


def stage_evaluate(state: RunState, task: str) -> list[str]:
    """Metrics with block-bootstrap intervals, the headline test, breakdowns (``metrics/<task>/``)."""
    from pipeline.evaluate import evaluate_categorical, evaluate_continuous

    cfg = state.cfg
    out = state.run_dir / "metrics" / task
    out.mkdir(parents=True, exist_ok=True)
    families = _families(state, task)
    blocks = f"{cfg.splits.block_size_deg:g}° x {cfg.splits.block_size_deg:g}° spatial blocks"
    if task == "lulc":
        data = lulc_data(state)
        ev = pd.read_parquet(state.run_dir / "predictions" / "lulc" / "eval.parquet")
        frame = data.frame
        # scored on land cells of the test blocks: open ocean is trivially water and would flatter every model
        rows = ((frame["split"].astype(str) == "test") & (frame["land_fraction"] > 0)).to_numpy()
        probs = {m: eval_probabilities(ev, m, data.spec.classes)[rows] for m in families}
        result = evaluate_categorical(frame[rows].reset_index(drop=True), probs, data.spec.classes,
                                      families=families, class_groups=data.spec.class_groups,
                                      n_resamples=cfg.report.bootstrap_samples, seed=cfg.seed, block_label=blocks)
        # the coarse fractions are fractions of whole coarse cells (water included): compared on every
        # row of the test blocks, so that each test coarse cell is complete
        test = (frame["split"].astype(str) == "test").to_numpy()
        result.metrics = pd.concat([result.metrics, _fraction_rows(data, ev, families, test)], ignore_index=True)
        result.metrics = pd.concat([result.metrics, _esm_fraction_rows(state, families)], ignore_index=True)
        result.metric_labels = {**result.metric_labels, "fraction_mae": "group fraction MAE",
                                "class_fraction_mae": "class fraction MAE"}
        result.metric_directions = {**result.metric_directions, "fraction_mae": "lower", "class_fraction_mae": "lower"}
    else:
        ev = pd.read_parquet(state.run_dir / "predictions" / "lai" / "eval.parquet")
        preds = {m: ev[f"pred__{m}"].to_numpy() for m in families}
        refs = {"test (observed)": lai_data(state).spec.target, "test (truth)": "lai"}
        result = evaluate_continuous(ev, preds, families=families, references=refs,
                                     n_resamples=cfg.report.bootstrap_samples, seed=cfg.seed, block_label=blocks)
        result.metrics = pd.concat([result.metrics, _ssim_rows(state, families)], ignore_index=True)
        result.metric_labels = {**result.metric_labels, "ssim": "SSIM"}
        result.metric_directions = {**result.metric_directions, "ssim": "higher"}
    _write_evaluation(result, out)
    best = result.headline
    if best is not None:
        state.say(f"evaluate/{task}: {best.best_model} vs {best.baseline} on {best.metric}: "
                  f"{best.difference:+.4g} [{best.lo:+.4g}, {best.hi:+.4g}], p = {best.p_value:.3g}")
    return [f"metrics/{task}/metrics.csv", f"metrics/{task}/evaluation.json"]


def _ssim_rows(state: RunState, families: dict) -> pd.DataFrame:
    """SSIM of every model's map of the map month (every land cell) against the noise-free truth."""
    from pipeline.evaluate import ssim

    data = lai_data(state)
    mp = pd.read_parquet(state.run_dir / "predictions" / "lai" / "map.parquet")
    ny, nx = data.spec.grid_shape
    if mp.empty or min(ny, nx) < 7:
        return pd.DataFrame()
    cells = mp["cell"].to_numpy()

    def grid(values):
        out = np.full(ny * nx, np.nan)
        out[cells] = values
        return out.reshape(ny, nx)

    truth = grid(mp["lai"].to_numpy())
    when = pd.Timestamp(mp["time"].iloc[0]).strftime("%B %Y")
    return pd.DataFrame([{"task": "lai", "model": m, "family": fam, "split": f"map of {when} (truth)",
                          "metric": "ssim", "value": ssim(truth, grid(mp[f"pred__{m}"].to_numpy())),
                          "lo": np.nan, "hi": np.nan} for m, fam in families.items() if f"pred__{m}" in mp])


def _esm_fraction_rows(state: RunState, families: dict) -> pd.DataFrame:
    """MAE of the product model's IGBP class fractions on each ESM grid against the 2019 map's.

    The truth map, one-hot, goes through the same aggregation as the predictions
    (:func:`pipeline.predict.esm.lulc_esm`), so both sides cover the same cells of each grid; the
    mean is over the valid target cells and the classes.
    """
    import xarray as xr

    from pipeline.predict import esm
    from pipeline.predict.fields import N_IGBP_CLASSES

    cfg = state.cfg
    name = _read_json(state.run_dir / "predictions" / "lulc" / "predict.json", {}).get("product_model")
    static = _open(state, "static", load=True)
    truth = np.asarray(static["igbp"].transpose("lat", "lon").values)
    onehot = np.full((1, 1, N_IGBP_CLASSES) + truth.shape, np.nan, np.float32)
    valid = truth < N_IGBP_CLASSES
    onehot[0, 0][:, valid] = 0.0
    onehot[0, 0, truth[valid], np.flatnonzero(valid.ravel()) // truth.shape[1],
           np.flatnonzero(valid.ravel()) % truth.shape[1]] = 1.0
    prob = xr.DataArray(onehot, dims=("scenario", "time", "igbp_class", "lat", "lon"),
                        coords={"scenario": ["observed"], "time": pd.to_datetime([f"{LULC_EVAL_YEAR}-01-01"]),
                                "igbp_class": np.arange(N_IGBP_CLASSES), "lat": static["lat"].values,
                                "lon": static["lon"].values})
    rows = []
    for grid in cfg.grids.targets:
        path = state.run_dir / "esm" / f"lulc_fractions_{grid.replace(':', '_').replace('/', '_')}.nc"
        if not path.exists() or name is None:
            continue
        with xr.open_dataset(path) as ds:
            years = pd.DatetimeIndex(ds["time"].values).year
            if LULC_EVAL_YEAR not in years:
                continue
            pred = ds["igbp_fraction"].isel(scenario=0, time=int(np.flatnonzero(years == LULC_EVAL_YEAR)[0])).load()
        obs = esm.lulc_esm(prob, grid, crosswalk=cfg.aggregation.pft_crosswalk,
                           global_output=cfg.aggregation.global_output)["igbp_fraction"].isel(scenario=0, time=0)
        diff = np.abs(pred.values - obs.transpose(*pred.dims).values)
        rows.append({"task": "lulc", "model": name, "family": families.get(name, ""),
                     "split": f"{grid} grid, {LULC_EVAL_YEAR} (all cells)", "metric": "class_fraction_mae",
                     "value": float(np.nanmean(diff)), "lo": np.nan, "hi": np.nan})
    return pd.DataFrame(rows)


def _fraction_rows(data, ev: pd.DataFrame, families: dict, rows: np.ndarray) -> pd.DataFrame:
    """``fraction_mae`` of every model: its group fractions aggregated to the coarse cells of ``rows``."""
    from pipeline.evaluate import fraction_mae

    spec, frame = data.spec, data.frame
    parent, class_group, coarse = data.coarse_inputs(rows)
    out = []
    for m, fam in families.items():
        probs = eval_probabilities(ev, m, spec.classes)[rows]
        value = fraction_mae(parent, frame["area"].to_numpy()[rows], probs, class_group, coarse)
        out.append({"task": "lulc", "model": m, "family": fam, "split": "test", "metric": "fraction_mae",
                    "value": float(value), "lo": np.nan, "hi": np.nan})
    return pd.DataFrame(out)


def _write_evaluation(result, out: Path) -> None:
    from dataclasses import asdict

    from pipeline.io import atomic_output

    frames = {"metrics": result.metrics, "breakdown": result.breakdown, "seasonal": result.seasonal,
              "class_f1": result.class_f1}
    for name, df in frames.items():
        if df is None:
            continue
        with atomic_output(out / f"{name}.csv", directory=False, kind="a metrics table") as tmp:
            df.to_csv(tmp, index=False)
    summary = {"task": result.task,
               "headline": asdict(result.headline) if result.headline is not None else None,
               "metric_directions": result.metric_directions, "metric_labels": result.metric_labels,
               "confusion": {m: {"labels": np.asarray(lab).tolist(), "matrix": np.asarray(mat).tolist()}
                             for m, (lab, mat) in (result.confusion or {}).items()},
               "tables": [n for n, df in frames.items() if df is not None]}
    _write_json(out / "evaluation.json", summary)
