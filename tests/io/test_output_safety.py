"""Outputs never destroy what they were not asked to replace, and interrupts leave them intact.

* ``-o`` naming a user's directory (or a file where a store would go) is refused before any
  work, exit 2, one message; an earlier output of the same kind is replaced.
* ``-o`` equal to an input (same path, symlink, hard link, glob match) is refused.
* Stale ``.NAME.tmp-PID-RANDOM`` siblings of dead processes are removed by the next write of
  that target; those of live processes and of other targets are kept.
* SIGINT/SIGTERM to the real console script end it at once with 130/143 and one line, the old
  output intact and no temporary left.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import xarray as xr
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.errors import InputDataError

runner = CliRunner()
FIX = "choose another output path or remove it yourself"


# -- helpers ---------------------------------------------------------------------------------


def _input(path: Path, n: int = 36) -> Path:
    """A small global lat/lon NetCDF with a continuous ``lai`` field."""
    lat = np.linspace(-90 + 90 / n, 90 - 90 / n, n)
    lon = np.linspace(-180 + 90 / n, 180 - 90 / n, 2 * n)
    lai = np.random.default_rng(0).random((n, 2 * n)) * 6
    ds = xr.Dataset(
        {"lai": (("lat", "lon"), lai, {"units": "m2 m-2"})},
        coords={"lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
                "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"})})
    ds.to_netcdf(path)
    return path


def _user_dir(path: Path) -> Path:
    """A directory of a user's files (with a subdirectory), named like an output."""
    path.mkdir()
    (path / "notes.txt").write_text("my notes\n")
    (path / "photo.jpg").write_bytes(b"\xff\xd8\xff" + bytes(range(256)))
    (path / "sub").mkdir()
    (path / "sub" / "data.csv").write_text("a,b\n1,2\n")
    return path


