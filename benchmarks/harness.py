"""The benchmark harness: interleaved timings, statistics, results files, the table and the README block.

A benchmark is a function ``bench(ctx)`` (see :mod:`benchmarks.suite`) that calls
:meth:`Context.compare` with the tools of one case: terrascale and its peers, each a zero-argument
callable on the same input. :func:`interleave` runs them in turn, A, B, A, B, ... (after one
untimed warm-up call each, which also gives the call's peak memory), so that a change of load
on the machine during the run hits every tool alike. Each tool gets the median of its samples,
their spread (min/max and the interquartile range) and its ratio to the case's reference (the
terrascale tool): the ratio of the medians, and the min/max of the per-repetition ratios (the
repetitions are paired by the interleaving).

A tool that cannot run here (``cdo`` not installed, no GPU) is given with ``skip="why"``: it is
reported as skipped, with the reason, and never run. A tool that raises is reported as an error
and the others go on; a benchmark that raises is reported as an error and the suite goes on.

Results: one JSON file per run, ``benchmarks/results/<date>-<host>.json`` (:data:`SCHEMA`:
machine, packages, git commit, every case and tool, metrics, notes, targets), rewritten after
every benchmark so that an interrupted run keeps what it measured. :func:`format_table` prints
it; :func:`readme_block` turns it into the README's benchmark block, between
:data:`MARKER_START` and :data:`MARKER_END`.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = Path(__file__).resolve().parent / "results"
SCHEMA = 1
MARKER_START = "<!-- bench:start -->"
MARKER_END = "<!-- bench:end -->"
ROLES = ("terrascale", "peer", "floor")


class Skip(Exception):
    """Raised by a benchmark that cannot run here (missing input, tool or device): reported, not an error."""


# ------------------------------------------------------------------------------------------ timing


@dataclass
class Tool:
    """One contender of a case.

    Attributes
    ----------
    key : str
        Short stable name (``terrascale``, ``cdo``, ``xarray-regrid``, ``numpy-sum``, ``memcpy``...):
        what targets and ratios refer to.
    fn : callable
        The timed work, no arguments; its last return value is kept for agreement checks.
    role : str
        ``terrascale``, ``peer`` or ``floor``.
    label : str
        What the table shows (default: ``key``).
    warmup : bool
        Make one untimed call first (JIT compilation, caches, the peak-memory measurement).
    skip : str, optional
        Why this tool cannot run here: reported as skipped, never called.
    sync : callable, optional
        Called before the clock stops (a GPU's synchronisation).
    note : str
        Shown in the table (settings, what the time includes).
    max_repeat : int, optional
        At most this many timed calls (a slow peer in ``--quick``); it drops out of the later rounds.
    in_process : bool
        False for work done by a child process (CDO): its memory is not this process's, so none is reported.
    """

    key: str
    fn: Callable[[], Any] | None
    role: str = "peer"
    label: str = ""
    warmup: bool = True
    skip: str | None = None
    sync: Callable[[], Any] | None = None
    note: str = ""
    max_repeat: int | None = None
    in_process: bool = True

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"tool {self.key!r}: role {self.role!r} is not one of {ROLES}")
        self.label = self.label or self.key


@dataclass
class Timing:
    """What :func:`interleave` measured for one tool."""

    samples: list[float] = field(default_factory=list)
    status: str = "ok"  # ok | skipped | error
    reason: str = ""
    peak_mb: float | None = None
    output: Any = None


def summarize(samples: Iterable[float]) -> dict[str, float | int | None]:
    """Median, min, max and quartiles (numpy's linear interpolation) of some timings.

    An empty list gives ``None`` everywhere (n = 0); one sample has no spread (q1 = q3 = min = max).
    """
    xs = sorted(float(s) for s in samples)
    n = len(xs)
    if n == 0:
        return {"n": 0, "median": None, "min": None, "max": None, "q1": None, "q3": None, "iqr": None}

    def quantile(q: float) -> float:
        pos = q * (n - 1)
        lo = math.floor(pos)
        hi = min(lo + 1, n - 1)
        return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)

    q1, q3 = quantile(0.25), quantile(0.75)
    return {"n": n, "median": statistics.median(xs), "min": xs[0], "max": xs[-1], "q1": q1, "q3": q3, "iqr": q3 - q1}


def ratio(samples: list[float], reference: list[float]) -> dict[str, float | None]:
    """A tool's time relative to the reference's: ratio of the medians, and the range of the paired ratios.

    Repetition *i* of the tool and of the reference ran back to back (interleaved), so
    ``samples[i] / reference[i]`` is one paired ratio; their min and max bound the ratio's noise.
    """
    if not samples or not reference:
        return {"ratio": None, "ratio_min": None, "ratio_max": None}
    med_ref = statistics.median(reference)
    out = {"ratio": statistics.median(samples) / med_ref if med_ref > 0 else None}
    paired = [a / b for a, b in zip(samples, reference) if b > 0]
    out["ratio_min"] = min(paired) if paired else None
    out["ratio_max"] = max(paired) if paired else None
    return out


class PeakMemory:
    """The peak memory of one call: the larger of two lower bounds, in bytes.

    * the rise of the process's resident high-water mark (VmHWM, reset before the call; Linux), which
      sees every allocation (numba's too) but not memory the allocator reuses from freed heap;
    * the peak of the traced allocations (:mod:`tracemalloc`: numpy buffers and Python objects),
      which sees reused heap too but not allocations made inside compiled code.
    """

    def __enter__(self):
        import tracemalloc

        from benchmarks._memory import hwm_bytes, reset_hwm

        self.peak: int | None = None
        self._base = hwm_bytes() if reset_hwm() else None
        self._traced = not tracemalloc.is_tracing()
        if self._traced:
            tracemalloc.start()
        tracemalloc.reset_peak()
        return self

    def __exit__(self, *exc):
        import tracemalloc

        from benchmarks._memory import hwm_bytes

        traced = tracemalloc.get_traced_memory()[1]
        if self._traced:
            tracemalloc.stop()
        rise = hwm_bytes() - self._base if self._base is not None else 0
        self.peak = max(rise, traced, 0)
        return False


def interleave(tools: list[Tool], repeat: int, *, clock: Callable[[], float] = time.perf_counter,
               trace: list[tuple[str, str]] | None = None, memory: bool = True) -> dict[str, Timing]:
    """Time the tools in turn: one untimed warm-up call each, then ``repeat`` rounds of A, B, A, B, ...

    Parameters
    ----------
    tools : list of Tool
        Skipped tools are reported and never called.
    repeat : int
        Timed calls per tool.
    clock : callable
        The timer (tests pass a fake one).
    trace : list, optional
        Receives ``(phase, key)`` for every call made, ``phase`` = ``warmup`` or ``run``.
    memory : bool
        Measure the peak memory of each tool's first call (:class:`PeakMemory`; not for a tool
        with ``in_process=False``, whose work is a child process's).

    Returns
    -------
    dict
        ``key`` → :class:`Timing`.
    """
    out: dict[str, Timing] = {}
    live: list[Tool] = []
    for t in tools:
        if t.key in out:
            raise ValueError(f"two tools named {t.key!r} in one case")
        if t.skip is not None or t.fn is None:
            out[t.key] = Timing(status="skipped", reason=t.skip or "no function")
        else:
            out[t.key] = Timing()
            live.append(t)

    def call(t: Tool, phase: str, first: bool) -> float | None:
        timing = out[t.key]
        if trace is not None:
            trace.append((phase, t.key))
        timing.output = None  # drop the previous result before making the next one
        mem = PeakMemory() if (memory and first and t.in_process) else contextlib.nullcontext()
        try:
            with mem:
                t0 = clock()
                res = t.fn()
                if t.sync is not None:
                    t.sync()
                dt = clock() - t0
        except Exception as err:  # noqa: BLE001  (one failing tool must not stop the comparison)
            timing.status, timing.reason = "error", f"{type(err).__name__}: {err}"[:500]
            return None
        if isinstance(mem, PeakMemory) and mem.peak is not None:
            timing.peak_mb = mem.peak / 2**20
        timing.output = res
        return dt

    for t in live:
        if t.warmup:
            call(t, "warmup", True)
    for r in range(max(int(repeat), 1)):
        for t in live:
            if out[t.key].status != "ok" or (t.max_repeat is not None and r >= t.max_repeat):
                continue
            dt = call(t, "run", r == 0 and not t.warmup)
            if dt is not None:
                out[t.key].samples.append(dt)
    return out


# ------------------------------------------------------------------------------------------ context


@dataclass
class Context:
    """What a benchmark gets: the run's settings and where to put what it measures."""

    name: str
    quick: bool
    repeat: int
    scratch: Path
    gpu: dict
    threads: int
    say: Callable[[str], None] = print
    results_dir: Path = RESULTS_DIR
    cases: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def compare(self, case: str, title: str, tools: list[Tool], *, reference: str | None = None,
                repeat: int | None = None, agreement: Callable[[dict[str, Any]], dict[str, str]] | None = None,
                info: dict | None = None, memory: bool = True) -> dict:
        """Run one case (interleaved), record it and return its record (tools' outputs under ``outputs``).

        ``reference``: the key the ratios divide by (default: the first terrascale tool).
        ``agreement(outputs)`` → ``{key: text}``: how far each peer's result is from terrascale's.
        """
        if reference is None:
            reference = next((t.key for t in tools if t.role == "terrascale"), tools[0].key)
        self.say(f"  {self.name}/{case}: {title}")
        for t in tools:
            if t.skip:
                self.say(f"    skipped: {t.label}: {t.skip}")
        timings = interleave(tools, repeat or self.repeat, memory=memory)
        outputs = {k: v.output for k, v in timings.items() if v.status == "ok"}
        agree = {}
        if agreement is not None:
            try:
                agree = agreement(outputs) or {}
            except Exception as err:  # noqa: BLE001  (a comparison that fails is reported, not fatal)
                agree = {reference: f"agreement check failed: {type(err).__name__}: {err}"}
        rec = case_record(case, title, tools, timings, reference, agree, info)
        for t in rec["tools"]:
            if t["status"] == "error":
                self.say(f"    error: {t['label']}: {t['reason']}")
        self.cases.append(rec)
        rec_out = dict(rec)
        rec_out["outputs"] = outputs
        return rec_out

    def record(self, case: str, title: str, rows: list[dict], *, reference: str | None = None,
               info: dict | None = None, ratios: bool = True) -> dict:
        """Record a case measured elsewhere (a manifest, a child process): rows of ``key, role, samples``...

        ``ratios=False``: the rows are not alternatives to each other (a table of models): no ratio column.
        """
        tools = [Tool(r["key"], None, r.get("role", "terrascale"), r.get("label", ""), skip=r.get("skip"),
                      note=r.get("note", "")) for r in rows]
        timings = {r["key"]: Timing(samples=list(r.get("samples", [])),
                                    status="skipped" if r.get("skip") else r.get("status", "ok"),
                                    reason=r.get("skip") or r.get("reason", ""), peak_mb=r.get("peak_mb"))
                   for r in rows}
        reference = reference or next((r["key"] for r in rows if not r.get("skip")), rows[0]["key"])
        rec = case_record(case, title, tools, timings, reference if ratios else None, {}, info)
        self.cases.append(rec)
        return rec

    def metric(self, key: str, value) -> None:
        self.metrics[key] = value

    def note(self, text: str) -> None:
        self.say(f"    note: {text}")
        self.notes.append(text)


def case_record(case: str, title: str, tools: list[Tool], timings: dict[str, Timing], reference: str | None,
                agreement: dict[str, str], info: dict | None) -> dict:
    """The JSON record of one case."""
    ref = timings.get(reference) if reference is not None else None
    ref_samples = ref.samples if ref is not None and ref.status == "ok" else []
    rows = []
    for t in tools:
        tm = timings[t.key]
        row = {"key": t.key, "label": t.label, "role": t.role, "status": tm.status, "reason": tm.reason,
               "samples": [round(s, 6) for s in tm.samples], **summarize(tm.samples),
               "peak_mb": None if tm.peak_mb is None else round(tm.peak_mb, 1), "note": t.note,
               "agreement": agreement.get(t.key, "")}
        row.update(ratio(tm.samples, ref_samples) if t.key != reference else
                   {"ratio": 1.0 if tm.samples else None, "ratio_min": None, "ratio_max": None})
        rows.append(row)
    return {"case": case, "title": title, "reference": reference, "tools": rows, "info": info or {}}


# ------------------------------------------------------------------------------------------ machine


def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return ""


def machine_description(gpu: dict | None = None) -> dict:
    """CPU model, cores, memory, GPU, OS and load of this machine."""
    cpuinfo = _read("/proc/cpuinfo")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    physical = set()
    for block in cpuinfo.split("\n\n"):
        pid, cid = re.search(r"^physical id\s*:\s*(\d+)", block, re.M), re.search(r"^core id\s*:\s*(\d+)", block, re.M)
        if pid and cid:
            physical.add((pid.group(1), cid.group(1)))
    mem = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.M)
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    quota = _read("/sys/fs/cgroup/cpu.max").split()
    cpu_limit = (float(quota[0]) / float(quota[1])) if len(quota) == 2 and quota[0] != "max" else None
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    try:  # the configured count: numba.get_num_threads() would start its thread pool here, before the
        # other libraries load theirs, which slowed every later parallel kernel tenfold on a loaded machine
        import numba

        numba_threads = int(numba.config.NUMBA_NUM_THREADS)
    except (ImportError, AttributeError, ValueError):
        numba_threads = None
    return {
        "host": socket.gethostname(),
        "cpu_model": model.group(1).strip() if model else (platform.processor() or platform.machine()),
        "cores_logical": os.cpu_count(),
        "cores_physical": len(physical) or None,
        "cores_usable": usable,
        "cpu_limit": cpu_limit,
        "memory_gb": round(int(mem.group(1)) / 2**20, 1) if mem else None,
        "gpu": gpu if gpu is not None else gpu_description(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numba_threads": numba_threads,
        "load_average_at_start": load,
        "env": {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "NUMBA_NUM_THREADS",
                                                 "NUMBA_THREADING_LAYER") if os.environ.get(k) is not None},
    }


def gpu_description() -> dict:
    """Whether the GPU backend is usable here, and the device (pipeline.backend's probe)."""
    try:
        from pipeline.backend import probe_gpu

        p = probe_gpu()
        return {"usable": p.usable, "count": p.device_count, "name": p.device_name, "reason": p.reason}
    except Exception as err:  # noqa: BLE001  (the description must not fail a run)
        return {"usable": False, "count": 0, "name": None, "reason": f"probe failed: {type(err).__name__}: {err}"}


def cdo_version() -> str | None:
    """``cdo -V``'s version number, None without the binary."""
    exe = shutil.which("cdo")
    if not exe:
        return None
    try:
        res = subprocess.run([exe, "-V"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    m = re.search(r"version\s+([\w.]+)", res.stdout + res.stderr)
    return m.group(1) if m else "unknown"


def package_versions() -> dict[str, str]:
    """terrascale's key packages (``pipeline.info``), the peers' packages and CDO."""
    import importlib.metadata as md

    out: dict[str, str] = {}
    try:
        import pipeline
        from pipeline.info import package_versions as pv

        out["terrascale"] = pipeline.__version__
        out.update(pv())
    except Exception as err:  # noqa: BLE001
        out["terrascale"] = f"unavailable ({type(err).__name__})"
    for name in ("xarray-regrid", "matplotlib", "psutil", "pyarrow"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    out["cdo"] = cdo_version() or "not installed"
    return out


def git_state() -> dict:
    """The checkout's commit and whether tracked files differ from it (read-only git commands)."""
    def git(*args: str) -> str | None:
        try:
            res = subprocess.run(["git", "--no-optional-locks", "-C", str(ROOT), *args], capture_output=True,
                                 text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


# ------------------------------------------------------------------------------------------ results


def results_path(created: _dt.datetime, host: str, directory: Path = RESULTS_DIR) -> Path:
    """``<date>-<host>.json``; the date has the time of day, so that runs of one day do not overwrite each other."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", host) or "host"
    return directory / f"{created.strftime('%Y-%m-%dT%H%M%S')}-{safe}.json"


def new_results(command: str, args: dict, machine: dict, packages: dict, git: dict) -> dict:
    """An empty results document."""
    return {"schema": SCHEMA, "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": command, "args": args, "machine": machine, "packages": packages, "git": git,
            "wall_s": None, "benchmarks": {}, "targets": []}


def save_results(results: dict, path: Path) -> Path:
    """Write the document (atomically: a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1, default=_json_default) + "\n")
    os.replace(tmp, path)
    return path


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:
        pass
    if isinstance(o, Path):
        return str(o)
    return str(o)


REQUIRED_KEYS = {"schema", "created", "command", "args", "machine", "packages", "git", "wall_s", "benchmarks", "targets"}
REQUIRED_MACHINE = {"host", "cpu_model", "cores_logical", "memory_gb", "gpu"}
REQUIRED_TOOL = {"key", "label", "role", "status", "reason", "samples", "n", "median", "min", "max", "q1", "q3",
                 "ratio", "peak_mb"}


def validate_results(doc: dict) -> list[str]:
    """Problems with a results document (empty: it follows :data:`SCHEMA`)."""
    errs = [f"missing key {k!r}" for k in sorted(REQUIRED_KEYS - set(doc))]
    if errs:
        return errs
    if doc["schema"] != SCHEMA:
        errs.append(f"schema {doc['schema']!r}, expected {SCHEMA}")
    errs += [f"machine: missing {k!r}" for k in sorted(REQUIRED_MACHINE - set(doc["machine"]))]
    for name, b in doc["benchmarks"].items():
        if b.get("status") not in ("ok", "skipped", "error"):
            errs.append(f"{name}: status {b.get('status')!r}")
        for c in b.get("cases", []):
            for t in c.get("tools", []):
                missing = REQUIRED_TOOL - set(t)
                if missing:
                    errs.append(f"{name}/{c.get('case')}/{t.get('key')}: missing {sorted(missing)}")
                if t.get("status") not in ("ok", "skipped", "error"):
                    errs.append(f"{name}/{c.get('case')}/{t.get('key')}: status {t.get('status')!r}")
    for t in doc["targets"]:
        if not {"name", "goal", "value", "met", "detail"} <= set(t):
            errs.append(f"target {t.get('name')!r}: incomplete")
    return errs


def newest_results(directory: Path = RESULTS_DIR) -> Path:
    """The results file with the latest ``created`` stamp (file time where a file has none)."""
    best, best_key = None, None
    for p in sorted(directory.glob("*.json")):
        try:
            created = json.loads(p.read_text()).get("created")
            key = _dt.datetime.fromisoformat(created).timestamp() if created else p.stat().st_mtime
        except (OSError, ValueError, AttributeError, TypeError):
            continue
        if best_key is None or key > best_key:
            best, best_key = p, key
    if best is None:
        raise FileNotFoundError(f"no results JSON in {directory}; run `python -m benchmarks` first")
    return best


def find_case(doc: dict, bench: str, case: str) -> dict | None:
    """A case record of a results document."""
    b = doc.get("benchmarks", {}).get(bench) or {}
    return next((c for c in b.get("cases", []) if c.get("case") == case), None)


def find_tool(case: dict | None, key: str) -> dict | None:
    """A tool record of a case (only one that ran: status ok, with samples)."""
    if case is None:
        return None
    t = next((t for t in case.get("tools", []) if t.get("key") == key), None)
    return t if t and t.get("status") == "ok" and t.get("median") is not None else None


# ------------------------------------------------------------------------------------------ output


def fmt_seconds(s: float | None) -> str:
    """Seconds with 3 significant digits, in ms or µs below a second: ``20.0 s``, ``466 ms``, ``1.48 ms``."""
    if s is None:
        return "-"

    def three(v: float) -> str:
        return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}"

    if s >= 1:
        return f"{three(s)} s"
    if s >= 1e-3:
        return f"{three(s * 1e3)} ms"
    return f"{three(s * 1e6)} µs"


def fmt_ratio(r: float | None) -> str:
    """A ratio: ``412x``, ``3.1x``, ``0.42x``."""
    if r is None:
        return "-"
    if r >= 100:
        return f"{r:.0f}x"
    if r >= 10:
        return f"{r:.1f}x"
    return f"{r:.2g}x"


def tool_cells(t: dict) -> list[str]:
    """A tool's cells in the tables: label, median, spread, ratio, peak memory, note."""
    if t["status"] == "skipped":
        return [t["label"], "skipped", "", "", "", t["reason"]]
    if t["status"] == "error":
        return [t["label"], "error", "", "", "", t["reason"][:160]]
    spread = (f"{fmt_seconds(t['min'])} – {fmt_seconds(t['max'])}" if t["n"] and t["n"] > 1 else "(1 sample)")
    r = fmt_ratio(t["ratio"])
    if t.get("ratio_min") is not None and t["n"] > 1:
        r += f" ({fmt_ratio(t['ratio_min'])}–{fmt_ratio(t['ratio_max'])})"
    peak = "" if t.get("peak_mb") is None else f"{t['peak_mb']:.0f}"
    note = "; ".join(x for x in (t.get("note", ""), t.get("agreement", "")) if x)
    return [t["label"], fmt_seconds(t["median"]), spread, r, peak, note]


def format_table(doc: dict) -> str:
    """The plain-text table a run prints: every case and tool, then the targets."""
    head = ["benchmark / case", "tool", "median", "spread (min – max)", "ratio to ref (paired min–max)",
            "peak MB", "notes"]
    rows: list[list[str]] = []
    for name, b in doc["benchmarks"].items():
        if b["status"] != "ok" and not b.get("cases"):
            rows.append([name, f"[{b['status']}]", "", "", "", "", b.get("reason", "")[:200]])
            continue
        for c in b.get("cases", []):
            first = True
            for t in c["tools"]:
                cells = tool_cells(t)
                rows.append([f"{name}/{c['case']}" if first else "", *cells])
                first = False
        if b["status"] == "error":
            rows.append([name, "[error]", "", "", "", "", b.get("reason", "")[:200]])
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head) - 1)]
    lines = []

    def line(r):
        lines.append("  ".join(r[i].ljust(widths[i]) for i in range(len(head) - 1)) + "  " + r[-1])

    line(head)
    lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 5)
    for r in rows:
        line(r)
    lines.append("")
    lines.append("targets:")
    for t in doc.get("targets", []):
        lines.append(f"  [{verdict(t['met'])}] {t['name']}: {t['goal']} -> {t['detail']}")
    for name, b in doc["benchmarks"].items():
        for m in b.get("notes", []):
            lines.append(f"note ({name}): {m}")
    return "\n".join(lines)


