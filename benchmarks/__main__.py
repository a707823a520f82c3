"""``python -m benchmarks [NAMES...] [--quick] [--repeat N] [--readme]``: terrascale against its peers.

Runs every benchmark (or the ones named; ``--list`` shows them), each timing terrascale and its
peers in this process, interleaved, ``--repeat`` times; prints a table with medians, spreads and
ratios, the targets met or missed, and writes ``benchmarks/results/<date>-<host>.json``.
``--quick`` uses smaller inputs and skips the long parts (under 10 minutes on 2 cores).

``--readme`` writes ``benchmarks/results/README_block.md`` (the README's benchmark block,
between ``<!-- bench:start -->`` and ``<!-- bench:end -->``) from the newest results file, or
from ``--results FILE``; alone it runs nothing, with names, ``--quick`` or ``--repeat`` it runs
them first and uses that run's file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks.harness import (
    RESULTS_DIR,
    command_line,
    format_table,
    newest_results,
    readme_block,
    run_suite,
    validate_results,
)

QUICK_BUDGET_S = 600


README = Path(__file__).resolve().parents[1] / "README.md"


def write_readme_block(results: Path, out: Path, readme: Path = README) -> Path:
    """Write the benchmark block of ``results`` to ``out`` and between the markers of ``readme``."""
    doc = json.loads(results.read_text())
    problems = validate_results(doc)
    if problems:
        raise SystemExit(f"{results} is not a benchmark results file: {'; '.join(problems[:5])}")
    try:
        source = str(results.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        source = str(results)
    block = readme_block(doc, source)
    out.write_text(block)
    replace_readme_block(readme, block)
    return out


def replace_readme_block(readme: Path, block: str) -> bool:
    """Put ``block`` between the README's ``<!-- bench:start -->`` and ``<!-- bench:end -->`` markers.

    Returns whether the README had the markers (and was rewritten).
    """
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    text = readme.read_text() if readme.exists() else ""
    if start not in text or end not in text:
        return False
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    body = block.strip()
    if not body.startswith(start):
        body = f"{start}\n{body}\n{end}"
    readme.write_text(head + body + tail)
    return True


def parser() -> argparse.ArgumentParser:
    from benchmarks.suite import BENCHMARKS

    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="benchmarks: " + ", ".join(b.name for b in BENCHMARKS))
    ap.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (default: all)")
    ap.add_argument("--quick", action="store_true", help="smaller inputs, long parts skipped (< 10 min on 2 cores)")
    ap.add_argument("--repeat", type=int, default=None, help="timed repetitions per tool (default 5; --quick 3)")
    ap.add_argument("--readme", action="store_true",
                    help="write benchmarks/results/README_block.md from the newest results JSON")
    ap.add_argument("--results", type=Path, default=None, help="the results JSON for --readme (default: the newest)")
    ap.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="where results JSON files go")
    ap.add_argument("--readme-file", type=Path, default=README,
                    help="the README whose benchmark block --readme rewrites (default: the repository's)")
    ap.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    return ap


def main(argv: list[str] | None = None) -> int:
    from benchmarks.suite import BENCHMARKS, BY_NAME
    from benchmarks.targets import evaluate_targets

    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    if args.list:
        for b in BENCHMARKS:
            print(f"{b.name:15s} {b.doc}{'' if b.in_quick else '  (not with --quick)'}")
        return 0
    unknown = [n for n in args.names if n not in BY_NAME]
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BY_NAME)}", file=sys.stderr)
        return 2
    if args.repeat is not None and args.repeat < 1:
        print("--repeat must be >= 1", file=sys.stderr)
        return 2
    run = not args.readme or bool(args.names) or args.quick or args.repeat is not None
    path = args.results
    if run:
        chosen = [BY_NAME[n] for n in args.names] if args.names else BENCHMARKS
        repeat = args.repeat or (3 if args.quick else 5)
        run_argv = [a for a in argv if a not in ("--readme",)]
        t0 = time.perf_counter()
        doc, path = run_suite(chosen, quick=args.quick, repeat=repeat, command=command_line(run_argv),
                              args={"names": args.names, "quick": args.quick, "repeat": repeat},
                              results_dir=args.results_dir, targets=evaluate_targets)
        wall = time.perf_counter() - t0
        print()
        print(format_table(doc))
        print(f"\nresults: {path}")
        budget = f" (--quick budget {QUICK_BUDGET_S / 60:.0f} min: {'within' if wall <= QUICK_BUDGET_S else 'OVER'})"
        print(f"wall time {wall / 60:.1f} min{budget if args.quick else ''}")
    if args.readme:
        results = path or newest_results(args.results_dir)
        out = write_readme_block(results, args.results_dir / "README_block.md", args.readme_file)
        print(f"README block from {results}: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
