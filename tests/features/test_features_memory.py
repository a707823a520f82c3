"""Memory of the features stage: the allocator settings of the application and the Parquet writer.

The allocator checks run in fresh subprocesses (malloc's state and Arrow's default pool are
per process and set once); the test process itself is never tuned.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pipeline.runtime as runtime
from pipeline.features import flatten, write_partition

_GLIBC = runtime._glibc() is not None
_ENV = {k: v for k, v in os.environ.items()
        if k not in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "ARROW_DEFAULT_MEMORY_POOL", "GLIBC_TUNABLES")}


def _python(code: str, env=None) -> dict:
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                         env=env if env is not None else _ENV, check=True, timeout=300)
    return json.loads(res.stdout.strip().splitlines()[-1])


# After an 8 MiB mmap'ed block is freed, glibc's dynamic threshold rises to 8 MiB and a following
# 4 MiB malloc comes from the heap; with the threshold pinned at 256 KiB it is mmap'ed (mallinfo2's
# hblkhd counts mmap'ed bytes), so it goes back to the OS on free.
_PROBE = """
import ctypes, json, sys
{tune}
class MI(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MI
big = libc.malloc(8 << 20)
ctypes.memset(big, 1, 8 << 20)
libc.free(big)
before = libc.mallinfo2().hblkhd
p = libc.malloc(4 << 20)
after = libc.mallinfo2().hblkhd
libc.free(p)
print(json.dumps(dict(tuned=tuned, mmapped=after - before, pyarrow_loaded="pyarrow" in sys.modules)))
"""


@pytest.mark.skipif(not _GLIBC, reason="mallopt is glibc's")
def test_runtime_pins_the_mmap_threshold():
    tuned = _python(_PROBE.format(tune="from pipeline.runtime import tune_allocators; tuned = tune_allocators()"))
    assert tuned["tuned"]["mmap_threshold"] == 262144
    assert tuned["mmapped"] >= 4 << 20, "4 MiB block not mmap'ed: the threshold is not pinned"
    plain = _python(_PROBE.format(tune="tuned = None"))
    assert plain["mmapped"] < 4 << 20, "untuned glibc should have served it from the heap (probe is not discriminating)"


@pytest.mark.skipif(not _GLIBC, reason="mallopt is glibc's")
def test_set_mmap_threshold_returns_glibc_status():
    out = _python("""
        import json
        from pipeline.runtime import set_mmap_threshold
        print(json.dumps(dict(ok=set_mmap_threshold(262144))))
    """)
    assert out == {"ok": True}  # mallopt returned 1 for both parameters


def test_set_mmap_threshold_is_a_no_op_off_glibc_and_never_raises(monkeypatch):
    monkeypatch.setattr(runtime, "_glibc", lambda: None)
    assert runtime.set_mmap_threshold() is False

    class Broken:
        @property
        def mallopt(self):
            raise OSError("no mallopt")

    monkeypatch.setattr(runtime, "_glibc", lambda: Broken())
    assert runtime.set_mmap_threshold() is False


def test_runtime_respects_user_settings_and_never_fails():
    out = _python("""
        import json, os
        from pipeline.runtime import tune_allocators
        done = tune_allocators()
        import pyarrow as pa
        print(json.dumps(dict(done=done, pool=pa.default_memory_pool().backend_name)))
    """, env={**_ENV, "MALLOC_MMAP_THRESHOLD_": "1048576", "ARROW_DEFAULT_MEMORY_POOL": "mimalloc"})
    assert out["done"]["mmap_threshold"] is None  # the user's MALLOC_MMAP_THRESHOLD_ wins
    assert out["pool"] == "mimalloc"  # the user's ARROW_DEFAULT_MEMORY_POOL wins


def test_system_pool_when_tuned_before_pyarrow_import():
    out = _python("""
        import json
        from pipeline.runtime import tune_allocators
        tune_allocators()
        import pandas, pyarrow as pa
        print(json.dumps(dict(pool=pa.default_memory_pool().backend_name)))
    """)
    assert out["pool"] == "system"


def test_cli_module_does_not_load_pyarrow():
    """main() tunes before pyarrow's C++ default pool is chosen only if importing the CLI does not load it."""
    out = _python("""
        import json, sys
        import pipeline.cli
        print(json.dumps(dict(loaded=sorted(m for m in ("pyarrow", "pandas", "numpy") if m in sys.modules))))
    """)
    assert out["loaded"] == [], f"pipeline.cli imports {out['loaded']} at module level; tune_allocators would come too late"


def test_cli_main_tunes_before_running(monkeypatch):
    from pipeline.cli import root

    calls = []
    monkeypatch.setattr(runtime, "tune_allocators", lambda: calls.append("tuned") or {})
    monkeypatch.setattr(root, "app", lambda: calls.append("app"))
    root.main()
    assert calls == ["tuned", "app"]


# -- the Parquet writer ------------------------------------------------------------------------


def _frame(rng, n: int, nan_frac: float, ncat: int) -> pd.DataFrame:
    lai = rng.standard_normal(n).astype(np.float32)
    lai[rng.random(n) < nan_frac] = np.nan
    cats = list(range(1, ncat + 1))
    return pd.DataFrame({
        "scenario": pd.Categorical.from_codes(np.zeros(n, np.int16), dtype=pd.CategoricalDtype(["ssp126", "ssp585"])),
        "time": np.repeat(pd.date_range("2001-01-01", periods=3, freq="MS").to_numpy(), -(-n // 3))[:n],
        "cell": np.sort(rng.choice(10 * n + 1, n, replace=False)).astype(np.int32),
        "lai": lai,
        "tas": rng.standard_normal(n),
        "koppen": pd.Categorical.from_codes(rng.integers(-1, ncat, n).astype(np.int8), dtype=pd.CategoricalDtype(cats)),
        "fold": rng.integers(-1, 5, n).astype(np.int8),
        "year": np.full(n, 2001, np.int16),
        "split": pd.Categorical.from_codes(rng.integers(0, 3, n).astype(np.int8),
                                           dtype=pd.CategoricalDtype(["train", "test", "buffer"])),
    })


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**31 - 1), n=st.sampled_from([0, 1, 7, 1000, 70_000]),
       nan_frac=st.sampled_from([0.0, 0.3, 1.0]), ncat=st.integers(1, 40))
def test_write_partition_reads_back_like_to_parquet(tmp_path, seed, n, nan_frac, ncat):
    df = _frame(np.random.default_rng(seed), n, nan_frac, ncat)
    a, b = tmp_path / f"a-{seed}-{n}.parquet", tmp_path / f"b-{seed}-{n}.parquet"
    df.to_parquet(a, index=False)
    write_partition(df, b)
    assert pq.read_schema(b).equals(pq.read_schema(a), check_metadata=True)
    back = pd.read_parquet(b)
    pd.testing.assert_frame_equal(back, pd.read_parquet(a))
    # categories as the table records them (Parquet keeps only those a file uses)
    for c in ("scenario", "koppen", "split"):
        back[c] = back[c].astype(df[c].dtype)
    pd.testing.assert_frame_equal(back, df)


def test_flatten_partition_written_and_read_back_identical(tmp_path):
    rng = np.random.default_rng(3)
    import xarray as xr

    a = rng.standard_normal((4, 30, 40)).astype(np.float32)
    a[rng.random(a.shape) < 0.2] = np.nan
    ds = xr.Dataset({"y": (("time", "lat", "lon"), a), "k": (("lat", "lon"), rng.integers(1, 5, (30, 40)))},
                    coords={"time": pd.date_range("2000-01-01", periods=4, freq="MS"),
                            "lat": np.linspace(30, 60, 30), "lon": np.linspace(-10, 30, 40)})
    df = flatten(ds, target="y", mask=rng.random((30, 40)) > 0.3, categorical=["k"])
    write_partition(df, tmp_path / "p.parquet")
    back = pd.read_parquet(tmp_path / "p.parquet")
    back["k"] = back["k"].astype(df["k"].dtype)
    pd.testing.assert_frame_equal(back, df)


def test_write_partition_transient_is_a_fraction_of_the_partition(tmp_path):
    """Arrow memory of writing a 0.5 M-row partition, in a fresh process: the writer's
    dictionary encoders must not hold a copy of the partition (pandas ``to_parquet`` with
    pyarrow's 1 MiB dictionary limit holds 2.2x the partition)."""
    out = _python(f"""
        import json, numpy as np, pandas as pd, pyarrow as pa
        from pipeline.features import write_partition
        n = 515_965
        rng = np.random.default_rng(0)
        lai = rng.standard_normal(n, dtype=np.float32); lai[::7] = np.nan
        df = pd.DataFrame({{"time": np.full(n, np.datetime64("2001-01-01", "ns")),
                           "cell": np.sort(rng.choice(1_064_000, n, replace=False)).astype(np.int32),
                           "lai": lai, "tas": rng.standard_normal(n, dtype=np.float32)}})
        write_partition(df, {str(tmp_path / "t.parquet")!r})
        print(json.dumps(dict(part=int(df.memory_usage(deep=True).sum()), arrow=pa.default_memory_pool().max_memory())))
    """)
    assert out["arrow"] < 0.4 * out["part"], out
