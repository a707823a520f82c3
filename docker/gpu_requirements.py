"""Install terrascale's requirements into the conda environment of a RAPIDS image, safely.

Used by the ``gpu`` stage of ``docker/Dockerfile`` after ``pip install --no-deps terrascale``:

* The RAPIDS packages of the ``gpu`` extra are pip wheel names (``cudf-cu12``, ``cuml-cu12``,
  ``cupy-cuda12x``, ...) while the image has them as conda packages (``cudf``, ``cuml``,
  ``cupy``, ...). pip would install a second copy of each over the conda one, so they are
  checked under their conda names instead, and never installed here.
* ``torch`` and ``xgboost`` are installed by the Dockerfile beforehand (the CUDA build of torch
  from the PyTorch index); they must already satisfy terrascale's pins, or pip would pull the
  default build from PyPI.
* Everything else that is missing or too old is written as a requirements file, and every
  distribution already installed is written as a constraints file (``name==version``), so that
  pip adds packages but never changes one that RAPIDS installed; a conflict fails the build
  with pip's message instead of breaking cudf at run time.

Usage (in the image)::

    python gpu_requirements.py plan --extras gpu,slurm --preinstalled torch,xgboost \\
        --requirements /tmp/req.txt --constraints /tmp/constraints.txt
    python -m pip install -r /tmp/req.txt -c /tmp/constraints.txt
    python gpu_requirements.py verify --extras gpu,slurm

Only the standard library and ``packaging`` (a dependency of dask, so in every RAPIDS image).
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import sys
from collections.abc import Iterable, Mapping

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

DISTRIBUTION = "terrascale"

#: pip wheel name of a RAPIDS/CUDA package -> its name as a conda package in the RAPIDS images
CONDA_NAMES = {
    "cudf-cu12": "cudf",
    "dask-cudf-cu12": "dask-cudf",
    "cuml-cu12": "cuml",
    "kvikio-cu12": "kvikio",
    "cupy-cuda12x": "cupy",
    "dask-cuda": "dask-cuda",
}


def wanted(requires: Iterable[str], extras: Iterable[str]) -> list[Requirement]:
    """The requirements of a distribution that apply with ``extras`` on this interpreter."""
    extras = [canonicalize_name(e) for e in extras if e]
    out = []
    for line in requires:
        req = Requirement(line)
        if req.marker is None:
            out.append(req)
        elif any(req.marker.evaluate({"extra": e}) for e in extras) or (
            "extra" not in str(req.marker) and req.marker.evaluate({"extra": ""})
        ):
            out.append(req)
    return out


def bare(req: Requirement) -> str:
    """The requirement without its environment marker (``extra == "gpu"`` means nothing to pip in a
    requirements file: the line would be skipped)."""
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    if req.url:
        return f"{req.name}{extras} @ {req.url}"
    return f"{req.name}{extras}{req.specifier}"


def _satisfied(req: Requirement, version: str | None) -> bool:
    if version is None:
        return False
    try:
        v = Version(version)
    except InvalidVersion:
        return False
    # conda's RAPIDS versions (26.08.00) and local builds (2.13.0+cu129) are releases, not previews
    return req.specifier.contains(v, prereleases=True)


def plan(
    requires: Iterable[str],
    extras: Iterable[str],
    installed: Mapping[str, str],
    preinstalled: Iterable[str] = ("torch", "xgboost"),
) -> tuple[list[str], list[str]]:
    """Split the requirements into what pip must install and what is wrong with the image.

    Parameters
    ----------
    requires
        The distribution's ``Requires-Dist`` lines.
    extras
        The extras to install (``gpu``, ``slurm``, ...).
    installed
        Canonical distribution name -> installed version.
    preinstalled
        Distributions that must already be installed at a matching version.

    Returns
    -------
    to_install, problems
        Requirement strings for pip, and one message per RAPIDS or preinstalled package that
        is missing or at a version outside terrascale's range (the build must stop).
    """
    pre = {canonicalize_name(p) for p in preinstalled}
    to_install, problems = [], []
    for req in wanted(requires, extras):
        name = canonicalize_name(req.name)
        conda_name = CONDA_NAMES.get(name)
        look_up = canonicalize_name(conda_name) if conda_name else name
        version = installed.get(look_up)
        if _satisfied(req, version):
            continue
        if conda_name or name in pre:
            where = f"conda package '{conda_name}'" if conda_name else "installed first by the Dockerfile"
            found = f"version {version}" if version else "not installed"
            problems.append(f"{bare(req)} ({where}): {found}")
        else:
            to_install.append(bare(req))
    return to_install, problems


def installed_versions() -> dict[str, str]:
    """Canonical name -> version of every distribution in this environment."""
    out = {}
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if name:
            out.setdefault(canonicalize_name(name), dist.version)
    return out


def constraints(installed: Mapping[str, str], exclude: Iterable[str] = (DISTRIBUTION,)) -> list[str]:
    """``name==version`` lines that keep every installed distribution as it is."""
    skip = {canonicalize_name(e) for e in exclude}
    lines = []
    for name, version in sorted(installed.items()):
        if name in skip:
            continue
        try:
            Version(version)
        except InvalidVersion:  # a version pip cannot pin: leave it free rather than fail
            continue
        lines.append(f"{name}=={version}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["plan", "verify"])
    parser.add_argument("--extras", default="gpu", help="comma-separated extras of terrascale")
    parser.add_argument("--preinstalled", default="torch,xgboost")
    parser.add_argument("--requirements", help="plan: write what pip must install here")
    parser.add_argument("--constraints", help="plan: write the installed distributions as pins here")
    args = parser.parse_args(argv)

    requires = md.requires(DISTRIBUTION) or []
    installed = installed_versions()
    extras = args.extras.split(",")
    to_install, problems = plan(requires, extras, installed, args.preinstalled.split(","))
    for problem in problems:
        print(f"gpu_requirements: {problem}", file=sys.stderr)
    if args.command == "verify":
        for req in to_install:
            print(f"gpu_requirements: not satisfied after the install: {req}", file=sys.stderr)
        ok = not problems and not to_install
        print(f"gpu_requirements: {'all' if ok else 'NOT all'} requirements of terrascale[{args.extras}] satisfied")
        return 0 if ok else 1
    if problems:
        return 1
    if args.requirements:
        with open(args.requirements, "w") as f:
            f.write("".join(f"{r}\n" for r in to_install))
    if args.constraints:
        with open(args.constraints, "w") as f:
            f.write("".join(f"{c}\n" for c in constraints(installed)))
    print(f"gpu_requirements: {len(to_install)} requirement(s) to install: {', '.join(to_install) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
