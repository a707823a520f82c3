"""One call per task: metrics table, headline, breakdown, seasonal cycles, per-class F1, confusion matrices."""

from __future__ import annotations

import dataclasses
import functools
import sys

import numpy as np
import pandas as pd
import pytest

from pipeline.evaluate import (
    METRIC_DIRECTIONS,
    METRIC_LABELS,
    HeadlineResult,
    TaskEvaluation,
    evaluate_categorical,
    evaluate_continuous,
)
from pipeline.evaluate.bootstrap import block_bootstrap_many
from pipeline.evaluate.breakdown import COLUMNS as BREAKDOWN_COLUMNS
from pipeline.evaluate.breakdown import breakdown
from pipeline.evaluate.categorical import categorical_metrics, overall_accuracy
from pipeline.evaluate.continuous import CONTINUOUS_METRICS, rmse
from pipeline.evaluate.summary import CLASS_F1_COLUMNS, METRICS_COLUMNS, SEASONAL_COLUMNS

# the module, not the function of the same name that pipeline.evaluate exports
breakdown_module = sys.modules["pipeline.evaluate.breakdown"]

LAI_GROUPS = {1: "forest", 4: "forest", 10: "grass", 12: "crop"}
CLASSES = np.array([1, 4, 10, 12, 16])
CLASS_GROUPS = {1: "forest", 4: "forest", 10: "grass", 12: "crop", 16: "bare"}


def _lai(n_blocks=30, per_block=40, seed=0):
    """A small LAI test table and four models: perfect, a noisy baseline, a climatology-like one, a gappy one."""
    rng = np.random.default_rng(seed)
    block = np.repeat(np.arange(n_blocks), per_block)
    n = block.size
    lai = rng.gamma(2.0, 1.0, n)
    month = rng.integers(1, 13, n)
    frame = pd.DataFrame({
        "lai": lai,
        "lai_obs": lai + rng.normal(0.0, 0.2, n),
        "area": rng.uniform(2e7, 3e7, n),
        "block": block,
        "koppen": pd.Categorical(rng.choice(["Af", "BSk", "Cfb"], n)),
        "igbp": rng.choice([1, 4, 10, 12], n).astype(np.uint8),
        "time": pd.to_datetime(pd.DataFrame({"year": 2019, "month": month, "day": 15})),
    })
    frame.loc[::23, "lai_obs"] = np.nan
    noisy = lai + rng.normal(0.0, 0.4, n_blocks)[block] + rng.normal(0.0, 0.8, n)
    gappy = lai + rng.normal(0.0, 0.3, n)
    gappy[::7] = np.nan
    # a climatology: the mean of the zone and month
    clim = frame.groupby(["koppen", frame["time"].dt.month], observed=True)["lai"].transform("mean").to_numpy()
    preds = {"perfect": lai.copy(), "noisy": noisy, "clim": clim, "gappy": gappy}
    families = {"perfect": "tree", "noisy": "baseline", "clim": "baseline", "gappy": "deep"}
    return frame, preds, families


REFS = {"test (truth)": "lai", "test (observed)": "lai_obs"}


def _continuous(**kwargs):
    if not kwargs:
        return _continuous_default()
    frame, preds, families = _lai()
    opts = dict(families=families, references=REFS, n_resamples=100, class_groups=LAI_GROUPS)
    return frame, preds, evaluate_continuous(frame, preds, **{**opts, **kwargs})


@functools.cache
def _continuous_default():
    """The default evaluation, computed once for the tests that only read it."""
    return _continuous(n_resamples=100)