def _snapshot(path: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``path`` (or of ``path`` itself)."""
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def _leftovers(folder: Path) -> list[str]:
    """Hidden temporaries and moved-aside outputs in ``folder``."""
    return sorted(n for n in os.listdir(folder) if ".tmp-" in n or ".old-" in n)


def _refused(args, *expected) -> str:
    """Run the CLI; assert exit 2 with one message line holding ``expected``; return the message."""
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 2, (args, res.output, res.exception)
    assert res.exception is None or isinstance(res.exception, SystemExit), (args, repr(res.exception))
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), (args, res.output)
    for text in expected:
        assert text in res.output, (args, text, res.output)
    return res.output


def _ok(args) -> None:
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, (args, res.output, res.exception)


def _dead_pid() -> int:
    """The pid of a process that has ended (a finished child, reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def src(tmp_path) -> Path:
    return _input(tmp_path / "in.nc")


# -- 1. an existing path that is not an earlier output of the same kind is never deleted --------


def _commands(src: Path, out: Path):
    return {
        "aggregate": ["aggregate", src, "--var", "lai", "--grid", "10deg", "-o", out],
        "grids": ["grids", "--write", "F8", "-o", out],
        "weights": ["weights", "10deg", "F8", "-o", out],
        "validate": ["validate", src, "-o", out],
    }


@pytest.mark.parametrize(("command", "name"), [
    ("aggregate", "notes.nc"), ("aggregate", "photos.zarr"), ("grids", "keep.nc"), ("weights", "w.nc"),
    ("validate", "harmonised.nc"), ("validate", "harmonised.zarr"),
])
def test_user_directory_as_output_is_refused_and_kept(tmp_path, src, command, name):
    out = _user_dir(tmp_path / name)
    before = _snapshot(out)
    msg = _refused(_commands(src, out)[command], str(out), FIX)
    assert "directory" in msg and "notes.txt" in msg  # says what is there
    assert _snapshot(out) == before
    assert _leftovers(tmp_path) == []


def test_refused_before_any_work(tmp_path, src, monkeypatch):
    """The check comes before the input is opened or anything computed."""
    import pipeline.io

    def boom(*a, **k):
        raise AssertionError("work started before the output was checked")

    monkeypatch.setattr(pipeline.io, "open_dataset", boom)
    out = _user_dir(tmp_path / "photos.zarr")
    _refused(["aggregate", src, "--var", "lai", "--grid", "10deg", "-o", out], FIX)
    _refused(["validate", src, "-o", out], FIX)


@pytest.mark.parametrize("name", ["f.zarr", "g.zarr"])
def test_file_where_a_store_goes_is_refused(tmp_path, src, name):
    out = tmp_path / name
    out.write_text("a file of the user's\n")
    _refused(["aggregate", src, "--var", "lai", "--grid", "10deg", "-o", out], str(out), "is a file", FIX)
    _refused(["validate", src, "-o", out], str(out), FIX)
    assert out.read_text() == "a file of the user's\n"


def test_empty_directory_and_file_targets(tmp_path, src):
    """An empty directory may become a Zarr store, never a NetCDF file."""
    (tmp_path / "empty.zarr").mkdir()
    _ok(["validate", src, "-o", tmp_path / "empty.zarr"])
    assert (tmp_path / "empty.zarr" / "zarr.json").exists()
    (tmp_path / "empty.nc").mkdir()
    _refused(["grids", "--write", "F8", "-o", tmp_path / "empty.nc"], "empty directory", FIX)
    assert (tmp_path / "empty.nc").is_dir()


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_earlier_zarr_output_is_replaced(tmp_path, src, zarr_format):
    out = tmp_path / "out.zarr"
    xr.Dataset({"old": ("x", np.arange(3))}).to_zarr(out, zarr_format=zarr_format, consolidated=False)
    _ok(["aggregate", src, "--var", "lai", "--grid", "10deg", "--method", "std", "-o", out])
    assert "lai_std" in xr.open_zarr(out, consolidated=False) and "old" not in xr.open_zarr(out, consolidated=False)
    _ok(["aggregate", src, "--var", "lai", "--grid", "10deg", "-o", out])  # an output of ours, again
    ds = xr.open_zarr(out, consolidated=False)
    assert "lai" in ds and "lai_std" not in ds
    assert _leftovers(tmp_path) == []


def test_earlier_netcdf_output_is_replaced(tmp_path, src):
    out = tmp_path / "out.nc"
    out.write_bytes(b"old bytes")
    _ok(["validate", src, "-o", out])
    assert "lai" in xr.open_dataset(out)
    assert _leftovers(tmp_path) == []


def test_library_write_and_replace_refuse_a_user_directory(tmp_path):
    from pipeline.io import replace_atomically, write, write_text_atomically

    ds = xr.Dataset({"v": ("x", np.arange(3.0))})
    for name in ("a.zarr", "b.nc"):
        out = _user_dir(tmp_path / name)
        with pytest.raises(InputDataError, match=FIX):
            write(ds, out)
        assert (out / "notes.txt").read_text() == "my notes\n"
    with pytest.raises(InputDataError, match=FIX):
        write_text_atomically(tmp_path / "a.zarr", "text")
    # the last guard, for a writer that did not check first: a finished store against a user's directory
    tmp = tmp_path / ".c.zarr.tmp-1-00000000"
    ds.to_zarr(tmp, consolidated=False)
    out = _user_dir(tmp_path / "c.zarr")
    with pytest.raises(InputDataError, match=FIX):
        replace_atomically(tmp, out)
    assert (out / "notes.txt").exists() and (tmp / "zarr.json").exists()


def test_feature_table_directory_rules(tmp_path):
    from pipeline.features.stage import run_features
    from pipeline.features.table import META_FILE, check_feature_table_output, is_feature_table

    user = _user_dir(tmp_path / "features")
    before = _snapshot(user)
    with pytest.raises(InputDataError, match=FIX):
        check_feature_table_output(user)
    # refused by the stage before its inputs are generated or read (cfg has nothing else to use)
    with pytest.raises(InputDataError, match=FIX):
        run_features(SimpleNamespace(run_dir=tmp_path))
    assert _snapshot(user) == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / META_FILE).write_text("not json")
    assert not is_feature_table(tmp_path / "other")
    table = tmp_path / "table"
    table.mkdir()
    (table / "part-00000.parquet").write_bytes(b"PAR1")
    (table / META_FILE).write_text(json.dumps({"version": 1, "partitions": ["part-00000.parquet"]}))
    assert is_feature_table(table)
    check_feature_table_output(table)  # an earlier table may be replaced
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputDataError, match="is a file"):
        check_feature_table_output(tmp_path / "file")


