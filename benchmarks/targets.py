"""The issues' performance targets, judged from a results document (never from a live run).

Each target reads the cases and metrics that the benchmarks recorded (keys in
:mod:`benchmarks.suite`'s modules) and gives ``met`` = True / False, or None when its inputs were
not measured (a peer or benchmark skipped), with the measured value and a one-line detail.
"""

from __future__ import annotations

from benchmarks.harness import find_case, find_tool, fmt_ratio

#: scores within this relative margin count as equal (XGBoost against HistGradientBoosting)
SCORE_TOLERANCE = 0.01


def _target(name: str, goal: str, value, met, detail: str) -> dict:
    return {"name": name, "goal": goal, "value": value, "met": met, "detail": detail}


def _missing(name: str, goal: str, why: str) -> dict:
    return _target(name, goal, None, None, f"not measured: {why}")


def _metrics(doc: dict, bench: str) -> dict:
    """The metrics a benchmark recorded (empty when it did not run)."""
    return (doc.get("benchmarks", {}).get(bench) or {}).get("metrics", {})


def _status(doc: dict, bench: str) -> str:
    b = doc.get("benchmarks", {}).get(bench)
    if b is None:
        return "not run"
    return b["status"] + (f" ({b['reason']})" if b.get("reason") else "")


def cdo_continuous(doc: dict) -> dict:
    name, goal = "aggregation_vs_cdo", "aggregation >= 100x faster than CDO remapcon (continuous)"
    case = find_case(doc, "aggregate", "continuous")
    ours, cdo = find_tool(case, "terrascale"), find_tool(case, "cdo")
    if not ours or not cdo:
        why = "aggregate benchmark " + _status(doc, "aggregate") if case is None else "cdo or terrascale did not run"
        if case is not None:
            t = next((t for t in case["tools"] if t["key"] == "cdo"), None)
            why = f"cdo {t['status']}: {t['reason']}" if t else why
        return _missing(name, goal, why)
    r = cdo["median"] / ours["median"]
    return _target(name, goal, r, r >= 100, f"CDO {fmt_ratio(r)} slower ({case['title']})")


def categorical_peer(doc: dict) -> dict:
    name, goal = "categorical_vs_faster_peer", "class fractions >= 20x faster than the faster peer (one-hot)"
    case = find_case(doc, "aggregate", "categorical")
    ours = find_tool(case, "terrascale")
    peers = [t for t in (find_tool(case, "cdo"), find_tool(case, "xarray-regrid")) if t]
    if not ours or not peers:
        return _missing(name, goal, "no peer or terrascale time on the categorical case"
                        if case else "aggregate benchmark " + _status(doc, "aggregate"))
    fastest = min(peers, key=lambda t: t["median"])
    r = fastest["median"] / ours["median"]
    others = "" if len(peers) == 2 else " (only one peer ran)"
    return _target(name, goal, r, r >= 20, f"faster peer {fastest['label']}: {fmt_ratio(r)} slower{others}")


def floor(doc: dict) -> dict:
    """The aggregation pass (weights given: bound once, as for every field after the first) against one
    numpy pass over the same input; the figure with the weights built in the call is reported beside it."""
    name, goal = "aggregation_vs_floor", "aggregation within 5x of the one-pass floor (numpy sum over the input)"
    case = find_case(doc, "aggregate", "continuous")
    given, built, flo = (find_tool(case, k) for k in ("terrascale-weights", "terrascale", "numpy-sum"))
    ours = given or built
    if not ours or not flo:
        return _missing(name, goal, "aggregate benchmark " + _status(doc, "aggregate"))
    r = ours["median"] / flo["median"]
    what = "weights given" if given else "weights built in the call"
    extra = f"; {fmt_ratio(built['median'] / flo['median'])} with the weights built in the call" if given and built else ""
    return _target(name, goal, r, r <= 5, f"terrascale ({what}) = {fmt_ratio(r)} the numpy sum{extra} "
                   f"({case['title']})")