def _lulc(n_blocks=30, per_block=40, seed=1):
    """A small LULC test table: truth, parents of 8 rows with consistent coarse group fractions, probabilities."""
    rng = np.random.default_rng(seed)
    block = np.repeat(np.arange(n_blocks), per_block)
    n = block.size
    truth = rng.choice(CLASSES, n)
    parent = np.arange(n) // 8
    n_parent = parent.max() + 1
    # a model whose probabilities are constant in a parent: the coarse fractions are its group sums
    soft = rng.dirichlet(np.ones(CLASSES.size), n_parent)[parent]
    groups = ["forest", "grass", "crop", "bare"]
    group_of = np.array([groups.index(CLASS_GROUPS[c]) for c in CLASSES])
    coarse = np.stack([soft[:, group_of == g].sum(axis=1) for g in range(len(groups))], axis=1)
    frame = pd.DataFrame({"igbp": truth.astype(np.uint8), "area": np.full(n, 2.5e7), "block": block,
                          "koppen": rng.integers(1, 4, n), "parent": parent})
    for g, name in enumerate(groups):
        frame[f"lulc_{name}"] = coarse[:, g].astype(np.float32)
    onehot = (CLASSES[None, :] == truth[:, None]).astype(np.float64)
    noisy = np.where(rng.random(n)[:, None] < 0.5, onehot, rng.dirichlet(np.ones(CLASSES.size), n))
    probs = {"perfect": onehot, "noisy": noisy, "soft": soft}
    families = {"perfect": "tree", "noisy": "baseline", "soft": "baseline"}
    return frame, probs, families, {g: f"lulc_{g}" for g in groups}


def _categorical(**kwargs):
    if not kwargs:
        return _categorical_default()
    frame, probs, families, group_columns = _lulc()
    opts = dict(families=families, class_groups=CLASS_GROUPS, group_columns=group_columns, n_resamples=100)
    return frame, probs, evaluate_categorical(frame, probs, CLASSES, **{**opts, **kwargs})


@functools.cache
def _categorical_default():
    return _categorical(n_resamples=100)


# --- continuous -----------------------------------------------------------------------------------


def test_metric_table_has_one_row_per_model_split_metric():
    _, preds, ev = _continuous()
    assert isinstance(ev, TaskEvaluation) and ev.task == "lai"
    t = ev.metrics
    assert tuple(t.columns) == METRICS_COLUMNS
    assert len(t) == len(preds) * len(REFS) * len(CONTINUOUS_METRICS)
    assert not t.duplicated(["model", "split", "metric"]).any()
    assert list(dict.fromkeys(t["split"])) == list(REFS)
    assert list(dict.fromkeys(t["model"])) == list(preds)
    assert set(t["metric"]) == set(CONTINUOUS_METRICS)
    assert (t["task"] == "lai").all()
    assert dict(zip(t["model"], t["family"], strict=False))["noisy"] == "baseline"
    assert ev.metric_directions == {m: METRIC_DIRECTIONS[m] for m in ("rmse", "mae", "r2", "pearson_r", "kge")}
    assert "bias" not in ev.metric_directions
    assert ev.metric_labels["r2"] == "R²" and ev.metric_labels["kge"] == "KGE"


def test_perfect_model_scores_and_intervals_contain_the_value():
    frame, preds, ev = _continuous()
    t = ev.metrics.set_index(["split", "model", "metric"])
    assert t.loc[("test (truth)", "perfect", "rmse"), "value"] == pytest.approx(0.0, abs=1e-12)
    assert t.loc[("test (truth)", "perfect", "r2"), "value"] == pytest.approx(1.0)
    assert t.loc[("test (truth)", "noisy", "rmse"), "value"] == pytest.approx(
        rmse(frame["lai"], preds["noisy"], frame["area"]))
    finite = ev.metrics.dropna(subset=["value", "lo", "hi"])
    assert len(finite) == len(ev.metrics) - int(ev.metrics["value"].isna().sum())
    assert ((finite["lo"] <= finite["value"] + 1e-12) & (finite["value"] <= finite["hi"] + 1e-12)).all()
    assert (finite["lo"] < finite["hi"]).sum() > 0.8 * len(finite)


def test_perfect_model_wins_the_headline_against_a_noisy_baseline():
    _, _, ev = _continuous(block_label="2° × 2° spatial blocks")
    h = ev.headline
    assert isinstance(h, HeadlineResult)
    assert (h.metric, h.split, h.best_model, h.baseline) == ("rmse", "test (truth)", "perfect", "noisy")
    assert not h.higher_is_better
    assert h.best_value == pytest.approx(0.0, abs=1e-12)
    assert h.difference == pytest.approx(h.best_value - h.baseline_value)
    assert h.difference < 0 and h.lo <= h.difference <= h.hi < 0
    assert h.p_value < 0.05 and h.significant
    assert (h.alpha, h.n_resamples, h.blocks, h.metric_label) == (0.05, 100, "2° × 2° spatial blocks", "RMSE")


