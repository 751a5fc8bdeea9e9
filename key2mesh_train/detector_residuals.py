"""A real detector's errors, measured for pre-training: bodies of the *training* performers are
rendered through a robot-like camera and read by the YOLO-pose detector, and each detection
is compared with the body's own projected keypoints. What is left is that detector's residual
pattern per person (offsets in box units, with its confidences and misses), which pre-training
replays on clean MoCap projections (:class:`key2mesh_train.keypoint_noise.ReplayedResiduals`,
``synthetic.replayed_residuals``) on part of its batches. Why: models trained longer on the
modelled noise alone did better on the synthetic benchmark and worse on real detections.

Held-out performers are never rendered here: they stay for the benchmarks.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from key2mesh.keypoints import COCO17_NAMES, normalization_box, visible_mask
from key2mesh_train.atomic_npz import write_npz
from key2mesh_train.config import TrainConfig
from key2mesh_train.keypoint_noise import capped_residuals

SEED = 3  # not the adaptation benchmark's seeds (1, 2): other people, other views


def residuals_from_detections(keypoints_px: torch.Tensor, clean: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Residuals ``[N,17,2]`` (detected minus true keypoints, in units of the true body's box
    side, as :class:`ReplayedResiduals` applies them; length capped at ``MAX_RESIDUAL``, 0 where
    missed) and confidences ``[N,17]`` (0 where missed) from detections ``keypoints_px [N,17,3]``
    of bodies whose projected keypoints are ``clean [N,17,2]``."""
    seen = visible_mask(keypoints_px)
    _, side = normalization_box(torch.cat([clean, torch.ones_like(clean[..., :1])], -1))
    residual = capped_residuals((keypoints_px[..., :2] - clean) / side[:, None, None], seen)
    return residual.float(), torch.where(seen, keypoints_px[..., 2], torch.zeros_like(keypoints_px[..., 2])).float()


def measure_detector_residuals(config: TrainConfig, people: int, detector, out: str | os.PathLike,
                               progress: bool = True) -> dict:
    """Render ``people`` training-performer bodies, detect them with ``detector`` (a
    :class:`key2mesh.detector.PoseDetector`) and write their residuals to ``out`` (``.npz``,
    atomically). Returns a summary: people found, misses and median offsets per joint."""
    from key2mesh_train.adaptation.benchmark import target_camera
    from key2mesh_train.adaptation.rendered_detections import detect_rendered_people
    from key2mesh_train.pretrain import prepare_data

    body, train_bank, _ = prepare_data(config, progress=False)
    found = detect_rendered_people(body, train_bank, target_camera(config.synthetic), people, SEED, detector,
                                   config.data.cache_dir, progress)
    if not len(found["keypoints_px"]):
        raise RuntimeError(f"the detector found none of the {people} rendered bodies")
    residuals, confidences = residuals_from_detections(found["keypoints_px"], found["keypoints_clean"])
    write_npz(out, residuals=residuals.numpy(), confidences=confidences.numpy(),
              detector=np.array(Path(detector.path).name), rendered=np.int64(people))
    seen = confidences > 0
    offset = residuals.norm(dim=-1)
    return {"rendered": people, "found": len(residuals), "missed_joints": float(1 - seen.float().mean()),
            "median_offset_pct": {name: round(float(offset[:, j][seen[:, j]].median()) * 100, 2) if seen[:, j].any()
                                  else None for j, name in enumerate(COCO17_NAMES)}}
