"""A target domain made by a real detector: held-out MoCap bodies are rendered through a
robot-like camera and the YOLO-pose detector reads their keypoints. Only those 2D
detections (with the detector's own joint definitions, confidences and misses) go to
adaptation; the bodies' 3D joints stay with the benchmark as withheld ground truth.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from key2mesh.boxes import box_iou
from key2mesh.keypoints import NUM_KEYPOINTS
from key2mesh.projection import project_pinhole
from key2mesh.skinning import SkinnedBody
from key2mesh_train.adaptation.render import BodyRenderer
from key2mesh_train.atomic_npz import write_npz
from key2mesh_train.mocap.dataset import PoseBank
from key2mesh_train.pretrain import sample_batch
from key2mesh_train.synthetic import SyntheticConfig, synthesize

log = logging.getLogger(__name__)
_FORMAT = 3  # bump when rendering or matching changes, so stale caches are not reused
_CHUNK = 128  # bodies posed at once: full meshes are 13k+ vertices each


def _cache_path(cache_dir: str | Path, fields: dict) -> Path:
    key = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(cache_dir) / f"detector_domain_{key}.npz"


def detect_rendered_people(body: SkinnedBody, bank: PoseBank, camera: SyntheticConfig, people: int, seed: int,
                           detector, cache_dir: str | Path | None = None, progress: bool = True) -> dict[str, torch.Tensor]:
    """Render ``people`` bodies from ``bank`` and detect them.

    Returns ``keypoints_px [N,17,3]`` (detector pixels and confidences), ``joints3d [N,24,3]``
    (pelvis-relative truth), ``keypoints_clean [N,17,2]`` (the body's own keypoints projected:
    what a perfect detector would give) and ``body_index [N]`` for the ``N <= people`` bodies
    the detector found, plus ``detected_fraction``. ``detector`` is a :class:`key2mesh.detector.PoseDetector`.
    Results are cached under ``cache_dir``: detection is the slow part (~0.2 s a body on a CPU).
    """
    fields = {"format": _FORMAT, "people": people, "seed": seed, "camera": asdict(camera),
              "detector": [Path(detector.path).name, Path(detector.path).stat().st_size if Path(detector.path).is_file() else 0,
                           getattr(detector, "description", "")],
              "bank": [len(bank), float(bank.rotmats[:: max(1, len(bank) // 64)].sum())],
              "body": [body.num_vertices, float(body.v_template.sum())]}
    cache = _cache_path(cache_dir, fields) if cache_dir else None
    if cache is not None and cache.is_file():
        with np.load(cache) as data:
            log.info("detector domain from cache %s", cache)
            out = {k: data[k] for k in data.files}
    else:
        out = _render_and_detect(body, bank, camera, people, seed, detector, progress)
        if cache is not None:
            write_npz(cache, compressed=True, **out)
    return {k: torch.from_numpy(out[k]) for k in ("keypoints_px", "joints3d", "keypoints_clean", "body_index")} | \
        {"detected_fraction": float(out["detected_fraction"])}


def _render_and_detect(body: SkinnedBody, bank: PoseBank, camera: SyntheticConfig, people: int, seed: int,
                       detector, progress: bool) -> dict[str, np.ndarray]:
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    rot, betas = sample_batch(bank, people, gen)
    renderer = BodyRenderer(body.faces.numpy(), body.lbs_weights.numpy(), camera.image_width, camera.image_height)
    keypoints = np.zeros((people, NUM_KEYPOINTS, 3), np.float32)
    joints = np.zeros((people, len(body.parents), 3), np.float32)
    clean = np.zeros((people, NUM_KEYPOINTS, 2), np.float32)
    found = np.zeros(people, bool)
    size = np.array([camera.image_width, camera.image_height])
    bar = tqdm(total=people, desc="render+detect", unit="body", disable=not progress)
    for start in range(0, people, _CHUNK):
        stop = min(start + _CHUNK, people)
        batch = synthesize(rot[start:stop], betas[start:stop], body, camera, gen, with_vertices=True)
        joints[start:stop] = batch["joints3d"].numpy()
        vertices = batch["vertices"] + batch["pelvis_cam"][:, None]
        pixels = project_pinhole(vertices, batch["focal"], batch["principal"]).numpy()
        clean[start:stop] = project_pinhole(batch["keypoints3d"] + batch["pelvis_cam"][:, None], batch["focal"],
                                            batch["principal"]).numpy()
        for i in range(stop - start):
            image = renderer.render(vertices[i].numpy(), pixels[i], rng)
            truth_box = np.concatenate([np.clip(pixels[i].min(0), 0, size), np.clip(pixels[i].max(0), 0, size)])
            detections = detector.detect(image)
            if detections:
                # One body per image: take the best detection that is really on it.
                iou = box_iou(np.stack([d.box for d in detections]), truth_box[None])[:, 0]
                on_body = np.flatnonzero(iou >= 0.3)
                if on_body.size:
                    keypoints[start + i], found[start + i] = detections[on_body[0]].keypoints, True
            bar.update(1)
    bar.close()
    log.info("detector found %d of %d rendered bodies", found.sum(), people)
    return {"keypoints_px": keypoints[found], "joints3d": joints[found], "keypoints_clean": clean[found],
            "body_index": np.flatnonzero(found),
            "detected_fraction": np.float32(found.mean())}
