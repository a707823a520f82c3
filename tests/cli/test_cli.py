"""End-to-end tests of the foundation commands: --help, info, config, validate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.config import config_sha256, load_config

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_help_lists_commands():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for cmd in ("info", "validate", "config"):
        assert cmd in res.output


def test_info():
    res = runner.invoke(app, ["info"])
    assert res.exit_code == 0, res.output
    assert "backend auto resolves to" in res.output and "package xarray" in res.output
    assert "cluster default" in res.output


def test_config_prints_resolved_with_sha():
    res = runner.invoke(app, ["config", str(ROOT / "configs/demo.yaml"), "--set", "seed=7"])
    assert res.exit_code == 0, res.output
    sha = config_sha256(load_config(ROOT / "configs/demo.yaml", ["seed=7"]))
    assert f"# sha256: {sha}" in res.output and "seed: 7" in res.output


def test_validate_ok_and_writes_harmonised_copy(netcdf_file, tmp_path):
    out = tmp_path / "clean.zarr"
    res = runner.invoke(app, ["validate", str(netcdf_file), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert "OK" in res.output and out.exists()
    import xarray as xr

    ds = xr.open_zarr(out, consolidated=False)
    assert "lat_bnds" in ds and ds.attrs["Conventions"] == "CF-1.10"


def test_validate_zarr(zarr_store):
    res = runner.invoke(app, ["validate", str(zarr_store), "--var", "lai"])
    assert res.exit_code == 0, res.output


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("terrascale")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "case, expected",
    [
        ("not_netcdf", "neither NetCDF nor Zarr"),
        ("truncated", "truncated or corrupt"),
        ("no_latlon", "no latitude and longitude found"),
        ("non_monotonic", "not strictly monotonic"),
        ("missing", "does not exist"),
    ],
)
def test_validate_bad_input_one_line_no_traceback(tmp_path, netcdf_file, grid_dataset, case, expected):
    path = tmp_path / f"{case}.nc"
    if case == "not_netcdf":
        path.write_text("hello")
    elif case == "truncated":
        data = netcdf_file.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "no_latlon":
        grid_dataset.rename({"lat": "a", "lon": "b"}).drop_vars(["a", "b"]).to_netcdf(path)
    elif case == "non_monotonic":
        lat = grid_dataset["lat"].values.copy()
        lat[[1, 4]] = lat[[4, 1]]
        grid_dataset.assign_coords(lat=("lat", lat, grid_dataset["lat"].attrs)).to_netcdf(path)
    res = _run_cli("validate", str(path))
    assert res.returncode == 2, res.stdout + res.stderr
    assert expected in res.stderr
    assert "Traceback" not in res.stderr + res.stdout
    assert res.stderr.strip().count("\n") == 0, res.stderr  # one line


def test_bad_config_exit_code_and_message(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  regoin: iberia\n")
    res = _run_cli("config", str(bad))
    assert res.returncode == 2
    assert "unknown key 'regoin' in section 'data'" in res.stderr and "Traceback" not in res.stderr


def test_gpu_backend_without_gpu_via_cli():
    from tests.helpers.optional import gpu_available

    if gpu_available():
        pytest.skip("this machine has a GPU")
    res = _run_cli("info", "--backend", "gpu")
    assert res.returncode == 2
    assert "backend: gpu was requested but no GPU is usable" in res.stderr and "Traceback" not in res.stderr
    ok = _run_cli("info", "--backend", "cpu")
    assert ok.returncode == 0 and "backend cpu resolves to" in ok.stdout