def test_demo_inputs_replace_only_demo_stores(tmp_path):
    from pipeline.features.stores import STORE_FILES, write_demo_atomically

    calls = []

    def fake_writer(out, **kwargs):
        calls.append(out)
        for name in STORE_FILES.values():
            (out / name).mkdir(parents=True)
            (out / name / "zarr.json").write_text("{}")

    user = _user_dir(tmp_path / "inputs")
    (user / "lai.zarr").mkdir()
    (user / "lai.zarr" / "zarr.json").write_text("{}")
    before = _snapshot(user)
    with pytest.raises(InputDataError, match=FIX):
        write_demo_atomically(user, fake_writer, {})
    assert calls == [] and _snapshot(user) == before
    old = tmp_path / "run" / "inputs"
    old.mkdir(parents=True)
    for name in STORE_FILES.values():
        (old / name).mkdir()
        (old / name / ".zgroup").write_text("{}")
    write_demo_atomically(old, fake_writer, {})
    assert len(calls) == 1 and sorted(os.listdir(old)) == sorted(STORE_FILES.values())
    assert (old / "lai.zarr" / "zarr.json").exists() and _leftovers(old.parent) == []


def test_data_demo_refuses_user_entries_before_any_work(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    _user_dir(out / "lai.zarr")
    t0 = time.perf_counter()
    _refused(["data", "demo", "--region", "40,41,-5,-3", "--years", "2019:2019", "-o", out], "lai.zarr", FIX)
    assert time.perf_counter() - t0 < 5
    assert sorted(os.listdir(out)) == ["lai.zarr"] and (out / "lai.zarr" / "notes.txt").exists()
    (tmp_path / "afile").write_text("x")
    _refused(["data", "demo", "-o", tmp_path / "afile"], "is a file", FIX)
    assert (tmp_path / "afile").read_text() == "x"


def test_interrupt_between_the_renames_puts_the_old_store_back(tmp_path, monkeypatch):
    """The handler's clean-up, run while the old store is moved aside and the new one not yet in place."""
    import pipeline.io.atomic as atomic

    out = tmp_path / "out.zarr"
    xr.Dataset({"old": ("x", np.arange(3))}).to_zarr(out, consolidated=False)
    before = _snapshot(out)
    real_replace, reports = os.replace, []

    def interrupted(src, dst):
        if Path(src).parent == tmp_path and Path(src).name.startswith(".out.zarr.tmp-"):  # the second rename
            reports.append(atomic.cleanup_in_flight())
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_output(out, directory=True, kind="a Zarr store", replaces=atomic.is_zarr_store) as tmp:
            xr.Dataset({"new": ("x", np.arange(4))}).to_zarr(tmp, consolidated=False)
    assert reports == [{out: False}]  # reported as left unchanged
    assert _snapshot(out) == before and _leftovers(tmp_path) == []


# -- 2. the output may not be an input ---------------------------------------------------------


def test_output_equal_to_input_is_refused(tmp_path, src):
    before = _snapshot(src)
    _refused(["validate", src, "-o", src], "is the input")
    (tmp_path / "link.nc").symlink_to(src)
    _refused(["validate", src, "-o", tmp_path / "link.nc"], "is the input")
    _refused(["aggregate", tmp_path / "link.nc", "--var", "lai", "--grid", "10deg", "-o", src], "is the input")
    os.link(src, tmp_path / "hard.nc")
    _refused(["aggregate", src, "--var", "lai", "--grid", "10deg", "-o", tmp_path / "hard.nc"], "is the input")
    _refused(["validate", str(tmp_path / "i*.nc"), "-o", src], "is the input")  # a glob matching the output
    _refused(["validate", f"{tmp_path}/./in.nc", "-o", src], "is the input")  # another spelling
    assert _snapshot(src) == before and (tmp_path / "link.nc").is_symlink()
    assert _leftovers(tmp_path) == []


def test_zarr_input_as_output_is_refused(tmp_path, src):
    store = tmp_path / "in.zarr"
    xr.open_dataset(src).to_zarr(store, consolidated=False)
    before = _snapshot(store)
    _refused(["validate", store, "-o", store], "is the input")
    _refused(["aggregate", store, "--var", "lai", "--grid", "10deg", "-o", store], "is the input")
    # an output store that holds the input would delete it when replaced
    inner = store / "inner.nc"
    shutil.copy(src, inner)
    _refused(["aggregate", inner, "--var", "lai", "--grid", "10deg", "-o", store], "contains the input")
    inner.unlink()
    assert _snapshot(store) == before


def test_grid_and_weight_files_as_output_are_refused(tmp_path, src):
    grid = tmp_path / "g.nc"
    _ok(["grids", "--write", "F8", "-o", grid])
    before = _snapshot(grid)
    _refused(["grids", "--write", f"file:{grid}", "-o", grid], "is the input")
    _refused(["weights", f"file:{grid}", "10deg", "-o", grid], "is the input")
    _refused(["aggregate", src, "--var", "lai", "--grid", f"file:{grid}", "-o", grid], "is the input")
    w = tmp_path / "w.nc"
    _ok(["weights", "5deg", "F8", "-o", w])
    _refused(["aggregate", src, "--var", "lai", "--weights", w, "-o", w], "is the input")
    assert _snapshot(grid) == before


# -- 4. stale temporaries of killed writers ------------------------------------------------------


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path, src):
    dead = _dead_pid()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale_file = tmp_path / f".out.nc.tmp-{dead}-0123abcd"
        stale_file.write_bytes(b"half a file")
        stale_dir = tmp_path / f".out.zarr.tmp-{dead}-89abcdef"
        (stale_dir / "lai" / "c" / "0").mkdir(parents=True)
        (stale_dir / "lai" / "c" / "0" / "0").write_bytes(b"chunk")
        stale_aside = tmp_path / f".out.zarr.old-{dead}-00ff00ff"
        stale_aside.mkdir()
        (stale_aside / "zarr.json").write_text("{}")
        kept = [
            tmp_path / f".out.nc.tmp-{os.getpid()}-11111111",  # this (live) process
            tmp_path / f".out.nc.tmp-{sleeper.pid}-22222222",  # another live process
            tmp_path / f".other.nc.tmp-{dead}-33333333",  # another target
            tmp_path / f".out.nc.tmp-{dead}-not-hex",  # not a name we write
            tmp_path / f"out.nc.tmp-{dead}-44444444",  # not hidden: not ours
        ]
        for p in kept:
            p.write_bytes(b"keep")
        _ok(["validate", src, "-o", tmp_path / "out.nc"])
        _ok(["validate", src, "-o", tmp_path / "out.zarr"])
        assert not stale_file.exists() and not stale_dir.exists() and not stale_aside.exists()
        assert all(p.read_bytes() == b"keep" for p in kept)
        assert "lai" in xr.open_dataset(tmp_path / "out.nc")
        assert "lai" in xr.open_zarr(tmp_path / "out.zarr", consolidated=False)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_stale_aside_is_put_back_when_the_target_is_missing(tmp_path):
    """Killed between the two renames of a swap: the moved-aside store is the only copy of the output."""
    from pipeline.io import remove_stale_temporaries

    dead = _dead_pid()
    aside = tmp_path / f".out.zarr.old-{dead}-abcdef01"
    aside.mkdir()
    (aside / "zarr.json").write_text('{"old": true}')
    tmp = tmp_path / f".out.zarr.tmp-{dead}-abcdef02"
    tmp.mkdir()
    assert remove_stale_temporaries(tmp_path / "out.zarr") == [tmp]
    assert (tmp_path / "out.zarr" / "zarr.json").read_text() == '{"old": true}'
    assert _leftovers(tmp_path) == []


