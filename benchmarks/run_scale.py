"""Optional: ``terrascale run`` over 1, 2 and 4 times the demo region's area (skipped with ``--quick``).

The demo config with a small model list (the two baselines, ridge, a 20-iteration logistic
regression), 2019-2021, one scenario, run with ``--set data.region=<box>`` for boxes of
increasing area grown from the demo's Iberian box (36-44°N, 10°W-4°E): 1x, 2x (to 18°E), 4x
(to 52°N). Each run goes to its own scratch directory; the stage wall times come from its
manifest. A log-log slope of the total wall time against the box area is reported.

Run: ``python -m benchmarks run_scale``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.harness import ROOT, Skip

BOXES = {1: "36,44,-10,4", 2: "36,44,-10,18", 4: "36,52,-10,18"}  # south,north,west,east
OVERRIDES = [
    "models=[{name: coarse_prior, kind: coarse_prior}, {name: climatology, kind: climatology}, "
    "{name: ridge, kind: ridge}, {name: logistic, kind: logistic, params: {max_iter: 20}}]",
    "data.years=2019:2021", "data.scenarios=[ssp126]", "splits.test_years=[2020,2020]", "report.bootstrap_samples=20",
]


def terrascale() -> list[str]:
    exe = Path(sys.executable).with_name("terrascale")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "pipeline.cli"]


def run_one(factor: int, out: Path, timeout: float = 1800) -> dict:
    cmd = [*terrascale(), "run", str(ROOT / "configs" / "demo.yaml"), "-o", str(out),
           "--set", f"data.region={BOXES[factor]}"]
    for o in OVERRIDES:
        cmd += ["--set", o]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=timeout)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"terrascale run (x{factor}) failed: {(res.stderr or res.stdout).strip()[-600:]}")
    m = json.loads((out / "manifest.json").read_text())
    stages = {k: float(v["wall_s"]) for k, v in m.get("stages", {}).items() if "wall_s" in v}
    return {"factor": factor, "box": BOXES[factor], "process_wall_s": wall, "stages": stages,
            "stage_sum_s": sum(stages.values())}


def bench(ctx) -> None:
    """Harness entry (not with --quick): the three runs, their stage times and the slope."""
    import math

    from benchmarks.harness import Tool

    if ctx.quick:
        raise Skip("not run with --quick")
    runs: dict[int, dict] = {}

    def tool(f):
        def go():
            runs[f] = run_one(f, ctx.scratch / f"x{f}")
            return runs[f]
        return Tool(f"x{f}", go, "terrascale", f"{f}x the demo area ({BOXES[f]})", warmup=False)

    ctx.compare("areas", "`terrascale run` (small model list, 2019-2021, one scenario): process wall time",
                [tool(f) for f in BOXES], repeat=1, memory=False)
    if len(runs) >= 2:
        xs = [math.log(f) for f in sorted(runs)]
        ys = [math.log(runs[f]["stage_sum_s"]) for f in sorted(runs)]
        n = len(xs)
        mx, my = sum(xs) / n, sum(ys) / n
        slope = sum((a - mx) * (b - my) for a, b in zip(xs, ys)) / sum((a - mx) ** 2 for a in xs)
        ctx.metric("slope", slope)
        ctx.note(f"stage time sum against area: log-log slope {slope:.2f} (1 = linear); "
                 + ", ".join(f"x{f}: {runs[f]['stage_sum_s']:.0f} s" for f in sorted(runs)))
    ctx.metric("runs", runs)
