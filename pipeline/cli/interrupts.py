"""Ctrl-C and SIGTERM for the ``terrascale`` process: clean up, one line, exit 130 or 143, at once.

Why not the default ``KeyboardInterrupt``
    An exception raised wherever the main thread happens to be is not a clean stop for this
    program: raised while xarray closes a NetCDF file it waits forever on the HDF5 lock that a
    dask worker holds; raised during a Zarr write every pending chunk write reports its own
    asyncio traceback while worker threads keep recreating the temporary that is being
    removed; raised during the imports at start-up it prints a traceback. SIGTERM (a batch
    scheduler's time limit) killed the process outright and left the temporary behind.

What happens instead
    :func:`install` (called by the console-script entry point :func:`pipeline.cli.main` only,
    before anything heavy is imported; importing :mod:`pipeline` installs nothing) sets
    handlers for SIGINT and SIGTERM. On a signal the main thread, which also drives the dask
    scheduler so that no new chunk is started, calls
    :func:`pipeline.io.atomic.cleanup_in_flight` (registered temporaries removed, an old output
    moved aside put back), writes one line to stderr (``interrupted: OUT left unchanged``) and
    ends with :func:`os._exit` (130 for SIGINT, 143 for SIGTERM): no exception unwinds through
    backends, no thread is waited for. Should the main thread be stuck in a C call that does
    not return (the HDF5 close above), a watchdog thread, woken through
    :func:`signal.set_wakeup_fd`, does the same after :data:`GRACE_S`.

After the command, :func:`exit_process` ends the process without the interpreter's teardown
(which takes most of a second after a large write, and during which a signal is no longer
handled by Python: the process would die of it with no cleanup).

A SIGINT that is ignored when the process starts (a background job of a non-interactive shell,
``nohup``) stays ignored.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

#: Seconds the watchdog thread leaves the main thread to handle a signal before doing it itself.
GRACE_S = 0.3

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_installed = False
_ending = threading.Lock()
_owner: int | None = None


def install() -> None:
    """Install the SIGINT and SIGTERM handlers and the watchdog thread (once; main thread only)."""
    global _installed
    if _installed:
        return
    for sig in _SIGNALS:
        if sig == signal.SIGINT and signal.getsignal(sig) is signal.SIG_IGN:
            continue
        signal.signal(sig, _on_signal)
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    threading.Thread(target=_watch, args=(read_fd,), name="terrascale-interrupts", daemon=True).start()
    _installed = True


def is_installed() -> bool:
    """Whether :func:`install` ran in this process (the console script, not a library user)."""
    return _installed


def _on_signal(signum, frame) -> None:
    end(signum)


def _watch(read_fd: int) -> None:
    # The C-level handler writes each signal number to the wakeup fd at once, whatever the
    # main thread is doing; the Python-level handler runs only when it next executes bytecode.
    while True:
        try:
            data = os.read(read_fd, 64)
        except OSError:
            return
        if not data:
            return
        for signum in data:
            if signum in _SIGNALS:
                time.sleep(GRACE_S)
                end(signum)


def end(signum: int) -> None:
    """Clean up the in-flight outputs, write one line to stderr and end the process at once.

    Parameters
    ----------
    signum : int
        The signal received; the exit status is ``128 + signum``.
    """
    global _owner
    me = threading.get_ident()  # before the lock: no call between acquiring it and recording the owner
    if _owner == me:
        return  # a second Ctrl-C while this thread cleans up: let it finish
    if not _ending.acquire(blocking=False):
        while True:  # the other thread is ending the process
            time.sleep(1)
    _owner = me
    line = "interrupted"
    try:
        # Not imported here (it would take seconds): until a command imported it, no output
        # was started and there is nothing to clean up.
        cleanup = getattr(sys.modules.get("pipeline.io.atomic"), "cleanup_in_flight", None)
        if cleanup is not None:
            report = cleanup()
            parts = [f"{path} {'written before the interrupt' if done else 'left unchanged'}"
                     for path, done in report.items()]
            if parts:
                line += ": " + "; ".join(parts)
    except BaseException as err:  # noqa: BLE001  (the process ends anyway; say why cleaning up failed)
        line += f" (cleaning up failed: {type(err).__name__}: {err})"
    try:
        if sys.stdout.isatty():
            os.write(1, b"\x1b[?25h")  # a progress display may have hidden the cursor
        prefix = "\n" if sys.stderr.isatty() else ""  # after the terminal's ^C
        os.write(2, (prefix + line + "\n").encode(errors="replace"))
    except (OSError, ValueError):
        pass
    os._exit(128 + signum)


def exit_process(status) -> None:
    """End the process after the command finished: exit functions run, streams flushed, no teardown.

    The interpreter's teardown (module and thread clean-up, freeing every array) is skipped: it
    is slow after a large write, runs no handler for a signal, and the output is complete.

    Parameters
    ----------
    status : int, str or None
        A :class:`SystemExit` code: ``None`` is 0, a string is printed to stderr and gives 1.
    """
    import atexit

    if status is None:
        code = 0
    elif isinstance(status, int):
        code = status
    else:
        sys.stderr.write(f"{status}\n")
        code = 1
    run = getattr(atexit, "_run_exitfuncs", None)
    if run is not None:
        run()  # logging's flush, temporary directories' finalisers
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed pipe (``terrascale grids | head``): nothing more can be said there
    os._exit(code & 0xFF)
