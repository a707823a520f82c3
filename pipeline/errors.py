"""User-facing errors.

A :class:`TerrascaleError` is something the user can fix (a bad config value, a bad input file).
The CLI prints its message on one line and exits non-zero, without a traceback; any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations


class TerrascaleError(Exception):
    """An error caused by user input; the message names the file, the variable and the fix."""

    exit_code = 2


class ConfigError(TerrascaleError):
    """Invalid run configuration (unknown key, wrong type, missing file)."""


class InputDataError(TerrascaleError):
    """An input file or store that cannot be used as it is."""


class BackendError(TerrascaleError):
    """A requested compute backend (GPU) that is not usable on this machine."""


class MissingDependencyError(TerrascaleError):
    """An optional package needed for the requested feature is not installed."""

    def __init__(self, package: str, feature: str, extra: str | None = None):
        hint = f"pip install 'terrascale[{extra}]'" if extra else f"pip install {package}"
        super().__init__(f"{feature} needs the package '{package}', which is not installed; install it with: {hint}")
        self.package = package
