"""AMASS ``.npz`` sequences (SMPL, SMPL-H or SMPL-X parameters) -> SMPL body motion."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from key2mesh.keypoints import NUM_BETAS
from key2mesh_train.mocap.sequence import MotionSequence


def load_amass_npz(path: str | Path) -> MotionSequence:
    """Read one AMASS file. SMPL-H/X keep their first 22 joints (same as SMPL's body);
    SMPL's two hand joints are set to rest, as AMASS has finger joints instead."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            fields = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a readable AMASS .npz ({err})") from err
    if "poses" not in fields:
        raise ValueError(f"{path}: no 'poses' array (keys: {sorted(fields)}); not an AMASS motion file")
    poses = np.asarray(fields["poses"], np.float64)
    if poses.ndim != 2 or poses.shape[1] < 66 or poses.shape[1] % 3:
        raise ValueError(f"{path}: 'poses' must be [T, 3*J] with J >= 22, got {poses.shape}")
    frames = poses.shape[0]
    body = np.zeros((frames, 24, 3))
    body[:, :22] = poses[:, :66].reshape(frames, 22, 3)
    if poses.shape[1] == 72:  # plain SMPL keeps its hand joints
        body[:, 22:] = poses[:, 66:72].reshape(frames, 2, 3)
    trans = np.asarray(fields.get("trans", np.zeros((frames, 3))), np.float64)
    betas = np.zeros(NUM_BETAS)
    raw_betas = np.asarray(fields.get("betas", np.zeros(NUM_BETAS)), np.float64).reshape(-1)
    betas[: min(NUM_BETAS, raw_betas.size)] = raw_betas[:NUM_BETAS]
    fps = float(np.asarray(fields.get("mocap_framerate", fields.get("mocap_frame_rate", 30.0))))
    return MotionSequence(path.stem, body, trans, betas, fps)
