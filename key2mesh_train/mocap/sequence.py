"""One motion sequence in SMPL terms, the unit every MoCap loader returns."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from key2mesh_train.atomic_npz import write_npz

TARGET_FPS = 30.0
# AMASS (and our cache) store motion in a Z-up world; the body model is Y-up.
Z_UP_TO_Y_UP = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=np.float64)


@dataclass
class MotionSequence:
    name: str
    poses: np.ndarray  # [T, 24, 3] axis-angle, SMPL joint order, root in a Z-up world
    trans: np.ndarray  # [T, 3] metres, Z-up world
    betas: np.ndarray  # [10]
    fps: float

    def __post_init__(self) -> None:
        if self.poses.ndim != 3 or self.poses.shape[1:] != (24, 3):
            raise ValueError(f"{self.name}: poses must be [T,24,3], got {self.poses.shape}")
        if not np.isfinite(self.poses).all():
            raise ValueError(f"{self.name}: poses contain NaN or inf")

    def __len__(self) -> int:
        return self.poses.shape[0]

    def resampled(self, fps: float = TARGET_FPS) -> MotionSequence:
        """Nearest-frame resampling (MoCap is 60-120 Hz; 30 Hz is plenty for poses)."""
        if abs(self.fps - fps) < 1e-6 or len(self) < 2:
            return self
        count = max(1, int(np.floor((len(self) - 1) * fps / self.fps)) + 1)
        index = np.clip(np.round(np.arange(count) * self.fps / fps).astype(int), 0, len(self) - 1)
        return MotionSequence(self.name, self.poses[index], self.trans[index], self.betas, fps)

    def save_npz(self, path) -> None:
        """Write in AMASS layout so cached and generated motion load like AMASS. Written to a
        temporary file and renamed, so an interrupted run never leaves a truncated cache entry."""
        write_npz(path, compressed=True, poses=self.poses.reshape(len(self), -1).astype(np.float32),
                  trans=self.trans.astype(np.float32), betas=self.betas.astype(np.float32),
                  gender=np.array("neutral"), mocap_framerate=np.array(self.fps))