def verdict(met: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "not measured"}[met]


def describe_machine(m: dict) -> str:
    """One line: CPU, cores, memory, GPU, load."""
    gpu = m.get("gpu") or {}
    g = f"GPU {gpu.get('count', 1)} x {gpu['name']}" if gpu.get("usable") else f"no GPU ({gpu.get('reason', 'none')})"
    cores = f"{m.get('cores_usable') or m.get('cores_logical')} cores"
    if m.get("cores_physical"):
        cores += f" ({m['cores_physical']} physical)"
    if m.get("cpu_limit"):
        cores += f", cgroup limit {m['cpu_limit']:.3g} CPUs"
    load = m.get("load_average_at_start")
    load = f"; load average at start {load[0]:.1f}" if load else ""
    return f"{m.get('cpu_model')}, {cores}, {m.get('memory_gb')} GB memory, {g}{load}"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def readme_block(doc: dict, source: str) -> str:
    """The README's benchmark block (markers included) from a results document. Never typed by hand."""
    m = doc["machine"]
    pk = doc["packages"]
    git = doc.get("git") or {}
    commit = (git.get("commit") or "unknown")[:10] + (" + local changes" if git.get("dirty") else "")
    versions = ", ".join(f"{k} {pk[k]}" for k in ("terrascale", "numpy", "numba", "xarray", "xarray-regrid",
                                                      "scikit-learn", "xgboost", "torch", "dask", "cdo")
                         if k in pk)
    wall = doc.get("wall_s")
    out = [MARKER_START,
           f"<!-- generated by `python -m benchmarks --readme` from {source}; do not edit by hand -->",
           "",
           f"Measured {doc['created']} on {_md(describe_machine(m))}; commit {commit}; {versions}.",
           "",
           f"Reproduce: `{doc['command']}`" + (f" (took {wall / 60:.1f} min)." if wall else "."),
           "Times are medians of interleaved repetitions (terrascale and its peers alternate in one process run);",
           "the spread is min – max; the ratio is the tool's median over the reference's (terrascale unless",
           "noted), with the range of the paired per-repetition ratios."
           + (f" Environment: {', '.join(f'{k}={v}' for k, v in m['env'].items())}." if m.get("env") else ""),
           "",
           "| benchmark / case | tool | median | spread | ratio | peak MB | notes |",
           "|---|---|---|---|---|---|---|"]
    gpu_skipped = 0
    for name, b in doc["benchmarks"].items():
        if b["status"] != "ok" and not b.get("cases"):
            out.append(f"| {name} | *{b['status']}* | | | | | {_md(b.get('reason', ''))} |")
            continue
        for c in b.get("cases", []):
            shown = [t for t in c["tools"] if not _gpu_skip(t)]
            gpu_skipped += len(c["tools"]) - len(shown)
            for i, t in enumerate(shown):
                cells = tool_cells(t)
                first = f"{name}: {_md(c['title'])}" if i == 0 else ""
                out.append("| " + " | ".join([first] + [_md(x) for x in cells]) + " |")
    out += ["", "| target | measured | verdict |", "|---|---|---|"]
    for t in doc.get("targets", []):
        out.append(f"| {_md(t['goal'])} | {_md(t['detail'])} | {verdict(t['met'])} |")
    extra = []
    if gpu_skipped:
        extra.append(f"GPU variants ({gpu_skipped} rows) skipped: no usable GPU "
                     f"({(m.get('gpu') or {}).get('reason', 'none')}).")
    for name, b in doc["benchmarks"].items():
        if name == "scale" and b.get("metrics", {}).get("slope_time") is not None:
            sm = b["metrics"]
            floor = f" (the numpy sum's: {sm['slope_floor']:.2f})" if sm.get("slope_floor") is not None else ""
            mem = f"{sm['slope_memory']:.2f}" if sm.get("slope_memory") is not None else "-"
            extra.append(f"Scale curve (`benchmarks/results/scale.png`): time ∝ cells^{sm['slope_time']:.2f}{floor}, "
                         f"peak memory ∝ cells^{mem} (log-log fit over {sm['points']} inputs).")
        for n in b.get("notes", []):
            extra.append(f"{name}: {n}")
    if extra:
        out.append("")
        out += [f"- {_md(x)}" for x in extra]
    figure = ((doc["benchmarks"].get("scale") or {}).get("metrics") or {}).get("figure")
    if figure:
        out += ["", f"![Aggregation time and peak memory against input cells, log-log, with the numpy-sum floor]"
                    f"(benchmarks/results/{Path(figure).name})"]
    out.append(MARKER_END)
    return "\n".join(out) + "\n"


