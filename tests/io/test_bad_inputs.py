"""Hostile inputs: corrupt and missing chunks, truncated files, foreign encodings, odd attributes and names.

Every case is a user error: :class:`InputDataError` (or :class:`ConfigError`) with one message
naming the file, the variable and the fix; through the command line exit 2, one line, no traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import netCDF4
import numcodecs
import numpy as np
import pytest
import xarray as xr
import zarr
from typer.testing import CliRunner
from zarr.codecs import BloscCodec, GzipCodec

from pipeline import io as tio
from pipeline.cli import app
from pipeline.errors import ConfigError, InputDataError
from pipeline.io.integrity import COMPLETE_MARKER, IncompleteStoreWarning, missing_chunks, netcdf_expected_size
from tests.helpers.sample_grids import make_grid_dataset

runner = CliRunner()


def _one_line_error(res, *needles: str) -> str:
    """The CLI ended with exit 2 and one ``error:`` line holding every needle, without a traceback."""
    assert res.exit_code == 2, (res.output, res.exception)
    assert isinstance(res.exception, SystemExit), repr(res.exception)
    out = res.output.strip()
    assert "Traceback" not in out
    line = out.splitlines()[-1]
    assert line.startswith("error:"), out
    for n in needles:
        assert n in line, (n, line)
    return line


def _chunk_files(store: Path, var: str) -> list[Path]:
    skip = {"zarr.json", ".zarray", ".zattrs"}
    return sorted(p for p in (store / var).rglob("*") if p.is_file() and p.name not in skip)


# -- corrupt chunks ------------------------------------------------------------------------------

# (zarr format, create_array options, expected key of chunk (1, 0, 0) of lai)
LAYOUTS = {
    "v2-blosc": (2, {"compressors": numcodecs.Blosc()}, "lai/1.0.0"),
    "v2-zlib-nested": (2, {"compressors": numcodecs.Zlib(), "chunk_key_encoding": {"name": "v2", "separator": "/"}},
                       "lai/1/0/0"),
    "v3-zstd": (3, {}, "lai/c/1/0/0"),
    "v3-blosc-dot": (3, {"compressors": BloscCodec(), "chunk_key_encoding": {"name": "default", "separator": "."}},
                     "lai/c.1.0.0"),
    "v3-gzip-v2keys": (3, {"compressors": GzipCodec(), "chunk_key_encoding": {"name": "v2", "separator": "."}},
                       "lai/1.0.0"),
    "v3-sharded": (3, {"shards": (1, 6, 8), "chunks": (1, 3, 4)}, "lai/c/1/0/0"),
}


def _store(tmp_path: Path, layout: str, ds: xr.Dataset | None = None) -> Path:
    """The grid dataset as a store of ``layout``, each variable in one chunk per time step."""
    ds = ds if ds is not None else make_grid_dataset()
    fmt, opts, _ = LAYOUTS[layout]
    path = tmp_path / f"{layout}.zarr"
    group = zarr.open_group(path, mode="w", zarr_format=fmt)
    group.attrs.update({})
    for name, var in ds.variables.items():
        values = np.asarray(var.values)
        if values.dtype.kind == "M":
            continue  # time as xarray encodes it: written by xarray below
        kw = dict(opts)
        if var.ndim == 3:
            kw.setdefault("chunks", (1, *values.shape[1:]))
        else:
            kw = {k: v for k, v in kw.items() if k not in ("shards", "chunks")}
        arr = group.create_array(name, shape=values.shape, dtype=values.dtype, fill_value=np.nan
                                 if values.dtype.kind == "f" else 0, dimension_names=var.dims if fmt == 3 else None,
                                 **kw)
        arr[...] = values
        attrs = dict(var.attrs)
        if fmt == 2:
            attrs["_ARRAY_DIMENSIONS"] = list(var.dims)
        arr.attrs.update(attrs)
    if fmt == 2:
        zarr.consolidate_metadata(path)
    return path


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("damage", ["random", "empty", "half"])
def test_corrupt_chunk_names_store_variable_and_chunk(tmp_path, layout, damage):
    if layout == "v3-blosc-dot" and damage == "half":
        pytest.skip("Blosc decodes a cut chunk of incompressible data without an error: nothing to detect")
    store = _store(tmp_path, layout)
    key = LAYOUTS[layout][2]
    chunk = store / key
    good = chunk.read_bytes()
    rng = np.random.default_rng(len(key))
    chunk.write_bytes({"random": rng.bytes(300), "empty": b"", "half": good[: len(good) // 2]}[damage])
    if layout == "v3-sharded" and damage == "empty":  # an empty shard reads as fill values: it counts as missing
        assert missing_chunks(store)["lai"] == (1, [key])
        return
    for chunks in ("auto", None):  # through dask's chunk reads and through read_values
        ds = tio.open_dataset(store, chunks=chunks)
        with pytest.raises(InputDataError) as err:
            tio.read_values(ds["lai"]) if chunks is None else ds["lai"].values
        msg = str(err.value)
        assert str(store) in msg and "variable 'lai'" in msg and key in msg, msg
        assert "time 1:2" in msg and "corrupt" in msg and "re-create" in msg, msg
    # the other variable and the other time steps still read
    np.testing.assert_array_equal(tio.open_dataset(store)["tas"].values, make_grid_dataset()["tas"].values)
    assert np.isfinite(tio.open_dataset(store, chunks={})["lai"].isel(time=0).values[1:]).all()


def test_reading_block_and_read_values_region(tmp_path):
    store = _store(tmp_path, "v3-zstd")
    (store / "lai/c/2/0/0").write_bytes(b"\x00" * 50)
    ds = tio.open_dataset(store, chunks=None)
    with pytest.raises(InputDataError, match=r"chunk lai/c/2/0/0 \(time 2:3, lat 0:6, lon 0:8\)"):
        tio.read_values(ds["lai"].isel(time=slice(1, 3)), region={"time": (1, 3)})
    with pytest.raises(InputDataError, match=r"variable 'lai': chunk lai/c/2/0/0"):
        with tio.reading(store, "lai"):
            np.asarray(ds["lai"].values)
    # a numpy array is returned as is (no copy), a dask array computed
    a = np.arange(4.0)
    assert tio.read_values(a, source="x") is a
    assert np.array_equal(tio.read_values(xr.DataArray(a).chunk(2)), a)


def test_decode_errors_of_every_kind_become_input_errors(tmp_path):
    for exc in (RuntimeError("error during blosc decompression: -1"), SystemError("Negative size"), EOFError("eof"),
                ValueError("cannot reshape"), OSError("Not a gzipped file"), __import__("zlib").error("-3")):
        with pytest.raises(InputDataError, match=r"x.nc: variable 'v' cannot be read \(block lat 3:6\)"):
            with tio.reading("x.nc", "v", region={"lat": (3, 6)}):
                raise exc
    with pytest.raises(TypeError):  # not a decode error: a bug keeps its traceback
        with tio.reading("x.nc", "v"):
            raise TypeError("bug")


def _corrupt_hdf5_chunk(path: Path, var: str, index: int) -> None:
    import h5py

    with h5py.File(path, "r") as f:
        info = f[var].id.get_chunk_info(index)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset)
        fh.write(b"\xff" * info.size)


def test_corrupt_netcdf4_chunk_names_file_variable_and_chunk(tmp_path):
    ds = make_grid_dataset()
    path = tmp_path / "chunked.nc"
    ds.to_netcdf(path, encoding={v: {"zlib": True, "chunksizes": (1, 3, 8)} for v in ("lai", "tas")})
    _corrupt_hdf5_chunk(path, "tas", 3)  # time 1, lat 3:6
    for chunks in ("auto", None):
        opened = tio.open_dataset(path, chunks=chunks)
        with pytest.raises(InputDataError) as err:
            tio.read_values(opened["tas"])
        msg = str(err.value)
        assert str(path) in msg and "variable 'tas'" in msg and "(time 1:2, lat 3:6, lon 0:8)" in msg, msg
        assert "HDF5 chunk" in msg and "re-download or re-create" in msg, msg
    np.testing.assert_array_equal(tio.open_dataset(path)["lai"].values, ds["lai"].values)


def test_corrupt_chunk_cli_validate_and_aggregate(tmp_path):
    store = _store(tmp_path, "v2-blosc")
    (store / "lai/1.0.0").write_bytes(np.random.default_rng(1).bytes(200))
    _one_line_error(runner.invoke(app, ["validate", str(store)]), "variable 'lai'", "lai/1.0.0", "corrupt")
    res = runner.invoke(app, ["aggregate", str(store), "-v", "lai", "-g", "2deg", "-o", str(tmp_path / "o.nc")])
    _one_line_error(res, str(store), "variable 'lai'", "lai/1.0.0", "re-create")
    assert not (tmp_path / "o.nc").exists()


def test_corrupt_coordinate_chunk_is_named_at_open(tmp_path):
    store = _store(tmp_path, "v3-zstd")
    (store / "lat/c/0").write_bytes(b"garbage!")
    with pytest.raises(InputDataError, match=r"variable 'lat': chunk lat/c/0 \(lat 0:6\) cannot be decoded"):
        tio.open_dataset(store)


def test_corrupt_chunk_cli_features(tmp_path):
    import yaml

    from tests.helpers.feature_stores import write_synthetic_stores

    root = tmp_path / "stores"
    write_synthetic_stores(root, years=(2001, 2001), scenarios=("ssp126",))
    cfg = {"run_name": "t", "backend": "cpu", "data": {"source": "stores", "root": str(root), "years": "2001:2001",
                                                       "scenarios": ["ssp126"]},
           "splits": {"kind": "spatial", "block_size_deg": 0.5, "n_folds": 3},
           "features": {"partition_rows": 20000}, "output": {"root": str(tmp_path / "runs")}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    for store, var in (("lai.zarr", "lai"), ("climate.zarr", "pr"), ("static.zarr", "distance_to_coast")):
        chunk = _chunk_files(root / store, var)[-1]
        good = chunk.read_bytes()
        chunk.write_bytes(good[:7])
        res = runner.invoke(app, ["features", str(tmp_path / "c.yaml")])
        key = chunk.relative_to(root / store).as_posix()
        _one_line_error(res, str(root / store), f"variable '{var}'", key, "corrupt")
        chunk.write_bytes(good)


# -- missing chunks ------------------------------------------------------------------------------


def test_missing_chunk_of_a_terrascale_store_is_refused(tmp_path):
    ds = make_grid_dataset().chunk({"time": 1})
    store = tio.write(ds, tmp_path / "out.zarr")
    assert (store / COMPLETE_MARKER).is_file()
    assert missing_chunks(store) == {}
    for var, key in (("lai", "lai/c/2/0/0"), ("tas", "tas/c/0/0/0"), ("lat", "lat/c/0")):
        shutil.copytree(store, tmp_path / "copy.zarr")
        (tmp_path / "copy.zarr" / key).unlink()
        with pytest.raises(InputDataError) as err:
            tio.open_dataset(tmp_path / "copy.zarr")
        msg = str(err.value)
        assert f"variable '{var}' lacks 1 of its" in msg and key in msg and "incomplete" in msg, msg
        assert "--allow-missing-chunks" in msg
        shutil.rmtree(tmp_path / "copy.zarr")


def test_terrascale_writes_all_fill_chunks(tmp_path):
    ds = make_grid_dataset().chunk({"time": 1})
    ds["lai"][1] = np.nan  # a chunk of fill values only
    ds["time_index"] = ("time", np.zeros(3, np.int32))  # zeros: zarr's default fill value
    store = tio.write(ds, tmp_path / "fill.zarr")
    assert missing_chunks(store) == {}
    assert np.isnan(tio.open_dataset(store)["lai"].isel(time=1).values).all()


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_missing_chunk_of_any_layout_is_found(tmp_path, layout):
    store = _store(tmp_path, layout)
    key = LAYOUTS[layout][2]
    assert missing_chunks(store) == {}
    (store / key).unlink()
    _chunk_files(store, "tas")[0].unlink()
    gone = missing_chunks(store)
    assert gone["lai"] == (1, [key]) and gone["tas"][0] == 1 and set(gone) == {"lai", "tas"}
    # not written by terrascale: maybe skipped on purpose (all fill values) -> a warning naming them
    with pytest.warns(IncompleteStoreWarning, match=key):
        tio.open_dataset(store)
    with pytest.raises(InputDataError, match=f"variable 'lai' lacks 1 of its 3 chunks \\({key}\\)"):
        tio.open_dataset(store, missing_chunks="error")
    with warnings.catch_warnings():
        warnings.simplefilter("error", IncompleteStoreWarning)
        tio.open_dataset(store, missing_chunks="allow")


def test_missing_chunk_cli(tmp_path):
    store = tio.write(make_grid_dataset().chunk({"time": 1}), tmp_path / "in.zarr")
    (store / "lai/c/1/0/0").unlink()
    for args in (["validate", str(store)], ["aggregate", str(store), "-v", "lai", "-g", "2deg", "-o",
                                            str(tmp_path / "a.nc")]):
        _one_line_error(runner.invoke(app, args), str(store), "variable 'lai'", "lai/c/1/0/0")
    # a complete copy, the missing chunk read as fill values, listed as a note
    res = runner.invoke(app, ["validate", str(store), "--allow-missing-chunks", "-o", str(tmp_path / "full.zarr")])
    assert res.exit_code == 0, res.output
    assert "lai/c/1/0/0" in res.output and "missing chunk" in res.output
    full = tio.open_dataset(tmp_path / "full.zarr", missing_chunks="error")
    assert np.isnan(full["lai"].isel(time=1).values).all()


def test_missing_chunk_of_foreign_store_is_a_validate_note(tmp_path):
    store = _store(tmp_path, "v3-zstd")
    (store / "lai/c/2/0/0").unlink()
    res = runner.invoke(app, ["validate", str(store)])
    assert res.exit_code == 0, res.output
    assert "note:" in res.output and "lai/c/2/0/0" in res.output and "fill values" in res.output


# -- truncated NetCDF ------------------------------------------------------------------------------


def _classic(path: Path, fmt: str, unlimited: bool) -> Path:
    with netCDF4.Dataset(path, "w", format=fmt) as nc:
        nc.createDimension("time", None if unlimited else 4)
        nc.createDimension("lat", 5)
        nc.createDimension("lon", 7)
        lat = nc.createVariable("lat", "f8", ("lat",))
        lat[:] = np.arange(5) + 0.5
        lat.units = "degrees_north"
        lon = nc.createVariable("lon", "f4", ("lon",))
        lon[:] = np.arange(7) + 0.5
        lon.units = "degrees_east"
        nc.title = "x" * 13
        for name, t in (("lai", "f4"), ("code", "i1"), ("count", "i2")):
            v = nc.createVariable(name, t, ("time", "lat", "lon"))
            v[:] = np.ones((4, 5, 7))
            v.note = "y" * 5
    return path


NC_KINDS = [(f, u) for f in ("NETCDF3_CLASSIC", "NETCDF3_64BIT_OFFSET", "NETCDF3_64BIT_DATA") for u in (False, True)]


@pytest.mark.parametrize("fmt, unlimited", NC_KINDS)
def test_netcdf3_header_size_is_exact_and_truncation_found(tmp_path, fmt, unlimited):
    path = _classic(tmp_path / "f.nc", fmt, unlimited)
    size = path.stat().st_size
    expected, why = netcdf_expected_size(path)
    assert why == "" and 0 <= size - expected < 4  # at most the padding after the last value
    tio.open_dataset(path)  # a whole file opens
    data = path.read_bytes()
    for cut in (expected - 1, expected // 2, 60, 10):
        cut_path = tmp_path / f"cut{cut}.nc"
        cut_path.write_bytes(data[:cut])
        with pytest.raises(InputDataError, match=rf"cut{cut}.nc is truncated: {cut} bytes, (its header implies "
                                                 rf"{expected}|cut inside its header).*re-download or re-create"):
            tio.open_dataset(cut_path)


def test_single_record_variable_and_hdf5_sizes(tmp_path):
    with netCDF4.Dataset(tmp_path / "one.nc", "w", format="NETCDF3_CLASSIC") as nc:
        nc.createDimension("t", None)
        nc.createDimension("x", 3)
        nc.createVariable("v", "i2", ("t", "x"))[:] = np.ones((5, 3))  # records not padded
    assert netcdf_expected_size(tmp_path / "one.nc")[0] == (tmp_path / "one.nc").stat().st_size
    make_grid_dataset().to_netcdf(tmp_path / "n4.nc")
    size = (tmp_path / "n4.nc").stat().st_size
    assert netcdf_expected_size(tmp_path / "n4.nc") == (size, "")
    (tmp_path / "n4cut.nc").write_bytes((tmp_path / "n4.nc").read_bytes()[: size - 100])
    with pytest.raises(InputDataError, match=rf"n4cut.nc is truncated: {size - 100} bytes, its header implies {size}"):
        tio.open_dataset(tmp_path / "n4cut.nc")


def test_truncation_wins_over_unsorted_coordinates(tmp_path, grid_dataset):
    path = tmp_path / "c3.nc"
    grid_dataset.to_netcdf(path, format="NETCDF3_CLASSIC")
    data = path.read_bytes()
    (tmp_path / "t.nc").write_bytes(data[: len(data) // 2])  # lat/lon read as zeros past the end
    _one_line_error(runner.invoke(app, ["validate", str(tmp_path / "t.nc")]), "is truncated", "header implies")
    res = runner.invoke(app, ["aggregate", str(tmp_path / "t.nc"), "-v", "lai", "-g", "2deg", "-o",
                              str(tmp_path / "o.nc")])
    line = _one_line_error(res, "is truncated")
    assert "monotonic" not in line and "sort" not in line


def test_truncated_weights_or_grid_file(tmp_path, grid_dataset):
    path = tmp_path / "grid.nc"
    grid_dataset.to_netcdf(path, format="NETCDF3_64BIT")
    (tmp_path / "cut.nc").write_bytes(path.read_bytes()[:500])
    with pytest.raises(InputDataError, match=r"weights file: .*cut.nc is truncated: 500 bytes"):
        tio.open_netcdf(tmp_path / "cut.nc", "weights file")


# -- encodings on write ------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["v2-blosc", "v2-zlib-nested", "v3-sharded", "v3-blosc-dot", "netcdf4-zlib",
                                    "netcdf3"])
@pytest.mark.parametrize("suffix", [".zarr", ".nc"])
def test_write_takes_any_input_encoding(tmp_path, source, suffix):
    ref = make_grid_dataset()
    if source.startswith("netcdf"):
        src = tmp_path / "in.nc"
        if source == "netcdf3":
            ref.to_netcdf(src, format="NETCDF3_CLASSIC")
        else:
            ref.to_netcdf(src, encoding={"lai": {"zlib": True, "complevel": 4, "chunksizes": (1, 6, 8)}})
    else:
        src = _store(tmp_path, source, ref)
    ds = tio.open_dataset(src)
    out = tio.write(ds, tmp_path / f"out{suffix}")
    back = tio.open_dataset(out)
    np.testing.assert_array_equal(back["lai"].values, ref["lai"].values)
    np.testing.assert_array_equal(back["tas"].values, ref["tas"].values)
    assert ds["lai"].encoding  # the caller's dataset keeps its encoding


def test_writable_encoding_keeps_only_what_the_format_takes():
    enc = {"compressor": numcodecs.Blosc(), "compressors": (numcodecs.Blosc(),), "filters": None, "zlib": True,
           "complevel": 4, "chunksizes": (1, 2), "chunks": (1, 2), "preferred_chunks": {"a": 1}, "shards": None,
           "dimension_separator": "/", "serializer": None, "chunk_key_encoding": {"name": "v2"}, "_FillValue": -1,
           "dtype": "int16", "scale_factor": 0.1, "add_offset": 1.0, "units": "days since 2000-01-01",
           "calendar": "noleap", "source": "x.nc", "original_shape": (1, 2)}
    cf = {"_FillValue", "dtype", "scale_factor", "add_offset", "units", "calendar"}
    assert set(tio.writable_encoding(enc, "netcdf")) == cf | {"zlib", "complevel", "chunksizes", "original_shape"}
    assert set(tio.writable_encoding(enc, "zarr", inherited=True)) == cf
    assert set(tio.writable_encoding(enc, "zarr")) == cf | {"compressors", "filters", "chunks", "shards",
                                                             "serializer", "chunk_key_encoding"}


def test_write_drops_netcdf_keys_given_for_zarr(tmp_path, grid_dataset):
    out = tio.write(grid_dataset, tmp_path / "o.zarr", encoding={"lai": {"zlib": True, "complevel": 5,
                                                                         "dtype": "float32"}})
    assert tio.open_dataset(out)["lai"].dtype == np.float32


# -- attributes, groups, names -----------------------------------------------------------------------


def _packed(path: Path, key: str, value) -> Path:
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("lat", 3)
        nc.createDimension("lon", 4)
        for name, vals, units in (("lat", [1.0, 2.0, 3.0], "degrees_north"), ("lon", [1.0, 2.0, 3.0, 4.0],
                                                                              "degrees_east")):
            v = nc.createVariable(name, "f8", (name,))
            v[:] = vals
            v.units = units
        v = nc.createVariable("lai", "i2", ("lat", "lon"))
        v.set_auto_maskandscale(False)
        v[:] = np.arange(12).reshape(3, 4)
        v.setncattr_string(key, value) if isinstance(value, str) else v.setncattr(key, value)
    return path


@pytest.mark.parametrize("key", ["scale_factor", "add_offset", "missing_value"])
@pytest.mark.parametrize("value", ["0.1", "abc"])
def test_text_packing_attribute_of_netcdf(tmp_path, key, value):
    path = _packed(tmp_path / "p.nc", key, value)
    for chunks in ("auto", None):
        with pytest.raises(InputDataError) as err:
            tio.open_dataset(path, chunks=chunks)
        msg = str(err.value)
        assert f"variable 'lai' has {key} '{value}' stored as text" in msg and "ncatted -O -a" in msg, msg
    number = "0.1" if value == "0.1" else "NUMBER"
    assert f"{key},lai,o," in msg and f",{number} " in msg
    _one_line_error(runner.invoke(app, ["aggregate", str(path), "-v", "lai", "-g", "2deg", "-o",
                                        str(tmp_path / "o.nc")]), "stored as text")
    with pytest.raises(InputDataError, match="stored as text"):
        tio.validate_dataset(xr.open_dataset(path, chunks=None), source="p.nc")


def test_numeric_packing_attributes_pass(tmp_path):
    path = _packed(tmp_path / "ok.nc", "scale_factor", np.float32(0.5))
    np.testing.assert_allclose(tio.open_dataset(path)["lai"].values, 0.5 * np.arange(12).reshape(3, 4))


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("key, value", [("_FillValue", "-999"), ("scale_factor", "0.1"), ("add_offset", "x"),
                                        ("missing_value", "-1")])
def test_text_packing_attribute_of_zarr(tmp_path, fmt, key, value):
    store = tmp_path / "s.zarr"
    make_grid_dataset().to_zarr(store, zarr_format=fmt, consolidated=False)
    meta = store / "lai" / (".zattrs" if fmt == 2 else "zarr.json")
    doc = json.loads(meta.read_text())
    (doc if fmt == 2 else doc["attributes"])[key] = value
    meta.write_text(json.dumps(doc))
    if fmt == 2 and key == "_FillValue":
        tio.open_dataset(store)  # v2 keeps its fill value in .zarray: the attribute is not used
        return
    with pytest.raises(InputDataError, match=rf"variable 'lai' has {key} '{value}' stored as text"):
        tio.open_dataset(store)


@pytest.mark.parametrize("dim", ["lat", "lon"])
def test_zero_length_lat_or_lon(tmp_path, grid_dataset, dim):
    path = tmp_path / "empty.nc"
    grid_dataset.isel({dim: slice(0, 0)}).to_netcdf(path)
    what = "latitude" if dim == "lat" else "longitude"
    with pytest.raises(InputDataError, match=rf"empty.nc: {what} '{dim}' has no values \(a zero-length dimension\)"):
        tio.open_dataset(path)
    res = tio.validate_dataset(grid_dataset.isel({dim: slice(0, 0)}), source="e.nc")
    assert res.problems and "zero-length" in res.problems[0]
    _one_line_error(runner.invoke(app, ["aggregate", str(path), "-v", "lai", "-g", "2deg", "-o",
                                        str(tmp_path / "o.nc")]), "zero-length")


def test_data_in_netcdf_groups(tmp_path, grid_dataset):
    path = tmp_path / "groups.nc"
    grid_dataset.to_netcdf(path, group="land")
    grid_dataset.to_netcdf(path, group="sea/ice", mode="a")
    for args in (["validate", str(path)], ["aggregate", str(path), "-v", "lai", "-g", "2deg", "-o",
                                           str(tmp_path / "o.nc")]):
        line = _one_line_error(runner.invoke(app, args), "data are in group(s) land, sea/ice",
                               f"ncks -G : -g land {path}", "group='land'")
        assert "no latitude" not in line


def test_data_in_zarr_group(tmp_path, grid_dataset):
    store = tmp_path / "g.zarr"
    grid_dataset.to_zarr(store, group="land", consolidated=False)
    with pytest.raises(InputDataError, match=r"data are in group\(s\) land.*group='land'"):
        tio.open_dataset(store)


def test_curvilinear_grid_says_so(tmp_path, grid_dataset):
    y, x = np.meshgrid(np.arange(6.0), np.arange(8.0), indexing="ij")
    cur = xr.Dataset(
        {"lai": (("time", "y", "x"), grid_dataset["lai"].values, {"units": "m2 m-2"})},
        coords={"nav_lat": (("y", "x"), 40 + y + 0.1 * x, {"standard_name": "latitude", "units": "degrees_north"}),
                "nav_lon": (("y", "x"), -5 + x + 0.1 * y, {"standard_name": "longitude", "units": "degrees_east"}),
                "time": grid_dataset["time"]})
    path = tmp_path / "curv.nc"
    cur.to_netcdf(path)
    for args in (["validate", str(path)], ["aggregate", str(path), "-v", "lai", "-g", "2deg", "-o",
                                           str(tmp_path / "o.nc")]):
        line = _one_line_error(runner.invoke(app, args), "curvilinear", "cdo remapbil")
        assert "rename" not in line and "name them" not in line
    res = tio.validate_dataset(cur, source="curv.nc")
    assert any("curvilinear" in p for p in res.problems)


@pytest.mark.parametrize("name", ["lai[2001].nc", "lai[1-3].nc", "a*b?.nc"])
def test_existing_name_with_glob_characters_is_opened_as_named(tmp_path, grid_dataset, name):
    path = tmp_path / name
    grid_dataset.to_netcdf(path)
    (tmp_path / "lai2.nc").write_bytes(b"not netcdf")  # what the pattern lai[1-3].nc would match
    ds = tio.open_dataset(path)
    np.testing.assert_array_equal(ds["lai"].values, grid_dataset["lai"].values)
    res = runner.invoke(app, ["validate", str(path)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["aggregate", str(path), "-v", "lai", "-g", "2deg", "-o", str(tmp_path / "o[1].nc")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o[1].nc").is_file()
    # the output may not be the input, even when its name looks like a pattern
    res = runner.invoke(app, ["validate", str(path), "-o", str(path)])
    assert res.exit_code == 2 and path.read_bytes()[:3] in (b"CDF", b"\x89HD")


def test_glob_still_expands_when_no_such_file(tmp_path, grid_dataset):
    for i in range(2):
        grid_dataset.isel(time=[i]).to_netcdf(tmp_path / f"part{i}.nc")
    assert tio.open_dataset(tmp_path / "part[0-1].nc").sizes["time"] == 2


@pytest.mark.parametrize("value", ["-1", "1.5", "nan", "-0.01"])
def test_max_nan_fraction_out_of_range(netcdf_file, value):
    line = _one_line_error(runner.invoke(app, ["validate", str(netcdf_file), "--max-nan-fraction", value]),
                           "--max-nan-fraction must be a fraction between 0 and 1")
    assert str(netcdf_file) not in line
    with pytest.raises(ConfigError):
        tio.validate_dataset(make_grid_dataset(), max_nan_fraction=float(value))


@pytest.mark.parametrize("value", ["0", "1", "0.5"])
def test_max_nan_fraction_in_range(netcdf_file, value):
    res = runner.invoke(app, ["validate", str(netcdf_file), "--max-nan-fraction", value, "--var", "tas"])
    assert res.exit_code == 0, res.output


def test_config_on_a_directory(tmp_path):
    (tmp_path / "cfg.yaml").mkdir()
    for path in (tmp_path, tmp_path / "cfg.yaml"):
        line = _one_line_error(runner.invoke(app, ["config", str(path)]), "is a directory", "YAML config")
        assert "does not exist" not in line


def test_missing_config_still_says_so(tmp_path):
    _one_line_error(runner.invoke(app, ["config", str(tmp_path / "none.yaml")]), "does not exist")


def test_permission_denied_is_a_clear_error(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads everything")
    store = _store(tmp_path, "v3-zstd")
    (store / "lai/c/1/0/0").chmod(0)
    with pytest.raises(InputDataError, match="read permission"):
        tio.open_dataset(store)["lai"].values
