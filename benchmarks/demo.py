"""End-to-end figures of the demo run, read from its manifest (``make demo`` writes ``runs/demo/manifest.json``).

Nothing is run here: the stage wall times (``stages.<name>.wall_s``) and the total (the
manifest's ``wall_s``: a number, or a per-stage mapping that is summed) are copied into the
results; the benchmark is skipped, with a line saying so, when there is no manifest. A stage
that was reused rather than run keeps the wall time of the run that computed it; the manifest's
git commit and date are reported so that a stale manifest is visible.

Run: ``python -m benchmarks demo [--manifest PATH]`` (default ``runs/demo/manifest.json``).
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.harness import ROOT, Skip

MANIFEST = ROOT / "runs" / "demo" / "manifest.json"


def read_manifest(path: Path) -> dict:
    """Stage → seconds, the total and where they come from; :class:`Skip` without a usable manifest."""
    if not path.exists():
        raise Skip(f"no demo manifest at {path} (run `make demo` first)")
    try:
        m = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise Skip(f"{path} cannot be read as JSON ({err})") from None
    stages = {name: float(rec["wall_s"]) for name, rec in (m.get("stages") or {}).items()
              if isinstance(rec, dict) and isinstance(rec.get("wall_s"), (int, float))}
    total = m.get("wall_s")
    if isinstance(total, dict):
        total = sum(float(v) for v in total.values() if isinstance(v, (int, float)))
    elif not isinstance(total, (int, float)):
        total = sum(stages.values()) if stages else None
    if total is None:
        raise Skip(f"{path} records no wall times (keys stages.<name>.wall_s, wall_s)")
    return {"stages": stages, "total": float(total), "commit": m.get("git_commit"),
            "updated": m.get("updated") or m.get("created"), "backend": m.get("backend")}


def bench(ctx, manifest: Path | None = None) -> None:
    """Harness entry: the demo's stage times as one case (one sample each, from the manifest)."""
    path = Path(manifest or MANIFEST)
    d = read_manifest(path)
    rows = [{"key": "total", "label": "whole run (manifest wall_s)", "samples": [d["total"]],
             "note": "goal < 5 min"}]
    rows += [{"key": name, "label": f"stage {name}", "samples": [s]} for name, s in d["stages"].items()]
    shown = path.resolve().relative_to(ROOT) if path.resolve().is_relative_to(ROOT) else path
    ctx.record("demo", f"`make demo` end to end, from {shown} ({d['updated']}, commit {(d['commit'] or '?')[:10]}, "
               f"backend {d['backend']})", rows, reference="total")
    ctx.metric("total_wall_s", d["total"])
    ctx.metric("stages", d["stages"])
    ctx.metric("manifest", str(shown))