def _gpu_skip(t: dict) -> bool:
    """A GPU tool skipped for want of a GPU (one line in the README block says so for all of them)."""
    return t.get("status") == "skipped" and str(t.get("reason", "")).startswith("no usable GPU")


def splice_readme(readme: str, block: str) -> str:
    """``readme`` with the text between the markers (markers included) replaced by ``block``."""
    i, j = readme.find(MARKER_START), readme.find(MARKER_END)
    if i < 0 or j < i:
        raise ValueError(f"the README has no {MARKER_START} ... {MARKER_END} block")
    return readme[:i] + block.rstrip("\n") + readme[j + len(MARKER_END):]


# ------------------------------------------------------------------------------------------ running


@dataclass(frozen=True)
class Benchmark:
    """One entry of the suite: a name and the ``bench(ctx)`` function that measures it."""

    name: str
    func: Callable[[Context], None]
    doc: str = ""
    in_quick: bool = True


def run_benchmark(b: Benchmark, *, quick: bool, repeat: int, scratch: Path, gpu: dict, threads: int,
                  say: Callable[[str], None] = print, results_dir: Path = RESULTS_DIR) -> dict:
    """Run one benchmark; its record (status ok, skipped or error, never raises)."""
    ctx = Context(b.name, quick, repeat, scratch, gpu, threads, say, results_dir)
    t0 = time.perf_counter()
    status, reason = "ok", ""
    if quick and not b.in_quick:
        status, reason = "skipped", "not run with --quick"
    else:
        try:
            b.func(ctx)
        except Skip as s:
            status, reason = "skipped", str(s)
        except Exception as err:  # noqa: BLE001  (the suite goes on; the error is in the results)
            status = "error"
            reason = f"{type(err).__name__}: {err}"[:1000]
            say(traceback.format_exc(limit=6))
    if status != "ok":
        say(f"  {b.name}: {status}: {reason}")
    return {"status": status, "reason": reason, "doc": b.doc, "wall_s": round(time.perf_counter() - t0, 2),
            "cases": ctx.cases, "metrics": ctx.metrics, "notes": ctx.notes}


