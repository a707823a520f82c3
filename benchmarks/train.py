"""Training benchmark: every model of both tasks on the demo tables, side by side in one run.

Run:  .venv/bin/python benchmarks/train.py [--rows 100000] [--epochs 5] [--out results.json]

Inputs: the embedded demo data over Iberia (real MODIS 2019 land cover, Köppen zones, GLOBE land
fraction; semi-synthetic climate and LAI), built as a run would build them:

- LAI: the feature table of ``configs/demo.yaml`` (``terrascale features``) for 2016-2020, one
  scenario, land cover added as a predictor; the target is the noise-free ``lai``; train rows =
  the spatial train blocks outside the test years, test rows = the spatial test blocks of the
  test years (the table's ``split`` column). ``--rows`` training rows are drawn, a quarter as
  many test rows.
- LULC: the 2019 table of :func:`pipeline.features.lulc_table` (MODIS classes as the target, the
  parent 0.25° group fractions and static layers as predictors); test rows = the coarse cells of
  every fifth 1° block.

Harness benchmarks (``python -m benchmarks train dask_scaling``): ``train`` times XGBoost and the
MLP (terrascale's models) against scikit-learn's HistGradientBoosting (equal trees) and random
forest on the same LAI rows, interleaved, with their test scores (full runs add the table of every
model below); ``dask_scaling`` times the data-parallel MLP with 1 and 2 dask workers, interleaved
(full runs add xgboost.dask with 1 and 2 workers).

Printed by this script, per task and model: fit time, predict throughput (rows/s), test score (LAI: RMSE and
R²; LULC: accuracy and log-loss), the fit's peak memory above the baseline (VmHWM, see
``_memory.py``). Then XGBoost against scikit-learn's ``HistGradientBoosting*`` on the same rows
(fit-time ratio, scores), and an MLP trained data-parallel (one DDP rank per dask worker, gloo)
with 1 and 2 workers: samples/s and the parallel efficiency rate(2) / (2 x rate(1)).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

if __name__ == "__main__" and not __package__:  # `python benchmarks/train.py`: import as the package
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    sys.path.insert(0, os.path.dirname(_here))

import numpy as np

from benchmarks._memory import peak_rss, reset_hwm
from benchmarks.harness import Tool

warnings.simplefilter("ignore")


def _lai_data(workdir: Path, rows: int, seed: int):
    import pandas as pd

    from pipeline.config import load_config
    from pipeline.features import read_feature_table, run_features
    from pipeline.models import TaskSpec

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "demo.yaml", [
        f"output.root={workdir}", "data.years=2016:2020", "data.scenarios=[ssp126]", "splits.test_years=[2020,2020]",
        "features.static=[land_fraction, koppen, lat, lon, distance_to_coast, igbp]"])
    meta = run_features(cfg)
    df = read_feature_table(meta["path"])
    rng = np.random.default_rng(seed)
    train = df[df["split"] == "train"]
    test = df[df["split"] == "test"]
    train = train.iloc[np.sort(rng.choice(len(train), min(rows, len(train)), replace=False))]
    test = test.iloc[np.sort(rng.choice(len(test), min(rows // 4, len(test)), replace=False))]
    drop = {"scenario", "time", "cell", "lai", "fold", "split", "year"}
    features = tuple(c for c in df.columns if c not in drop)
    categorical = tuple(c for c in features if isinstance(df[c].dtype, pd.CategoricalDtype))
    spec = TaskSpec("lai", "lai", features, categorical=categorical, land_cover="igbp", time="time",
                    grid_shape=(len(meta["grid"]["lat"]), len(meta["grid"]["lon"])))
    return spec, train, test, meta["path"]


def _lulc_data(inputs: Path):
    import xarray as xr

    from pipeline.datasets import load_class_table
    from pipeline.features import lulc_table
    from pipeline.models import TaskSpec

    static = xr.open_zarr(inputs / "static.zarr").load()
    coarse = xr.open_zarr(inputs / "lulc_coarse.zarr").load()
    t = lulc_table(static, coarse["lulc_fraction_2019"])
    df = t.frame
    table = load_class_table()
    classes = tuple(int(v) for v in table.frame.index if v != 0 or (df["igbp"] == 0).any())
    groups = tuple(table.frame.loc[list(classes), "group"])
    ny, nx = t.coarse_shape
    py, px = df["parent"] // nx, df["parent"] % nx
    test = ((py // 4) * 100 + px // 4) % 5 == 0  # 1° blocks of 4 x 4 coarse cells
    features = ("koppen", "land_fraction", "distance_to_coast", "lat", "lon", *t.group_columns.values())
    spec = TaskSpec("lulc", "igbp", features, categorical=("koppen",), classes=classes, class_groups=groups,
                    group_columns=t.group_columns, grid_shape=t.grid_shape)
    return spec, df[~test], df[test]


def _score(task, y, pred, classes=None):
    if task == "lai":
        ok = np.isfinite(y)
        err = pred[ok] - y[ok]
        return {"rmse": float(np.sqrt(np.mean(err**2))), "r2": float(1 - np.mean(err**2) / np.var(y[ok]))}
    idx = np.searchsorted(np.asarray(classes), y)
    p = np.clip(pred[np.arange(len(y)), idx], 1e-12, 1)
    return {"accuracy": float((np.asarray(classes)[pred.argmax(1)] == y).mean()), "log_loss": float(-np.log(p).mean())}


def _run_model(kind, spec, train, test, epochs, seed):
    from pipeline.config import TrainingConfig
    from pipeline.models import model_class

    cls = model_class(kind)
    model = cls(spec, None, seed=seed)
    if hasattr(model, "configure_training"):
        model.configure_training(TrainingConfig(max_epochs=epochs, batch_size=2048, learning_rate=2e-3))
    y = train[spec.target].to_numpy()
    reset_hwm()
    base = peak_rss()[0]
    model.fit(train, y)
    peak = peak_rss()[0] - base
    pred = model.predict(test)
    rate = len(test) / max(model.predict_seconds, 1e-9)
    return {"task": spec.task, "model": kind, "fit_s": model.fit_seconds, "predict_rows_per_s": rate,
            "peak_mb": peak / 2**20, **_score(spec.task, test[spec.target].to_numpy(), pred, spec.classes)}


def _hgb_vs_xgb(spec, train, test, seed):
    from sklearn.ensemble import HistGradientBoostingRegressor

    from pipeline.config.models import XGBoostParams
    from pipeline.models import model_class

    params = XGBoostParams(n_estimators=200, max_depth=8, learning_rate=0.1, early_stopping_rounds=None)
    xgbm = model_class("xgboost")(spec, params, seed=seed).fit(train, train[spec.target].to_numpy())
    X = train[list(spec.features)]
    ok = np.isfinite(train[spec.target].to_numpy())
    # max_leaf_nodes=None: depth-8 trees like XGBoost's (HGB's default caps a tree at 31 leaves)
    hgb = HistGradientBoostingRegressor(max_iter=200, max_depth=8, max_leaf_nodes=None, learning_rate=0.1,
                                        early_stopping=False,
                                        categorical_features="from_dtype", random_state=seed)
    t0 = time.perf_counter()
    hgb.fit(X[ok], train[spec.target].to_numpy()[ok])
    t_hgb = time.perf_counter() - t0
    y = test[spec.target].to_numpy()
    return {"xgboost_fit_s": xgbm.fit_seconds, "hgb_fit_s": t_hgb, "ratio_hgb_over_xgb": t_hgb / xgbm.fit_seconds,
            "xgboost": _score("lai", y, xgbm.predict(test)),
            "hgb": _score("lai", y, hgb.predict(test[list(spec.features)]))}


def _mlp(n_in: int):
    import torch

    return torch.nn.Sequential(torch.nn.Linear(n_in, 128), torch.nn.ReLU(), torch.nn.Linear(128, 128),
                               torch.nn.ReLU(), torch.nn.Linear(128, 1))


def _ddp_scaling(spec, train, epochs, seed):
    import distributed

    from pipeline.train import fit_data_parallel

    num = [c for c in spec.features if c not in spec.categorical]
    X = train[num].to_numpy(np.float32)
    X = np.nan_to_num((X - np.nanmean(X, 0)) / (np.nanstd(X, 0) + 1e-6))
    y = np.nan_to_num(train[spec.target].to_numpy(np.float32))
    out = {}
    for n in (1, 2):
        with distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cl, distributed.Client(cl) as client:
            res = fit_data_parallel(client, functools.partial(_mlp, X.shape[1]), X, y, epochs=epochs,
                                    batch_size=4096, learning_rate=1e-3, seed=seed)
        out[n] = {"samples_per_s": res.samples_per_second, "final_loss": res.losses[-1]}
    out["efficiency"] = out[2]["samples_per_s"] / (2 * out[1]["samples_per_s"])
    return out


_DATA: dict = {}


def lai_rows(ctx, rows: int, seed: int = 0):
    """The LAI task's rows (built once per process: ``train`` and ``dask_scaling`` share them)."""
    key = (rows, seed)
    if key not in _DATA:
        work = ctx.scratch / "data"
        work.mkdir(parents=True, exist_ok=True)
        spec, train, test, _ = _lai_data(work, rows, seed)
        _DATA.clear()
        _DATA[key] = (spec, train, test)
    return _DATA[key]