# -- 3. interrupts of the real console script ----------------------------------------------------

# the script of the interpreter running the tests first: another terrascale on PATH may be another install
SCRIPT = Path(sys.executable).with_name("terrascale")
if not SCRIPT.exists() and shutil.which("terrascale"):
    SCRIPT = Path(shutil.which("terrascale"))
needs_script = pytest.mark.skipif(not SCRIPT.exists(), reason="console script terrascale not installed")
needs_proc = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")

# The harness running the tests may ignore SIGINT (a background job of a non-interactive shell),
# and the child would inherit that; reset it to the default before exec'ing the console script.
_EXEC = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"


def _start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _EXEC, str(SCRIPT), *map(str, args)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, t0: float) -> tuple[int, str, float]:
    try:
        _, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the process did not end after the signal")
    return proc.returncode, err, time.monotonic() - t0


@pytest.fixture(scope="module")
def big_input(tmp_path_factory) -> Path:
    """A ~60 MB NetCDF: its harmonised copy takes a few tenths of a second to write."""
    path = tmp_path_factory.mktemp("big") / "big.nc"
    n, nt = 1400, 4
    lat = np.linspace(-90 + 90 / n, 90 - 90 / n, n)
    lon = np.linspace(-180 + 90 / n, 180 - 90 / n, 2 * n)
    lai = np.random.default_rng(1).random((nt, n, 2 * n), dtype=np.float32) * 6
    xr.Dataset({"lai": (("time", "lat", "lon"), lai, {"units": "m2 m-2"})},
               coords={"time": np.arange(nt),
                       "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
                       "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"})}).to_netcdf(path)
    return path


def _old_output(path: Path) -> dict[str, str]:
    ds = xr.Dataset({"old": ("x", np.arange(5.0))})
    if path.suffix == ".zarr":
        ds.to_zarr(path, consolidated=False)
    else:
        ds.to_netcdf(path)
    return _snapshot(path)


