"""Write the image's build-info file and check the versions baked into it.

Run by both stages of ``docker/Dockerfile`` as the last build step::

    python build_info.py --output /opt/terrascale/build-info.json --variant gpu \\
        --git-commit "$GIT_COMMIT" --build-date "$BUILD_DATE" --base-image "$RAPIDS_IMAGE" \\
        --expect python=3.11 --expect torch=2.13.0 --expect xgboost=3.2.0

The file records what was built from what (git commit, build date, base image, the Docker
build arguments) and what is really installed (terrascale, Python, torch and its CUDA build,
xgboost, the GPU stack). An ``--expect NAME=VERSION`` that the installed version does not start
with fails the build, so a pin in the Dockerfile that pip did not honour cannot go unnoticed.
Only the standard library.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import platform
import sys
from pathlib import Path

#: distributions whose installed versions are recorded (conda and pip names of the GPU stack)
RECORDED = (
    "terrascale", "torch", "xgboost", "numpy", "pandas", "dask", "distributed", "dask-jobqueue",
    "cudf", "cudf-cu12", "cuml", "cuml-cu12", "cupy", "cupy-cuda12x", "dask-cuda", "kvikio", "kvikio-cu12",
)


def installed(name: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def torch_cuda() -> str | None:
    """The CUDA version torch was built with ('12.9'), None for a CPU build or without torch."""
    try:
        import torch  # noqa: PLC0415  (optional: only the images have it for sure)
    except ImportError:
        return None
    return torch.version.cuda


def collect(variant: str, git_commit: str, build_date: str, base_image: str, args: dict[str, str]) -> dict:
    """Everything the build-info file holds."""
    versions = {name: v for name in RECORDED if (v := installed(name)) is not None}
    return {
        "name": "terrascale",
        "variant": variant,
        "version": versions.get("terrascale"),
        "git_commit": git_commit or "unknown",
        "build_date": build_date or "unknown",
        "base_image": base_image or "unknown",
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "torch_cuda": torch_cuda(),
        "build_args": dict(sorted(args.items())),
        "packages": versions,
    }


def _release(version: str) -> tuple:
    """The release numbers of a version: '26.08.00' -> (26, 8, 0), '2.13.0+cu129' -> (2, 13, 0)."""
    parts = []
    for piece in version.split("+", 1)[0].split("."):
        digits = "".join(c for c in piece if c.isdigit()) if piece[:1].isdigit() else ""
        if not digits or digits != piece:
            parts.append(piece)
            break
        parts.append(int(digits))
    return tuple(parts)


def matches(have: str | None, want: str) -> bool:
    """Whether an installed version is the wanted one or a release under it.

    ``3.11`` matches ``3.11.9`` (not ``3.110``), ``2.13.0`` matches ``2.13.0+cu129``, ``26.08``
    matches conda's ``26.08.00`` and its normalised ``26.8.0``; ``none`` matches nothing installed.
    """
    if want == "none":
        return have is None
    if have is None:
        return False
    w, h = _release(want), _release(have)
    return h[: len(w)] == w


def check(info: dict, expect: list[str]) -> list[str]:
    """Messages for every ``NAME=VERSION`` that the installed version does not match.

    NAME is a distribution, ``python`` or ``torch_cuda`` (the CUDA version torch was built
    with, ``none`` for a CPU build).
    """
    problems = []
    for item in expect:
        name, _, want = item.partition("=")
        if name == "python":
            have = info["python"]
        elif name == "torch_cuda":
            have = info["torch_cuda"]
        else:
            have = info["packages"].get(name)
        if not matches(have, want):
            problems.append(f"{name}: expected {want}, installed {have or 'nothing'}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--variant", required=True, choices=["gpu", "cpu"])
    parser.add_argument("--git-commit", default=os.environ.get("GIT_COMMIT", "unknown"))
    parser.add_argument("--build-date", default=os.environ.get("BUILD_DATE", "unknown"))
    parser.add_argument("--base-image", default="unknown")
    parser.add_argument("--arg", action="append", default=[], metavar="NAME=VALUE", help="a build argument to record")
    parser.add_argument("--expect", action="append", default=[], metavar="NAME=VERSION")
    args = parser.parse_args(argv)

    build_args = dict(item.partition("=")[::2] for item in args.arg)
    info = collect(args.variant, args.git_commit, args.build_date, args.base_image, build_args)
    problems = check(info, args.expect)
    for problem in problems:
        print(f"build_info: {problem}", file=sys.stderr)
    if problems:
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(info, indent=2) + "\n")
    print(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