def _sizes(quick: bool) -> dict:
    return ({"rows": 20_000, "trees": 100, "epochs": 3} if quick else {"rows": 50_000, "trees": 200, "epochs": 5})


def bench(ctx, seed: int = 0) -> None:
    """Harness entry: XGBoost and the MLP against HistGradientBoosting and a random forest, same rows."""
    import torch
    from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestRegressor

    from pipeline.config import TrainingConfig
    from pipeline.config.models import MLPParams, XGBoostParams
    from pipeline.models import model_class

    size = _sizes(ctx.quick)
    torch.set_num_threads(ctx.threads)  # every tool uses all the cores here
    spec, train, test = lai_rows(ctx, size["rows"], seed)
    y = train[spec.target].to_numpy()
    ok = np.isfinite(y)
    X = train[list(spec.features)]
    Xt = test[list(spec.features)]
    trees = size["trees"]

    def xgb():
        params = XGBoostParams(n_estimators=trees, max_depth=8, learning_rate=0.1, early_stopping_rounds=None)
        return model_class("xgboost")(spec, params, seed=seed).fit(train, y)

    def mlp():
        m = model_class("mlp")(spec, MLPParams(), seed=seed)
        m.configure_training(TrainingConfig(max_epochs=size["epochs"], batch_size=2048, learning_rate=2e-3))
        return m.fit(train, y)

    def hgb():  # max_leaf_nodes=None: depth-8 trees like XGBoost's (HGB's default caps a tree at 31 leaves)
        return HistGradientBoostingRegressor(max_iter=trees, max_depth=8, max_leaf_nodes=None, learning_rate=0.1,
                                             early_stopping=False, categorical_features="from_dtype",
                                             random_state=seed).fit(X[ok], y[ok])

    def rf():  # the demo config's forest
        return RandomForestRegressor(n_estimators=40, max_depth=12, max_features=0.5, max_samples=0.5, n_jobs=-1,
                                     random_state=seed).fit(X[ok], y[ok])

    scores = {}

    def agreement(out):
        yt = test[spec.target].to_numpy()
        text = {}
        for key, model in out.items():
            pred = model.predict(Xt if key in ("hgb", "random-forest") else test)
            scores[key] = _score("lai", yt, np.asarray(pred))
            text[key] = f"test RMSE {scores[key]['rmse']:.4f}, R² {scores[key]['r2']:.3f}"
        return text

    title = (f"LAI table, {len(train):,} training rows x {len(spec.features)} features (demo data, Iberia), "
             f"{trees} trees of depth 8, MLP {size['epochs']} epochs; fit time")
    ctx.compare("lai-table", title, [
        Tool("xgboost", xgb, "terrascale", "terrascale xgboost (hist)", note=f"{ctx.threads} threads"),
        Tool("mlp", mlp, "terrascale", "terrascale mlp (torch)"),
        Tool("hgb", hgb, "peer", "scikit-learn HistGradientBoosting", note="max_leaf_nodes=None (equal trees)"),
        Tool("random-forest", rf, "peer", "scikit-learn RandomForest", note="40 trees, depth 12, half the rows"),
    ], reference="xgboost", agreement=agreement, info={"rows": len(train)})
    ctx.metric("scores", scores)
    if not ctx.quick:
        models_table(ctx, spec, train, test, size["epochs"], seed)