def test_identical_models_differ_by_zero_and_not_significantly():
    frame, preds, _ = _lai()
    same = {"model": preds["noisy"], "base": preds["noisy"].copy()}
    ev = evaluate_continuous(frame, same, families={"model": "tree", "base": "baseline"}, references=REFS,
                             n_resamples=50, class_groups=LAI_GROUPS, headline_metric="kge")
    h = ev.headline
    assert h.higher_is_better and h.metric_label == "KGE"
    assert h.difference == 0.0 and h.lo == 0.0 and h.hi == 0.0
    assert h.p_value == 1.0 and not h.significant


def test_headline_needs_a_model_and_a_baseline():
    frame, preds, families = _lai()
    only = {m: p for m, p in preds.items() if families[m] == "baseline"}
    ev = evaluate_continuous(frame, only, families=families, references=REFS, n_resamples=20,
                             class_groups=LAI_GROUPS, koppen=None, land_cover=None, time=None)
    assert ev.headline is None
    assert ev.breakdown is None and ev.seasonal is None
    assert len(ev.metrics) == len(only) * 2 * len(CONTINUOUS_METRICS)


def test_nan_predictions_are_scored_on_their_finite_rows():
    frame, preds, ev = _continuous()
    ok = np.isfinite(preds["gappy"])
    t = ev.metrics.set_index(["split", "model", "metric"])
    for split, col in REFS.items():
        for name, fn in CONTINUOUS_METRICS.items():
            expected = fn(frame[col].to_numpy()[ok], preds["gappy"][ok], frame["area"].to_numpy()[ok])
            assert t.loc[(split, "gappy", name), "value"] == pytest.approx(expected, rel=1e-12), (split, name)


def test_breakdown_by_zone_land_cover_group_and_season():
    frame, preds, ev = _continuous()
    b = ev.breakdown
    assert tuple(b.columns) == BREAKDOWN_COLUMNS
    kinds = b.drop_duplicates(["group_kind", "group"])
    expected = [("koppen", z) for z in ("Af", "BSk", "Cfb")] + [("land_cover", g) for g in ("crop", "forest", "grass")]
    expected += [("season", s) for s in ("DJF", "MAM", "JJA", "SON")]
    assert list(zip(kinds["group_kind"], kinds["group"], strict=True)) == expected * 1  # first model and split
    per_model_split = len(expected) * len(CONTINUOUS_METRICS)
    assert len(b) == per_model_split * len(preds) * len(REFS)
    row = b[(b.model == "noisy") & (b.split == "test (observed)") & (b.group_kind == "land_cover")
            & (b.group == "forest") & (b.metric == "rmse")].iloc[0]
    sel = frame["igbp"].isin([1, 4]).to_numpy()
    assert row.value == pytest.approx(rmse(frame["lai_obs"][sel], preds["noisy"][sel], frame["area"][sel]))
    assert row.n_rows == int((sel & frame["lai_obs"].notna().to_numpy()).sum())
    assert row.lo <= row.value <= row.hi


def test_default_land_cover_groups_come_from_the_class_table():
    frame, preds, families = _lai()
    ev = evaluate_continuous(frame, {"perfect": preds["perfect"]}, families=families, references={"t": "lai"},
                             n_resamples=10, koppen=None, time=None)
    assert set(ev.breakdown["group"]) == {"needleleaf_forest", "broadleaf_forest", "grassland", "cropland"}
    assert ev.seasonal is None


def test_seasonal_cycles_are_area_weighted_monthly_means_by_zone():
    frame, preds, ev = _continuous()
    s = ev.seasonal
    assert tuple(s.columns) == SEASONAL_COLUMNS
    assert list(dict.fromkeys(s["model"])) == ["observed", *preds]
    assert set(s["zone"]) == {"Af", "BSk", "Cfb"} and set(s["month"]) == set(range(1, 13))
    sel = ((frame["koppen"] == "BSk") & (frame["time"].dt.month == 7)).to_numpy()
    row = s[(s.zone == "BSk") & (s.month == 7)].set_index("model")["value"]
    # the first reference is the observed cycle; the perfect model reproduces it
    assert row["observed"] == pytest.approx(np.average(frame["lai"][sel], weights=frame["area"][sel]))
    assert row["perfect"] == pytest.approx(row["observed"])
    ok = sel & np.isfinite(preds["gappy"])
    assert row["gappy"] == pytest.approx(np.average(preds["gappy"][ok], weights=frame["area"][ok]))


