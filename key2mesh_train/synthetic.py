"""Synthetic training pairs: pose a MoCap body, view it through a random virtual camera,
project and corrupt the 2D keypoints like a detector would (the paper's recipe + more)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch

from key2mesh.keypoints import (
    NUM_KEYPOINTS,
    normalization_box,
    normalize_keypoints,
)
from key2mesh.mirror import mirror_rotmats
from key2mesh.projection import project_pinhole
from key2mesh.rotations import euler_to_matrix
from key2mesh.skinning import SkinnedBody
from key2mesh_train.keypoint_noise import DetectorNoise, KeypointNoise

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
    # Beyond the paper, for real motion seen by robots (0 turns each off):
    mirror_prob: float = 0.5  # whole poses mirrored left/right
    betas_std: float = 0.4  # body shapes drawn over the body model's shape space (0: the MoCap's own)
    robot_camera_prob: float = 0.5  # a robot's camera: mounted robot_height_min..max m high, level or looking down
    robot_height_min: float = 0.5
    robot_height_max: float = 1.8
    robot_pitch_max_deg: float = 45.0
    edge_prob: float = 0.1  # people partly out of frame: the pelvis anywhere near the image
    # Detector-like biases (COCO hips sit higher and wider than SMPL's, ankles higher, noise)
    # at a random strength in [0, 1] per person, for this fraction of people; 0 trains on clean projections.
    detector_noise_prob: float = 0.7
    detector_noise: DetectorNoise = field(default_factory=lambda: DetectorNoise(
        sigma=0.015, hip_raise=0.04, hip_widen=0.2, ankle_drop=-0.04, low_conf_prob=0.1))
    # A measured detector (``key2mesh-train detector-residuals``): that share of pre-training's
    # steps replays its residuals, confidences and misses instead of the modelled noise above.
    replayed_residuals: str = ""  # .npz path; "" = modelled noise only
    replayed_residuals_share: float = 0.5

    def paper_recipe(self) -> SyntheticConfig:
        """The same cameras without this project's additions (robot mounts, people at the
        edge, detector biases, mirroring, drawn shapes): what benchmarks and target domains
        that predate them are defined on."""
        return dataclasses.replace(self, mirror_prob=0.0, betas_std=0.0, robot_camera_prob=0.0, edge_prob=0.0,
                                   detector_noise_prob=0.0, replayed_residuals="")

    def for_replayed_detections(self) -> SyntheticConfig:
        """The same cameras for keypoints carrying a measured detector's residuals
        (:class:`key2mesh_train.keypoint_noise.ReplayedResiduals`): no random joint drops, as
        that detector's own misses stand in for them."""
        return dataclasses.replace(self, drop_prob=0.0)


def sample_cameras(batch: int, cfg: SyntheticConfig, gen: torch.Generator):
    """Focal ``[B]``, principal point ``[B,2]``, pelvis in the camera ``[B,3]`` and the camera's
    pitch ``[B]`` (radians, > 0 looks down). Most cameras follow the paper (the pelvis somewhere
    in the image, tilt from ``random_view``); ``robot_camera_prob`` of them are mounted at a robot's
    height and pitched down, and the pelvis lands where that geometry puts it."""
    dev = gen.device  # batches are drawn where the generator lives (the GPU when training on one)
    rand = lambda *s: torch.rand(*s, generator=gen, device=dev)  # noqa: E731
    focal = cfg.focal_min + (cfg.focal_max - cfg.focal_min) * rand(batch)
    principal = torch.tensor([cfg.image_width / 2, cfg.image_height / 2], device=dev) + cfg.principal_jitter_px * (2 * rand(batch, 2) - 1)
    distance = cfg.distance_min + (cfg.distance_max - cfg.distance_min) * rand(batch)
    m = torch.full((batch,), cfg.centre_margin, device=dev)
    m = torch.where(rand(batch) < cfg.edge_prob, torch.full_like(m, -0.05), m)  # partly out of frame
    size = torch.tensor([cfg.image_width, cfg.image_height], dtype=torch.float32, device=dev)
    pixel = size * (m[:, None] + (1 - 2 * m[:, None]) * rand(batch, 2))
    ray = torch.cat([(pixel - principal) / focal[:, None], torch.ones(batch, 1, device=dev)], dim=-1)
    pelvis = ray * distance[:, None]
    pitch = torch.zeros(batch, device=dev)

    robot = rand(batch) < cfg.robot_camera_prob
    if robot.any():
        # Level world, y down: the camera at height h sees a pelvis at p (0.7-1.0 m) h - p below it.
        theta = math.radians(cfg.robot_pitch_max_deg) * rand(batch)
        height = cfg.robot_height_min + (cfg.robot_height_max - cfg.robot_height_min) * rand(batch)
        below = height - (0.7 + 0.3 * rand(batch))
        pending = robot.clone()
        for _ in range(4):  # a pixel whose ray meets the pelvis height out of range is drawn again
            ray_down = ray[:, 1] * torch.cos(theta) + torch.sin(theta)  # the ray's downward component, level world
            depth = below / torch.where(ray_down.abs() > 1e-3, ray_down, torch.full_like(ray_down, 1e-3))
            reach = depth * ray.norm(dim=-1)
            ok = pending & (depth > 0) & (reach >= cfg.distance_min) & (reach <= cfg.distance_max)
            pelvis = torch.where(ok[:, None], ray * depth[:, None], pelvis)
            pitch = torch.where(ok, theta, pitch)
            pending &= ~ok
            if not pending.any():
                break
            pixel = size * (m[:, None] + (1 - 2 * m[:, None]) * rand(batch, 2))
            ray = torch.where(pending[:, None], torch.cat([(pixel - principal) / focal[:, None], torch.ones(batch, 1, device=dev)], -1),
                              ray)
        # The few left keep the paper's camera (pelvis and ray from the first draw).
    return focal, principal, pelvis, pitch