def models_table(ctx, lai_spec, lai_train, lai_test, epochs: int, seed: int) -> None:
    """Every model of both tasks, one fit each (the table of the standalone script)."""
    lulc_spec, lulc_train, lulc_test = _lulc_data(ctx.scratch / "data" / "demo" / "inputs")
    rows = []
    for kind in ("climatology", "xgboost", "random_forest", "ridge", "mlp", "unet"):
        rows.append(_run_model(kind, lai_spec, lai_train, lai_test, epochs, seed))
    for kind in ("coarse_prior", "parent_majority", "xgboost", "random_forest", "logistic", "mlp", "unet"):
        rows.append(_run_model(kind, lulc_spec, lulc_train, lulc_test, epochs, seed))
    ctx.metric("models", rows)
    rec = []
    for r in rows:
        score = (f"RMSE {r['rmse']:.3f}, R² {r['r2']:.3f}" if r["task"] == "lai"
                 else f"accuracy {r['accuracy']:.3f}, log-loss {r['log_loss']:.3f}")
        rec.append({"key": f"{r['task']}:{r['model']}", "role": "terrascale", "samples": [r["fit_s"]],
                    "peak_mb": r["peak_mb"], "note": f"{score}; predict {r['predict_rows_per_s']:,.0f} rows/s"})
    ctx.record("models", f"every model, one fit each (LAI {len(lai_train):,} rows, LULC {len(lulc_train):,} rows)",
               rec, ratios=False)


