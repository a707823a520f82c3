"""Fake but realistic report data: a :class:`~pipeline.report.ReportContext` with small arrays.

The run stage fills the real context; these builders give the report tests the same shapes on a
20 x 30 grid over Iberia with three models per task, in a fraction of a second, deterministically.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from pipeline.report.context import (
    OBSERVED,
    ConfusionMatrix,
    DataSourceRef,
    FieldMaps,
    GridMap,
    Headline,
    ModelTiming,
    ObsPred,
    Provenance,
    ReportContext,
    TaskReport,
)

NY, NX = 20, 30
LAT = np.round(np.linspace(43.8, 36.2, NY), 4)  # north-up, like the stores
LON = np.round(np.linspace(-9.8, 1.8, NX), 4)
LULC_MODELS = {"majority": "baseline", "random_forest": "tree", "xgboost": "tree"}
LAI_MODELS = {"climatology": "baseline", "xgboost": "tree", "unet": "deep"}
SCENARIOS = ("historical", "ssp126", "ssp245", "ssp585")


def land_mask() -> np.ndarray:
    """An Iberia-like blob of land (True) in the sea: an ellipse with a wavy coast."""
    la, lo = np.meshgrid(LAT, LON, indexing="ij")
    r = ((lo + 3.8) / 5.6) ** 2 + ((la - 40.2) / 3.6) ** 2
    return r < 1.0 + 0.15 * np.sin(3 * lo) * np.cos(2 * la)


def _lai_truth(mask: np.ndarray) -> np.ndarray:
    la, lo = np.meshgrid(LAT, LON, indexing="ij")
    lai = 0.6 + 2.4 * np.clip((la - 37.0) / 6.5, 0, 1) + 0.5 * np.sin(lo / 2.0) ** 2  # greener to the north-west
    return np.where(mask, lai, np.nan)


def _lulc_truth(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    la, lo = np.meshgrid(LAT, LON, indexing="ij")
    cls = np.full((NY, NX), 12)  # croplands
    cls[la > 41.5] = 4  # deciduous broadleaf forests in the north
    cls[(la > 42.5) & (lo < -6)] = 1  # needleleaf forests in the north-west
    cls[(la < 38.5) & (lo > -4)] = 7  # open shrublands in the south-east
    cls[(la < 39.5) & (lo < -6)] = 8  # woody savannas (dehesa) in the south-west
    cls[(np.abs(la - 40.0) < 0.8) & (lo > -5) & (lo < -3)] = 10  # grasslands on the plateau
    cls[rng.random((NY, NX)) < 0.03] = 13  # scattered towns
    return np.where(mask, cls, 0)  # sea is IGBP class 0, water


def _metrics(task: str, families: Mapping[str, str], base: Mapping[str, dict[str, float]],
             rename: Mapping[str, str]) -> pd.DataFrame:
    rows = []
    for model, family in families.items():
        for split, shift in (("test", 0.0), ("train", 0.04)):
            for metric, value in base[model].items():
                v = value + (shift if metric not in ("rmse", "mae") else -shift)
                half = 0.012 + 0.02 * abs(v) * 0.1
                rows.append(dict(task=task, model=rename.get(model, model), family=family, split=split, metric=metric,
                                 value=v, lo=v - half, hi=v + half * 1.1))
    return pd.DataFrame(rows)


def _timing(families: Mapping[str, str], rename: Mapping[str, str]) -> list[ModelTiming]:
    cost = {"baseline": (0.2, 0.05), "tree": (41.3, 2.7), "deep": (612.0, 9.4)}
    return [ModelTiming(model=rename.get(m, m), family=f, fit_s=cost[f][0], predict_s=cost[f][1],
                        device="cuda:0 (NVIDIA H200)" if f == "deep" else "cpu",
                        cluster="local: 4 workers x 2 threads, 8 GiB each") for m, f in families.items()]


def _splits(years: str) -> pd.DataFrame:
    return pd.DataFrame(dict(split=["train", "test", "buffer", "excluded"], rows=[1_254_000, 312_400, 88_100, 0],
                             row_fraction=[0.757, 0.189, 0.053, 0.0], cells=[418, 104, 29, 0],
                             area_km2=[401_230.5, 99_812.1, 27_944.0, 0.0], area_fraction=[0.76, 0.19, 0.05, 0.0],
                             years=[years, years, years, ""]))


def _headline(metric: str, label: str, higher: bool, best: str, bv: float, baseline: str, blv: float,
              significant: bool) -> Headline:
    diff = bv - blv
    half = abs(diff) * (0.45 if significant else 1.8)
    return Headline(metric=metric, higher_is_better=higher, split="test", best_model=best, best_value=bv,
                    baseline=baseline, baseline_value=blv, difference=diff, lo=diff - half, hi=diff + half,
                    p_value=0.002 if significant else 0.31, significant=significant, n_resamples=1000,
                    blocks="2° × 2° spatial blocks", metric_label=label)


def _lulc_task(rng: np.random.Generator, mask: np.ndarray, rename: Mapping[str, str], significant: bool,
               with_figures: bool) -> TaskReport:
    names = {m: rename.get(m, m) for m in LULC_MODELS}
    base = {"majority": dict(overall_accuracy=0.58, macro_f1=0.41, mean_iou=0.29),
            "random_forest": dict(overall_accuracy=0.71, macro_f1=0.55, mean_iou=0.41),
            "xgboost": dict(overall_accuracy=0.74, macro_f1=0.59, mean_iou=0.44)}
    f1_best = base["xgboost"]["macro_f1"] if significant else base["majority"]["macro_f1"] + 0.01
    task = TaskReport(
        task="lulc", title="Land use / land cover (IGBP classes)",
        metrics=_metrics("lulc", LULC_MODELS, base, rename),
        headline=_headline("macro_f1", "macro F1", True, names["xgboost"], f1_best, names["majority"],
                           base["majority"]["macro_f1"], significant),
        metric_directions=dict(overall_accuracy="higher", macro_f1="higher", mean_iou="higher"),
        metric_labels=dict(overall_accuracy="overall accuracy", macro_f1="macro F1", mean_iou="mean IoU"),
        timing=_timing(LULC_MODELS, rename), splits=_splits("2001-2019"),
        conservation=pd.DataFrame(dict(
            model=[names["random_forest"], names["xgboost"], names["xgboost"]],
            grid=["1deg", "1deg", "N32"], quantity=["cropland fraction", "cropland fraction", "forest fraction"],
            max_abs_error=[2.1e-7, 3.4e-7, 0.012], max_rel_error=[4.0e-7, 6.2e-7, 0.031])),
        conservation_tolerance=1e-6,
    )
    if not with_figures:
        return task
    truth = _lulc_truth(mask, rng)
    preds = {}
    for model, p_wrong in (("majority", 0.45), ("random_forest", 0.25), ("xgboost", 0.2)):
        wrong = mask & (rng.random((NY, NX)) < p_wrong)
        if model == "majority":
            pred = np.where(mask, 12, 0)
        else:
            pred = np.where(wrong, rng.choice([1, 4, 7, 8, 10, 12, 14], size=(NY, NX)), truth)
        preds[names[model]] = pred
    truth = truth.astype(np.uint8)
    truth[0, 0] = 255  # a no-data cell, as in MCD12C1
    task.maps = FieldMaps(kind="categorical", variable="IGBP class", units="", when="2019", lat=LAT, lon=LON,
                          land_mask=mask, truth=truth, predictions=preds)
    labels = np.arange(17)
    valid = truth < 17
    rows = []
    for name, pred in preds.items():
        cm = np.zeros((17, 17))
        np.add.at(cm, (truth[valid].astype(int), pred[valid].astype(int)), 1.0)
        task.confusion[name] = ConfusionMatrix(labels=labels, matrix=cm)
        tp = np.diag(cm)
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = 2 * tp / (cm.sum(axis=0) + cm.sum(axis=1))
        rows += [dict(model=name, class_value=int(v), f1=float(f1[v]), support=float(cm[v].sum())) for v in labels]
    task.class_f1 = pd.DataFrame(rows)
    return task


def _lai_task(rng: np.random.Generator, mask: np.ndarray, rename: Mapping[str, str], significant: bool,
              with_deep: bool, with_figures: bool) -> TaskReport:
    families = dict(LAI_MODELS) if with_deep else {m: f for m, f in LAI_MODELS.items() if f != "deep"}
    names = {m: rename.get(m, m) for m in families}
    base = {"climatology": dict(rmse=0.61, mae=0.44, bias=0.03, r2=0.52, kge=0.55),
            "xgboost": dict(rmse=0.42, mae=0.30, bias=-0.01, r2=0.77, kge=0.79),
            "unet": dict(rmse=0.39, mae=0.28, bias=0.02, r2=0.80, kge=0.82)}
    best = "unet" if with_deep else "xgboost"
    rmse_best = base[best]["rmse"] if significant else base["climatology"]["rmse"] - 0.02
    task = TaskReport(
        task="lai", title="Leaf Area Index (monthly)",
        metrics=_metrics("lai", families, base, rename),
        headline=_headline("rmse", "RMSE", False, names[best], rmse_best, names["climatology"],
                           base["climatology"]["rmse"], significant),
        metric_directions=dict(rmse="lower", mae="lower", r2="higher", kge="higher"),
        metric_labels=dict(rmse="RMSE", mae="MAE", bias="bias", r2="R²", kge="KGE"),
        timing=_timing(families, rename), splits=_splits("2001-2020"),
        conservation=pd.DataFrame(dict(model=[names[best]] * 2, grid=["1deg", "N32"],
                                       quantity=["area-weighted LAI"] * 2, max_abs_error=[1.2e-7, 2.0e-7],
                                       max_rel_error=[5.1e-8, 8.3e-8])),
        conservation_tolerance=1e-6,
    )
    if not with_figures:
        return task
    truth = _lai_truth(mask)
    noise = {"climatology": 0.6, "xgboost": 0.4, "unet": 0.35}
    preds = {names[m]: np.where(mask, np.clip(truth + rng.normal(0.05, noise[m], (NY, NX)), 0, None), np.nan)
             for m in families}
    task.maps = FieldMaps(kind="continuous", variable="LAI", units="m² m⁻²", when="July 2019", lat=LAT, lon=LON,
                          land_mask=mask, truth=truth, predictions=preds)
    obs = np.clip(rng.gamma(2.0, 0.9, 3000), 0, 7.5)
    task.obs_pred = {names[m]: ObsPred(obs=obs, pred=np.clip(obs + rng.normal(0, noise[m], obs.size), 0, None))
                     for m in families}
    months = np.arange(1, 13)
    rows = []
    for zone, amp, mean in (("B arid", 0.4, 0.7), ("C temperate", 1.2, 2.2), ("D cold", 1.8, 1.9)):
        cycle = mean + amp * np.sin((months - 4) / 12 * 2 * np.pi)
        rows += [dict(zone=zone, month=int(mo), model=OBSERVED, value=float(v)) for mo, v in zip(months, cycle)]
        for m in families:
            err = rng.normal(0, noise[m] / 4, 12)
            rows += [dict(zone=zone, month=int(mo), model=names[m], value=float(v + e))
                     for mo, v, e in zip(months, cycle, err)]
    task.seasonal_cycles = pd.DataFrame(rows)
    if with_deep:
        epochs = np.arange(1, 31)
        train = 0.9 * np.exp(-epochs / 8) + 0.12
        valid = 0.95 * np.exp(-epochs / 9) + 0.16 + 0.002 * np.maximum(epochs - 20, 0) ** 1.5
        task.learning_curves = pd.DataFrame(dict(model=names["unet"], epoch=epochs, train_loss=train,
                                                 valid_loss=valid))
        task.loss_label = "masked MSE"
    return task


def _drift() -> pd.DataFrame:
    rows = []
    for feature, psi0 in (("tas_mean", 0.08), ("pr_total", 0.03), ("co2", 0.4), ("crop_frac_coarse", 0.05)):
        for k, scenario in enumerate(SCENARIOS[1:]):
            psi = psi0 * (1 + k)
            outside = max(0.0, psi - 0.1) / 3
            rows.append(dict(feature=feature, scenario=scenario, psi=psi, outside_share=outside,
                             flag=bool(psi > 0.25 or outside > 0.05)))
    return pd.DataFrame(rows)


def _series() -> pd.DataFrame:
    rows = []
    for scenario in SCENARIOS:
        years = np.arange(1950, 2015) if scenario == "historical" else np.arange(2015, 2101)
        slope = {"historical": 0.0, "ssp126": 0.002, "ssp245": 0.004, "ssp585": 0.008}[scenario]
        t = years - 2015
        for var, base, k in (("LAI", 1.9, 1.0), ("cropland fraction", 0.34, -0.3), ("forest fraction", 0.28, 0.4),
                             ("grassland fraction", 0.12, -0.1)):
            vals = base * (1 + k * slope * np.maximum(t, 0) / 4 + 0.0008 * np.minimum(t, 0) * k)
            rows += [dict(time=int(y), scenario=scenario, variable=var, value=float(v)) for y, v in zip(years, vals)]
    return pd.DataFrame(rows)


def _grid_maps(rng: np.random.Generator) -> list[GridMap]:
    lat = np.arange(43.5, 35.5, -1.0)
    lon = np.arange(-9.5, 2.5, 1.0)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    mask = ((lo + 3.8) / 5.6) ** 2 + ((la - 40.2) / 3.6) ** 2 < 1.1
    crop = np.where(mask, np.clip(0.2 + 0.4 * rng.random(mask.shape), 0, 1), np.nan)
    forest = np.where(mask, np.clip((la - 37) / 8 + 0.1 * rng.random(mask.shape), 0, 1), np.nan)
    # an unstructured (reduced Gaussian) grid: one value per point
    plat = np.repeat(np.arange(43.0, 36.0, -1.4), 9)
    plon = np.tile(np.linspace(-9.5, 1.5, 9), plat.size // 9)
    plai = 0.6 + 2.4 * np.clip((plat - 37) / 6.5, 0, 1)
    return [
        GridMap(grid="1deg", label="cropland PFT fraction, 2019", kind="fraction", units="1", lat=lat, lon=lon,
                values=crop, land_mask=mask),
        GridMap(grid="1deg", label="forest PFT fraction, 2019", kind="fraction", units="1", lat=lat, lon=lon,
                values=forest, land_mask=mask),
        GridMap(grid="N32", label="LAI, July 2019", kind="lai", units="m² m⁻²", lat=plat, lon=plon, values=plai),
    ]


def _provenance() -> Provenance:
    return Provenance(
        config_sha256="3f7a9c0d1e2b4a5968778695a4b3c2d1e0f9a8b7c6d5e4f30112233445566778",
        terrascale_version="0.1.0", git_commit="a33e3d6-dirty", config_path="configs/demo.yaml",
        data_sources=[
            DataSourceRef("MODIS MCD12C1 2019 IGBP land cover",
                          "Friedl & Sulla-Menashe (2015), MCD12C1 v006, NASA LP DAAC, doi:10.5067/MODIS/MCD12C1.006",
                          "NASA LP DAAC: no restrictions on use (cite the DOI)"),
            DataSourceRef("Köppen-Geiger main climate classes (Beck et al. 2018)",
                          "Beck et al. (2018), Sci. Data 5:180214, doi:10.1038/sdata.2018.214", "CC BY 4.0"),
        ],
        packages={"numpy": "2.2.6", "pandas": "2.3.1", "xarray": "2025.7.1", "scikit-learn": "1.7.1",
                  "xgboost": "3.0.2", "torch": "2.13.0", "matplotlib": "3.10.9"},
        backend="gpu: cupy / cuML, xgboost cuda, torch cuda:0", cluster="local: 4 workers x 2 threads, 8 GiB each",
        stage_wall_s={"inputs": 12.4, "features": 95.2, "train": 1530.7, "evaluate": 88.0, "aggregate": 41.9,
                      "report": 6.1},
        created="2025-01-01T12:00:00+00:00",
        notes=["LAI and the climate drivers are semi-synthetic (pipeline.datasets.synthetic); land cover is MODIS."],
    )


def make_report_context(*, lulc_significant: bool = True, lai_significant: bool = False, with_deep: bool = True,
                        with_drift: bool = True, with_figures: bool = True, rename: Mapping[str, str] | None = None,
                        seed: int = 0) -> ReportContext:
    """A full report context: both tasks, three models each, every figure's data.

    Parameters
    ----------
    lulc_significant, lai_significant : bool
        Whether each task's headline difference is significant.
    with_deep : bool
        Whether the LAI task has a deep model (``unet``, with learning curves).
    with_drift : bool
        Whether there is a drift table.
    with_figures : bool
        Whether the tasks carry maps, hexbins, confusion matrices etc. and the context carries
        scenario series and ESM-grid maps (off: tables only).
    rename : mapping of str to str, optional
        Model renames (e.g. ``{"xgboost": "<script>alert(1)</script>"}``) to test escaping.
    seed : int
        Seed of the random parts.

    Returns
    -------
    ReportContext
    """
    rename = dict(rename or {})
    rng = np.random.default_rng(seed)
    mask = land_mask()
    return ReportContext(
        run_name="demo-iberia", region="Iberia, 36-44° N, 10° W-2° E, 0.4°", period="2001-2020, scenarios to 2100",
        tasks=[_lulc_task(rng, mask, rename, lulc_significant, with_figures),
               _lai_task(rng, mask, rename, lai_significant, with_deep, with_figures)],
        provenance=_provenance(),
        drift=_drift() if with_drift else None,
        drift_rule="PSI > 0.25 or more than 5 % of rows outside the training range",
        scenario_series=_series() if with_figures else None, scenario_model=rename.get("xgboost", "xgboost"),
        grid_maps=_grid_maps(rng) if with_figures else [],
    )


def make_minimal_context() -> ReportContext:
    """The least a run can report: one task, one model, metrics without intervals, no optional part."""
    metrics = pd.DataFrame(dict(task="lai", model="climatology", family="baseline", split="test",
                                metric=["rmse", "r2"], value=[0.61, 0.52], lo=np.nan, hi=np.nan))
    return ReportContext(run_name="minimal", tasks=[TaskReport(task="lai", title="Leaf Area Index", metrics=metrics)],
                         provenance=Provenance(config_sha256="0" * 64, terrascale_version="0.1.0"))