def test_missing_columns_are_named():
    frame, preds, families = _lai()
    with pytest.raises(ValueError, match=r"'block' \(block\)"):
        evaluate_continuous(frame.drop(columns="block"), preds, families=families, references=REFS)
    with pytest.raises(ValueError, match="'lai_obs'"):
        evaluate_continuous(frame.drop(columns="lai_obs"), preds, families=families, references=REFS)
    with pytest.raises(ValueError, match="'time'"):
        evaluate_continuous(frame.drop(columns="time"), preds, families=families, references=REFS)
    # an optional part switched off needs no column
    evaluate_continuous(frame.drop(columns="time"), preds, families=families, references=REFS, time=None,
                        n_resamples=5, class_groups=LAI_GROUPS)


def test_bad_inputs_are_refused():
    frame, preds, families = _lai()
    with pytest.raises(ValueError, match="'perfect' must be 1-D"):
        evaluate_continuous(frame, {"perfect": preds["perfect"][:-1]}, families=families, references=REFS)
    with pytest.raises(ValueError, match="no family for the model"):
        evaluate_continuous(frame, {"other": preds["perfect"]}, families=families, references=REFS)
    with pytest.raises(ValueError, match="headline metric"):
        evaluate_continuous(frame, preds, families=families, references=REFS, headline_metric="bias")
    with pytest.raises(ValueError, match="references"):
        evaluate_continuous(frame, preds, families=families, references={})


def test_results_convert_to_the_report_containers():
    from pipeline.report import ConfusionMatrix, Headline, TaskReport

    _, _, lai = _continuous()
    report = TaskReport(task="lai", title="LAI", metrics=lai.metrics, headline=Headline(**dataclasses.asdict(lai.headline)),
                        metric_directions=lai.metric_directions, metric_labels=lai.metric_labels,
                        seasonal_cycles=lai.seasonal)
    assert report.headline.model_wins and report.models() == ["perfect", "noisy", "clim", "gappy"]
    _, _, lulc = _categorical()
    report = TaskReport(task="lulc", title="LULC", metrics=lulc.metrics,
                        headline=Headline(**dataclasses.asdict(lulc.headline)), class_f1=lulc.class_f1,
                        confusion={m: ConfusionMatrix(*lm) for m, lm in lulc.confusion.items()},
                        metric_directions=lulc.metric_directions, metric_labels=lulc.metric_labels)
    assert report.headline.label == "macro F1"


# --- categorical ----------------------------------------------------------------------------------


def test_categorical_metrics_headline_and_fraction_mae():
    frame, probs, ev = _categorical(block_label="blocks")
    t = ev.metrics
    assert tuple(t.columns) == METRICS_COLUMNS
    names = ["overall_accuracy", "macro_f1", "miou", "fraction_mae"]
    assert list(t["metric"]) == names * len(probs)
    assert list(dict.fromkeys(t["model"])) == list(probs)
    assert (t["split"] == "test").all() and (t["task"] == "lulc").all()
    v = t.set_index(["model", "metric"])
    assert v.loc[("perfect", "overall_accuracy"), "value"] == 1.0
    assert v.loc[("perfect", "macro_f1"), "value"] == pytest.approx(1.0)
    assert v.loc[("perfect", "miou"), "value"] == pytest.approx(1.0)
    # the soft model's probabilities reproduce the coarse fractions (stored as float32)
    assert v.loc[("soft", "fraction_mae"), "value"] < 1e-6
    assert v.loc[("perfect", "fraction_mae"), "value"] > 0.05
    fm = t[t.metric == "fraction_mae"]
    assert fm["lo"].isna().all() and fm["hi"].isna().all()
    scored = t[t.metric != "fraction_mae"]
    assert ((scored.lo <= scored.value + 1e-12) & (scored.value <= scored.hi + 1e-12)).all()
    assert ev.metric_directions == {"overall_accuracy": "higher", "macro_f1": "higher", "miou": "higher",
                                    "fraction_mae": "lower"}
    assert ev.metric_labels == {m: METRIC_LABELS[m] for m in names}

    h = ev.headline
    assert (h.metric, h.best_model, h.best_value, h.split, h.blocks) == ("macro_f1", "perfect", 1.0, "test", "blocks")
    assert h.baseline in ("noisy", "soft") and h.higher_is_better
    assert h.difference > 0 and h.p_value < 0.05 and h.significant
    assert ev.seasonal is None


