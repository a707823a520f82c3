"""Opening NetCDF/Zarr lazily, atomic writes, provenance attributes, and unreadable inputs."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from pipeline import __version__
from pipeline import io as tio
from pipeline.errors import InputDataError


def test_open_netcdf_is_lazy(netcdf_file, grid_dataset):
    ds = tio.open_dataset(netcdf_file)
    assert hasattr(ds["lai"].data, "dask")
    xr.testing.assert_identical(ds["lai"].load(), grid_dataset["lai"].load())


def test_open_zarr_v2_and_v3(zarr_store, grid_dataset):
    ds = tio.open_dataset(zarr_store)
    assert hasattr(ds["tas"].data, "dask")
    np.testing.assert_array_equal(ds["tas"].values, grid_dataset["tas"].values)


def test_open_glob_of_netcdf(tmp_path, grid_dataset):
    for i in range(3):
        grid_dataset.isel(time=[i]).to_netcdf(tmp_path / f"part_{i}.nc")
    ds = tio.open_dataset(tmp_path / "part_*.nc")
    assert ds.sizes["time"] == 3
    np.testing.assert_array_equal(ds["lai"].values, grid_dataset["lai"].values)


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_write_round_trip_with_provenance(tmp_path, grid_dataset, suffix):
    path = tio.write(grid_dataset, tmp_path / f"out{suffix}", config_sha256="abc123", history="unit test")
    back = tio.open_dataset(path)
    np.testing.assert_array_equal(back["lai"].values, grid_dataset["lai"].values)
    assert back.attrs["Conventions"] == "CF-1.10"
    assert back.attrs["terrascale_version"] == __version__
    assert back.attrs["config_sha256"] == "abc123"
    assert back.attrs["history"].endswith("unit test")
    assert "date_created" in back.attrs and back.attrs["source"]
    assert not list(tmp_path.glob(".out*"))  # no temporary sibling left behind


def test_history_is_prepended(tmp_path, grid_dataset):
    first = tio.write(grid_dataset, tmp_path / "a.nc", history="step one")
    second = tio.write(tio.open_dataset(first).load(), tmp_path / "b.nc", history="step two")
    lines = xr.open_dataset(second).attrs["history"].splitlines()
    assert lines[0].endswith("step two") and lines[1].endswith("step one")


def test_overwrite_existing_zarr(tmp_path, grid_dataset):
    path = tmp_path / "x.zarr"
    tio.write(grid_dataset, path)
    tio.write(grid_dataset * 2, path)
    np.testing.assert_allclose(tio.open_dataset(path)["tas"].values, 2 * grid_dataset["tas"].values)


def test_failed_write_leaves_nothing(tmp_path, grid_dataset):
    bad = grid_dataset.copy()
    bad["obj"] = ("lat", np.array([object()] * bad.sizes["lat"]))  # not serialisable
    with pytest.raises((TypeError, ValueError)):
        tio.write(bad, tmp_path / "half.nc")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_output_is_a_clear_error(tmp_path, grid_dataset):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory should be")
    with pytest.raises(InputDataError, match=r"cannot write .*out.nc .*choose a writable output path"):
        tio.write(grid_dataset, blocker / "out.nc")


def test_directory_replace_restores_the_old_output_on_failure(tmp_path):
    old = tmp_path / "store.zarr"
    old.mkdir()
    (old / "marker").write_text("old")
    with pytest.raises(OSError):
        tio.replace_atomically(tmp_path / "missing-tmp", old)
    assert (old / "marker").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["store.zarr"]


def test_missing_path():
    with pytest.raises(InputDataError, match="does not exist"):
        tio.open_dataset("/no/such/file.nc")


def test_not_netcdf_nor_zarr(tmp_path):
    txt = tmp_path / "notes.nc"
    txt.write_text("just text, not a NetCDF file\n")
    with pytest.raises(InputDataError, match="neither NetCDF nor Zarr"):
        tio.open_dataset(txt)


def test_plain_directory_is_not_zarr(tmp_path):
    with pytest.raises(InputDataError, match="not a Zarr store"):
        tio.open_dataset(tmp_path)


def test_truncated_netcdf(tmp_path, netcdf_file):
    data = netcdf_file.read_bytes()
    cut = tmp_path / "cut.nc"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(InputDataError, match=r"cut.nc is truncated: \d+ bytes, its header implies \d+ .*re-download"):
        tio.open_dataset(cut).load()


def test_unknown_output_suffix(tmp_path, grid_dataset):
    with pytest.raises(InputDataError, match="use .nc for NetCDF or .zarr"):
        tio.write(grid_dataset, tmp_path / "out.csv")


def test_empty_glob(tmp_path):
    with pytest.raises(InputDataError, match="no file matches"):
        tio.open_dataset(tmp_path / "*.nc")
