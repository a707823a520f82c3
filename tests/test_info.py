"""pipeline.info: package versions under pip names, with the conda names of the RAPIDS images."""

from __future__ import annotations

import importlib.metadata as md

from pipeline import info


def test_gpu_stack_falls_back_to_conda_names(monkeypatch):
    installed = {"numpy": "2.4.6", "cudf": "26.08.00", "cupy-cuda12x": "13.6.0"}

    def version(name):
        if name not in installed:
            raise md.PackageNotFoundError(name)
        return installed[name]

    monkeypatch.setattr(info.md, "version", version)
    v = info.package_versions()
    assert v["numpy"] == "2.4.6"
    assert v["cudf-cu12"] == "26.08.00 (conda cudf)"  # the RAPIDS image: a conda package
    assert v["cupy-cuda12x"] == "13.6.0"  # the pip wheel wins where it is installed
    assert v["cuml-cu12"] == "not installed" and v["torch"] == "not installed"
    assert set(v) == set(info.KEY_PACKAGES)
