"""The ``terrascale`` command line: thin, it parses, calls stage functions and prints.

Errors a user can cause (:class:`~pipeline.errors.TerrascaleError`) are printed as one red line
and exit with status 2; anything else is a bug and keeps its traceback. Ctrl-C and SIGTERM end
the process within a moment with status 130 or 143 and one line, the outputs left unchanged
(:mod:`pipeline.cli.interrupts`).

Modules: ``root`` (the command group, its :func:`~pipeline.cli.root.main`), ``common`` (consoles,
``history()``, the ``-o`` check), ``interrupts`` (signal handling of the process), and one module
per command group, each with a ``register(app)`` function: ``inspect`` (info, validate, config),
``data``, ``features``, ``aggregate`` (aggregate, weights, grids), ``models``, ``train``,
``run`` (run, predict, evaluate, report), ``catalog``.

Importing this package is light (``app`` is loaded on first use): the console script imports it
before :func:`main` runs, and an interrupt during the heavy imports must already be handled.
"""

from __future__ import annotations

__all__ = ["app", "main"]


def main() -> None:
    """Console-script entry point (``terrascale``): interrupt handling first, then the app.

    The SIGINT/SIGTERM handlers (:func:`pipeline.cli.interrupts.install`) are a policy of the
    process, installed here only, before typer, rich and the scientific stack are imported;
    :func:`pipeline.cli.root.main` then tunes the allocators and runs the command, and
    :func:`pipeline.cli.interrupts.exit_process` ends the process without the interpreter's
    slow teardown, during which a signal would no longer be handled.
    """
    import os

    from pipeline.cli import interrupts

    interrupts.install()
    # OpenMP threads of one library (torch, XGBoost, OpenBLAS) must not spin-wait while another
    # works: on 2 cores a spinning pool made the next fit 7-20x slower. Set before any of them
    # loads; the dask workers inherit it. A user's own setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from pipeline.cli import root

    try:
        root.main()
    except SystemExit as done:  # typer ends every command with one
        interrupts.exit_process(done.code)
    interrupts.exit_process(0)


def __getattr__(name: str):
    # ``from pipeline.cli import app`` loads the command group on first use only.
    if name == "app":
        from pipeline.cli.root import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
