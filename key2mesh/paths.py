"""Default locations, in one place: generated artefacts, the shipped model, the exported graph,
the shared data and detector, message definitions and the node's configuration.

Generated files go under ``artifacts/`` in the working folder (``$KEY2MESH_ARTIFACTS``
moves it); the data shared beside the project is ``../shared`` (``$KEY2MESH_SHARED``);
package data is found through ``importlib.resources`` and the ament prefixes, never by
walking up from a source file, so an installed package (a wheel, a colcon install) finds it
as a source checkout does.
"""

from __future__ import annotations

import logging
import os
import sys
from importlib import resources
from pathlib import Path

log = logging.getLogger(__name__)


def artifacts_dir() -> Path:
    return Path(os.environ.get("KEY2MESH_ARTIFACTS") or "artifacts")


def shared_dir() -> Path:
    """Data kept beside the project (real MoCap, the YOLO-pose detector); may be absent."""
    return Path(os.environ.get("KEY2MESH_SHARED") or "../shared")


def shared_mocap() -> Path:
    return shared_dir() / "mocap" / "cmu"


def shared_detector() -> Path:
    return shared_dir() / "models" / "yolo11n-pose.onnx"


def default_detector() -> str:
    """``$KEY2MESH_DETECTOR``, else the shared YOLO-pose ONNX where present, else the official
    name ultralytics knows (it needs the file in its cache: robots are often offline)."""
    env = os.environ.get("KEY2MESH_DETECTOR")
    if env:
        return env
    shared = shared_detector()
    return str(shared) if shared.exists() else "yolo11n-pose.pt"


def ament_prefixes() -> list[Path]:
    """Install prefixes a ROS 2 tool would search: ``$AMENT_PREFIX_PATH``, then this Python's."""
    found = [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    return [*found, Path(sys.prefix)]


def message_definitions(package: str) -> Path | None:
    """``share/<package>/msg`` of an installed interface package (None when not installed)."""
    for prefix in ament_prefixes():
        folder = prefix / "share" / package / "msg"
        if folder.is_dir():
            return folder
    return None


def node_config(name: str) -> Path:
    """A file of the node's configuration (``params.yaml``, ``fastdds_shm.xml``), shipped inside
    the ``key2mesh_ros`` package and also installed to its ament share folder."""
    return Path(str(resources.files("key2mesh_ros.config") / name))


def stand_in_body_model() -> Path:
    """The free SMPL-format stand-in body (``scripts/make_body_model.py``); real SMPL replaces
    it through ``$KEY2MESH_BODY_MODEL``."""
    return Path(str(resources.files("key2mesh") / "assets" / "k2m_anny_neutral.pkl"))


def shipped_model() -> Path:
    """Our own model trained on real CMU motion, fp16, with ``MODEL_CARD.md`` beside it."""
    return Path(str(resources.files("key2mesh") / "assets" / "key2mesh_cmu.pt"))


def trained_checkpoint() -> Path:
    """Where ``key2mesh-train pretrain`` writes by default."""
    return artifacts_dir() / "key2mesh_pretrained.pt"


def adapted_checkpoint() -> Path:
    """Where ``key2mesh-train adapt`` writes by default (and its ONNX export beside it)."""
    return artifacts_dir() / "key2mesh_adapted.pt"


def adapt_benchmark_checkpoint() -> Path:
    return artifacts_dir() / "key2mesh_adapted_benchmark.pt"


def exported_onnx() -> Path:
    return artifacts_dir() / "key2mesh.onnx"


def detector_residuals() -> Path:
    """A real detector's residuals on rendered training bodies (``key2mesh-train detector-residuals``)."""
    return artifacts_dir() / "detector_residuals.npz"


def mocap_cache() -> Path:
    """Retargeted MoCap and generated stand-in motion, reused between runs."""
    return artifacts_dir() / "cache"


def detector_cache() -> Path:
    """Detector graphs converted for ONNX Runtime (fp32, one per input size)."""
    return artifacts_dir() / "detectors"


def plot(name: str) -> Path:
    """Figures written by the benchmarks and tools (``benchmark.png``, ``mocap/<trial>.png``...)."""
    return artifacts_dir() / name


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
