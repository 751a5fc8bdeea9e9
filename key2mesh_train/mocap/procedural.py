"""Procedural motion: a free, self-generated stand-in for AMASS when no MoCap is present.

Writes AMASS-layout ``.npz`` files (so they load through the same AMASS reader) with walks,
waves, squats, reaches, turns and random key-pose dances built from anatomical joint ranges.
This is not captured motion: models trained on it only know these kinds of movement.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from key2mesh.keypoints import SMPL_JOINT_NAMES
from key2mesh.rotations import euler_to_matrix, matrix_to_axis_angle
from key2mesh_train.mocap.sequence import Z_UP_TO_Y_UP, MotionSequence

J = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}
# (x, y, z) Euler ranges in degrees for random key poses, SMPL local axes (x left, y up,
# z forward in T-pose): hips flex about -x, knees about +x, shoulders lower about z.
RANGES = {
    "left_hip": ((-90, 25), (-25, 25), (-10, 35)), "right_hip": ((-90, 25), (-25, 25), (-35, 10)),
    "left_knee": ((0, 120), (0, 0), (0, 0)), "right_knee": ((0, 120), (0, 0), (0, 0)),
    "left_ankle": ((-20, 30), (-10, 10), (-10, 10)), "right_ankle": ((-20, 30), (-10, 10), (-10, 10)),
    "spine1": ((-10, 40), (-20, 20), (-15, 15)), "spine2": ((-5, 20), (-15, 15), (-10, 10)),
    "spine3": ((-5, 20), (-15, 15), (-10, 10)), "neck": ((-20, 35), (-35, 35), (-15, 15)),
    "head": ((-15, 20), (-30, 30), (-10, 10)),
    "left_collar": ((-5, 5), (-10, 10), (-5, 15)), "right_collar": ((-5, 5), (-10, 10), (-15, 5)),
    "left_shoulder": ((-60, 60), (-80, 60), (-85, 50)),
    "right_shoulder": ((-60, 60), (-60, 80), (-50, 85)),
    "left_elbow": ((0, 0), (-140, 0), (0, 0)), "right_elbow": ((0, 0), (0, 140), (0, 0)),
    "left_wrist": ((-20, 20), (-20, 20), (-40, 40)), "right_wrist": ((-20, 20), (-20, 20), (-40, 40)),
}
KINDS = ("walk", "wave", "squat", "reach", "dance", "turn")


def _euler_pose(angles_deg: np.ndarray) -> np.ndarray:
    """``[T,24,3]`` x/y/z Euler degrees -> axis-angle ``[T,24,3]``."""
    a = torch.from_numpy(np.radians(angles_deg))
    mats = euler_to_matrix(a[..., 1], a[..., 0], a[..., 2])  # yaw=y, pitch=x, roll=z
    return matrix_to_axis_angle(mats).numpy()


def _random_key_pose(rng: np.random.Generator, spread: float = 1.0) -> np.ndarray:
    pose = np.zeros((24, 3))
    for name, ranges in RANGES.items():
        for axis, (lo, hi) in enumerate(ranges):
            mid, half = (lo + hi) / 2, (hi - lo) / 2
            pose[J[name], axis] = mid + half * spread * rng.uniform(-1, 1)
    return pose


def _arms_down(pose: np.ndarray, rng: np.random.Generator) -> None:
    pose[..., J["left_shoulder"], 2] += -rng.uniform(55, 80)
    pose[..., J["right_shoulder"], 2] += rng.uniform(55, 80)


def generate_sequence(kind: str, rng: np.random.Generator, frames: int = 150, fps: float = 30.0) -> MotionSequence:
    t = np.arange(frames) / fps
    angles = np.zeros((frames, 24, 3))
    heading = rng.uniform(0, 360)
    base = _random_key_pose(rng, spread=0.15)
    angles += base
    if kind != "dance":
        _arms_down(angles, rng)
    trans = np.zeros((frames, 3))
    freq = rng.uniform(0.7, 1.2)
    phase = 2 * np.pi * freq * t
    if kind == "walk":
        amp = rng.uniform(20, 35)
        angles[:, J["left_hip"], 0] += -amp * np.sin(phase)
        angles[:, J["right_hip"], 0] += amp * np.sin(phase)
        angles[:, J["left_knee"], 0] += amp * 1.2 * np.clip(np.sin(phase - 1.2), 0, None)
        angles[:, J["right_knee"], 0] += amp * 1.2 * np.clip(-np.sin(phase - 1.2), 0, None)
        angles[:, J["left_shoulder"], 0] += amp * 0.8 * np.sin(phase)
        angles[:, J["right_shoulder"], 0] += -amp * 0.8 * np.sin(phase)
        trans[:, 1] = rng.uniform(0.8, 1.4) * t
    elif kind == "wave":
        side, sign = rng.choice([("left", 1), ("right", -1)])
        sign = int(sign)
        angles[:, J[f"{side}_shoulder"], 2] = sign * rng.uniform(10, 60)
        angles[:, J[f"{side}_elbow"], 1] = -sign * (rng.uniform(40, 100) + 30 * np.sin(2 * phase))
        angles[:, J[f"{side}_elbow"], 0] = 0
    elif kind == "squat":
        depth = rng.uniform(40, 100) * (0.5 - 0.5 * np.cos(phase))
        for side in ("left", "right"):
            angles[:, J[f"{side}_hip"], 0] += -depth
            angles[:, J[f"{side}_knee"], 0] += 1.6 * depth
            angles[:, J[f"{side}_ankle"], 0] += -0.5 * depth
        angles[:, J["spine1"], 0] += 0.3 * depth
        angles[:, J["left_shoulder"], 0] += -0.8 * depth
        angles[:, J["right_shoulder"], 0] += -0.8 * depth
    elif kind == "reach":
        target = _random_key_pose(rng, spread=1.0)
        blend = (0.5 - 0.5 * np.cos(phase))[:, None]
        for name in ("spine1", "spine2", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "neck"):
            angles[:, J[name]] = (1 - blend) * angles[:, J[name]] + blend * target[J[name]]
    elif kind == "dance":
        keys = np.stack([_random_key_pose(rng, spread=1.0) for _ in range(6)])
        key_t = np.linspace(0, t[-1], len(keys))
        for j in range(24):
            for a in range(3):
                angles[:, j, a] = np.interp(t, key_t, keys[:, j, a])
    elif kind == "turn":
        heading_t = heading + rng.uniform(-180, 180) * t / t[-1]
        angles[:, J["neck"], 1] += 20 * np.sin(phase)
    angles += rng.normal(0, 2.0, angles.shape)  # small tremor so no two frames are equal
    yaw = heading_t if kind == "turn" else np.full(frames, heading)
    angles[:, 0] = 0
    angles[:, 0, 1] = yaw
    poses = _euler_pose(angles)
    # Root: body (Y-up) -> Y-up world heading -> Z-up world, as AMASS stores it.
    root = torch.from_numpy(np.radians(yaw))
    root_mats = torch.from_numpy(Z_UP_TO_Y_UP.T) @ euler_to_matrix(root, torch.zeros_like(root), torch.zeros_like(root))
    poses[:, 0] = matrix_to_axis_angle(root_mats).numpy()
    betas = rng.normal(0, 1.0, 10)
    return MotionSequence(f"procedural_{kind}", poses, trans, betas, fps)


def write_procedural_dataset(out_dir: str | Path, sequences: int = 60, seed: int = 0, frames: int = 150) -> list[Path]:
    """Write ``sequences`` AMASS-layout files under ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(sequences):
        kind = KINDS[i % len(KINDS)]
        seq = generate_sequence(kind, rng, frames=frames)
        path = out_dir / f"{i:04d}_{kind}.npz"
        seq.save_npz(path)
        paths.append(path)
    return paths