class _Clusters:
    """Local dask clusters of 1 and 2 single-thread workers, both up while the tools alternate."""

    def __init__(self, sizes=(1, 2)):
        self.sizes = sizes
        self.clients = {}
        self._clusters = []

    def __enter__(self):
        import distributed

        for n in self.sizes:
            cl = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                          silence_logs=40)
            self._clusters.append(cl)
            self.clients[n] = distributed.Client(cl)
        return self

    def __exit__(self, *exc):
        for c in self.clients.values():
            c.close()
        for cl in self._clusters:
            cl.close()
        return False


def bench_dask(ctx, seed: int = 0) -> None:
    """Harness entry: data-parallel training with 1 and 2 dask workers, interleaved; the 2-worker efficiency."""
    from pipeline.train import fit_data_parallel

    size = _sizes(ctx.quick)
    spec, train, _ = lai_rows(ctx, size["rows"], seed)
    num = [c for c in spec.features if c not in spec.categorical]
    X = train[num].to_numpy(np.float32)
    X = np.nan_to_num((X - np.nanmean(X, 0)) / (np.nanstd(X, 0) + 1e-6))
    y = np.nan_to_num(train[spec.target].to_numpy(np.float32))
    epochs = max(1, size["epochs"] - 1)
    rates: dict[int, list[float]] = {1: [], 2: []}
    with _Clusters() as cl:

        def fit(n):
            def run():
                with cl.clients[n].as_current():
                    res = fit_data_parallel(cl.clients[n], functools.partial(_mlp, X.shape[1]), X, y, epochs=epochs,
                                            batch_size=4096, learning_rate=1e-3, seed=seed)
                rates[n].append(res.samples_per_second)
                return res
            return run

        workload = f"MLP 128x128, {len(X):,} rows x {epochs} epochs, global batch 4096, gloo"
        ctx.compare("mlp-ddp-wall", f"{workload}: wall time of the call (data shipped, ranks set up, trained)", [
            Tool("1-worker", fit(1), "terrascale", "1 dask worker x 1 thread"),
            Tool("2-workers", fit(2), "terrascale", "2 dask workers x 1 thread"),
        ], memory=False)
    # the training steps only: each rank's own clock, from fit_data_parallel's samples/s
    warm = {n: r[1:] if len(r) > 1 else r for n, r in rates.items()}  # the warm-up call is the first
    n_samples = len(X) * epochs
    steps = {n: [n_samples / r for r in warm[n]] for n in (1, 2)}
    ctx.record("mlp-ddp", f"{workload}: training steps only (samples/s of the ranks)", [
        {"key": "1-worker", "label": "1 dask worker x 1 thread", "samples": steps[1]},
        {"key": "2-workers", "label": "2 dask workers x 1 thread", "samples": steps[2], "note": "ideal: 0.5x"}])
    r1, r2 = float(np.median(warm[1])), float(np.median(warm[2]))
    eff = r2 / (2 * r1) if r1 > 0 else None
    ctx.metric("samples_per_s", {"1": r1, "2": r2})
    ctx.metric("efficiency", eff)
    ctx.metric("workload", workload)
    ctx.note(f"MLP data-parallel: {r1:,.0f} samples/s with 1 worker, {r2:,.0f} with 2: efficiency {eff:.0%} "
             f"(2 workers on {ctx.threads} cores shared with whatever else runs)")
    if not ctx.quick:
        _xgboost_dask_scaling(ctx, spec, train, seed)


