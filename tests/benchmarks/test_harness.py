"""The benchmark harness's mechanics: interleaving, statistics, results files, the README block.

Nothing here is timed for real: the durations come from a fake clock, the benchmarks are fakes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmarks import harness
from benchmarks.harness import (
    MARKER_END,
    MARKER_START,
    Benchmark,
    Skip,
    Tool,
    format_table,
    interleave,
    newest_results,
    ratio,
    readme_block,
    run_benchmark,
    run_suite,
    splice_readme,
    summarize,
    validate_results,
)
from benchmarks.targets import evaluate_targets


class FakeClock:
    """A clock that only moves when a tool says how long it took."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def tool(self, seconds, log=None, name=None):
        def fn():
            if log is not None:
                log.append(name)
            self.now += seconds
            return seconds

        return fn


# ------------------------------------------------------------------------------------ interleaving


def test_interleave_warms_up_then_alternates():
    clock = FakeClock()
    trace = []
    tools = [Tool("a", clock.tool(1.0), "terrascale"), Tool("b", clock.tool(3.0)),
             Tool("c", clock.tool(2.0), "floor")]
    out = interleave(tools, 3, clock=clock, trace=trace, memory=False)
    assert trace == [("warmup", "a"), ("warmup", "b"), ("warmup", "c")] + [("run", k) for _ in range(3)
                                                                            for k in "abc"]
    assert out["a"].samples == [1.0, 1.0, 1.0]
    assert out["b"].samples == [3.0, 3.0, 3.0]
    assert out["b"].output == 3.0


def test_interleave_without_warmup_and_max_repeat():
    clock = FakeClock()
    trace = []
    tools = [Tool("ours", clock.tool(1.0), "terrascale"),
             Tool("slow", clock.tool(10.0), warmup=False, max_repeat=2, in_process=False)]
    out = interleave(tools, 4, clock=clock, trace=trace)
    assert trace == [("warmup", "ours"), ("run", "ours"), ("run", "slow"), ("run", "ours"), ("run", "slow"),
                     ("run", "ours"), ("run", "ours")]
    assert len(out["ours"].samples) == 4 and len(out["slow"].samples) == 2
    assert out["slow"].peak_mb is None  # a child process's memory is not ours


def test_skipped_tool_is_never_called_and_reported():
    called = []
    clock = FakeClock()
    tools = [Tool("ours", clock.tool(1.0, called, "ours"), "terrascale"),
             Tool("cdo", lambda: called.append("cdo"), skip="the cdo binary is not on PATH")]
    out = interleave(tools, 2, clock=clock, memory=False)
    assert "cdo" not in called
    assert out["cdo"].status == "skipped" and out["cdo"].reason == "the cdo binary is not on PATH"
    assert out["cdo"].samples == []


def test_failing_tool_is_an_error_and_the_others_go_on():
    clock = FakeClock()

    def boom():
        raise RuntimeError("peer crashed")

    out = interleave([Tool("ours", clock.tool(1.0), "terrascale"), Tool("bad", boom)], 3, clock=clock, memory=False)
    assert out["bad"].status == "error" and "peer crashed" in out["bad"].reason
    assert out["ours"].samples == [1.0, 1.0, 1.0]


def test_duplicate_keys_and_bad_roles_are_refused():
    with pytest.raises(ValueError):
        interleave([Tool("a", lambda: 1), Tool("a", lambda: 2)], 1)
    with pytest.raises(ValueError):
        Tool("a", lambda: 1, role="competitor")


# ------------------------------------------------------------------------------------ arithmetic


def test_summarize_matches_numpy_quantiles():
    xs = [3.0, 1.0, 2.0, 10.0]
    s = summarize(xs)
    assert s["n"] == 4 and s["median"] == 2.5 and s["min"] == 1.0 and s["max"] == 10.0
    assert s["q1"] == pytest.approx(np.percentile(xs, 25)) and s["q3"] == pytest.approx(np.percentile(xs, 75))
    assert s["iqr"] == pytest.approx(s["q3"] - s["q1"])
    one = summarize([0.5])
    assert one["median"] == one["min"] == one["max"] == one["q1"] == one["q3"] == 0.5 and one["iqr"] == 0
    assert summarize([])["median"] is None