def aggregation_memory(doc: dict) -> dict:
    """Peak memory against "one chunk plus the target": every size of the scale curve (in-memory input,
    peak above the input) and, in full runs, the 1 km map streamed from its GeoTIFF (peak above the
    process after loading the kernels)."""
    name, goal = "aggregation_memory", "aggregation memory bounded by one chunk plus the target"
    pts = [p for p in (_metrics(doc, "scale").get("curve") or [])
           if p.get("peak_mb") is not None and p.get("bound_mb")]
    agg = _metrics(doc, "aggregate")
    for key, m in sorted(agg.items()):
        if key.startswith("streamed_1km_") and isinstance(m, dict) and m.get("bound_mb"):
            pts.append({"label": f"1 km streamed -> {m.get('target')}", "peak_mb": m["peak_mb"] - m["base_mb"],
                        "bound_mb": m["bound_mb"]})
    if not pts:
        return _missing(name, goal, "scale benchmark " + _status(doc, "scale"))
    worst = max(pts, key=lambda p: p["peak_mb"] / p["bound_mb"])
    r = worst["peak_mb"] / worst["bound_mb"]
    return _target(name, goal, r, r <= 1, f"worst {worst['label']}: peak {worst['peak_mb']:.0f} MB above its baseline, "
                   f"{r:.0%} of the bound {worst['bound_mb']:.0f} MB (chunk + target + kernel buffers), "
                   f"{len(pts)} cases")


def flatten(doc: dict) -> dict:
    name, goal = "flatten_vs_memcpy", "flattening >= 50 % of memcpy throughput"
    case = find_case(doc, "flatten", "throughput")
    ours, cp = find_tool(case, "terrascale"), find_tool(case, "memcpy")
    if not ours or not cp:
        return _missing(name, goal, "flatten benchmark " + _status(doc, "flatten"))
    r = cp["median"] / ours["median"]
    return _target(name, goal, r, r >= 0.5, f"{r:.0%} of np.copy's throughput (same bytes, allocation included)")


def xgboost_vs_hgb(doc: dict) -> dict:
    name, goal = "xgboost_vs_hgb", "XGBoost at least as fast as HistGradientBoosting at equal or better score"
    case = find_case(doc, "train", "lai-table")
    x, h = find_tool(case, "xgboost"), find_tool(case, "hgb")
    scores = _metrics(doc, "train").get("scores", {})
    if not x or not h or "xgboost" not in scores or "hgb" not in scores:
        return _missing(name, goal, "train benchmark " + _status(doc, "train"))
    speed = h["median"] / x["median"]
    rx, rh = scores["xgboost"]["rmse"], scores["hgb"]["rmse"]
    score_ok = rx <= rh * (1 + SCORE_TOLERANCE)
    met = speed >= 1 and score_ok
    return _target(name, goal, speed, met, f"HGB/XGBoost fit time {speed:.2f}; RMSE {rx:.4f} vs {rh:.4f} "
                   f"({'equal or better' if score_ok else 'worse'} within {SCORE_TOLERANCE:.0%})")


def ddp_efficiency(doc: dict) -> dict:
    name, goal = "two_worker_efficiency", "2-worker data-parallel efficiency >= 75 %"
    m = _metrics(doc, "dask_scaling")
    eff = m.get("efficiency")
    if eff is None:
        return _missing(name, goal, "dask_scaling benchmark " + _status(doc, "dask_scaling"))
    return _target(name, goal, eff, eff >= 0.75, f"{eff:.0%} (rate with 2 workers / twice the rate with 1; "
                   f"{m.get('workload', '')})")


def demo_wall(doc: dict) -> dict:
    name, goal = "demo_under_5_min", "demo run (`make demo`) under 5 minutes"
    m = _metrics(doc, "demo")
    wall = m.get("total_wall_s")
    if wall is None:
        return _missing(name, goal, "demo benchmark " + _status(doc, "demo"))
    return _target(name, goal, wall, wall < 300, f"{wall:.0f} s from {m.get('manifest')}")


TARGETS = (cdo_continuous, categorical_peer, floor, aggregation_memory, flatten, xgboost_vs_hgb, ddp_efficiency,
           demo_wall)


def evaluate_targets(doc: dict) -> list[dict]:
    """Every target's verdict on a results document."""
    return [t(doc) for t in TARGETS]
