"""Keypoint layouts, SMPL joint order and input normalisation.

This is the single place where training and inference agree on what the network reads:
a mismatch in layout or normalisation silently ruins accuracy, so nothing else defines them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

SMPL_JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
    "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
)
SMPL_PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21,
)
NUM_SMPL_JOINTS = 24
# Left/right swap of SMPL joints, for mirroring whole poses.
SMPL_FLIP: tuple[int, ...] = tuple(
    SMPL_JOINT_NAMES.index(n.replace("left", "right") if n.startswith("left") else n.replace("right", "left"))
    for n in SMPL_JOINT_NAMES
)
NUM_BETAS = 10

COCO17_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
NUM_KEYPOINTS = len(COCO17_NAMES)
COCO17_SKELETON: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)
# Face keypoints come from mesh vertices (named in the body-model file); the limb keypoints
# are SMPL joints, which is also how detector keypoints relate to a fitted SMPL body.
COCO17_FACE_VERTEX_NAMES: tuple[str, ...] = ("nose", "leye", "reye", "lear", "rear")
COCO17_FROM_SMPL_JOINT: dict[int, int] = {
    5: 16, 6: 17, 7: 18, 8: 19, 9: 20, 10: 21, 11: 1, 12: 2, 13: 4, 14: 5, 15: 7, 16: 8,
}
# Left/right swap for horizontal-flip augmentation of COCO-17 keypoints.
COCO17_FLIP: tuple[int, ...] = (0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15)

# OpenPose COCO-18 order -> index in COCO-17 (neck has no COCO-17 counterpart).
OPENPOSE18_NAMES: tuple[str, ...] = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
    "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
    "left_knee", "left_ankle", "right_eye", "left_eye", "right_ear", "left_ear",
)

# ROS4HRI's hri_msgs/Skeleton2D order (REP-155). It follows OpenPose COCO-18 except that its
# constants put the left eye and ear before the right ones; the message's constants win here,
# since ROS4HRI tools index by them.
HRI_SKELETON18_NAMES: tuple[str, ...] = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder",
    "left_elbow", "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip",
    "left_knee", "left_ankle", "left_eye", "right_eye", "left_ear", "right_ear",
)


def coco17_to_hri_skeleton18(keypoints: np.ndarray) -> np.ndarray:
    """COCO-17 ``[..., 17, 3]`` (x, y, confidence) -> the hri_msgs/Skeleton2D order ``[..., 18, 3]``.
    The neck, which COCO-17 lacks, is the shoulders' midpoint with the weaker one's confidence."""
    keypoints = np.asarray(keypoints, dtype=np.float32)
    out = keypoints[..., _HRI_FROM_COCO17, :]  # one gather (the neck's row is overwritten)
    left, right = keypoints[..., _SHOULDERS[0], :], keypoints[..., _SHOULDERS[1], :]
    out[..., _HRI_NECK, :2] = 0.5 * (left[..., :2] + right[..., :2])
    out[..., _HRI_NECK, 2] = np.minimum(left[..., 2], right[..., 2])
    return out


_HRI_NECK = HRI_SKELETON18_NAMES.index("neck")
_HRI_FROM_COCO17 = np.array([0 if name == "neck" else COCO17_NAMES.index(name) for name in HRI_SKELETON18_NAMES])
_SHOULDERS = (COCO17_NAMES.index("left_shoulder"), COCO17_NAMES.index("right_shoulder"))


# The paper's joint weights for the 2D/3D joint losses: extremities are hardest and matter
# most for a robot (hands, feet), so they weigh more.
_JOINT_WEIGHT_BY_NAME = {
    "wrist": 8.0, "ankle": 8.0, "elbow": 4.0, "knee": 4.0, "shoulder": 2.0, "hip": 2.0,
}


def _weights_for(names: tuple[str, ...]) -> np.ndarray:
    weights = np.ones(len(names), dtype=np.float32)
    for i, name in enumerate(names):
        for part, w in _JOINT_WEIGHT_BY_NAME.items():
            if name.endswith(part):
                weights[i] = w
    return weights


SMPL_JOINT_WEIGHTS = _weights_for(SMPL_JOINT_NAMES)
COCO17_WEIGHTS = _weights_for(COCO17_NAMES)

# Joints below this confidence are treated as missing, as in the official Key2Mesh code.
CONFIDENCE_THRESHOLD = 0.1


def openpose18_to_coco17(keypoints: np.ndarray) -> np.ndarray:
    """Reorder OpenPose COCO-18 keypoints ``[..., 18, 3]`` into COCO-17 ``[..., 17, 3]``."""
    keypoints = np.asarray(keypoints, dtype=np.float32)
    if keypoints.shape[-2:] != (18, 3):
        raise ValueError(f"OpenPose COCO-18 keypoints must be [...,18,3], got {keypoints.shape}")
    index = [OPENPOSE18_NAMES.index(name) for name in COCO17_NAMES]
    return keypoints[..., index, :]


def load_openpose_json(path: str | Path) -> np.ndarray:
    """Read an OpenPose ``*_keypoints.json`` file into COCO-17 keypoints ``[P, 17, 3]``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
        people = data["people"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not an OpenPose keypoints JSON ({err})") from err
    out = []
    for person in people:
        flat = np.asarray(person.get("pose_keypoints_2d", []), dtype=np.float32)
        if flat.size == 18 * 3:
            out.append(openpose18_to_coco17(flat.reshape(18, 3)))
        elif flat.size == 17 * 3:
            out.append(flat.reshape(17, 3))
        else:
            raise ValueError(f"{path}: pose_keypoints_2d has {flat.size} values, expected 54 or 51")
    return np.stack(out) if out else np.zeros((0, NUM_KEYPOINTS, 3), np.float32)


def visible_mask(keypoints: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Joints that count as detected ``[..., K]``: finite and confidence >= 0.1."""
    lib = np if isinstance(keypoints, np.ndarray) else torch
    finite = lib.isfinite(keypoints[..., :2]).all(-1) & lib.isfinite(keypoints[..., 2])
    with np.errstate(invalid="ignore"):  # NaN compares False, which is what we want
        return finite & (keypoints[..., 2] >= CONFIDENCE_THRESHOLD)


def normalization_box(keypoints: np.ndarray | torch.Tensor, visible: np.ndarray | torch.Tensor | None = None
                      ) -> tuple[np.ndarray | torch.Tensor, np.ndarray | torch.Tensor]:
    """Centre ``[..., 2]`` and longer side ``[...]`` of the box around visible joints (numpy
    arrays or torch tensors, the same code for both); ``visible [..., K, 1]``: their
    :func:`visible_mask`, when the caller has it already."""
    lib = np if isinstance(keypoints, np.ndarray) else torch
    visible = visible_mask(keypoints)[..., None] if visible is None else visible
    xy = keypoints[..., :2]
    big = float(lib.finfo(xy.dtype).max)
    lo = lib.amin(lib.where(visible, xy, big), -2)
    hi = lib.amax(lib.where(visible, xy, -big), -2)
    any_visible = visible.any(-2)
    lo, hi = lib.where(any_visible, lo, 0.0), lib.where(any_visible, hi, 1.0)
    return (lo + hi) / 2, lib.clip(lib.amax(hi - lo, -1), 1e-6, None)


def normalize_keypoints(keypoints: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Normalise pixel keypoints ``[..., K, 3]`` (x, y, confidence) to the network input.

    Official Key2Mesh recipe: take the box around joints with confidence >= 0.1, subtract its
    centre, divide by its longer side, add 0.5. Low-confidence joints are set to 0.5 and the
    third channel becomes a 0/1 visibility mask. NaN coordinates or scores count as missing,
    so a detector glitch cannot poison the batch. Works on numpy arrays (float32, in numpy: the
    node's path, where torch's per-call overhead would cost more than the sums) and torch
    tensors (training), with the same code.
    """
    is_numpy = isinstance(keypoints, (np.ndarray, list, tuple))
    kp = np.asarray(keypoints, np.float32) if is_numpy else keypoints.float()
    lib = np if is_numpy else torch
    visible = visible_mask(kp)[..., None]
    centre, side = normalization_box(kp, visible)
    norm = (lib.where(visible, kp[..., :2], 0.0) - centre[..., None, :]) / side[..., None, None] + 0.5
    norm = lib.where(visible, norm, 0.5)
    mask = visible.astype(np.float32) if is_numpy else visible.to(norm.dtype)
    return lib.concatenate([norm, mask], -1)

