"""Memory limits: refuse work whose arrays cannot fit, with the estimate and the limit, before doing it.

Why
    A 0.001° target grid, a class code of 1e11 or ``F20000`` used to run for a long while (the
    Gaussian latitudes of F20000 alone take ~50 s of CPU) and then die with a bare
    :class:`MemoryError`. Every stage that allocates per grid cell (or per class, or per weight
    link) estimates its bytes first and calls :func:`check_memory`, which raises a
    :class:`~pipeline.errors.ConfigError` naming what was asked for, the estimate and the limit.

The limit (:func:`memory_limit`), first that applies
    * ``TERRASCALE_MEMORY_LIMIT`` (bytes, or a size such as ``64GB``, ``512MiB``): an explicit
      limit, e.g. on a shared node or for tests;
    * the memory available now: ``psutil.virtual_memory().available`` when psutil is installed,
      else ``MemAvailable`` of ``/proc/meminfo``; a cgroup v2 limit (a container, a SLURM job) is
      taken into account when it is smaller;
    * a fixed :data:`FALLBACK_LIMIT` where none of these can be read.

Estimates are lower bounds of what the work allocates (arrays named by each caller); they are
meant to catch requests that are wrong by orders of magnitude, not to budget a run exactly.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pipeline.errors import ConfigError

#: Environment variable holding an explicit memory limit.
MEMORY_ENV = "TERRASCALE_MEMORY_LIMIT"
#: Limit used when the available memory cannot be read (no psutil, no /proc/meminfo).
FALLBACK_LIMIT = 16 * 2**30

_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9, "t": 10**12,
          "tb": 10**12, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def human_bytes(n: float) -> str:
    """A byte count in B, KiB, MiB, GiB, TiB or PiB, e.g. ``"1.5 GiB"``."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024:
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} PiB"


def parse_size(text: str, what: str = MEMORY_ENV) -> int:
    """Bytes of a size such as ``"64GB"``, ``"512 MiB"`` or ``"1000000"``; :class:`ConfigError` naming ``what``."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([a-zA-Z]*)\s*", str(text))
    unit = m[2].lower() if m else None
    if m is None or unit not in _UNITS or float(m[1]) <= 0:
        raise ConfigError(f"{what}={text!r} is not a memory size; write e.g. 64GB, 512MiB or a number of bytes")
    return int(float(m[1]) * _UNITS[unit])


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available() -> int | None:
    # cgroup v2: the limit of this process's group, less what the group uses already
    try:
        raw = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if raw == "max":
            return None
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        return max(0, int(raw) - used)
    except (OSError, ValueError):
        return None


def memory_limit() -> tuple[int, str]:
    """The memory a request may use, and where that number comes from (for messages).

    Returns
    -------
    (int, str)
        Bytes, and e.g. ``"the available memory (MemAvailable in /proc/meminfo)"``.

    Raises
    ------
    ConfigError
        When ``TERRASCALE_MEMORY_LIMIT`` is set to something that is not a size.
    """
    env = os.environ.get(MEMORY_ENV)
    if env:
        return parse_size(env), f"the limit {MEMORY_ENV}={env}"
    avail, source = None, ""
    try:
        import psutil

        avail, source = int(psutil.virtual_memory().available), "the available memory (psutil)"
    except Exception:  # noqa: BLE001 - psutil is optional, and may fail in odd sandboxes: read /proc instead
        avail = _meminfo_available()
        source = "the available memory (MemAvailable in /proc/meminfo)"
    cg = _cgroup_available()
    if cg is not None and (avail is None or cg < avail):
        avail, source = cg, "the memory left under the cgroup limit (/sys/fs/cgroup/memory.max)"
    if avail is None:
        return FALLBACK_LIMIT, "a fixed cap (the available memory cannot be read)"
    return avail, source


def check_memory(nbytes: float, what: str, fix: str) -> None:
    """Refuse work estimated at ``nbytes`` when it exceeds :func:`memory_limit`.

    Parameters
    ----------
    nbytes : float
        Estimated bytes of the arrays the work allocates (a float: estimates may overflow int64).
    what : str
        The work, for the message, e.g. ``"writing grid F20000 (3,200,000,000 cells)"``.
    fix : str
        What the user can do instead.

    Raises
    ------
    ConfigError
        ``"{what} needs about X of memory, more than {source}, Y; {fix}"``.
    """
    limit, source = memory_limit()
    if float(nbytes) > limit:
        hint = "" if os.environ.get(MEMORY_ENV) else f" (or set the limit with {MEMORY_ENV}, e.g. {MEMORY_ENV}=64GB)"
        raise ConfigError(f"{what} needs about {human_bytes(nbytes)} of memory, more than {source}, "
                          f"{human_bytes(limit)}; {fix}{hint}")
