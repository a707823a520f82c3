"""What every command module shares: the consoles, the history line of an output, byte sizes, the ``-o`` check."""

from __future__ import annotations

import shlex
import sys

from rich.console import Console

__all__ = ["check_output", "console", "err_console", "history", "human_bytes", "spec_paths"]

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


def check_output(output, *, inputs=()) -> None:
    """Check ``-o`` of a command that writes with :func:`pipeline.io.write`, before any work.

    Refuses (:class:`~pipeline.errors.InputDataError`, exit 2) an output that is one of the
    inputs or that would replace something other than an earlier output of the same kind (a
    user's directory named ``out.nc`` or ``out.zarr``), and announces the output for the
    message of an interrupt.

    Parameters
    ----------
    output : str or Path
        The ``-o`` path (``.nc`` or ``.zarr``).
    inputs : iterable of str or Path
        Paths or glob patterns the command reads.
    """
    from pipeline.cli import interrupts
    from pipeline.io import check_output_path, expect_output

    check_output_path(output, inputs=inputs)
    if interrupts.is_installed():  # the console script: a process that ends after this command
        expect_output(output)


def spec_paths(*specs) -> list[str]:
    """The files named by ``file:PATH`` grid specs among ``specs`` (inputs of a command)."""
    texts = [str(s).strip() for s in specs if s is not None]
    return [t[5:] for t in texts if t.lower().startswith("file:")]