def test_ratio_of_medians_and_paired_range():
    r = ratio([2.0, 4.0, 6.0], [1.0, 1.0, 2.0])
    assert r["ratio"] == pytest.approx(4.0 / 1.0)
    assert r["ratio_min"] == pytest.approx(2.0) and r["ratio_max"] == pytest.approx(4.0)
    assert ratio([], [1.0])["ratio"] is None


def test_case_record_ratios_refer_to_terrascale(monkeypatch):
    clock = FakeClock()
    real = harness.interleave
    monkeypatch.setattr(harness, "interleave", lambda tools, repeat, memory=True: real(tools, repeat, clock=clock,
                                                                                        memory=False))
    ctx = harness.Context("agg", True, 3, None, {}, 1, say=lambda _m: None)
    rec = ctx.compare("c", "title", [Tool("numpy-sum", clock.tool(0.5), "floor"),
                                     Tool("terrascale", clock.tool(2.0), "terrascale"),
                                     Tool("cdo", clock.tool(200.0))])
    assert rec["reference"] == "terrascale"
    by = {t["key"]: t for t in rec["tools"]}
    assert by["cdo"]["ratio"] == pytest.approx(100.0)
    assert by["numpy-sum"]["ratio"] == pytest.approx(0.25)
    assert by["terrascale"]["ratio"] == 1.0
    assert rec["outputs"]["cdo"] == 200.0 and "outputs" not in ctx.cases[0]


def test_recorded_case_with_and_without_ratios():
    ctx = harness.Context("demo", False, 1, None, {}, 1, say=lambda _m: None)
    rec = ctx.record("demo", "from a manifest", [{"key": "total", "samples": [200.0]},
                                                 {"key": "train", "samples": [50.0]},
                                                 {"key": "gpu", "skip": "no GPU"}], reference="total")
    by = {t["key"]: t for t in rec["tools"]}
    assert by["train"]["ratio"] == 0.25 and by["gpu"]["status"] == "skipped" and by["gpu"]["reason"] == "no GPU"
    rec = ctx.record("models", "a table", [{"key": "a", "samples": [1.0]}, {"key": "b", "samples": [3.0]}],
                     ratios=False)
    assert [t["ratio"] for t in rec["tools"]] == [None, None] and [t["median"] for t in rec["tools"]] == [1.0, 3.0]


# ------------------------------------------------------------------------------------ suite, results


def _fake_suite(clock):
    def agg(ctx):
        ctx.compare("continuous", "fake field -> 1deg", [
            Tool("terrascale", clock.tool(1.0), "terrascale"),
            Tool("cdo", None, skip="the cdo binary is not on PATH"),
            Tool("xarray-regrid", clock.tool(30.0)),
            Tool("numpy-sum", clock.tool(0.25), "floor"),
        ])
        ctx.note("a note")

    def missing(ctx):
        raise Skip("no demo manifest")

    def broken(ctx):
        raise RuntimeError("benchmark bug")

    return [Benchmark("aggregate", agg), Benchmark("demo", missing), Benchmark("flatten", broken),
            Benchmark("run_scale", agg, in_quick=False)]


@pytest.fixture
def fake_run(tmp_path, monkeypatch):
    clock = FakeClock()
    real = harness.interleave
    monkeypatch.setattr(harness, "interleave", lambda tools, repeat, memory=True: real(tools, repeat, clock=clock,
                                                                                        memory=False))
    lines = []
    doc, path = run_suite(_fake_suite(clock), quick=True, repeat=3, command="python -m benchmarks --quick",
                          args={"quick": True}, results_dir=tmp_path, scratch=tmp_path / "scratch",
                          say=lines.append, targets=evaluate_targets, describe=False)
    return doc, path, lines


