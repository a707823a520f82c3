"""sha256 of files, directories and input stores; verification of a model directory."""

from __future__ import annotations

import hashlib

import pytest

from pipeline.catalog import directory_sha256, file_sha256, input_checksums, verify_files
from pipeline.catalog.checksums import BLOCK_SIZE
from pipeline.errors import InputDataError


def test_file_sha256_streams_past_one_block(tmp_path):
    data = bytes(range(256)) * (BLOCK_SIZE // 256 * 3 + 7)
    f = tmp_path / "big.bin"
    f.write_bytes(data)
    assert len(data) > 2 * BLOCK_SIZE
    assert file_sha256(f) == hashlib.sha256(data).hexdigest()


def _store(path, files):
    for rel, data in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_bytes(data)
    return path


def test_directory_sha256_depends_on_paths_and_bytes_not_on_creation_order(tmp_path):
    files = {".zgroup": b"{}", "lai/.zarray": b"{...}", "lai/0.0": b"\x00\x01", "lai/0.1": b"\x02"}
    a = _store(tmp_path / "a.zarr", files)
    b = _store(tmp_path / "b.zarr", dict(reversed(list(files.items()))))
    assert directory_sha256(a) == directory_sha256(b)
    renamed = _store(tmp_path / "c.zarr", {("lai/1.0" if k == "lai/0.1" else k): v for k, v in files.items()})
    assert directory_sha256(renamed) != directory_sha256(a)
    changed = _store(tmp_path / "d.zarr", dict(files, **{"lai/0.0": b"\x00\x02"}))
    assert directory_sha256(changed) != directory_sha256(a)
    # the framing keeps a byte moved from one file to the next apart
    moved = _store(tmp_path / "e.zarr", dict(files, **{"lai/0.0": b"\x00", "lai/0.1": b"\x01\x02"}))
    assert directory_sha256(moved) != directory_sha256(a)


def test_input_checksums_of_a_store_and_a_file(tmp_path):
    store = _store(tmp_path / "climate.zarr", {"zarr.json": b"{}", "tas/c/0": b"abc"})
    nc = tmp_path / "static.nc"
    nc.write_bytes(b"CDF\x01" + b"\x00" * 100)
    sums = input_checksums({"climate": store, "static": nc})
    assert list(sums) == ["climate", "static"]
    assert sums == {"climate": directory_sha256(store), "static": hashlib.sha256(nc.read_bytes()).hexdigest()}


def test_input_checksums_names_a_missing_input(tmp_path):
    with pytest.raises(InputDataError, match=r"input 'lai': .*nothere.zarr does not exist"):
        input_checksums({"lai": tmp_path / "nothere.zarr"})


def test_verify_files_names_the_changed_missing_or_extra_file(tmp_path):
    d = _store(tmp_path / "m", {"model.json": b"{}", "state.ubj": b"xyz"})
    files = {"model.json": hashlib.sha256(b"{}").hexdigest(), "state.ubj": hashlib.sha256(b"xyz").hexdigest()}
    verify_files(d, files, what="model x")
    (d / "state.ubj").write_bytes(b"xyZ")
    with pytest.raises(InputDataError, match=r"model x: .*state.ubj does not match its recorded sha256"):
        verify_files(d, files, what="model x")
    (d / "state.ubj").unlink()
    with pytest.raises(InputDataError, match=r"state.ubj is missing"):
        verify_files(d, files, what="model x")
    (d / "state.ubj").write_bytes(b"xyz")
    (d / "evil.pkl").write_bytes(b"!")
    with pytest.raises(InputDataError, match=r"evil.pkl is not among the recorded files"):
        verify_files(d, files, what="model x")
    verify_files(d, files, what="model x", strict=False)
    with pytest.raises(InputDataError, match="no file checksums are recorded"):
        verify_files(d, {}, what="model x")
