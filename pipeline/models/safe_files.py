"""The files of a saved model: state files, ``model.json``, checksums.

Saving and loading models in formats that load without unpickling untrusted data.

Each model writes its state in a safe format (XGBoost JSON/UBJ, torch ``state_dict`` read with
``weights_only=True``, scikit-learn through skops with an explicit list of trusted types, NumPy
``.npz`` without pickles) next to ``model.json``: the registry kind, the name, the parameters, the
task spec and the sha256 of every state file. Loading checks every sha256 first and refuses a
file that changed.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pipeline.errors import InputDataError
from pipeline.io import replace_atomically, temporary_sibling

__all__ = ["MODEL_FILE", "file_sha256", "read_model_meta", "write_model_dir"]

#: the description written beside a model's state files
MODEL_FILE = "model.json"


def file_sha256(path: Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_model_dir(model, directory: str | Path) -> Path:
    """Write ``model`` into ``directory`` (replaced atomically) with ``model.json``.

    Parameters
    ----------
    model : pipeline.models.base.Model
        A fitted model.
    directory : str or Path
        Where to write; an existing model directory there is replaced.

    Returns
    -------
    Path
        ``directory``.
    """
    directory = Path(directory)
    if directory.exists() and not (directory / MODEL_FILE).exists():
        raise InputDataError(f"{directory} exists and is not a saved terrascale model; choose another directory")
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(directory)
    tmp.mkdir()
    try:
        files = model._save(tmp)
        desc = model.describe()
        desc["spec"] = model.spec.to_dict()
        desc["files"] = {f: file_sha256(tmp / f) for f in files}
        (tmp / MODEL_FILE).write_text(json.dumps(desc, indent=1, default=str))
        replace_atomically(tmp, directory, replaces=lambda p: (p / MODEL_FILE).is_file())
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def read_model_meta(directory: str | Path) -> dict:
    """The description of a saved model, after checking every state file's sha256.

    Parameters
    ----------
    directory : str or Path
        The model directory.

    Returns
    -------
    dict
        The contents of ``model.json``.

    Raises
    ------
    InputDataError
        No ``model.json``, a missing state file, or a file whose sha256 is not the recorded one
        (changed after saving: refused, never read).
    """
    directory = Path(directory)
    meta_path = directory / MODEL_FILE
    if not meta_path.is_file():
        raise InputDataError(f"{directory} holds no {MODEL_FILE}; it is not a saved terrascale model")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as err:
        raise InputDataError(f"{meta_path} is not readable JSON ({err}); save the model again") from None
    for name, sha in meta.get("files", {}).items():
        path = directory / name
        if not path.is_file():
            raise InputDataError(f"model {directory}: state file {name} is missing; save the model again")
        if file_sha256(path) != sha:
            raise InputDataError(f"model {directory}: {name} does not match its recorded sha256 (changed after "
                                 "saving); refusing to load it: save the model again from a trusted run")
    return meta