def test_class_f1_and_confusion_shapes():
    frame, probs, ev = _categorical()
    k = CLASSES.size
    f1 = ev.class_f1
    assert tuple(f1.columns) == CLASS_F1_COLUMNS
    assert len(f1) == len(probs) * k
    assert list(f1[f1.model == "perfect"]["class_value"]) == list(CLASSES)
    assert (f1[f1.model == "perfect"]["f1"] == 1.0).all()
    area = frame.groupby("igbp")["area"].sum()
    np.testing.assert_allclose(f1[f1.model == "noisy"]["support"], area.reindex(CLASSES).to_numpy())
    assert set(ev.confusion) == set(probs)
    labels, matrix = ev.confusion["noisy"]
    np.testing.assert_array_equal(labels, CLASSES)
    assert matrix.shape == (k, k) and matrix.sum() == pytest.approx(frame["area"].sum())
    _, perfect = ev.confusion["perfect"]
    assert np.count_nonzero(perfect - np.diag(np.diag(perfect))) == 0


def test_categorical_breakdown_by_zone_and_true_group():
    frame, probs, ev = _categorical()
    b = ev.breakdown
    assert tuple(b.columns) == BREAKDOWN_COLUMNS
    assert set(b.group_kind) == {"koppen", "land_cover"}
    assert set(b[b.group_kind == "koppen"].group) == {"1", "2", "3"}
    assert set(b[b.group_kind == "land_cover"].group) == {"bare", "crop", "forest", "grass"}
    assert set(b.metric) == {"overall_accuracy", "macro_f1", "miou"}
    row = b[(b.model == "noisy") & (b.group == "forest") & (b.metric == "overall_accuracy")].iloc[0]
    sel = frame["igbp"].isin([1, 4]).to_numpy()
    pred = CLASSES[probs["noisy"].argmax(axis=1)]
    assert row.value == pytest.approx(overall_accuracy(frame["igbp"][sel], pred[sel], frame["area"][sel],
                                                       labels=CLASSES))


def test_nan_probabilities_are_rows_without_prediction():
    frame, probs, families, _ = _lulc()
    gappy = probs["noisy"].copy()
    gappy[::5, 2] = np.nan
    ev = evaluate_categorical(frame, {"gappy": gappy, "noisy": probs["noisy"]}, CLASSES,
                              families={"gappy": "tree", "noisy": "baseline"}, class_groups=CLASS_GROUPS,
                              n_resamples=20)
    ok = np.ones(len(frame), bool)
    ok[::5] = False
    pred = CLASSES[probs["noisy"].argmax(axis=1)]
    value = ev.metrics.set_index(["model", "metric"]).loc[("gappy", "overall_accuracy"), "value"]
    assert value == pytest.approx(overall_accuracy(frame["igbp"][ok], pred[ok], frame["area"][ok], labels=CLASSES))
    assert "fraction_mae" not in set(ev.metrics.metric)  # no group columns given
    _, matrix = ev.confusion["gappy"]
    assert matrix.sum() == pytest.approx(frame["area"][ok].sum())


def test_categorical_input_errors():
    frame, probs, families, group_columns = _lulc()
    opts = dict(families=families, class_groups=CLASS_GROUPS, n_resamples=5)
    with pytest.raises(ValueError, match="'parent' \\(parent\\)"):
        evaluate_categorical(frame.drop(columns="parent"), probs, CLASSES, group_columns=group_columns, **opts)
    with pytest.raises(ValueError, match="'lulc_crop'"):
        evaluate_categorical(frame.drop(columns="lulc_crop"), probs, CLASSES, group_columns=group_columns, **opts)
    with pytest.raises(ValueError, match="'igbp' \\(truth\\)"):
        evaluate_categorical(frame.drop(columns="igbp"), probs, CLASSES, **opts)
    with pytest.raises(ValueError, match=r"must be \(rows, classes\)"):
        evaluate_categorical(frame, {"noisy": probs["noisy"][:, :3]}, CLASSES, **opts)
    with pytest.raises(ValueError, match="headline metric"):
        evaluate_categorical(frame, probs, CLASSES, headline_metric="fraction_mae", **opts)
    with pytest.raises(ValueError, match="belongs to a group"):
        evaluate_categorical(frame, probs, CLASSES, group_columns={"tundra": "lulc_crop"}, **opts)
    mixed = frame.copy()
    mixed.loc[1, "lulc_crop"] += 0.1
    with pytest.raises(ValueError, match="lulc_crop differ between rows"):
        evaluate_categorical(mixed, probs, CLASSES, group_columns=group_columns, **opts)


