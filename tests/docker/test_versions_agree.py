"""The Dockerfile, the Apptainer definition and pyproject.toml agree on versions and extras.

Python 3.11, torch 2.13.0 (also the Makefile's pin), xgboost, the RAPIDS release and CUDA major,
and the extras of terrascale the images install: a change in one place that is not made in the
others fails here instead of in a multi-GB image build.
"""

from __future__ import annotations

import importlib.util
import re
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from tests.docker.tools import DEFINITION, DOCKER, ROOT, definition_sections, read_dockerfile

PYTHON = "3.11"
TORCH = "2.13.0"


@pytest.fixture(scope="module")
def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


@pytest.fixture(scope="module")
def dockerfile():
    return read_dockerfile()


@pytest.fixture(scope="module")
def labels():
    _, sections = definition_sections(DEFINITION.read_text())
    return dict(line.strip().split(None, 1) for line in sections["labels"].splitlines() if line.strip())


@pytest.fixture(scope="module")
def def_test():
    return definition_sections(DEFINITION.read_text())[1]["test"]


def requirement(pyproject, name: str, extra: str | None = None) -> Requirement:
    lines = pyproject["project"]["optional-dependencies"][extra] if extra else pyproject["project"]["dependencies"]
    (req,) = [Requirement(line) for line in lines if Requirement(line).name == name]
    return req


def gpu_requirements_module():
    spec = importlib.util.spec_from_file_location("gpu_requirements", DOCKER / "gpu_requirements.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_python_version(pyproject, dockerfile, labels, def_test):
    assert dockerfile.global_args["PYTHON_VERSION"] == PYTHON
    assert labels["PYTHON_VERSION"] == PYTHON
    assert f"sys.version_info[:2] == ({PYTHON.replace('.', ', ')})" in def_test
    assert Version(PYTHON + ".0") in SpecifierSet(pyproject["project"]["requires-python"])
    assert pyproject["tool"]["ruff"]["target-version"] == "py" + PYTHON.replace(".", "")
    # both base images carry that Python
    assert dockerfile.resolve(dockerfile.global_args["RAPIDS_IMAGE"]).endswith(f"-py{PYTHON}")
    assert dockerfile.resolve(dockerfile.global_args["CPU_BASE_IMAGE"]).startswith(f"python:{PYTHON}-")


def test_torch_version(pyproject, dockerfile, labels, def_test):
    assert dockerfile.global_args["TORCH_VERSION"] == TORCH
    assert labels["TORCH_VERSION"] == TORCH
    assert f'torch.__version__.startswith("{TORCH}")' in def_test
    assert requirement(pyproject, "torch").specifier.contains(TORCH)
    # the Makefile installs the same pin in the development venv
    makefile_pins = re.findall(r"torch==([\w.+]+)", (ROOT / "Makefile").read_text())
    assert makefile_pins and set(makefile_pins) == {TORCH}


def test_torch_cuda_build_matches_the_rapids_cuda(pyproject, dockerfile, labels):
    cuda_major = dockerfile.global_args["CUDA_MAJOR"]
    assert labels["CUDA_MAJOR"] == cuda_major
    torch_cuda = dockerfile.global_args["TORCH_CUDA"]
    assert re.fullmatch(rf"cu{cuda_major}\d", torch_cuda), torch_cuda
    # the gpu extra's wheels are of the same CUDA major (cudf-cu12, cupy-cuda12x, ...)
    for line in pyproject["project"]["optional-dependencies"]["gpu"]:
        name = Requirement(line).name
        suffix = re.search(r"-cu(?:da)?(\d+)x?$", name)
        if suffix:
            assert suffix[1] == cuda_major, name


def test_xgboost_version(pyproject, dockerfile, labels):
    pinned = dockerfile.global_args["XGBOOST_VERSION"]
    assert labels["XGBOOST_VERSION"] == pinned
    assert requirement(pyproject, "xgboost").specifier.contains(pinned)


def test_rapids_release_satisfies_the_gpu_extra(pyproject, dockerfile, labels):
    release = dockerfile.global_args["RAPIDS_VERSION"]
    assert labels["RAPIDS_VERSION"] == release
    version = Version(release)  # 26.08 -> 26.8
    for line in pyproject["project"]["optional-dependencies"]["gpu"]:
        req = Requirement(line)
        if req.name.startswith(("cudf", "dask-cudf", "cuml", "kvikio", "dask-cuda")):  # versioned with RAPIDS
            assert req.specifier.contains(version, prereleases=True), f"{req} vs RAPIDS {release}"


def test_extras_exist_in_pyproject(pyproject, dockerfile, labels):
    extras = pyproject["project"]["optional-dependencies"]
    gpu_args = dict(a.split("=", 1) for a in dockerfile.stage("gpu").all("ARG") if "=" in a)
    cpu_args = dict(a.split("=", 1) for a in dockerfile.stage("cpu").all("ARG") if "=" in a)
    gpu_extras = gpu_args["TERRASCALE_EXTRAS"].split(",")
    assert "gpu" in gpu_extras and set(gpu_extras) <= set(extras)
    assert labels["TERRASCALE_EXTRAS"] == gpu_args["TERRASCALE_EXTRAS"]
    cpu_extras = cpu_args["TERRASCALE_CPU_EXTRAS"].split(",")
    assert "gpu" not in cpu_extras and set(cpu_extras) <= set(extras)


def test_every_gpu_package_is_checked_as_its_conda_package(pyproject, def_test):
    # a gpu-extra wheel without a conda name would be pip-installed over the RAPIDS conda env
    conda_names = gpu_requirements_module().CONDA_NAMES
    for line in pyproject["project"]["optional-dependencies"]["gpu"]:
        name = Requirement(line).name
        assert name in conda_names, f"{name}: add its conda package name to docker/gpu_requirements.py"
        module = conda_names[name].replace("-", "_")
        if module != "dask_cudf":  # imported through cudf
            assert module in def_test, f"%test does not import {module}"
