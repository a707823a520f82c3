"""Hostile inputs of the aggregation stage: crosswalk tables, weight files, categorical means, --select.

Each class of defect is one mechanism, checked with several inputs:

* a crosswalk CSV is checked cell by cell, every message ``PFT crosswalk FILE: ...`` with the row
  (class) and the column;
* a SCRIP/ESMF weights file is checked for structure before use, and its source centres must be
  the input's (storage order; 0..360 and -180..180 alike, a flipped input is a mismatch);
* a mean or std of a categorical map is refused; an all-NaN result is a warning, not an error;
* ``--select DIM=VALUE`` / ``--select 'DIM[i]'`` pick one field; the messages name the option;
* weights and grid files are NetCDF: ``-o w.zarr`` is refused before any work.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from pipeline.aggregate import apply_weights, class_fractions, conservative_mean, read_crosswalk, subgrid_stats
from pipeline.cli import app
from pipeline.errors import ConfigError, InputDataError
from pipeline.grids import parse_grid
from pipeline.weights import compute_weights, read_weights, write_weights

runner = CliRunner()


def _user_error(args, *expected):
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 2, (args, res.output, res.exception)
    assert res.exception is None or isinstance(res.exception, SystemExit), (args, repr(res.exception))
    text = " ".join(res.output.split())
    for e in expected:
        assert e in text, (args, e, res.output)
    return text


def _field(**coords) -> xr.DataArray:
    """A global 10° field (18 x 36), lat ascending, lon -175..175."""
    lat = coords.get("lat", np.arange(-85.0, 90.0, 10.0))
    lon = coords.get("lon", np.arange(-175.0, 180.0, 10.0))
    data = np.random.default_rng(0).random((lat.size, lon.size))
    return xr.DataArray(data, dims=("lat", "lon"), name="x", coords={
        "lat": ("lat", lat, {"standard_name": "latitude", "units": "degrees_north"}),
        "lon": ("lon", lon, {"standard_name": "longitude", "units": "degrees_east"})})


# -- 1. crosswalk tables -------------------------------------------------------------------------

CROSSWALKS = {
    "duplicate class row": ("value,short_name,tree,grass\n1,F,1,0\n2,G,0,1\n1,F2,0.5,0.5\n", ["class 1 has 2 rows"]),
    "empty cell": ("value,short_name,tree,grass\n1,F,1,0\n2,G,,1\n", ["class 2, column 'tree' is empty"]),
    "text cell in a PFT column": ("value,short_name,tree,grass\n1,F,1,0\n2,G,half,0.5\n",
                                  ["class 2, column 'tree' holds 'half'", "not a number"]),
    "header only": ("value,short_name,tree,grass\n", ["has no rows"]),
    "no PFT column": ("value,short_name\n1,F\n", ["has no PFT column", "short_name"]),
    "repeated PFT header": ("value,tree,tree\n1,0.5,0.5\n", ["column 'tree' appears more than once"]),
    "class code not whole": ("value,tree\n1.5,1\n", ["data row 1", "class code 1.5"]),
    "negative fraction": ("value,tree,grass\n1,1.5,-0.5\n", ["class 1, column 'grass' is -0.5", ">= 0"]),
    "row not summing to 1": ("value,tree,grass\n1,0.5,0.4\n", ["class value(s) [1] sum to [0.9]"]),
}


@pytest.mark.parametrize("case", list(CROSSWALKS))
def test_bad_crosswalk_names_the_file_row_and_column(tmp_path, case):
    text, expected = CROSSWALKS[case]
    path = tmp_path / "cw.csv"
    path.write_text(text)
    with pytest.raises(InputDataError) as err:
        read_crosswalk(path)
    msg = str(err.value)
    assert msg.startswith(f"PFT crosswalk {path}: "), msg
    assert "class table" not in msg
    for e in expected:
        assert e in msg, (e, msg)


def test_crosswalk_label_columns(tmp_path):
    # named label columns are ignored even when they hold numbers; an all-text column is a label too
    path = tmp_path / "cw.csv"
    path.write_text("code,name,notes,tree,grass\n1,11,forest,1,0\n2,12,meadow,0,1\n")
    t = read_crosswalk(path)
    assert list(t.columns) == ["tree", "grass"] and list(t.index) == [1, 2]
    for where, bad in (("dir", tmp_path), ("missing", tmp_path / "nope.csv")):
        with pytest.raises(InputDataError, match=rf"^PFT crosswalk {bad}: "):
            read_crosswalk(bad)


def test_crosswalk_cli_errors_are_one_line(tmp_path):
    lc = _field()
    lc = lc.copy(data=(lc.values * 2).astype(np.uint8) + 1)
    lc.attrs.update(flag_values=np.array([1, 2], np.uint8), flag_meanings="a b")
    src = tmp_path / "lc.nc"
    lc.to_dataset().to_netcdf(src)
    cw = tmp_path / "cw.csv"
    cw.write_text("value,short_name,tree,grass\n1,F,1,0\n2,G,,1\n")
    _user_error(["aggregate", src, "--var", "x", "--grid", "30deg", "--method", "fractions", "--crosswalk", cw,
                 "-o", tmp_path / "o.nc"], f"PFT crosswalk {cw}: the cell of class 2, column 'tree' is empty")
    assert not (tmp_path / "o.nc").exists()


# -- 2. weight files -----------------------------------------------------------------------------


@pytest.fixture
def weights_file(tmp_path):
    return write_weights(compute_weights(parse_grid("10deg"), parse_grid("30deg")), tmp_path / "w.nc")


def _mutated(src, tmp_path, change):
    ds = xr.open_dataset(src).load()
    ds = change(ds)
    out = tmp_path / "bad.nc"
    ds.to_netcdf(out)
    return out


def _set(ds, name, values):
    ds[name] = (ds[name].dims, values, ds[name].attrs)
    return ds


WEIGHT_DEFECTS = {
    "no src_grid_dims": (lambda ds: ds.drop_vars("src_grid_dims"), "src_grid_dims are missing"),
    "no dst_address": (lambda ds: ds.drop_vars("dst_address"), "dst_address are missing"),
    "no remap_matrix": (lambda ds: ds.drop_vars("remap_matrix"), "remap_matrix are missing"),
    "dst_grid_dims product": (lambda ds: _set(ds, "dst_grid_dims", np.array([12, 7], np.int32)),
                              "'dst_grid_dims' is [12, 7] (product 84 cells)"),
    "NaN weight": (lambda ds: _set(ds, "remap_matrix", np.where(np.arange(ds.sizes["num_links"])[:, None] == 3,
                                                                np.nan, ds.remap_matrix.values)),
                   "NaN, infinite or negative (first: nan at link 4)"),
    "negative weight": (lambda ds: _set(ds, "remap_matrix", -ds.remap_matrix.values), "648 of the 648 weights"),
    "address out of range": (lambda ds: _set(ds, "src_address", ds.src_address.values + 1000),
                             "source addresses outside 1..648"),
    "address zero": (lambda ds: _set(ds, "dst_address", ds.dst_address.values - 1),
                     "destination addresses outside 1..72"),
    "area of another size": (lambda ds: ds.assign(dst_grid_area=("x", np.ones(5))), "'dst_grid_area' has 5 values"),
}


@pytest.mark.parametrize("case", list(WEIGHT_DEFECTS))
def test_bad_weight_files_are_refused_naming_the_problem(tmp_path, weights_file, case):
    change, expected = WEIGHT_DEFECTS[case]
    bad = _mutated(weights_file, tmp_path, change)
    with pytest.raises(InputDataError) as err:
        read_weights(bad)
    msg = str(err.value)
    assert msg.startswith(f"weights file {bad} (SCRIP): "), msg
    assert expected in msg, (expected, msg)


@pytest.mark.parametrize("case", ["no S", "no n_a", "row and S lengths"])
def test_bad_esmf_files(tmp_path, case):
    path = write_weights(compute_weights(parse_grid("10deg"), parse_grid("30deg")), tmp_path / "e.nc", format="esmf")
    change, expected = {
        "no S": (lambda ds: ds.drop_vars("S"), "S are missing"),
        "no n_a": (lambda ds: ds.drop_vars(["src_grid_dims", "frac_a", "area_a", "yc_a", "xc_a", "yv_a", "xv_a",
                                            "mask_a"]), "neither 'src_grid_dims' nor a dimension 'n_a'"),
        "row and S lengths": (lambda ds: ds.assign(S=("n_x", np.ones(3))), "'S' has 3 entries"),
    }[case]
    with pytest.raises(InputDataError, match="ESMF") as err:
        read_weights(_mutated(path, tmp_path, change))
    assert expected in str(err.value)


def test_weights_for_another_grid_of_the_same_size_are_refused(weights_file):
    da = _field()
    good = apply_weights(da, weights_file)
    # the same cells stored as float32, or with 0..360 longitudes where the weights also have them, are fine
    assert np.allclose(apply_weights(da.assign_coords(lat=da.lat.astype(np.float32), lon=da.lon.astype(np.float32)),
                                     weights_file).values, good.values)
    flipped = da.isel(lat=slice(None, None, -1))
    with pytest.raises(InputDataError, match="latitudes run the other way"):
        apply_weights(flipped, weights_file)
    rotated = da.assign_coords(lon=da.lon % 360).sortby("lon")
    with pytest.raises(InputDataError, match="0..360 against -180..180"):
        apply_weights(rotated, weights_file)
    shifted = da.assign_coords(lat=da.lat + 0.5)
    with pytest.raises(InputDataError, match=r"648 cell centres differ.*lat -84.5"):
        apply_weights(shifted, weights_file)
    # weights made for the 0..360 input apply to it
    w360 = write_weights(compute_weights(parse_grid("10deg:0,-90,360,90"), parse_grid("30deg")),
                         weights_file.with_name("w360.nc"))
    assert np.isfinite(apply_weights(rotated, w360).values).all()


def test_mismatched_weights_from_the_cli(tmp_path, weights_file):
    src = tmp_path / "in.nc"
    _field().isel(lat=slice(None, None, -1)).to_dataset().to_netcdf(src)
    _user_error(["aggregate", src, "--var", "x", "--weights", weights_file, "-o", tmp_path / "o.nc"],
                "was made for another source grid", "cdo invertlat")


@pytest.mark.parametrize("cmd", [["weights", "10deg", "30deg"], ["grids", "--write", "30deg"]])
@pytest.mark.parametrize("name", ["w.zarr", "w.txt", "w"])
def test_weights_and_grid_files_must_be_netcdf(tmp_path, cmd, name):
    _user_error([*cmd, "-o", tmp_path / name], "are NetCDF files", "w.nc")
    assert not (tmp_path / name).exists()


# -- 4. categorical maps and empty results -------------------------------------------------------


@pytest.mark.parametrize("attrs, dtype, shown", [
    ({"flag_values": np.array([1, 2, 3], np.uint8), "flag_meanings": "a b c"}, np.uint8, "flag_values 1 2 3"),
    ({"flag_masks": np.array([1, 2, 4], np.uint8)}, np.uint8, "flag_masks"),
    ({"flag_meanings": "a b c"}, np.int16, "integer codes with flag_meanings"),
    ({"flag_values": [1, 2, 3]}, np.float32, "flag_values 1 2 3"),
])
def test_mean_of_a_categorical_map_is_refused(tmp_path, attrs, dtype, shown):
    da = _field()
    da = da.copy(data=(da.values * 3).astype(dtype) + 1)
    da.attrs.update(attrs)
    for fn in (conservative_mean, subgrid_stats):
        with pytest.raises(InputDataError, match="is categorical") as err:
            fn(da, "30deg", name="lc.nc")
        assert shown in str(err.value) and "--method fractions or majority" in str(err.value)
    src = tmp_path / "lc.nc"
    da.to_dataset().to_netcdf(src)
    for method in ("mean", "std"):
        _user_error(["aggregate", src, "--var", "x", "--grid", "30deg", "--method", method, "-o", tmp_path / "o.nc"],
                    f"x of {src} is categorical", "use --method fractions or majority")
    assert conservative_mean(da.copy(data=da.values.astype(np.int16)).drop_attrs(), "30deg").notnull().all()


@pytest.mark.parametrize("method", ["mean", "std", "fractions", "majority"])
def test_all_nan_input_warns(tmp_path, method):
    da = _field() * np.nan
    if method in ("fractions", "majority"):
        da.attrs.update(flag_values=[1, 2])
    src = tmp_path / "nan.nc"
    da.to_dataset().to_netcdf(src)
    res = runner.invoke(app, ["aggregate", str(src), "--var", "x", "--grid", "30deg", "--method", method,
                              "-o", str(tmp_path / "o.nc")])
    assert res.exit_code == 0, res.output
    assert "warning: every cell of the output is empty" in " ".join(res.output.split())
    good = tmp_path / "good.nc"
    _field().to_dataset().to_netcdf(good)
    res = runner.invoke(app, ["aggregate", str(good), "--var", "x", "--grid", "30deg", "-o", str(tmp_path / "g.nc")])
    assert res.exit_code == 0 and "warning" not in res.output


# -- 5. --select -----------------------------------------------------------------------------------


@pytest.fixture
def stack(tmp_path):
    base = _field()
    t = np.array(["2019-01-01", "2019-02-01", "2019-03-01"], dtype="datetime64[ns]")
    codes = np.stack([(base.values * 3).astype(np.uint8) + 1 + k % 2 for k in range(3)])[None]
    codes = np.concatenate([codes, codes])
    ds = xr.Dataset({"lc": (("scenario", "time", "lat", "lon"), codes,
                            {"flag_values": np.array([1, 2, 3, 4], np.uint8), "flag_meanings": "a b c d"}),
                     "lai": (("scenario", "time", "lat", "lon"), codes.astype(float))},
                    coords={"scenario": ["ssp126", "ssp585"], "time": t, "lat": base.lat, "lon": base.lon})
    path = tmp_path / "stack.nc"
    ds.to_netcdf(path)
    return path


def test_select_picks_one_field(tmp_path, stack):
    out = tmp_path / "f.nc"
    res = runner.invoke(app, ["aggregate", str(stack), "--var", "lc", "--grid", "30deg", "--method", "fractions",
                              "--select", "time=2019-02-01", "--select", "scenario[1]", "-o", str(out)])
    assert res.exit_code == 0, res.output
    ds = xr.open_dataset(out)
    assert ds.lc_fraction.dims == ("class", "lat", "lon")
    assert str(ds["time"].values)[:10] == "2019-02-01" and ds["scenario"].item() == "ssp585"
    ref = class_fractions(xr.open_dataset(stack)["lc"].isel(scenario=1, time=1), "30deg")
    np.testing.assert_allclose(ds.lc_fraction.values, ref.values)
    # a month as a shorter date, a negative position; the mean keeps the other dimension
    res = runner.invoke(app, ["aggregate", str(stack), "--var", "lai", "--grid", "30deg", "--select", "time=2019-03",
                              "-o", str(tmp_path / "m.nc")])
    assert res.exit_code == 0, res.output
    assert xr.open_dataset(tmp_path / "m.nc").lai.dims == ("scenario", "lat", "lon")
    res = runner.invoke(app, ["aggregate", str(stack), "--var", "lai", "--grid", "30deg", "--select", "time[-1]",
                              "-o", str(tmp_path / "m2.nc")])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("select, expected", [
    ([], "add --select scenario=ssp126 --select time=2019-01-01"),
    (["--select", "time=2019-01-01"], "add --select scenario=ssp126"),
    (["--select", "time=2020-01-01"], "--select time=2020-01-01: '2020-01-01' matches no time values"),
    (["--select", "time=2019"], "matches 3 time values"),
    (["--select", "level=850"], "has no dimension 'level'"),
    (["--select", "lat=5"], "'lat' is a grid dimension"),
    (["--select", "time[7]"], "time has 3 positions (0..2)"),
    (["--select", "time"], "write DIM=VALUE"),
    (["--select", "time[0]", "--select", "time[1]"], "selected twice"),
    (["--select", "scenario=ssp999"], "matches no scenario values"),
])
def test_select_errors_name_the_option(tmp_path, stack, select, expected):
    text = _user_error(["aggregate", stack, "--var", "lc", "--grid", "30deg", "--method", "majority", *select,
                        "-o", tmp_path / "o.nc"], expected)
    assert "isel" not in text and not (tmp_path / "o.nc").exists()


def test_library_message_keeps_a_python_hint(stack):
    da = xr.open_dataset(stack)["lc"]
    with pytest.raises(InputDataError, match=r"--select scenario=VALUE.*da.isel\(scenario=0\)"):
        class_fractions(da, "30deg")
    with pytest.raises(ConfigError, match="matches no"):
        from pipeline.aggregate import select_fields

        select_fields(da, ["scenario=x"])