def test_results_file_follows_the_schema(fake_run):
    doc, path, _ = fake_run
    assert path.exists() and path.suffix == ".json" and path.name.endswith(f"-{doc['machine']['host']}.json")
    saved = json.loads(path.read_text())
    assert validate_results(saved) == []
    assert saved["schema"] == harness.SCHEMA
    assert [t["name"] for t in saved["targets"]] == [t["name"] for t in evaluate_targets(saved)]
    tools = {t["key"]: t for t in saved["benchmarks"]["aggregate"]["cases"][0]["tools"]}
    assert tools["terrascale"]["samples"] == [1.0, 1.0, 1.0] and tools["xarray-regrid"]["ratio"] == 30.0


def test_validate_results_finds_problems():
    assert "missing key 'machine'" in validate_results({"schema": 1})
    doc = {k: {} for k in harness.REQUIRED_KEYS} | {"schema": 1, "targets": [], "benchmarks": {
        "x": {"status": "weird", "cases": [{"case": "c", "tools": [{"key": "t", "status": "ok"}]}]}}}
    errs = validate_results(doc)
    assert any("status 'weird'" in e for e in errs) and any("x/c/t: missing" in e for e in errs)


def test_skipped_peer_and_benchmarks_are_reported(fake_run):
    doc, _, lines = fake_run
    cdo = next(t for t in doc["benchmarks"]["aggregate"]["cases"][0]["tools"] if t["key"] == "cdo")
    assert cdo["status"] == "skipped" and cdo["reason"] == "the cdo binary is not on PATH" and cdo["median"] is None
    assert any("skipped" in ln and "cdo" in ln and "not on PATH" in ln for ln in lines)
    assert {"status": "skipped", "reason": "no demo manifest"}.items() <= doc["benchmarks"]["demo"].items()
    assert doc["benchmarks"]["flatten"]["status"] == "error" and "benchmark bug" in doc["benchmarks"]["flatten"]["reason"]
    assert doc["benchmarks"]["run_scale"]["status"] == "skipped"  # not with --quick
    table = format_table(doc)
    assert "skipped" in table and "the cdo binary is not on PATH" in table and "[error]" in table
    verdicts = {t["name"]: t["met"] for t in doc["targets"]}
    assert verdicts["aggregation_vs_cdo"] is None  # its peer was skipped: not measured, not missed
    assert verdicts["categorical_vs_faster_peer"] is None and verdicts["demo_under_5_min"] is None
    assert verdicts["aggregation_vs_floor"] is True  # 1.0 s against a 0.25 s floor: 4x


def test_run_benchmark_never_raises():
    rec = run_benchmark(Benchmark("x", lambda ctx: 1 / 0), quick=False, repeat=1, scratch=None, gpu={}, threads=1,
                        say=lambda _m: None)
    assert rec["status"] == "error" and "ZeroDivisionError" in rec["reason"]


def test_results_path_and_newest(tmp_path):
    import datetime as dt

    p = harness.results_path(dt.datetime(2025, 3, 4, 5, 6, 7), "my host/1", tmp_path)
    assert p.name == "2025-03-04T050607-my_host_1.json"
    for name, created in (("b.json", "2025-01-02T00:00:00+00:00"), ("a.json", "2025-06-01T00:00:00+00:00"),
                          ("c.json", "2024-12-31T00:00:00+00:00")):
        (tmp_path / name).write_text(json.dumps({"created": created}))
    (tmp_path / "broken.json").write_text("{")
    assert newest_results(tmp_path).name == "a.json"
    with pytest.raises(FileNotFoundError):
        newest_results(tmp_path / "empty")


def test_machine_description_has_the_required_keys():
    m = harness.machine_description({"usable": False, "count": 0, "name": None, "reason": "test"})
    assert harness.REQUIRED_MACHINE <= set(m)
    assert m["cores_logical"] >= 1 and "no GPU (test)" in harness.describe_machine(m)


# ------------------------------------------------------------------------------------ README block


