"""export_model → open_archive: a model, its run manifest and resolved config, every checksum verified."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest

from pipeline.catalog import archive_name, export_model, open_archive, scan
from pipeline.errors import InputDataError
from tests.helpers.catalog_runs import make_run


def _rewrite(archive, out, change):
    """Copy ``archive`` to ``out``, passing each member's (name, bytes) through ``change`` (None drops it)."""
    with tarfile.open(archive) as src, tarfile.open(out, "w:gz") as dst:
        for m in src.getmembers():
            data = src.extractfile(m).read() if m.isfile() else None
            changed = change(m.name, data)
            if changed is None:
                continue
            name, data = changed
            info = tarfile.TarInfo(name)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    return out


@pytest.fixture
def exported(tmp_path):
    run = make_run(tmp_path / "runs", "r1", {"lai": ["xgboost", "ridge"]})
    return run, export_model(run, "lai", "xgboost", tmp_path / "xgb.tar.gz")


def test_export_open_round_trip(exported, tmp_path):
    run, archive = exported
    with tarfile.open(archive) as tar:
        names = sorted(tar.getnames())
    top = archive_name("r1", "lai", "xgboost")
    assert names == sorted(f"{top}/{n}" for n in ("export.json", "manifest.json", "config.resolved.yaml",
                                                 "metrics.csv", "SHA256SUMS", "model/model.json",
                                                 "model/state.ubj", "model/sub/extra.npz"))
    model_dir, manifest = open_archive(archive, tmp_path / "elsewhere")
    assert model_dir == tmp_path / "elsewhere" / top / "model"
    src = run / "models" / "lai" / "xgboost"
    for rel in ("model.json", "state.ubj", "sub/extra.npz"):
        assert (model_dir / rel).read_bytes() == (src / rel).read_bytes()
    assert manifest["run_name"] == "r1" and manifest["models"] == json.loads((run / "manifest.json").read_text())["models"]
    ex = manifest["export"]
    assert (ex["entry"], ex["task"], ex["model"], ex["kind"], ex["family"]) == (
        "r1/lai/xgboost", "lai", "xgboost", "xgboost", "boosting")
    assert ex["exported_at"].endswith("Z") and ex["exported_by"]
    assert open(ex["config_path"]).read() == (run / "config.resolved.yaml").read_text()
    # opening again replaces the earlier extraction
    again, _ = open_archive(archive, tmp_path / "elsewhere")
    assert again == model_dir and (again / "state.ubj").exists()


def test_checksums_file_works_with_sha256sum_format(exported, tmp_path):
    import hashlib

    _, archive = exported
    model_dir, _ = open_archive(archive, tmp_path / "x")
    base = model_dir.parent
    for line in (base / "SHA256SUMS").read_text().splitlines():
        sha, name = line.split("  ", 1)
        assert hashlib.sha256((base / name).read_bytes()).hexdigest() == sha


def test_a_tampered_archive_is_refused_naming_the_file(exported, tmp_path):
    _, archive = exported

    def flip(name, data):
        if name.endswith("model/state.ubj"):
            data = data[:-1] + b"?"
        return name, data

    bad = _rewrite(archive, tmp_path / "bad.tar.gz", flip)
    with pytest.raises(InputDataError, match=r"bad.tar.gz: model/state.ubj does not match its sha256 in SHA256SUMS"):
        open_archive(bad, tmp_path / "out")
    assert not any((tmp_path / "out").iterdir())  # nothing left behind


def test_an_added_or_removed_file_is_refused(exported, tmp_path):
    _, archive = exported
    top = archive_name("r1", "lai", "xgboost")
    dropped = _rewrite(archive, tmp_path / "dropped.tar.gz",
                       lambda n, d: None if n.endswith("sub/extra.npz") else (n, d))
    with pytest.raises(InputDataError, match=r"model/sub/extra.npz is listed in SHA256SUMS but missing"):
        open_archive(dropped, tmp_path / "out")

    def add(name, data):
        return (f"{top}/model/evil.pkl", b"x") if name.endswith("sub/extra.npz") else (name, data)

    added = _rewrite(archive, tmp_path / "added.tar.gz", add)
    with pytest.raises(InputDataError, match=r"model/evil.pkl is not listed in SHA256SUMS"):
        open_archive(added, tmp_path / "out")