def _temporaries(folder: Path, name: str) -> list[Path]:
    return [folder / n for n in os.listdir(folder) if n.startswith(f".{name}.tmp-")]


@needs_script
@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_during_the_write(tmp_path, big_input, suffix, sig):
    out = tmp_path / f"out{suffix}"
    before = _old_output(out)
    for _attempt in range(3):
        proc = _start("validate", big_input, "-o", out)
        stopped = False
        while proc.poll() is None and not stopped:
            # The temporary is first touched by a writability probe; the write itself keeps it.
            if _temporaries(tmp_path, out.name):
                time.sleep(0.05)  # some of the data written (Zarr chunks in flight)
                if _temporaries(tmp_path, out.name):
                    # Stopped while the temporary exists, the signal lands in the write whatever the timing.
                    proc.send_signal(signal.SIGSTOP)
                    stopped = bool(_temporaries(tmp_path, out.name))
                    if not stopped:
                        proc.send_signal(signal.SIGCONT)
            time.sleep(0.005)
        if stopped:
            break
        proc.communicate()  # the write ended before the stop: put the old output back, again
        shutil.rmtree(out) if out.is_dir() else out.unlink()
        before = _old_output(out)
    else:
        pytest.fail("could not stop the process during its write")
    proc.send_signal(sig)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGCONT)
    code, err, took = _finish(proc, t0)
    assert code == 128 + sig, (code, err)
    assert took < 3, took
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0] == f"interrupted: {out} left unchanged", err
    assert _snapshot(out) == before
    assert _leftovers(tmp_path) == []


def _handlers_installed(pid: int) -> bool:
    # SigCgt is the mask of caught signals; SIGTERM is caught only once interrupts.install() ran
    # (SIGINT is caught by any Python from its start, so it says nothing).
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:")), 16)
    return bool(caught >> (signal.SIGTERM - 1) & 1)


@needs_script
@needs_proc
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_at_start_up(tmp_path, src, sig):
    """Handled from the first moment of the entry point: during the imports of the CLI, no traceback."""
    out = tmp_path / "out.nc"
    before = _old_output(out)
    proc = _start("validate", src, "-o", out)
    deadline = time.monotonic() + 10
    while not _handlers_installed(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    proc.send_signal(sig)
    t0 = time.monotonic()
    code, err, took = _finish(proc, t0)
    assert code == 128 + sig, (code, err)
    assert took < 3, took
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted") and "Traceback" not in err, err
    assert _snapshot(out) == before and _leftovers(tmp_path) == []


def test_library_import_installs_no_handler():
    """Only the console script handles signals; importing the package (and the CLI's app) changes nothing."""
    code = ("import signal; before = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]; "
            "import pipeline.cli; from pipeline.cli import app; "
            "print(before == [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["True"], out


_STUCK = """
import ctypes, sys
from pathlib import Path
from pipeline.cli import interrupts
interrupts.install()
from pipeline.io import atomic
out = Path(sys.argv[1])
tmp = atomic.temporary_sibling(out)
atomic.register_temporary(tmp, out)
tmp.write_text("half a file")
libc = ctypes.CDLL(None)
mutex = ctypes.create_string_buffer(64)
libc.pthread_mutex_init(mutex, None)
libc.pthread_mutex_lock(mutex)
print("ready", flush=True)
libc.pthread_mutex_lock(mutex)  # never returns, the GIL released: like a close waiting on the HDF5 lock
"""


@needs_proc
def test_interrupt_while_the_main_thread_is_stuck_in_c(tmp_path, sig=signal.SIGINT):
    """A main thread that never returns to Python (no handler can run there): the watchdog thread ends it."""
    import ctypes

    if not hasattr(ctypes.CDLL(None), "pthread_mutex_lock"):
        pytest.skip("pthread_mutex_lock is not in the C library of this process")
    out = tmp_path / "out.nc"
    out.write_bytes(b"old")
    script = tmp_path / "stuck.py"
    script.write_text(_STUCK)
    proc = subprocess.Popen([sys.executable, "-c", _EXEC, sys.executable, str(script), str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    assert len(_temporaries(tmp_path, out.name)) == 1
    proc.send_signal(sig)
    code, err, took = _finish(proc, time.monotonic())
    assert code == 128 + sig and took < 3, (code, took, err)
    assert err.strip().splitlines() == [f"interrupted: {out} left unchanged"], err
    assert out.read_bytes() == b"old" and _leftovers(tmp_path) == []