def fake_results() -> dict:
    tool = {"label": "", "status": "ok", "reason": "", "q1": None, "q3": None, "iqr": None, "peak_mb": 12.0,
            "note": "", "agreement": "", "ratio_min": None, "ratio_max": None}

    def t(key, role, med, r, **kw):
        return tool | {"key": key, "label": key, "role": role, "samples": [med] * 3, "n": 3, "median": med,
                       "min": med * 0.9, "max": med * 1.1, "ratio": r} | kw

    doc = {
        "schema": 1, "created": "2025-05-06T07:08:09+00:00", "command": "python -m benchmarks --quick --repeat 3",
        "args": {}, "wall_s": 300.0, "targets": [],
        "machine": {"host": "box", "cpu_model": "Fake CPU 9000", "cores_logical": 2, "cores_usable": 2,
                    "memory_gb": 16.0, "gpu": {"usable": False, "reason": "CuPy is not installed"},
                    "load_average_at_start": [1.5, 1.0, 1.0]},
        "packages": {"terrascale": "0.9.0", "numpy": "2.0", "cdo": "2.1.1"},
        "git": {"commit": "0123456789abcdef", "dirty": True},
        "benchmarks": {
            "aggregate": {"status": "ok", "reason": "", "notes": ["peers on the band"], "metrics": {}, "cases": [
                {"case": "continuous", "title": "0.1° field -> 1deg", "reference": "terrascale", "info": {},
                 "tools": [t("terrascale", "terrascale", 0.05, 1.0),
                           t("cdo", "peer", 20.0, 400.0, ratio_min=300.0, ratio_max=500.0),
                           tool | {"key": "xarray-regrid", "label": "xarray-regrid", "role": "peer",
                                   "status": "skipped", "reason": "not installed", "samples": [], "n": 0,
                                   "median": None, "min": None, "max": None, "ratio": None},
                           t("numpy-sum", "floor", 0.02, 0.4),
                           tool | {"key": "terrascale-gpu", "label": "terrascale (CuPy)", "role": "terrascale",
                                   "status": "skipped", "reason": "no usable GPU (CuPy is not installed)",
                                   "samples": [], "n": 0, "median": None, "min": None, "max": None,
                                   "ratio": None}]},
                {"case": "categorical", "title": "band | fractions", "reference": "terrascale", "info": {},
                 "tools": [t("terrascale", "terrascale", 0.1, 1.0), t("cdo", "peer", 1.5, 15.0),
                           t("xarray-regrid", "peer", 3.0, 30.0)]}]},
            "scale": {"status": "ok", "reason": "", "notes": [], "cases": [],
                      "metrics": {"slope_time": 0.93, "slope_memory": 0.41, "points": 3,
                                  "figure": "/somewhere/benchmarks/results/scale.png"}},
            "demo": {"status": "skipped", "reason": "no demo manifest", "cases": [], "metrics": {}, "notes": []},
        },
    }
    doc["targets"] = evaluate_targets(doc)
    return doc


def test_readme_block_from_a_fake_results_file(tmp_path, capsys):
    from benchmarks.__main__ import main

    path = tmp_path / "2025-05-06T070809-box.json"
    path.write_text(json.dumps(fake_results()))
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{MARKER_START}\nold\n{MARKER_END}\n")
    before = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    # runs nothing, only writes the block (and splices it into the README given, never the repository's)
    assert main(["--readme", "--results-dir", str(tmp_path), "--readme-file", str(readme)]) == 0
    block = (tmp_path / "README_block.md").read_text()
    assert block.strip() in readme.read_text() and "old" not in readme.read_text()
    assert (Path(__file__).resolve().parents[2] / "README.md").read_text() == before
    assert block.startswith(MARKER_START) and block.rstrip().endswith(MARKER_END)
    assert "do not edit by hand" in block and path.name in block
    assert "Fake CPU 9000, 2 cores, 16.0 GB memory, no GPU (CuPy is not installed)" in block
    assert "`python -m benchmarks --quick --repeat 3`" in block and "0123456789 + local changes" in block
    assert "| aggregate: 0.1° field -> 1deg | terrascale | 50.0 ms |" in block
    assert "| cdo | 20.0 s | 18.0 s – 22.0 s | 400x (300x–500x) |" in block
    assert "| xarray-regrid | skipped |" in block and "not installed" in block
    assert "band \\| fractions" in block  # table cells are escaped
    assert "| aggregation >= 100x faster than CDO remapcon (continuous) | CDO 400x slower" in block
    assert "| met |" in block and "| not measured |" in block
    assert "cells^0.93" in block and "demo | *skipped* |" in block
    assert "](benchmarks/results/scale.png)" in block  # the scale curve's figure, relative to the README
    assert "terrascale (CuPy)" not in block and "GPU variants (1 rows) skipped: no usable GPU" in block
    assert "README block from" in capsys.readouterr().out


