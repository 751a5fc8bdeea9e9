"""Default locations, in one place: generated artefacts, the shipped model, the exported graph.

Generated files go under ``artifacts/`` in the working folder (``$KEY2MESH_ARTIFACTS``
moves it); package data is found through ``importlib.resources``, so an installed package
(a wheel, a colcon install) finds it as a source checkout does.
"""

from __future__ import annotations

import logging
import os
from importlib import resources
from pathlib import Path

log = logging.getLogger(__name__)


def artifacts_dir() -> Path:
    return Path(os.environ.get("KEY2MESH_ARTIFACTS") or "artifacts")


def shipped_model() -> Path:
    """Our own model trained on real CMU motion, fp16, with ``MODEL_CARD.md`` beside it."""
    return Path(str(resources.files("key2mesh") / "assets" / "key2mesh_cmu.pt"))


def trained_checkpoint() -> Path:
    """Where ``key2mesh-train pretrain`` writes by default (``configs/default.yaml``)."""
    return artifacts_dir() / "key2mesh_pretrained.pt"


def exported_onnx() -> Path:
    return artifacts_dir() / "key2mesh.onnx"


def default_model() -> tuple[Path, str]:
    """The model to use when none is named: a finished checkpoint of the user's own
    pre-training, else the shipped one. Returns the path and a line that says which and why;
    an unfinished run is never used (its weights would silently give worse meshes)."""
    from key2mesh.checkpoint import UnfinishedCheckpointError, load_checkpoint, partial_path, run_progress

    own = trained_checkpoint()
    notes = []
    if own.exists():
        try:
            load_checkpoint(own)
            return own, f"using your pre-trained checkpoint {own}"
        except (UnfinishedCheckpointError, ValueError) as err:
            notes.append(f"not using {own}: {err}")
    partial = partial_path(own)
    if partial.exists():
        try:
            _, payload = load_checkpoint(partial, allow_unfinished=True)
            done, planned, _ = run_progress(payload)
            notes.append(f"an unfinished pre-training run is at {partial} (step {done} of {planned}); "
                         "finish it with 'key2mesh-train pretrain --resume'")
        except Exception as err:  # a damaged partial file: say so, use the shipped model
            notes.append(f"ignoring unreadable {partial} ({err})")
    shipped = shipped_model()
    return shipped, "; ".join(notes + [f"using the shipped model {shipped} (see its MODEL_CARD.md)"])
