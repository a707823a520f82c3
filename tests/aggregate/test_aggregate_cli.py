"""CLI: terrascale aggregate / weights / grids."""

import numpy as np
import xarray as xr
from typer.testing import CliRunner

from pipeline.cli import app

runner = CliRunner()


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
    cases = [
        ["aggregate", str(src), "--var", "nope", "--grid", "1deg", "-o", str(tmp_path / "x.nc")],
        ["aggregate", str(src), "--var", "lai", "--grid", "N33", "-o", str(tmp_path / "x.nc")],
        ["aggregate", str(src), "--var", "lc", "--grid", "10deg", "--method", "fractions", "--classes", "1,2",
         "-o", str(tmp_path / "x.nc")],
        ["weights", "1deg", "Z9", "-o", str(tmp_path / "w.nc")],
    ]
    for args in cases:
        res = runner.invoke(app, args)
        assert res.exit_code == 2, (args, res.output)
        assert "Traceback" not in res.output and "error" in res.output.lower()
    res = runner.invoke(app, cases[2])
    assert "[3]" in res.output  # names the undeclared class value
    assert not (tmp_path / "x.nc").exists()
