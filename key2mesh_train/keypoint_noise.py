"""Every model of how 2D keypoints differ from clean projections, in one place.

- :class:`KeypointNoise`: the interface ``synthesize`` takes (pixels and confidences in, out).
- :class:`DetectorNoise`: a *parametric* detector: systematic joint offsets, jitter, misses.
  Pre-training draws it at random strengths (``synthetic.detector_noise``); the benchmark
  applies one fixed instance (``benchmark_noise`` in the config).
- :data:`MODELLED_TARGET_BIAS`: the adaptation benchmark's synthetic target detector.
- :class:`ReplayedResiduals`: a *measured* detector: residuals read off real unlabelled
  detections (``adaptation/warm_start.py``), or off rendered training bodies against their
  true keypoints (``detector_residuals.py``, :func:`load_replayed_residuals`), replayed on MoCap.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from key2mesh.keypoints import COCO17_FACE_VERTEX_NAMES, NUM_KEYPOINTS, normalization_box

# In units of the person's box side. A fit that went wrong (a left/right swap, a person the
# network misread) leaves residuals that are not the detector's noise: cap what one joint replays.
MAX_RESIDUAL = 0.25


class KeypointNoise(Protocol):
    """How a detector corrupts clean projections: pixel keypoints ``[B,17,2]`` and
    confidences ``[B,17]`` in, corrupted ones out."""

    def apply(self, points: torch.Tensor, conf: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        ...


@dataclass
class DetectorNoise:
    """Detector-like corruption of clean projections, all relative to person height.

    Systematic per-keypoint offsets model how a detector's joint definitions differ from the
    body model's (e.g. COCO hips sit higher and wider than SMPL hip joints); confidence
    patterns and misses model self-occlusion. Used for held-out benchmarks and to build a
    *target domain* for adaptation; never seen by pre-training unless asked for.
    """

    sigma: float = 0.01
    hip_raise: float = 0.0
    hip_widen: float = 0.0
    shoulder_raise: float = 0.0
    ankle_drop: float = 0.0
    face_shift: float = 0.0
    miss_prob: float = 0.0
    low_conf_prob: float = 0.0

    def apply(self, points: torch.Tensor, conf: torch.Tensor, gen: torch.Generator,
              strength: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Corrupt pixel keypoints ``[B,17,2]`` and confidences ``[B,17]``; ``strength [B]``
        scales the offsets and noise per person (default 1)."""
        height = (points[..., 1].amax(-1) - points[..., 1].amin(-1)).clamp_min(10.0)[:, None]
        if strength is not None:
            height = height * strength[:, None]
        points = points.clone()
        conf = conf.clone()
        hips, shoulders, ankles = [11, 12], [5, 6], [15, 16]
        face = list(range(len(COCO17_FACE_VERTEX_NAMES)))
        points[:, hips, 1] -= self.hip_raise * height
        widen = (points[:, 11, 0] - points[:, 12, 0])[:, None] * self.hip_widen * torch.tensor([1.0, -1.0], device=points.device)
        if strength is not None:
            widen = widen * strength[:, None]
        points[:, hips, 0] += widen
        points[:, shoulders, 1] -= self.shoulder_raise * height
        points[:, ankles, 1] += self.ankle_drop * height
        points[:, face, 1] -= self.face_shift * height
        points = points + self.sigma * height[..., None] * torch.randn(points.shape, generator=gen, device=gen.device)
        if self.low_conf_prob > 0:
            low = torch.rand(conf.shape, generator=gen, device=gen.device) < self.low_conf_prob
            conf = torch.where(low, 0.15 + 0.25 * torch.rand(conf.shape, generator=gen, device=gen.device), conf)
        if self.miss_prob > 0:
            conf = torch.where(torch.rand(conf.shape, generator=gen, device=gen.device) < self.miss_prob, torch.zeros_like(conf), conf)
        return points, conf


# The adaptation benchmark's synthetic target domain: a robot's detector whose joint
# definitions and misses differ from anything pre-training saw.
MODELLED_TARGET_BIAS = DetectorNoise(sigma=0.015, hip_raise=0.05, hip_widen=0.3, shoulder_raise=0.03, ankle_drop=0.02,
                                     face_shift=0.02, miss_prob=0.1, low_conf_prob=0.15)


def capped_residuals(residual: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """Per-joint residuals ``[...,17,2]`` (box units) as they are replayed: each joint's length
    capped at ``MAX_RESIDUAL``, 0 where the detector did not see the joint (``seen [...,17]``)."""
    norm = residual.norm(dim=-1, keepdim=True)
    residual = residual * (MAX_RESIDUAL / norm.clamp_min(MAX_RESIDUAL))
    return torch.where(seen[..., None], residual, torch.zeros_like(residual))


@dataclass
class ReplayedResiduals:
    """A :class:`KeypointNoise` that gives each clean person the
    residuals and confidences of one randomly drawn target detection."""

    residuals: torch.Tensor  # [N,17,2], box units
    confidences: torch.Tensor  # [N,17], 0 where the target missed the joint

    def apply(self, points: torch.Tensor, conf: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.randint(0, len(self.residuals), (len(points),), generator=gen, device=gen.device).to(self.residuals.device)
        _, side = normalization_box(torch.cat([points, conf[..., None]], dim=-1))
        points = points + self.residuals[index].to(points) * side[:, None, None]
        return points, torch.where(conf > 0, self.confidences[index].to(conf), torch.zeros_like(conf))


def load_replayed_residuals(path: str | os.PathLike, device: torch.device | str = "cpu") -> ReplayedResiduals:
    """The residuals written by ``key2mesh-train detector-residuals``, on ``device``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no measured detector residuals (write them with "
                                "'key2mesh-train detector-residuals')")
    with np.load(path) as data:
        if "residuals" not in data.files or "confidences" not in data.files:
            raise ValueError(f"{path}: not a detector residuals file (no residuals / confidences)")
        residuals, confidences = data["residuals"], data["confidences"]
    if residuals.ndim != 3 or residuals.shape[1:] != (NUM_KEYPOINTS, 2) or confidences.shape != residuals.shape[:2] \
            or not len(residuals) or not np.isfinite(residuals).all():
        raise ValueError(f"{path}: residuals must be finite [N,{NUM_KEYPOINTS},2] with confidences [N,{NUM_KEYPOINTS}], "
                         f"N > 0; got {residuals.shape} and {confidences.shape}")
    return ReplayedResiduals(torch.from_numpy(residuals.astype(np.float32)).to(device),
                             torch.from_numpy(confidences.astype(np.float32)).to(device))