def test_readme_block_is_deterministic_and_splices_between_markers():
    doc = fake_results()
    block = readme_block(doc, "benchmarks/results/x.json")
    assert block == readme_block(doc, "benchmarks/results/x.json")
    readme = f"# title\n\n## Benchmarks\n\nintro\n\n{MARKER_START}\nold table\n{MARKER_END}\n\n## Development\n"
    new = splice_readme(readme, block)
    assert "old table" not in new and new.startswith("# title") and new.endswith(f"{MARKER_END}\n\n## Development\n")
    assert new.count(MARKER_START) == 1 and splice_readme(new, block) == new
    with pytest.raises(ValueError):
        splice_readme("no markers", block)


def test_readme_refuses_a_non_results_file(tmp_path):
    from benchmarks.__main__ import main

    (tmp_path / "x.json").write_text(json.dumps({"created": "2025-01-01T00:00:00"}))
    with pytest.raises(SystemExit, match="not a benchmark results file"):
        main(["--readme", "--results-dir", str(tmp_path)])


# ------------------------------------------------------------------------------------ targets, helpers


def test_targets_met_missed_and_not_measured():
    doc = fake_results()
    v = {t["name"]: t for t in doc["targets"]}
    assert v["aggregation_vs_cdo"]["met"] is True and v["aggregation_vs_cdo"]["value"] == pytest.approx(400)
    assert v["categorical_vs_faster_peer"]["met"] is False  # the faster peer (CDO) is only 15x slower
    assert "cdo" in v["categorical_vs_faster_peer"]["detail"]
    assert v["aggregation_vs_floor"]["met"] is True  # 0.05 s against 0.02 s: 2.5x
    assert v["xgboost_vs_hgb"]["met"] is None and v["demo_under_5_min"]["met"] is None


def test_xgboost_target_needs_speed_and_score():
    doc = fake_results()

    def with_train(x, h, rx, rh):
        tools = [{"key": "xgboost", "status": "ok", "median": x}, {"key": "hgb", "status": "ok", "median": h}]
        d = dict(doc, benchmarks={"train": {"status": "ok", "cases": [{"case": "lai-table", "tools": tools}],
                                            "metrics": {"scores": {"xgboost": {"rmse": rx}, "hgb": {"rmse": rh}}}}})
        return next(t for t in evaluate_targets(d) if t["name"] == "xgboost_vs_hgb")["met"]

    assert with_train(1.0, 2.0, 0.280, 0.280) is True
    assert with_train(1.0, 2.0, 0.281, 0.280) is True  # equal within 1 %
    assert with_train(1.0, 2.0, 0.300, 0.280) is False  # faster but worse
    assert with_train(2.0, 1.0, 0.270, 0.280) is False  # better but slower


