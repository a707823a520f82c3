"""Process-wide allocator settings of the ``terrascale`` application (not of the library).

Why
    The features stage streams a table through memory partition by partition: every
    partition allocates a few multi-MiB numpy buffers (the chunks it reads, the gathered
    columns) and frees them before the next one. With glibc's default malloc the first free
    of such a buffer raises the *dynamic* mmap threshold (up to 32 MiB on 64-bit), after
    which buffers of that size are carved out of the heap instead of being mmap'ed; when they
    are freed the heap keeps them (fragmented, not trimmed), so the resident set creeps up
    with every partition although nothing is alive (``benchmarks/flatten.py`` measured 2.4x
    the issue's memory bound, growing). Pinning the threshold at 256 KiB with
    ``mallopt(M_MMAP_THRESHOLD, 262144)`` turns the dynamic adjustment off: large buffers are
    always mmap'ed and go back to the OS on free. pyarrow's default pool (mimalloc or
    jemalloc) likewise keeps freed pages for reuse; the system pool hands Arrow's buffers to
    the same (pinned) malloc.

Why here
    This is the policy of one process, so only entry points apply it (``pipeline.cli.main``,
    the benchmark); importing :mod:`pipeline` changes nothing for a library user.

What :func:`tune_allocators` does, in order, never raising
    * ``os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")``: used when pyarrow is
      imported later (also by child processes). An explicit user setting wins.
      Call this before pyarrow is imported (pandas >= 3 imports it): Arrow's C++ default
      pool is chosen once, when pyarrow loads. ``pipeline.cli`` imports neither, so
      ``main()`` is early enough.
    * If pyarrow is already imported (an embedding process), the variable is no longer read:
      when it says ``system``, ``pyarrow.set_memory_pool`` switches pyarrow's default pool
      (``Table.from_pandas``, array building). This is only partial: the Parquet writer's
      encoders and page buffers use the C++ default pool chosen at import, which stays
      mimalloc/jemalloc and keeps ~10 MiB per process resident after a few partitions
      (measured with ``benchmarks/flatten.py``: 12.4 MiB above baseline after 24 partitions
      against 2.6 MiB with the pool chosen at import).
    * On glibc only, ``mallopt(M_MMAP_THRESHOLD, 262144)`` and ``mallopt(M_TRIM_THRESHOLD,
      131072)`` through ctypes (see :func:`set_mmap_threshold` for the second), unless the
      user already set the threshold (``MALLOC_MMAP_THRESHOLD_`` or ``GLIBC_TUNABLES``).
      Elsewhere (musl, macOS, Windows) nothing is done. Memory already held in the heap
      before the call stays there; the setting applies to allocations from then on.
"""

from __future__ import annotations

import ctypes
import os
import sys

#: glibc's ``mallopt`` parameter numbers.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Allocations at least this large are mmap'ed (and returned to the OS on free).
MMAP_THRESHOLD = 256 * 1024
#: Free memory at the top of the heap beyond this is given back (glibc's default, 128 KiB).
TRIM_THRESHOLD = 128 * 1024


def _glibc():
    """The process's glibc as a ctypes library, or None when the C library is not glibc."""
    try:
        libc = ctypes.CDLL(None)
        if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "mallopt"):
            return None
        return libc
    except Exception:  # noqa: BLE001 - no C library to talk to: nothing to tune
        return None


def _mallopt(param: int, value: int) -> bool:
    libc = _glibc()
    if libc is None:
        return False
    try:
        libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        libc.mallopt.restype = ctypes.c_int
        return libc.mallopt(param, int(value)) == 1
    except Exception:  # noqa: BLE001
        return False


def trim_heap() -> bool:
    """Give the free memory at the top of glibc's heaps back to the OS (``malloc_trim(0)``).

    Returns whether memory was released; False elsewhere (not glibc) or on failure.
    """
    libc = _glibc()
    if libc is None:
        return False
    try:
        return bool(libc.malloc_trim(0))
    except Exception:  # noqa: BLE001
        return False


def set_mmap_threshold(nbytes: int = MMAP_THRESHOLD, trim: int = TRIM_THRESHOLD) -> bool:
    """Pin glibc's mmap threshold at ``nbytes`` and its trim threshold at ``trim``.

    ``mallopt(M_MMAP_THRESHOLD, nbytes)`` and ``mallopt(M_TRIM_THRESHOLD, trim)``; True when
    glibc accepted both, False elsewhere (not glibc) or on failure. The trim threshold is
    reset to glibc's default too because every rise of the dynamic mmap threshold before
    this call (when something freed a large mmap'ed block) also set the trim threshold to
    twice the new mmap threshold, which mallopt of the mmap threshold alone leaves in place;
    with both set the state is the one ``MALLOC_MMAP_THRESHOLD_=262144`` gives at start-up.
    (In ``terrascale`` this runs before numpy is imported, so nothing has moved them yet.)
    """
    return _mallopt(M_MMAP_THRESHOLD, nbytes) and _mallopt(M_TRIM_THRESHOLD, trim)


def _user_set_threshold() -> bool:
    return "MALLOC_MMAP_THRESHOLD_" in os.environ or "mmap_threshold" in os.environ.get("GLIBC_TUNABLES", "")


def tune_allocators() -> dict:
    """Apply the process-wide allocator settings of the module docstring; never raises.

    Returns what was done: ``{"mmap_threshold": bytes or None, "arrow_pool": name or None}``
    (None: left as it was).
    """
    done: dict = {"mmap_threshold": None, "arrow_pool": None}
    try:
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
        pa = sys.modules.get("pyarrow")
        if pa is not None and os.environ.get("ARROW_DEFAULT_MEMORY_POOL") == "system":
            pa.set_memory_pool(pa.system_memory_pool())
            done["arrow_pool"] = pa.default_memory_pool().backend_name
        elif pa is None:
            done["arrow_pool"] = f"{os.environ['ARROW_DEFAULT_MEMORY_POOL']} (at pyarrow import)"
    except Exception:  # noqa: BLE001 - a tuning, never a reason to fail
        pass
    if not _user_set_threshold() and set_mmap_threshold(MMAP_THRESHOLD):
        done["mmap_threshold"] = MMAP_THRESHOLD
    return done
