"""CLI: terrascale aggregate / weights / grids."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from pipeline.cli import app

runner = CliRunner()
SCRIPT = Path(sys.executable).with_name("terrascale")


def _user_error(args, *expected):
    """Run the CLI; assert a user error: exit 2 through SystemExit (no other exception) naming ``expected``."""
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 2, (args, res.output, res.exception)
    assert res.exception is None or isinstance(res.exception, SystemExit), (args, repr(res.exception))
    for text in expected:
        assert text in res.output, (args, text, res.output)
    return res


def _input(tmp_path):
    lat = np.linspace(-89, 89, 90)
    lon = np.linspace(-179, 179, 180)
    rng = np.random.default_rng(0)
    lai = rng.random((2, 90, 180)) * 6
    lai[:, :10] = np.nan
    k = rng.integers(1, 4, (90, 180)).astype(np.uint8)
    k[:10] = 0
    ds = xr.Dataset(
        {"lai": (("time", "lat", "lon"), lai, {"units": "m2 m-2", "long_name": "leaf area index"}),
         "lc": (("lat", "lon"), k, {"flag_values": np.array([1, 2, 3], np.uint8), "flag_meanings": "a b c"})},
        coords={"time": [0, 1], "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
                "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"})})
    path = tmp_path / "in.nc"
    ds.to_netcdf(path, encoding={"lc": {"_FillValue": np.uint8(0)}})
    return path


def test_grids_lists_named_grids(tmp_path):
    res = runner.invoke(app, ["grids"])
    assert res.exit_code == 0, res.output
    assert "tl255" in res.output and "88,838" in res.output
    res = runner.invoke(app, ["grids", "--write", "N32", "-o", str(tmp_path / "g.nc")])
    assert res.exit_code == 0 and (tmp_path / "g.nc").exists()


def test_aggregate_methods(tmp_path):
    src = _input(tmp_path)
    out = tmp_path / "mean.nc"
    res = runner.invoke(app, ["aggregate", str(src), "--var", "lai", "--grid", "N32", "--method", "mean", "-o", str(out)])
    assert res.exit_code == 0, res.output
    ds = xr.open_dataset(out)
    assert ds.lai.dims == ("time", "cell") and ds.lai.attrs["cell_methods"] == "area: mean"
    assert ds.lai.attrs["units"] == "m2 m-2" and "lat_bnds" in ds and ds.attrs["Conventions"] == "CF-1.10"
    out = tmp_path / "frac.nc"
    res = runner.invoke(app, ["aggregate", str(src), "--var", "lc", "--grid", "10deg", "--method", "fractions", "-o", str(out)])
    assert res.exit_code == 0, res.output
    ds = xr.open_dataset(out)
    assert ds.lc_fraction.dims == ("class", "lat", "lon") and ds["class"].attrs["flag_meanings"] == "a b c"
    tot = ds.lc_fraction.sum("class", skipna=False).values
    assert np.allclose(tot[np.isfinite(tot)], 1.0) and "valid_fraction" in ds.data_vars
    for method, var in (("majority", "lc_majority"), ("std", "lai_std")):
        out = tmp_path / f"{method}.nc"
        res = runner.invoke(app, ["aggregate", str(src), "--var", "lai" if method == "std" else "lc", "--grid", "10deg",
                                  "--method", method, "-o", str(out)])
        assert res.exit_code == 0, res.output
        assert var in xr.open_dataset(out)


def test_weights_command_and_reuse(tmp_path):
    src = _input(tmp_path)
    w = tmp_path / "w.nc"
    res = runner.invoke(app, ["weights", "2deg", "N32", "-o", str(w)])
    assert res.exit_code == 0, res.output
    a, b = tmp_path / "a.nc", tmp_path / "b.nc"
    assert runner.invoke(app, ["aggregate", str(src), "--var", "lai", "--weights", str(w), "-o", str(a)]).exit_code == 0
    assert runner.invoke(app, ["aggregate", str(src), "--var", "lai", "--grid", "N32", "-o", str(b)]).exit_code == 0
    np.testing.assert_allclose(xr.open_dataset(a).lai.values, xr.open_dataset(b).lai.values, rtol=1e-12)


def test_user_errors_exit_2_one_line(tmp_path):
    src = _input(tmp_path)
    x = tmp_path / "x.nc"
    cases = [
        (["aggregate", src, "--var", "nope", "--grid", "1deg", "-o", x], ["has no variable 'nope'"]),
        (["aggregate", src, "--var", "lai", "--grid", "N33", "-o", x], ["no shipped point list for N33"]),
        (["aggregate", src, "--var", "lc", "--grid", "10deg", "--method", "fractions", "--classes", "1,2", "-o", x],
         ["outside the declared classes", "[3]"]),  # names the undeclared class value
        (["weights", "1deg", "Z9", "-o", tmp_path / "w.nc"], ["unknown grid spec 'Z9'"]),
    ]
    for args, expected in cases:
        res = _user_error(args, "error", *expected)
        assert "Traceback" not in res.output
    assert not x.exists()


@pytest.mark.parametrize("spec", ["r0x0", "0deg", "1x0deg", "r360x0"])
def test_zero_size_grid_specs_exit_2(tmp_path, spec):
    src = _input(tmp_path)
    _user_error(["aggregate", src, "--var", "lai", "--grid", spec, "-o", tmp_path / "x.nc"], f"grid spec '{spec}'")
    _user_error(["weights", spec, "1deg", "-o", tmp_path / "w.nc"], f"grid spec '{spec}'")
    _user_error(["grids", "--write", spec, "-o", tmp_path / "g.nc"], f"grid spec '{spec}'")
    assert not any((tmp_path / n).exists() for n in ("x.nc", "w.nc", "g.nc"))


@pytest.mark.parametrize("rows", ["-5", "0"])
def test_bad_chunk_rows_exit_2(tmp_path, rows):
    src, out = _input(tmp_path), tmp_path / "x.nc"
    _user_error(["aggregate", src, "--var", "lai", "--grid", "10deg", "--chunk-rows", rows, "-o", out], "--chunk-rows")
    assert not out.exists()
    res = runner.invoke(app, ["aggregate", str(src), "--var", "lai", "--grid", "10deg", "--chunk-rows", "7", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert np.isfinite(xr.open_dataset(out).lai.values).any()


def test_std_honours_min_valid_fraction(tmp_path):
    src = _input(tmp_path)
    ds = xr.open_dataset(src).load()
    ds["lai"][:, 10:14] = np.nan  # -70..-62: the 10° row -70..-60 keeps ~20 % valid area
    src = tmp_path / "partial.nc"
    ds.to_netcdf(src)
    base = ["aggregate", str(src), "--var", "lai", "--grid", "10deg", "--min-valid-fraction", "0.6"]
    res = runner.invoke(app, [*base, "--method", "std", "-o", str(tmp_path / "std.nc")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, [*base, "--method", "mean", "-o", str(tmp_path / "mean.nc")])
    assert res.exit_code == 0, res.output
    mean = xr.open_dataset(tmp_path / "mean.nc").lai.values
    assert np.isnan(mean[:, 2]).all() and np.isfinite(mean[:, 3:]).all()  # the partial row is masked
    std = xr.open_dataset(tmp_path / "std.nc")
    for v in ("lai_mean", "lai_std", "lai_min", "lai_max"):
        np.testing.assert_array_equal(np.isnan(std[v].values), np.isnan(mean), err_msg=v)


def test_class_and_missing_overlap_exit_2(tmp_path):
    src = _input(tmp_path)
    _user_error(["aggregate", src, "--var", "lc", "--grid", "10deg", "--method", "fractions", "--classes", "1,2,3",
                 "--missing", "3,9", "-o", tmp_path / "x.nc"], "[3]", "both classes and missing")


def test_majority_without_classes_names_majority(tmp_path):
    src = tmp_path / "c.nc"
    xr.Dataset({"c": (("lat", "lon"), np.ones((18, 36), np.uint8))},
               coords={"lat": np.arange(-85, 90, 10.0), "lon": np.arange(-175, 180, 10.0)}).to_netcdf(src)
    res = _user_error(["aggregate", src, "--var", "c", "--grid", "20deg", "--method", "majority", "-o", tmp_path / "x.nc"],
                      "majority_class of 'c'", "--classes")
    assert "class_fractions" not in res.output


def test_float_class_map_with_default_netcdf_fill(tmp_path):
    src = tmp_path / "lc.nc"
    k = np.random.default_rng(2).integers(1, 5, (36, 72)).astype(np.float32)
    k[:6] = np.nan
    xr.Dataset({"lc": (("lat", "lon"), k)},
               coords={"lat": np.arange(-87.5, 90, 5.0), "lon": np.arange(-177.5, 180, 5.0)}).to_netcdf(
        src, encoding={"lc": {"_FillValue": np.float32(9.96921e36)}})
    out = tmp_path / "f.nc"
    res = runner.invoke(app, ["aggregate", str(src), "--var", "lc", "--grid", "10deg", "--method", "fractions",
                              "--classes", "1,2,3,4", "-o", str(out)])
    assert res.exit_code == 0, (res.output, res.exception)
    tot = xr.open_dataset(out).lc_fraction.sum("class", skipna=False).values
    assert np.isnan(tot[:3]).all() and np.allclose(tot[3:], 1.0)


def test_weights_file_that_is_not_netcdf_exit_2(tmp_path):
    src = _input(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text("# terrascale\n")
    res = _user_error(["aggregate", src, "--var", "lai", "--weights", readme, "-o", tmp_path / "x.nc"],
                      "neither NetCDF nor Zarr")
    assert "backends" not in res.output
    _user_error(["aggregate", src, "--var", "lai", "--grid", f"file:{readme}", "-o", tmp_path / "x.nc"],
                "neither NetCDF nor Zarr")


@pytest.mark.skipif(not SCRIPT.exists(), reason="console script terrascale not installed next to the interpreter")
@pytest.mark.parametrize("extra", [["--grid", "r0x0"], ["--grid", "10deg", "--chunk-rows", "-5"],
                                   ["--weights", "README"]])
def test_console_script_prints_one_line(tmp_path, extra):
    src = _input(tmp_path)
    (tmp_path / "README").write_text("not NetCDF\n")
    proc = subprocess.run([str(SCRIPT), "aggregate", str(src), "--var", "lai", *extra, "-o", str(tmp_path / "x.nc")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    if "--chunk-rows" not in extra:  # click's own usage errors take a usage line and a box
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert not (tmp_path / "x.nc").exists()


def test_grids_and_weights_option_errors(tmp_path):
    _user_error(["grids", "--write", "N32"], "--write needs -o")
    _user_error(["weights", "1deg", "N32", "-o", tmp_path / "w.nc", "--format", "foo"], "use scrip or esmf")
    _user_error(["weights", "1deg", "bogus", "-o", tmp_path / "w.nc"], "unknown grid spec 'bogus'")
    assert not list(tmp_path.iterdir())
