"""``terrascale data demo`` checks everything before writing, writes the four stores as one set,
and readers can tell stores that do not belong together (:func:`check_store_set`)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import pipeline.datasets.demo as demo
from pipeline.cli import app
from pipeline.datasets import check_store_set, is_demo_store_set, write_demo_stores
from pipeline.datasets.classes import DEFAULT_CLASS_TABLE
from pipeline.errors import ConfigError, InputDataError

runner = CliRunner()
SMALL = ["--region", "40,41,-4,-3", "--years", "2019:2019", "--scenarios", "ssp126"]
STORES = ["climate.zarr", "lai.zarr", "lulc_coarse.zarr", "static.zarr"]


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def _old_set(path: Path) -> Path:
    """A directory holding an earlier (stand-in) set of the four stores."""
    for name in STORES:
        (path / name).mkdir(parents=True)
        (path / name / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group",
                                                           "attributes": {"old": name}}))
    return path


def _leftovers(parent: Path) -> list[str]:
    return sorted(n for n in os.listdir(parent) if n.startswith("."))


@pytest.fixture(scope="module")
def real_set(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("real") / "demo"
    write_demo_stores(out, region="40,41,-4,-3", years="2019:2019", scenarios="ssp126", seed=3)
    return out


def _table(tmp_path, old, new) -> Path:
    text = DEFAULT_CLASS_TABLE.read_text()
    assert old in text
    path = tmp_path / "classes.csv"
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize("case, make, expected", [
    ("negative seed", lambda t: ["--seed", "-1"], "--seed must be a whole number from 0"),
    ("text lai_min", lambda t: ["--class-table", _table(t, ",0.5,4.5,0", ",abc,4.5,0")],
     "column 'lai_min' holds 'abc', which is not a number"),
    ("empty lai_max", lambda t: ["--class-table", _table(t, ",2.5,5.0,1", ",2.5,,1")], "column 'lai_max' is empty"),
    ("empty value", lambda t: ["--class-table", _table(t, "\n5,MF", "\n,MF")], "column 'value' is empty"),
    ("empty colour", lambda t: ["--class-table", _table(t, "#05450a", "")], "column 'colour' is empty"),
    ("text colour", lambda t: ["--class-table", _table(t, "#05450a", "green")], "column 'colour' holds 'green'"),
    ("huge lai_max", lambda t: ["--class-table", _table(t, ",4.5,6.0,1", ",4.5,1000000,1")],
     "lai_max 1e+06; need 0 <= lai_min <= lai_max <= 13.04"),
    ("text evergreen", lambda t: ["--class-table", _table(t, ",2.5,5.0,1", ",2.5,5.0,yes")],
     "column 'evergreen' holds 'yes'"),
    ("region without land", lambda t: ["--region", "0,1,-30,-29"], "holds no land with vegetation"),
])
def test_bad_options_write_nothing_and_keep_the_old_set(tmp_path, case, make, expected):
    out = _old_set(tmp_path / "demo")
    before = _snapshot(out)
    args = ["data", "demo", *SMALL, "-o", str(out)] + [str(a) for a in make(tmp_path)]
    res = runner.invoke(app, args)
    assert res.exit_code == 2, (res.output, res.exception)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert expected in " ".join(res.output.split()), res.output
    assert _snapshot(out) == before and _leftovers(tmp_path) == []
    fresh = tmp_path / "fresh"
    assert runner.invoke(app, ["data", "demo", *SMALL, "-o", str(fresh)] + args[len(SMALL) + 4:]).exit_code == 2
    assert not fresh.exists()


@pytest.mark.parametrize("failure", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_a_failure_midway_leaves_the_old_set(tmp_path, monkeypatch, failure):
    out = _old_set(tmp_path / "demo")
    before = _snapshot(out)

    def broken(*args, **kwargs):  # after static, lulc_coarse and climate were written
        raise failure

    monkeypatch.setattr(demo, "generate_lai", broken)
    with pytest.raises(type(failure)):
        write_demo_stores(out, region="40,41,-4,-3", years="2019:2019", scenarios="ssp126")
    assert _snapshot(out) == before and _leftovers(tmp_path) == []


def test_the_set_is_replaced_as_a_whole(tmp_path, real_set):
    out = _old_set(tmp_path / "demo")
    (out / ".lai.zarr.tmp-1-deadbeef").mkdir()  # a store temporary left by a killed writer: still a demo set
    assert is_demo_store_set(out)
    shutil.rmtree(out)
    shutil.copytree(real_set, out)
    params = check_store_set({n: out / n for n in STORES})
    assert params["seed"] == 3 and params["years"] == [2019, 2019]
    res = runner.invoke(app, ["data", "demo", *SMALL, "--seed", "4", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert sorted(os.listdir(out)) == STORES and _leftovers(tmp_path) == []
    assert check_store_set([out / n for n in STORES])["seed"] == 4


def test_a_directory_with_other_entries_is_refused(tmp_path, monkeypatch):
    out = _old_set(tmp_path / "demo")
    (out / "notes.txt").write_text("mine")
    assert not is_demo_store_set(out)
    before = _snapshot(out)
    res = runner.invoke(app, ["data", "demo", *SMALL, "-o", str(out)])
    assert res.exit_code == 2 and "notes.txt" in " ".join(res.output.split())
    assert _snapshot(out) == before
    # the current directory (even an empty one) is never swapped away under the shell
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path / "empty")
    for target in (".", str(tmp_path)):
        res = runner.invoke(app, ["data", "demo", *SMALL, "-o", target])
        assert res.exit_code == 2 and "is the current directory" in " ".join(res.output.split()), res.output


def _edit_attrs(store: Path, edit) -> None:
    """Change the global attributes of a Zarr v3 store in its metadata file."""
    meta = json.loads((store / "zarr.json").read_text())
    edit(meta["attributes"])
    (store / "zarr.json").write_text(json.dumps(meta))


def _set_params(store: Path, **change) -> None:
    def edit(attrs):
        params = json.loads(attrs[demo.DEMO_ATTR])
        params.update(change)
        attrs[demo.DEMO_ATTR] = json.dumps(params, sort_keys=True)

    _edit_attrs(store, edit)


def test_check_store_set_names_the_stores_that_differ(tmp_path, real_set):
    mixed = tmp_path / "mixed"
    shutil.copytree(real_set, mixed)
    _set_params(mixed / "lai.zarr", seed=5, years=[2020, 2020])
    paths = {n.split(".")[0]: mixed / n for n in STORES}
    with pytest.raises(InputDataError) as err:
        check_store_set(paths)
    msg = str(err.value)
    assert "do not belong together" in msg and f"{mixed / 'lai.zarr'}: region" in msg
    assert "years 2020:2020" in msg and "seed 5" in msg and "seed 3" in msg and "terrascale data demo" in msg
    # a store without parameters among demo stores
    _edit_attrs(mixed / "lai.zarr", lambda a: a.pop(demo.DEMO_ATTR))
    with pytest.raises(InputDataError, match=r"lai.zarr: no recorded demo parameters"):
        check_store_set(paths)
    # opened datasets are named by their keys; stores without any parameters are not demo stores
    from pipeline.io import open_dataset

    opened = {k: open_dataset(p) for k, p in paths.items()}
    with pytest.raises(InputDataError, match=r"lai: no recorded demo parameters"):
        check_store_set(opened)
    for n in STORES:
        _edit_attrs(mixed / n, lambda a: a.pop(demo.DEMO_ATTR, None))
    assert check_store_set(paths) is None


def test_seed_values():
    assert demo.check_seed(0) == 0 and demo.check_seed(2**63 - 1) == 2**63 - 1 and demo.check_seed(7.0) == 7
    for bad in (-1, 2**63, 1.5, "x", True):
        with pytest.raises(ConfigError, match="must be a whole number"):
            demo.check_seed(bad)
