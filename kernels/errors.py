"""Typed errors raised by the kernels, so that callers recognise them by type, not by message."""

from __future__ import annotations

__all__ = ["InvalidClassCodes"]


class InvalidClassCodes(ValueError):
    """Class codes outside the lookup table (or ``[0, n_classes)``) met by a class kernel.

    Attributes
    ----------
    codes : tuple of int
        The offending raw codes (at most the first ten).
    """

    def __init__(self, message: str, codes: tuple[int, ...]):
        super().__init__(message)
        self.codes = tuple(int(c) for c in codes)