def test_unsafe_or_foreign_archives_are_refused(exported, tmp_path):
    _, archive = exported
    escape = _rewrite(archive, tmp_path / "escape.tar.gz",
                      lambda n, d: ("../outside.txt", d) if n.endswith("metrics.csv") else (n, d))
    with pytest.raises(InputDataError, match=r"member '../outside.txt' is not a plain file"):
        open_archive(escape, tmp_path / "out")
    assert not (tmp_path / "outside.txt").exists()
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tar file at all")
    with pytest.raises(InputDataError, match=r"junk.tar.gz is not a readable model archive"):
        open_archive(junk, tmp_path / "out")
    with pytest.raises(InputDataError, match=r"model archive .*missing.tar.gz does not exist"):
        open_archive(tmp_path / "missing.tar.gz", tmp_path / "out")


def test_export_refuses_a_run_without_a_model_and_a_tampered_model(tmp_path):
    root = tmp_path / "runs"
    bare = make_run(root, "bare", {})
    with pytest.raises(InputDataError, match=r"run bare .* has no trained model .*nothing to export"):
        export_model(bare, "lai", "xgboost", tmp_path / "a.tar.gz")
    run = make_run(root, "r1")
    with pytest.raises(InputDataError, match=r"run r1 has no trained model r1/lulc/xgboost; it has r1/lai/ridge, "
                                             r"r1/lai/xgboost"):
        export_model(run, "lulc", "xgboost", tmp_path / "a.tar.gz")
    (run / "models" / "lai" / "ridge" / "model.json").write_text("{}")
    with pytest.raises(InputDataError, match=r"model r1/lai/ridge: .*model.json does not match its recorded sha256"):
        export_model(run, "lai", "ridge", tmp_path / "a.tar.gz")
    assert not (tmp_path / "a.tar.gz").exists()


def test_export_into_a_directory_uses_the_default_name(tmp_path):
    run = make_run(tmp_path / "runs", "r1")
    out = export_model(run, "lai", "ridge", tmp_path)
    assert out == tmp_path / "r1-lai-ridge.tar.gz" and out.is_file()


def test_a_real_model_loads_from_an_opened_archive(tmp_path):
    """A saved ridge model, recorded as the run stage records it, predicts the same after export and open."""
    from pipeline.catalog.checksums import file_sha256
    from pipeline.models import load_model, model_class
    from tests.helpers.synthetic_tasks import make_lai_task

    task = make_lai_task(n_parents=20, seed=1)
    run = make_run(tmp_path / "runs", "real", {"lai": ["ridge"]})
    model_dir = run / "models" / "lai" / "ridge"
    for f in sorted(model_dir.rglob("*"), reverse=True):
        f.unlink() if f.is_file() else f.rmdir()
    model_dir.rmdir()
    model = model_class("ridge")(task.spec, {"alpha": 1.0}, name="ridge", seed=0).fit(task.X_train, task.y_train)
    model.save(model_dir)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["models"]["lai"]["ridge"]["files"] = {
        str(f.relative_to(model_dir)): file_sha256(f) for f in sorted(model_dir.rglob("*")) if f.is_file()}
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert [e.id for e in scan(tmp_path / "runs").entries] == ["real/lai/ridge"]
    archive = export_model(run, "lai", "ridge", tmp_path / "ridge.tar.gz")
    opened, _ = open_archive(archive, tmp_path / "other-machine")
    np.testing.assert_array_equal(load_model(opened).predict(task.X_test), model.predict(task.X_test))
