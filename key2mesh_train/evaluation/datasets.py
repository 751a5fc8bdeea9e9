"""Readers for real evaluation sets in their published formats (files are licence-gated;
tests write tiny files in the same layout).

* 3DPW: ``sequenceFiles/<split>/*.pkl`` (Python-2 pickles: poses, betas, trans, poses2d,
  cam_poses, campose_valid, ...).
* Human3.6M protocol 2: an ``.npz`` with ``keypoints2d [N,17,3]`` (COCO-17 pixels),
  ``joints3d [N,17,3]`` (H36M-17 order, metres), ``subject`` and ``camera`` per frame;
  protocol 2 keeps subjects S9/S11 and the frontal camera 60457274.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from key2mesh.keypoints import SMPL_JOINT_NAMES, openpose18_to_coco17, visible_mask
from key2mesh.safe_pickle import load_pickle

H36M17_TO_SMPL = {  # H36M-17 joints that have an SMPL counterpart
    0: "pelvis", 1: "right_hip", 2: "right_knee", 3: "right_ankle", 4: "left_hip", 5: "left_knee",
    6: "left_ankle", 11: "left_shoulder", 12: "left_elbow", 13: "left_wrist", 14: "right_shoulder",
    15: "right_elbow", 16: "right_wrist",
}
H36M_PROTOCOL2_SUBJECTS = ("S9", "S11")
H36M_FRONTAL_CAMERA = "60457274"


@dataclass
class EvalSet:
    """Inputs and ground truth for one evaluation: SMPL GT (3DPW) or joints only (H36M)."""

    name: str
    keypoints2d: np.ndarray  # [N,17,3] pixels
    poses: np.ndarray | None = None  # [N,72] camera-frame SMPL axis-angle
    betas: np.ndarray | None = None  # [N,10]
    joints3d: np.ndarray | None = None  # [N,J,3] metres, when no SMPL GT
    smpl_joint_index: list[int] | None = None  # which SMPL joints joints3d correspond to

    def __len__(self) -> int:
        return self.keypoints2d.shape[0]


def _axis_angle_to_matrix_np(aa: np.ndarray) -> np.ndarray:
    angle = np.linalg.norm(aa, axis=-1, keepdims=True)
    axis = aa / np.maximum(angle, 1e-8)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(aa.shape[:-1] + (3, 3))
    s, c = np.sin(angle)[..., None], np.cos(angle)[..., None]
    return np.eye(3) + s * k + (1 - c) * (k @ k)


def _matrix_to_axis_angle_np(m: np.ndarray) -> np.ndarray:
    import torch

    from key2mesh.rotations import matrix_to_axis_angle

    return matrix_to_axis_angle(torch.from_numpy(m)).numpy()


def read_3dpw_sequence(path: str | Path, min_visible: int = 6) -> EvalSet:
    """One 3DPW sequence pickle -> frames with valid camera pose and enough 2D joints."""
    path = Path(path)
    try:
        seq = load_pickle(path)  # restricted: arrays only, a crafted file runs nothing
    except OSError as err:
        raise ValueError(f"{path}: not a readable 3DPW sequence pickle ({err})") from err
    needed = ("poses", "betas", "poses2d", "cam_poses", "campose_valid")
    missing = [k for k in needed if k not in seq]
    if missing:
        raise ValueError(f"{path}: missing 3DPW keys {missing}")
    keypoints, poses, betas = [], [], []
    cam_rot = np.asarray(seq["cam_poses"])[:, :3, :3]
    for person in range(len(seq["poses"])):
        pose = np.asarray(seq["poses"][person], np.float64)  # [T,72], world frame
        kp2d = np.transpose(np.asarray(seq["poses2d"][person], np.float64), (0, 2, 1))  # [T,18,3]
        valid = np.asarray(seq["campose_valid"][person], bool)
        kp = openpose18_to_coco17(kp2d)
        enough = visible_mask(kp).sum(-1) >= min_visible
        keep = valid & enough
        root = _axis_angle_to_matrix_np(pose[:, :3])
        root_cam = _matrix_to_axis_angle_np(cam_rot @ root)
        pose_cam = pose.copy()
        pose_cam[:, :3] = root_cam
        keypoints.append(kp[keep])
        poses.append(pose_cam[keep])
        betas.append(np.tile(np.asarray(seq["betas"][person], np.float64)[:10], (int(keep.sum()), 1)))
    return EvalSet(path.stem, np.concatenate(keypoints).astype(np.float32), np.concatenate(poses),
                   np.concatenate(betas))


def read_3dpw(root: str | Path, split: str = "test") -> EvalSet:
    files = sorted((Path(root) / "sequenceFiles" / split).glob("*.pkl")) or sorted(Path(root).glob("*.pkl"))
    if not files:
        raise FileNotFoundError(f"no 3DPW sequence pickles under {root}")
    parts = [read_3dpw_sequence(f) for f in files]
    return EvalSet(f"3dpw-{split}", np.concatenate([p.keypoints2d for p in parts]),
                   np.concatenate([p.poses for p in parts]), np.concatenate([p.betas for p in parts]))


def read_h36m_protocol2(path: str | Path) -> EvalSet:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            fields = {k: data[k] for k in data.files}
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not a readable H36M .npz ({err})") from err
    for key in ("keypoints2d", "joints3d", "subject", "camera"):
        if key not in fields:
            raise ValueError(f"{path}: missing key {key!r}")
    subject = fields["subject"].astype(str)
    camera = fields["camera"].astype(str)
    keep = np.isin(subject, H36M_PROTOCOL2_SUBJECTS) & (camera == H36M_FRONTAL_CAMERA)
    if not keep.any():
        raise ValueError(f"{path}: no protocol-2 frames (subjects S9/S11, camera {H36M_FRONTAL_CAMERA})")
    h36m_index = list(H36M17_TO_SMPL)
    joints = fields["joints3d"][keep][:, h36m_index].astype(np.float64)
    if np.abs(joints).max() > 50:  # millimetres in many releases
        joints = joints / 1000.0
    smpl_index = [SMPL_JOINT_NAMES.index(H36M17_TO_SMPL[i]) for i in h36m_index]
    return EvalSet("h36m-p2", fields["keypoints2d"][keep].astype(np.float32), joints3d=joints,
                   smpl_joint_index=smpl_index)
