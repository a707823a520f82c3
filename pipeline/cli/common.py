"""What every command module shares: the consoles, the history line of an output, byte sizes."""

from __future__ import annotations

import shlex
import sys

from rich.console import Console

__all__ = ["console", "err_console", "history", "human_bytes"]

console = Console()
err_console = Console(stderr=True)


def history() -> str:
    """The command line that is running, quoted, for an output's ``history`` attribute.

    Returns
    -------
    str
        ``terrascale`` followed by the shell-quoted arguments.
    """
    return " ".join(["terrascale", *(shlex.quote(a) for a in sys.argv[1:])])


def human_bytes(n: float) -> str:
    """A byte count in B, KiB, MiB, GiB or TiB.

    Parameters
    ----------
    n : float
        Number of bytes.

    Returns
    -------
    str
        E.g. ``"1.5 MiB"``.
    """
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"