def random_view(batch: int, cfg: SyntheticConfig, gen: torch.Generator,
                camera_pitch: torch.Tensor | None = None) -> torch.Tensor:
    """Body-to-camera view rotations ``[B,3,3]`` (body frame, before ``BODY_TO_CAMERA``): any
    yaw with the paper's pitch/roll jitter, then the camera's own pitch (``pitch_offset_deg``
    and, where non-zero, ``camera_pitch [B]`` radians for robot mounts). The camera's pitch
    comes after the yaw, so the body's up axis leans toward the camera by exactly that much:
    a camera that looks down sees the top of the head, whichever way the person faces."""
    dev = gen.device
    yaw = math.radians(cfg.yaw_deg) * torch.rand(batch, generator=gen, device=dev)
    pr = math.radians(cfg.pitch_roll_deg)
    pitch = pr * (2 * torch.rand(batch, generator=gen, device=dev) - 1)
    roll = pr * (2 * torch.rand(batch, generator=gen, device=dev) - 1)
    tilt = torch.full((batch,), math.radians(cfg.pitch_offset_deg), device=dev)
    if camera_pitch is not None:
        mounted = camera_pitch != 0  # a robot's camera: its own pitch plus a little jitter, not the paper's +-20
        tilt = torch.where(mounted, camera_pitch, tilt)
        pitch = torch.where(mounted, 0.25 * pitch, pitch)
        roll = torch.where(mounted, 0.25 * roll, roll)
    zero = torch.zeros(batch, device=dev)
    return euler_to_matrix(zero, tilt, zero) @ euler_to_matrix(yaw, pitch, roll)


def augment_poses(rotmats: torch.Tensor, betas: torch.Tensor, cfg: SyntheticConfig,
                  gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mirror whole poses left/right (``mirror_prob``) and draw body shapes (``betas_std``).

    ``rotmats [B,24,3,3]`` local rotations, root in a Y-up world; ``betas [B,10]``. Mirroring
    through the body's x = 0 plane swaps sides and conjugates every rotation by that reflection.
    """
    batch = rotmats.shape[0]
    if cfg.mirror_prob > 0:
        flip = torch.rand(batch, generator=gen, device=gen.device) < cfg.mirror_prob
        mirrored = mirror_rotmats(rotmats)
        rotmats = torch.where(flip[:, None, None, None], mirrored, rotmats)
    if cfg.betas_std > 0:
        drawn = (cfg.betas_std * torch.randn(betas.shape, generator=gen, device=gen.device)).clamp(-2.5 * cfg.betas_std, 2.5 * cfg.betas_std)
        betas = drawn
    return rotmats, betas


@torch.no_grad()
def synthesize(rotmats: torch.Tensor, betas: torch.Tensor, body: SkinnedBody, cfg: SyntheticConfig,
               gen: torch.Generator, noise: KeypointNoise | None = None,
               with_vertices: bool = False) -> dict[str, torch.Tensor]:
    """One batch of (network input, 3D target) pairs from world-frame MoCap poses."""
    batch = rotmats.shape[0]
    focal, principal, pelvis_cam, camera_pitch = sample_cameras(batch, cfg, gen)
    view = random_view(batch, cfg, gen, camera_pitch)
    rotmats = rotmats.clone()
    rotmats[:, 0] = BODY_TO_CAMERA.to(view) @ view @ rotmats[:, 0]
    posed = body(betas, rotmats, with_vertices=with_vertices)
    pelvis = posed["joints"][:, :1]
    kp3d = posed["keypoints"] - pelvis
    pixels = project_pinhole(kp3d + pelvis_cam[:, None], focal, principal)
    dev = gen.device
    conf = torch.ones(batch, NUM_KEYPOINTS, device=dev)
    clean = pixels
    if noise is not None:
        pixels, conf = noise.apply(pixels, conf, gen)
    elif cfg.detector_noise_prob > 0:  # training: detector-like biases of random strength
        strength = torch.rand(batch, generator=gen, device=dev) * (torch.rand(batch, generator=gen, device=dev) < cfg.detector_noise_prob)
        pixels, conf = cfg.detector_noise.apply(pixels, conf, gen, strength)
    pixels = pixels + cfg.jitter_px * torch.randn(pixels.shape, generator=gen, device=dev)
    drop = torch.rand(batch, NUM_KEYPOINTS, generator=gen, device=dev) < cfg.drop_prob
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