# --- the breakdown's grouped fast path -------------------------------------------------------------


@pytest.mark.parametrize("grouped", [True, False])
def test_breakdown_intervals_are_those_of_the_bootstrap_on_each_group(monkeypatch, grouped):
    if not grouped:
        monkeypatch.setattr(breakdown_module, "_GROUPED_VALUES", 0)
    frame, preds, _ = _lai(n_blocks=25, per_block=30, seed=4)
    frame["pred"] = preds["noisy"]
    frame["lc"] = frame["igbp"].map(LAI_GROUPS)
    frame["klass"] = frame["igbp"].astype(np.int64)
    frame["hard"] = np.where(np.random.default_rng(0).random(len(frame)) < 0.6, frame["klass"], 10)
    cases = [(CONTINUOUS_METRICS, "lai_obs", "pred"), (categorical_metrics([1, 4, 10, 12]), "klass", "hard")]
    for metrics, truth, pred in cases:
        table = breakdown(frame, metrics, truth=truth, pred=pred, task="t", model="m", split="s", weights="area",
                          groups={"koppen": "koppen", "land_cover": "lc"}, season="time", blocks="block", n_boot=40,
                          seed=3)
        for (kind, group), rows in table.groupby(["group_kind", "group"]):
            if kind == "all":
                sel = np.ones(len(frame), bool)
            elif kind == "season":
                sel = (breakdown_module.season_of(frame["time"]) == group)
            else:
                sel = (frame[{"koppen": "koppen", "land_cover": "lc"}[kind]].astype(str) == group).to_numpy()
            sub = frame[np.asarray(sel)]
            ref = block_bootstrap_many(metrics, sub[truth].to_numpy(), sub[pred].to_numpy(), blocks=sub["block"],
                                       weights=sub["area"], n=40, seed=3)
            for r in rows.itertuples():
                np.testing.assert_allclose([r.value, r.lo, r.hi], ref[r.metric], rtol=1e-9, atol=1e-12,
                                           err_msg=f"{kind} {group} {r.metric}")


def test_a_constant_model_has_no_correlation_in_the_table_or_the_breakdown():
    frame, preds, families = _lai()
    ev = evaluate_continuous(frame, {"const": np.full(len(frame), 2.0), "noisy": preds["noisy"]},
                             families={"const": "baseline", "noisy": "tree"}, references=REFS, n_resamples=30,
                             class_groups=LAI_GROUPS)
    for table in (ev.metrics, ev.breakdown):
        const = table[table.model == "const"].set_index("metric")
        for name in ("pearson_r", "kge"):
            assert const.loc[[name], ["value", "lo", "hi"]].isna().all().all(), name
        assert np.isfinite(const.loc[["rmse", "r2"], ["value", "lo", "hi"]].to_numpy()).all()


def test_class_groups_may_be_aligned_with_the_classes():
    frame, probs, families, group_columns = _lulc()
    aligned = tuple(CLASS_GROUPS[c] for c in CLASSES)
    opts = dict(families=families, group_columns=group_columns, n_resamples=10, koppen=None)
    a = evaluate_categorical(frame, probs, CLASSES, class_groups=aligned, **opts)
    b = evaluate_categorical(frame, probs, CLASSES, class_groups=CLASS_GROUPS, **opts)
    pd.testing.assert_frame_equal(a.metrics, b.metrics)
    pd.testing.assert_frame_equal(a.breakdown, b.breakdown)
    with pytest.raises(ValueError, match="one group per class"):
        evaluate_categorical(frame, probs, CLASSES, class_groups=aligned[:-1], **opts)