def run_suite(benchmarks: list[Benchmark], *, quick: bool, repeat: int, command: str, args: dict,
              results_dir: Path = RESULTS_DIR, scratch: Path | None = None, say: Callable[[str], None] = print,
              targets: Callable[[dict], list[dict]] | None = None, describe: bool = True) -> tuple[dict, Path]:
    """Run the benchmarks in order; write the results file after each; return it and its path."""
    import tempfile

    gpu = gpu_description() if describe else {"usable": False, "count": 0, "name": None, "reason": "not probed"}
    machine = machine_description(gpu) if describe else {"host": socket.gethostname(), "cpu_model": "?",
                                                         "cores_logical": os.cpu_count(), "memory_gb": None,
                                                         "gpu": gpu}
    doc = new_results(command, args, machine, package_versions() if describe else {}, git_state() if describe else {})
    path = results_path(_dt.datetime.fromisoformat(doc["created"]), machine["host"], results_dir)
    say(f"terrascale benchmarks ({'quick' if quick else 'full'}, {repeat} repetitions): {describe_machine(machine)}")
    if not gpu.get("usable"):
        say(f"GPU: none usable ({gpu.get('reason')}); the GPU variants are skipped")
    threads = machine.get("numba_threads") or os.cpu_count() or 1
    own = scratch is None
    scratch = Path(tempfile.mkdtemp(prefix="ts-bench-")) if own else scratch
    t0 = time.perf_counter()
    try:
        for b in benchmarks:
            say(f"== {b.name}")
            sub = scratch / b.name
            sub.mkdir(parents=True, exist_ok=True)
            doc["benchmarks"][b.name] = run_benchmark(b, quick=quick, repeat=repeat, scratch=sub, gpu=gpu,
                                                      threads=threads, say=say, results_dir=results_dir)
            shutil.rmtree(sub, ignore_errors=True)
            doc["wall_s"] = round(time.perf_counter() - t0, 1)
            doc["targets"] = targets(doc) if targets else []
            save_results(doc, path)
    finally:
        if own:
            shutil.rmtree(scratch, ignore_errors=True)
    return doc, path


def command_line(argv: list[str]) -> str:
    """The command that reproduces a run, as a user types it."""
    import shlex

    return " ".join(["python -m benchmarks", *(shlex.quote(a) for a in argv)])


def eprint(*a) -> None:
    print(*a, file=sys.stderr)
