"""Synthetic training pairs: pose a MoCap body, view it through a random virtual camera,
project and corrupt the 2D keypoints like a detector would (the paper's recipe + more)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch

from key2mesh.keypoints import COCO17_FACE_VERTEX_NAMES, NUM_KEYPOINTS, normalization_box, normalize_keypoints
from key2mesh.lbs import SkinnedBody
from key2mesh.projection import project_pinhole
from key2mesh.rotations import euler_to_matrix

# Body frame (Y-up, facing +Z) -> OpenCV camera frame (x right, y down, z forward) for a
# camera looking at the body's front.
BODY_TO_CAMERA = torch.diag(torch.tensor([1.0, -1.0, -1.0]))


@dataclass
class SyntheticConfig:
    image_width: int = 640
    image_height: int = 480
    focal_min: float = 400.0
    focal_max: float = 1200.0
    distance_min: float = 1.2
    distance_max: float = 8.0
    principal_jitter_px: float = 20.0
    yaw_deg: float = 360.0  # full turn
    pitch_roll_deg: float = 20.0
    pitch_offset_deg: float = 0.0  # camera tilt: > 0 looks down on people (e.g. a robot's head camera)
    jitter_px: float = 1.0
    drop_prob: float = 0.2
    truncate: bool = True
    centre_margin: float = 0.1  # pelvis lands in the middle (1 - 2*margin) of the image


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

    def apply(self, points: torch.Tensor, conf: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Corrupt pixel keypoints ``[B,17,2]`` and confidences ``[B,17]``."""
        height = (points[..., 1].amax(-1) - points[..., 1].amin(-1)).clamp_min(10.0)[:, None]
        points = points.clone()
        conf = conf.clone()
        hips, shoulders, ankles = [11, 12], [5, 6], [15, 16]
        face = list(range(len(COCO17_FACE_VERTEX_NAMES)))
        points[:, hips, 1] -= self.hip_raise * height
        widen = (points[:, 11, 0] - points[:, 12, 0])[:, None] * self.hip_widen * torch.tensor([1.0, -1.0])
        points[:, hips, 0] += widen
        points[:, shoulders, 1] -= self.shoulder_raise * height
        points[:, ankles, 1] += self.ankle_drop * height
        points[:, face, 1] -= self.face_shift * height
        points = points + self.sigma * height[..., None] * torch.randn(points.shape, generator=gen)
        if self.low_conf_prob > 0:
            low = torch.rand(conf.shape, generator=gen) < self.low_conf_prob
            conf = torch.where(low, 0.15 + 0.25 * torch.rand(conf.shape, generator=gen), conf)
        if self.miss_prob > 0:
            conf = torch.where(torch.rand(conf.shape, generator=gen) < self.miss_prob, torch.zeros_like(conf), conf)
        return points, conf


def sample_cameras(batch: int, cfg: SyntheticConfig, gen: torch.Generator):
    rand = lambda *s: torch.rand(*s, generator=gen)  # noqa: E731
    focal = cfg.focal_min + (cfg.focal_max - cfg.focal_min) * rand(batch)
    principal = torch.tensor([cfg.image_width / 2, cfg.image_height / 2]) + cfg.principal_jitter_px * (2 * rand(batch, 2) - 1)
    distance = cfg.distance_min + (cfg.distance_max - cfg.distance_min) * rand(batch)
    m = cfg.centre_margin
    pixel = torch.stack([
        cfg.image_width * (m + (1 - 2 * m) * rand(batch)),
        cfg.image_height * (m + (1 - 2 * m) * rand(batch)),
    ], dim=-1)
    pelvis = torch.cat([(pixel - principal) / focal[:, None] * distance[:, None], distance[:, None]], dim=-1)
    return focal, principal, pelvis


def random_view(batch: int, cfg: SyntheticConfig, gen: torch.Generator) -> torch.Tensor:
    yaw = math.radians(cfg.yaw_deg) * torch.rand(batch, generator=gen)
    pr = math.radians(cfg.pitch_roll_deg)
    pitch = math.radians(cfg.pitch_offset_deg) + pr * (2 * torch.rand(batch, generator=gen) - 1)
    roll = pr * (2 * torch.rand(batch, generator=gen) - 1)
    return euler_to_matrix(yaw, pitch, roll)


@torch.no_grad()
def synthesize(rotmats: torch.Tensor, betas: torch.Tensor, body: SkinnedBody, cfg: SyntheticConfig,
               gen: torch.Generator, noise: KeypointNoise | None = None,
               with_vertices: bool = False) -> dict[str, torch.Tensor]:
    """One batch of (network input, 3D target) pairs from world-frame MoCap poses."""
    batch = rotmats.shape[0]
    view = random_view(batch, cfg, gen)
    rotmats = rotmats.clone()
    rotmats[:, 0] = BODY_TO_CAMERA @ view @ rotmats[:, 0]
    posed = body(betas, rotmats, with_vertices=with_vertices)
    pelvis = posed["joints"][:, :1]
    focal, principal, pelvis_cam = sample_cameras(batch, cfg, gen)
    kp3d = posed["keypoints"] - pelvis
    pixels = project_pinhole(kp3d + pelvis_cam[:, None], focal, principal)
    conf = torch.ones(batch, NUM_KEYPOINTS)
    clean = pixels
    if noise is not None:
        pixels, conf = noise.apply(pixels, conf, gen)
    pixels = pixels + cfg.jitter_px * torch.randn(pixels.shape, generator=gen)
    drop = torch.rand(batch, NUM_KEYPOINTS, generator=gen) < cfg.drop_prob
    conf = torch.where(drop, torch.zeros_like(conf), conf)
    inside = (pixels[..., 0] >= 0) & (pixels[..., 0] < cfg.image_width) & \
             (pixels[..., 1] >= 0) & (pixels[..., 1] < cfg.image_height)
    if cfg.truncate:
        conf = torch.where(inside, conf, torch.zeros_like(conf))
    # A detector reports no person with under 4 joints: undo random drops for such rows.
    few = (conf > 0).sum(-1) < 4
    restored = inside if cfg.truncate else torch.ones_like(inside)
    conf[few] = restored[few].to(conf.dtype)
    keypoints_px = torch.cat([pixels, conf[..., None]], dim=-1)
    centre, side = normalization_box(keypoints_px)
    target2d = (clean - centre[:, None]) / side[:, None, None] + 0.5
    # 2D supervision only where the visible box is a sound reference: with a handful of
    # joints in view the box is tiny and the other joints' targets explode.
    enough = ((conf > 0).sum(-1) >= 6)[:, None]
    near = (target2d - 0.5).abs().amax(-1) < 1.5
    weights2d = (enough & near).to(target2d.dtype)
    out = {
        "input": normalize_keypoints(keypoints_px),
        "keypoints_px": keypoints_px,
        "rotmats": rotmats,
        "betas": betas,
        "joints3d": posed["joints"] - pelvis,
        "keypoints3d": kp3d,
        "target2d": target2d,
        "weights2d": weights2d,
        "focal": focal,
        "principal": principal,
        "pelvis_cam": pelvis_cam,
    }
    if with_vertices:
        out["vertices"] = posed["vertices"] - pelvis
    return out
