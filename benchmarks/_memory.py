"""Peak memory of the current process for the benchmarks: the kernel's high-water mark.

``resource.getrusage(RUSAGE_SELF).ru_maxrss`` is not the process's own peak: on Linux,
``execve`` folds the high-water mark of the replaced address space into it, so a benchmark
started from a large process (pytest, a notebook) reports at least that parent's resident set.
The kernel's ``VmHWM`` (``/proc/self/status``) belongs to the process's own address space, and
writing ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0) resets it to the current RSS, so the
peak of a phase after a baseline is exact. This is the approach of ``benchmarks/flatten.py``.
Where ``/proc`` is missing (macOS, ...), ``ru_maxrss`` is the fallback and is labelled as such.
"""

from __future__ import annotations

import resource
import sys


def hwm_bytes() -> int:
    """The process's peak resident set (VmHWM, Linux) in bytes; :class:`OSError` where unavailable."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise OSError("no VmHWM in /proc/self/status")


def reset_hwm() -> bool:
    """Reset VmHWM to the current RSS; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        hwm_bytes()
        return True
    except OSError:
        return False


def peak_rss() -> tuple[int, str]:
    """Peak resident set in bytes and how it was measured (``VmHWM`` or ``ru_maxrss``)."""
    try:
        return hwm_bytes(), "VmHWM"
    except OSError:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # KiB on Linux and the BSDs, bytes on macOS; may include a parent's peak (see above)
        return (rss if sys.platform == "darwin" else rss * 1024), "ru_maxrss"
