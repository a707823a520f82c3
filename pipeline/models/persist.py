"""Save any model and load a saved one back as the class its kind names.

A saved model is a directory: its state in a safe format and ``model.json`` with every state
file's sha256 (:mod:`pipeline.models.safe_files`); a file that changed is refused.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.models.registry import model_class
from pipeline.models.safe_files import read_model_meta

__all__ = ["load_model", "save_model"]


def save_model(model, directory: str | Path) -> Path:
    """Write a fitted model into ``directory`` (see :meth:`pipeline.models.base.Model.save`)."""
    return model.save(directory)


def load_model(directory: str | Path, *, device: str | None = None):
    """Read a saved model, of the class its recorded kind names, after checking its checksums.

    Parameters
    ----------
    directory : str or Path
        The model directory.
    device : str, optional
        Where to predict (default: the device it was trained on).

    Returns
    -------
    pipeline.models.base.Model
        The fitted model.
    """
    return model_class(read_model_meta(directory)["kind"]).load(directory, device=device)
