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

from key2mesh.keypoints import NUM_KEYPOINTS
from key2mesh.lbs import SkinnedBody
from key2mesh_train.mocap.dataset import PoseBank
from key2mesh_train.pretrain import sample_batch
from key2mesh_train.render import BodyRenderer
from key2mesh_train.synthetic import SyntheticConfig, synthesize

log = logging.getLogger(__name__)
_FORMAT = 2  # bump when rendering or matching changes, so stale caches are not reused
_CHUNK = 128  # bodies posed at once: full meshes are 13k+ vertices each


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two ``[4]`` boxes (x_min, y_min, x_max, y_max)."""
    lo, hi = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(hi - lo, 0, None)))
    area = lambda box: float(np.prod(np.clip(box[2:] - box[:2], 0, None)))  # noqa: E731
    return inter / max(area(a) + area(b) - inter, 1e-9)


def _cache_path(cache_dir: str | Path, fields: dict) -> Path:
    key = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(cache_dir) / f"detector_domain_{key}.npz"


def detect_rendered_people(body: SkinnedBody, bank: PoseBank, camera: SyntheticConfig, people: int, seed: int,
                           detector, cache_dir: str | Path | None = None, progress: bool = True) -> dict[str, torch.Tensor]:
    """Render ``people`` bodies from ``bank`` and detect them.

    Returns ``keypoints_px [N,17,3]`` (detector pixels and confidences), ``joints3d [N,24,3]``
    (pelvis-relative truth) and ``body_index [N]`` for the ``N <= people`` bodies the detector
    found, plus ``detected_fraction``. ``detector`` is a :class:`key2mesh_ros.detector.PoseDetector`.
    Results are cached under ``cache_dir``: detection is the slow part (~0.2 s a body on a CPU).
    """
    fields = {"format": _FORMAT, "people": people, "seed": seed, "camera": asdict(camera),
              "detector": [str(detector.path), Path(detector.path).stat().st_size if Path(detector.path).is_file() else 0],
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
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(cache, **out)
    return {k: torch.from_numpy(out[k]) for k in ("keypoints_px", "joints3d", "body_index")} | \
        {"detected_fraction": float(out["detected_fraction"])}


def _render_and_detect(body: SkinnedBody, bank: PoseBank, camera: SyntheticConfig, people: int, seed: int,
                       detector, progress: bool) -> dict[str, np.ndarray]:
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    rot, betas = sample_batch(bank, people, gen)
    renderer = BodyRenderer(body.faces.numpy(), body.lbs_weights.numpy(), camera.image_width, camera.image_height)
    keypoints = np.zeros((people, NUM_KEYPOINTS, 3), np.float32)
    joints = np.zeros((people, len(body.parents), 3), np.float32)
    found = np.zeros(people, bool)
    bar = tqdm(total=people, desc="render+detect", unit="body", disable=not progress)
    for start in range(0, people, _CHUNK):
        stop = min(start + _CHUNK, people)
        batch = synthesize(rot[start:stop], betas[start:stop], body, camera, gen, with_vertices=True)
        joints[start:stop] = batch["joints3d"].numpy()
        for i in range(stop - start):
            vertices = (batch["vertices"][i] + batch["pelvis_cam"][i]).numpy()
            focal, principal = float(batch["focal"][i]), batch["principal"][i].numpy()
            image = renderer.render(vertices, focal, principal, rng)
            pixels = vertices[:, :2] / vertices[:, 2:] * focal + principal
            size = np.array([camera.image_width, camera.image_height])
            truth_box = np.concatenate([np.clip(pixels.min(0), 0, size), np.clip(pixels.max(0), 0, size)])
            # One body per image: take the best detection that is really on it.
            for det in detector.detect(image):
                if box_iou(det.box, truth_box) >= 0.3:
                    keypoints[start + i], found[start + i] = det.keypoints, True
                    break
            bar.update(1)
    bar.close()
    log.info("detector found %d of %d rendered bodies", found.sum(), people)
    return {"keypoints_px": keypoints[found], "joints3d": joints[found], "body_index": np.flatnonzero(found),
            "detected_fraction": np.float32(found.mean())}