def test_demo_manifest_reading(tmp_path):
    from benchmarks.demo import read_manifest

    m = tmp_path / "manifest.json"
    with pytest.raises(Skip, match="make demo"):
        read_manifest(m)
    m.write_text(json.dumps({"stages": {"prepare": {"wall_s": 4.0}, "train/lai": {"wall_s": 60.5}},
                             "wall_s": {"prepare": 4.0, "train/lai": 60.5}, "git_commit": "abc"}))
    d = read_manifest(m)
    assert d["total"] == pytest.approx(64.5) and d["stages"] == {"prepare": 4.0, "train/lai": 60.5}
    m.write_text(json.dumps({"stages": {"prepare": {"wall_s": 4.0}}, "wall_s": 250.0}))
    assert read_manifest(m)["total"] == 250.0
    m.write_text(json.dumps({"stages": {}}))
    with pytest.raises(Skip, match="no wall times"):
        read_manifest(m)


def test_log_log_slope():
    from benchmarks.scale import slope

    cells = [1e6, 6.5e6, 2.6e7]
    assert slope(cells, [3e-9 * c**0.9 for c in cells]) == pytest.approx(0.9)
    assert slope(cells, [None, 0.0, 1.0]) is None


def test_number_formats():
    assert [harness.fmt_seconds(s) for s in (None, 123.4, 20.0, 1.5, 0.466, 0.00148, 2e-6)] == [
        "-", "123 s", "20.0 s", "1.50 s", "466 ms", "1.48 ms", "2.00 µs"]
    assert [harness.fmt_ratio(r) for r in (None, 412.3, 33.33, 1.0, 0.0375)] == ["-", "412x", "33.3x", "1x", "0.037x"]


def test_command_line_and_list(capsys):
    from benchmarks.__main__ import main

    assert harness.command_line(["--quick", "aggregate", "a b"]) == "python -m benchmarks --quick aggregate 'a b'"
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "aggregate" in out and "run_scale" in out and "(not with --quick)" in out
    assert main(["nonesuch"]) == 2


def test_floor_target_judges_the_pass_with_weights_given_and_reports_both():
    doc = fake_results()
    case = doc["benchmarks"]["aggregate"]["cases"][0]
    given = dict(next(t for t in case["tools"] if t["key"] == "terrascale"), key="terrascale-weights", median=0.15)
    case["tools"].append(given)  # 0.15 s against the 0.02 s floor: 7.5x; 0.05 s built in the call: 2.5x
    v = next(t for t in evaluate_targets(doc) if t["name"] == "aggregation_vs_floor")
    assert v["met"] is False and v["value"] == pytest.approx(7.5)
    assert "weights given" in v["detail"] and "2.5x with the weights built in the call" in v["detail"]


def test_memory_target_takes_the_worst_size_of_the_scale_curve():
    doc = fake_results()
    doc["benchmarks"]["scale"]["metrics"]["curve"] = [
        {"label": "0.25deg", "cells": 1e6, "peak_mb": 5.0, "bound_mb": 40.0},
        {"label": "0.05deg", "cells": 2.6e7, "peak_mb": 30.0, "bound_mb": 150.0}]
    v = next(t for t in evaluate_targets(doc) if t["name"] == "aggregation_memory")
    assert v["met"] is True and v["value"] == pytest.approx(0.2) and "0.05deg" in v["detail"]
    doc["benchmarks"]["scale"]["metrics"]["curve"][0]["peak_mb"] = 60.0  # 150 % of its bound
    v = next(t for t in evaluate_targets(doc) if t["name"] == "aggregation_memory")
    assert v["met"] is False and "0.25deg" in v["detail"]
    doc["benchmarks"]["scale"]["metrics"]["curve"][0]["peak_mb"] = 5.0
    doc["benchmarks"]["aggregate"]["metrics"]["streamed_1km_N128"] = {"target": "N128", "peak_mb": 400.0,
                                                                       "base_mb": 200.0, "bound_mb": 100.0}
    v = next(t for t in evaluate_targets(doc) if t["name"] == "aggregation_memory")
    assert v["met"] is False and v["value"] == pytest.approx(2.0) and "1 km streamed -> N128" in v["detail"]
    del doc["benchmarks"]["scale"], doc["benchmarks"]["aggregate"]["metrics"]["streamed_1km_N128"]
    assert next(t for t in evaluate_targets(doc) if t["name"] == "aggregation_memory")["met"] is None