def _xgboost_dask_scaling(ctx, spec, train, seed: int) -> None:
    """xgboost.dask with 1 and 2 workers, on fresh clusters (no worker state left by the DDP ranks)."""
    import dask.dataframe as dd

    from pipeline.config.models import XGBoostParams
    from pipeline.train import fit_xgboost_dask

    params = XGBoostParams(n_estimators=100, max_depth=8, early_stopping_rounds=None)
    cols = [*spec.features, spec.target]
    with _Clusters() as cl:

        def fit(n):
            ddf = dd.from_pandas(train[cols], npartitions=2 * n)

            def run():
                # as the default client too: with two clients in the process, fit_xgboost_dask hung on the
                # other one's cluster when only passed its own
                with cl.clients[n].as_current():
                    return fit_xgboost_dask(cl.clients[n], ddf, spec, params, seed=seed)
            return run

        ctx.compare("xgboost-dask", f"xgboost.dask, {len(train):,} rows, 100 trees of depth 8", [
            Tool("1-worker", fit(1), "terrascale", "1 dask worker x 1 thread"),
            Tool("2-workers", fit(2), "terrascale", "2 dask workers x 1 thread", note="ideal: 0.5x"),
        ], memory=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000, help="training rows per task (test: a quarter)")
    ap.add_argument("--epochs", type=int, default=5, help="epochs of the deep models")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="write the figures as JSON")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # one thread a process: the DDP comparison runs one process per core
    with tempfile.TemporaryDirectory() as tmp:
        lai_spec, lai_train, lai_test, _ = _lai_data(Path(tmp), args.rows, args.seed)
        lulc_spec, lulc_train, lulc_test = _lulc_data(Path(tmp) / "demo" / "inputs")
        rows = []
        for kind in ("climatology", "xgboost", "random_forest", "ridge", "mlp", "unet"):
            rows.append(_run_model(kind, lai_spec, lai_train, lai_test, args.epochs, args.seed))
        for kind in ("coarse_prior", "parent_majority", "xgboost", "random_forest", "logistic", "mlp", "unet"):
            rows.append(_run_model(kind, lulc_spec, lulc_train, lulc_test, args.epochs, args.seed))
        hgb = _hgb_vs_xgb(lai_spec, lai_train, lai_test, args.seed)
        ddp = _ddp_scaling(lai_spec, lai_train, max(1, args.epochs // 2), args.seed)
    print(f"\n{'task':5s} {'model':16s} {'fit s':>8s} {'predict rows/s':>15s} {'peak MB':>8s}  score")
    for r in rows:
        score = (f"RMSE {r['rmse']:.3f}  R² {r['r2']:.3f}" if r["task"] == "lai"
                 else f"accuracy {r['accuracy']:.3f}  log-loss {r['log_loss']:.3f}")
        print(f"{r['task']:5s} {r['model']:16s} {r['fit_s']:8.2f} {r['predict_rows_per_s']:15,.0f} {r['peak_mb']:8.0f}  {score}")
    print(f"\nLAI, same {len(lai_train):,} rows, 200 trees of depth 8: XGBoost {hgb['xgboost_fit_s']:.2f} s "
          f"(RMSE {hgb['xgboost']['rmse']:.3f}) vs HistGradientBoosting {hgb['hgb_fit_s']:.2f} s "
          f"(RMSE {hgb['hgb']['rmse']:.3f}): HGB/XGB fit time = {hgb['ratio_hgb_over_xgb']:.2f}")
    print(f"MLP data-parallel (gloo, one rank per dask worker): 1 worker {ddp[1]['samples_per_s']:,.0f} samples/s, "
          f"2 workers {ddp[2]['samples_per_s']:,.0f} samples/s, efficiency {ddp['efficiency']:.0%} "
          f"(final loss {ddp[1]['final_loss']:.4f} vs {ddp[2]['final_loss']:.4f}); {os.cpu_count()} cores")
    if args.out:
        args.out.write_text(json.dumps({"models": rows, "xgboost_vs_hgb": hgb, "ddp": ddp}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
