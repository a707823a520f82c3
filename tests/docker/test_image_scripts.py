"""The two Python scripts the image build runs: docker/gpu_requirements.py and docker/build_info.py.

They run here against this environment (terrascale installed, no RAPIDS) and against made-up
package sets for the RAPIDS conda environment.
"""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from tests.docker.tools import DOCKER


def load(name):
    spec = importlib.util.spec_from_file_location(name, DOCKER / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


gpu_requirements = load("gpu_requirements")
build_info = load("build_info")

REQUIRES = [
    "numpy>=1.26",
    "zarr<3.2,>=3.0",
    "xgboost<3.3,>=3.0",
    "torch>=2.4",
    "eccodes>=2.35",
    'cupy-cuda12x>=13; extra == "gpu"',
    'cudf-cu12>=25.6; extra == "gpu"',
    'dask-cuda>=25.6; extra == "gpu"',
    'dask-jobqueue>=0.8; extra == "slurm"',
    'mlflow>=3; extra == "track"',
]
# a RAPIDS 26.08 conda environment after the Dockerfile installed torch and xgboost
RAPIDS_ENV = {
    "numpy": "2.2.6", "zarr": "3.1.3", "xgboost": "3.2.0", "torch": "2.13.0+cu129",
    "cupy": "13.6.0", "cudf": "26.08.00", "dask-cuda": "26.8.0",
}


def test_extras_select_requirements():
    names = [r.name for r in gpu_requirements.wanted(REQUIRES, ["gpu"])]
    assert "cudf-cu12" in names and "dask-jobqueue" not in names and "mlflow" not in names
    names = [r.name for r in gpu_requirements.wanted(REQUIRES, ["gpu", "slurm"])]
    assert "dask-jobqueue" in names


def test_rapids_wheels_are_met_by_the_conda_packages():
    to_install, problems = gpu_requirements.plan(REQUIRES, ["gpu", "slurm"], RAPIDS_ENV)
    assert problems == []
    # only what conda does not have; never a -cu12 wheel, never torch
    # as plain requirement lines: a marker `extra == "slurm"` would make pip skip the line
    assert sorted(to_install) == ["dask-jobqueue>=0.8", "eccodes>=2.35"]


def test_missing_or_old_rapids_package_stops_the_build():
    env = dict(RAPIDS_ENV, cudf="25.04.00")
    env.pop("cupy")
    _, problems = gpu_requirements.plan(REQUIRES, ["gpu"], env)
    assert any("cudf-cu12>=25.6" in p and "conda package 'cudf'" in p and "25.04.00" in p for p in problems)
    assert any("cupy-cuda12x>=13" in p and "not installed" in p for p in problems)


def test_wrong_torch_stops_the_build_instead_of_pulling_another():
    env = dict(RAPIDS_ENV)
    env.pop("torch")
    to_install, problems = gpu_requirements.plan(REQUIRES, ["gpu"], env)
    assert not any(r.startswith("torch") for r in to_install)
    assert any(p.startswith("torch>=2.4") and "installed first by the Dockerfile" in p for p in problems)


def test_too_old_ordinary_package_is_installed():
    to_install, _ = gpu_requirements.plan(REQUIRES, ["gpu"], dict(RAPIDS_ENV, numpy="1.24.0"))
    assert "numpy>=1.26" in to_install


def test_constraints_pin_the_installed_packages():
    lines = gpu_requirements.constraints({"cudf": "26.08.00", "terrascale": "0.1.0", "weird": "not a version"})
    assert lines == ["cudf==26.08.00"]


def test_plan_and_verify_in_this_environment(tmp_path, capsys):
    # terrascale with its slurm extra is fully installed here: nothing to add, verify passes
    req, con = tmp_path / "req.txt", tmp_path / "constraints.txt"
    assert gpu_requirements.main(["plan", "--extras", "slurm", "--requirements", str(req), "--constraints", str(con)]) == 0
    assert req.read_text() == ""
    assert "numpy==" in con.read_text() and "terrascale==" not in con.read_text()
    assert gpu_requirements.main(["verify", "--extras", "slurm"]) == 0
    # the gpu extra is not: RAPIDS is missing, which is a build error, not something to pip-install
    assert gpu_requirements.main(["plan", "--extras", "gpu", "--requirements", str(req)]) == 1
    assert "conda package 'cudf'" in capsys.readouterr().err


@pytest.mark.parametrize("have, want, ok", [
    ("3.11.9", "3.11", True), ("3.110.1", "3.11", False), ("2.13.0+cu129", "2.13.0", True),
    ("2.13.0+cpu", "2.13.0", True), ("2.12.1", "2.13.0", False), ("26.8.0", "26.08", True),
    ("26.08.00", "26.08", True), ("26.10.00", "26.08", False), ("12.9", "12", True), (None, "none", True),
    ("12.9", "none", False), (None, "2.13.0", False),
])
def test_version_matching(have, want, ok):
    assert build_info.matches(have, want) is ok


def test_build_info_file(tmp_path, capsys):
    import torch

    out = tmp_path / "opt" / "build-info.json"
    python = ".".join(sys.version.split(".")[:2])
    rc = build_info.main([
        "--output", str(out), "--variant", "cpu", "--git-commit", "0123abc", "--build-date", "2026-11-02T10:00:00Z",
        "--base-image", "python:3.11-slim-trixie", "--arg", "TORCH_VERSION=2.13.0",
        "--expect", f"python={python}", "--expect", f"torch={torch.__version__.split('+')[0]}",
        "--expect", f"torch_cuda={torch.version.cuda or 'none'}",
    ])
    assert rc == 0
    info = json.loads(out.read_text())
    assert info["git_commit"] == "0123abc" and info["variant"] == "cpu"
    assert info["build_args"] == {"TORCH_VERSION": "2.13.0"}
    assert info["version"] == info["packages"]["terrascale"]
    assert info["packages"]["torch"] == torch.__version__


def test_build_info_refuses_an_unpinned_version(tmp_path, capsys):
    out = tmp_path / "build-info.json"
    rc = build_info.main(["--output", str(out), "--variant", "gpu", "--expect", "torch=1.0.0", "--expect", "cudf=26.08"])
    assert rc == 1 and not out.exists()
    err = capsys.readouterr().err
    assert "torch: expected 1.0.0" in err and "cudf: expected 26.08, installed nothing" in err
