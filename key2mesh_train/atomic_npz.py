"""``.npz`` files written atomically: arrays go to a temporary file renamed over the target, so
an interrupted run (Ctrl-C, a killed process, a full disk) never leaves a truncated file where
a finished one is expected, and no temporary file behind."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def write_npz(path: str | os.PathLike, compressed: bool = False, **arrays) -> Path:
    """Write ``arrays`` to ``path`` (``np.savez``, or ``np.savez_compressed``) atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as handle:
            (np.savez_compressed if compressed else np.savez)(handle, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
