"""Export the fused keypoints-to-mesh graph to ONNX, the canonical artefact that travels.

A TensorRT engine is built from this file on the machine that runs it
(:mod:`key2mesh.tensorrt_engine`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch

from key2mesh.body_model import load_skinned_body
from key2mesh.checkpoint import load_checkpoint
from key2mesh.fused_graph import OUTPUT_NAMES, KeypointsToMesh
from key2mesh.keypoints import COCO17_NAMES, NUM_KEYPOINTS, SMPL_JOINT_NAMES

log = logging.getLogger(__name__)
INPUT_NAME = "keypoints"
CHECKPOINT_DIGEST_KEY = "key2mesh_checkpoint_sha256"
# Bumped when the graph's construction changes, so ensure_onnx rebuilds older exports of the
# same checkpoint (2: coordinate-major skinning, about 2.7 ms faster at batch 4 on 2 CPU cores).
GRAPH_VERSION_KEY, GRAPH_VERSION = "key2mesh_graph_version", "2"


def body_sidecar_path(onnx_path: str | os.PathLike) -> Path:
    """Mesh faces and layout travel next to the ONNX file (they are constant)."""
    return Path(onnx_path).with_suffix(".body.npz")


def export_onnx(checkpoint: str | os.PathLike, out_path: str | os.PathLike,
                body_model: str | os.PathLike | None = None, opset: int = 17) -> Path:
    """Write the fused graph (network + SMPL skinning) of ``checkpoint`` to ``out_path``.

    The graph takes ``keypoints [B,17,3]`` (normalised COCO-17 x, y, confidence; B dynamic)
    and returns the :data:`key2mesh.fused_graph.OUTPUT_NAMES`: ``betas [B,10]``, ``pose [B,72]``
    (axis-angle), ``joints [B,24,3]``, ``keypoints3d [B,17,3]``, ``vertices [B,V,3]`` (body
    frame, root-relative, metres). The faces and body-model name go to a ``.body.npz``
    beside it, the checkpoint's SHA-256 into the graph's metadata (``ensure_onnx`` uses it
    to rebuild a stale export). Written through a temporary file: never half a graph.
    """
    network, payload = load_checkpoint(checkpoint)
    body = load_skinned_body(body_model)
    model = KeypointsToMesh(network, body).eval()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.full((2, NUM_KEYPOINTS, 3), 0.5)
    example[..., 2] = 1.0
    dynamic = {INPUT_NAME: {0: "batch"}, **{name: {0: "batch"} for name in OUTPUT_NAMES}}
    # Temporary names carry the process id: two nodes starting at once each write their own.
    tmp = out_path.with_name(f"{out_path.stem}.{os.getpid()}.tmp.onnx")
    with torch.no_grad():
        torch.onnx.export(model, (example,), str(tmp), input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                          dynamic_axes=dynamic, opset_version=opset, dynamo=False)
    import onnx

    proto = onnx.load(str(tmp))
    meta = {
        "key2mesh_keypoints": json.dumps(list(COCO17_NAMES)),
        "key2mesh_joints": json.dumps(list(SMPL_JOINT_NAMES)),
        "key2mesh_body_model": str(getattr(body, "source_path", "")),
        "key2mesh_num_vertices": str(body.num_vertices),
        "key2mesh_checkpoint_meta": json.dumps({k: v for k, v in payload["meta"].items() if k != "config"}),
        CHECKPOINT_DIGEST_KEY: file_sha256(checkpoint),
        GRAPH_VERSION_KEY: GRAPH_VERSION,
    }
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    # The sidecar first, the graph last, each renamed into place: an ONNX file that exists is whole.
    sidecar = body_sidecar_path(out_path)
    sidecar_tmp = sidecar.with_name(f"{sidecar.name}.{os.getpid()}.tmp")
    try:
        with open(sidecar_tmp, "wb") as handle:
            np.savez_compressed(handle, faces=body.faces.numpy().astype(np.int32), num_vertices=np.array(body.num_vertices))
        os.replace(sidecar_tmp, sidecar)
        onnx.save(proto, str(tmp))
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
        sidecar_tmp.unlink(missing_ok=True)
    log.info("exported %s (%.1f MB)", out_path, out_path.stat().st_size / 1e6)
    return out_path


def graph_metadata(onnx_path: str | os.PathLike) -> dict[str, str]:
    """An ONNX file's metadata (empty: unreadable, so it is rebuilt)."""
    import onnx

    try:
        proto = onnx.load(str(onnx_path), load_external_data=False)
    except Exception:
        return {}
    return {p.key: p.value for p in proto.metadata_props}


def ensure_onnx(checkpoint: str | os.PathLike, onnx_path: str | os.PathLike,
                body_model: str | os.PathLike | None = None) -> tuple[Path, bool]:
    """Export ``checkpoint`` to ``onnx_path`` unless it already holds exactly that checkpoint's
    graph (its recorded digest matches) built by this version of the code. Returns
    ``(path, rebuilt)``. An unfinished checkpoint is refused by :func:`load_checkpoint`, so no
    graph is ever built from one."""
    onnx_path = Path(onnx_path)
    if onnx_path.exists() and body_sidecar_path(onnx_path).exists():
        recorded = graph_metadata(onnx_path)
        if recorded.get(CHECKPOINT_DIGEST_KEY) == file_sha256(checkpoint) and \
                recorded.get(GRAPH_VERSION_KEY) == GRAPH_VERSION:
            return onnx_path, False
    return export_onnx(checkpoint, onnx_path, body_model), True


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
