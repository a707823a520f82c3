"""The ``terrascale`` command line: thin, it parses, calls stage functions and prints.

Errors a user can cause (:class:`~pipeline.errors.TerrascaleError`) are printed as one red line
and exit with status 2; anything else is a bug and keeps its traceback.

Modules: ``root`` (the command group, :func:`main`), ``common`` (consoles, ``history()``), and one
module per command group, each with a ``register(app)`` function: ``inspect`` (info, validate,
config), ``data``, ``features``, ``aggregate`` (aggregate, weights, grids).
"""

from __future__ import annotations

from pipeline.cli.root import app, main

__all__ = ["app", "main"]
