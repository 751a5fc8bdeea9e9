"""Retarget BVH skeletons (CMU naming) to SMPL joint rotations by matching bone directions.

Each SMPL joint's world rotation starts from its parent's (which carries twist down the
chain) and is turned by the smallest rotation that points its bone where the BVH bone
points; the pelvis and upper spine, which branch, are solved from two directions at once.
Twist about a bone's own axis is not observable from joint positions and is not recovered.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from key2mesh.keypoints import SMPL_JOINT_NAMES, SMPL_PARENTS
from key2mesh.rotations import matrix_to_axis_angle
from key2mesh_train.mocap.bvh import BVHMotion, read_bvh
from key2mesh_train.mocap.sequence import TARGET_FPS, Z_UP_TO_Y_UP, MotionSequence

# SMPL joint -> BVH joint at the same place (first name found wins).
BVH_NAMES: dict[str, tuple[str, ...]] = {
    "pelvis": ("Hips",), "left_hip": ("LeftUpLeg",), "right_hip": ("RightUpLeg",),
    "left_knee": ("LeftLeg",), "right_knee": ("RightLeg",), "left_ankle": ("LeftFoot",),
    "right_ankle": ("RightFoot",), "left_foot": ("LeftToeBase",), "right_foot": ("RightToeBase",),
    "spine1": ("LowerBack", "Spine"), "spine2": ("Spine", "Spine1"), "spine3": ("Spine1", "Spine2"),
    "neck": ("Neck",), "head": ("Head", "Neck1"), "left_collar": ("LeftShoulder",),
    "right_collar": ("RightShoulder",), "left_shoulder": ("LeftArm",), "right_shoulder": ("RightArm",),
    "left_elbow": ("LeftForeArm",), "right_elbow": ("RightForeArm",), "left_wrist": ("LeftHand",),
    "right_wrist": ("RightHand",), "left_hand": ("LeftFingerBase", "LeftHandIndex1"),
    "right_hand": ("RightFingerBase", "RightHandIndex1"),
}
# Joints whose rotation is fixed by one bone: joint -> child that the bone points to.
SINGLE_CHILD = {
    "left_hip": "left_knee", "right_hip": "right_knee", "left_knee": "left_ankle",
    "right_knee": "right_ankle", "left_ankle": "left_foot", "right_ankle": "right_foot",
    "spine1": "spine2", "spine2": "spine3", "neck": "head", "left_collar": "left_shoulder",
    "right_collar": "right_shoulder", "left_shoulder": "left_elbow", "right_shoulder": "right_elbow",
    "left_elbow": "left_wrist", "right_elbow": "right_wrist", "left_wrist": "left_hand",
    "right_wrist": "right_hand",
}
# Branching joints: two (from, to) directions to their own children (a grandchild would
# mix in the child's rotation), the first matched exactly.
TWO_DIRECTIONS = {
    "pelvis": (("pelvis", "spine1"), ("right_hip", "left_hip")),
    "spine3": (("spine3", "neck"), ("right_collar", "left_collar")),
}


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _min_rotation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotations ``[T,3,3]`` taking unit vectors ``a`` to ``b`` (both ``[T,3]``)."""
    v = np.cross(a, b)
    c = (a * b).sum(-1)
    k = np.zeros(a.shape[:-1] + (3, 3))
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    k = k - np.swapaxes(k, -1, -2)
    factor = 1.0 / np.maximum(1.0 + c, 1e-9)
    out = np.eye(3) + k + (k @ k) * factor[..., None, None]
    # Opposite vectors: any half turn about an axis perpendicular to a.
    flip = c < -0.999999
    if flip.any():
        axis = _unit(np.cross(a[flip], np.where(np.abs(a[flip, :1]) < 0.9, [[1, 0, 0]], [[0, 1, 0]])))
        out[flip] = 2 * axis[:, :, None] * axis[:, None, :] - np.eye(3)
    return out


def _frame(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    x = _unit(primary)
    z = _unit(np.cross(x, secondary))
    return np.stack([x, np.cross(z, x), z], axis=-1)


def retarget_bvh(motion: BVHMotion, rest_joints: np.ndarray) -> MotionSequence:
    """BVH motion -> SMPL sequence for a body whose T-pose joints are ``rest_joints [24,3]``."""
    names = {j.name for j in motion.joints}
    column: dict[str, int] = {}
    for smpl_name, candidates in BVH_NAMES.items():
        found = next((c for c in candidates if c in names), None)
        if found is not None:
            column[smpl_name] = motion.index(found)
    required = ["pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
                "right_ankle", "spine3", "neck", "left_shoulder", "right_shoulder",
                "left_elbow", "right_elbow", "left_wrist", "right_wrist"]
    missing = [n for n in required if n not in column]
    if missing:
        raise ValueError(f"{motion.path}: BVH lacks joints for SMPL {missing} (CMU names expected)")
    _, bvh_pos = motion.global_transforms()
    pos = {n: bvh_pos[:, i] for n, i in column.items()}
    frames = bvh_pos.shape[0]
    index = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}
    rest = {n: rest_joints[i] for n, i in index.items()}

    world = np.zeros((frames, 24, 3, 3))
    for j, name in enumerate(SMPL_JOINT_NAMES):
        parent = SMPL_PARENTS[j]
        parent_rot = np.broadcast_to(np.eye(3), (frames, 3, 3)) if parent < 0 else world[:, parent]
        if name in TWO_DIRECTIONS:
            (a0, a1), (b0, b1) = TWO_DIRECTIONS[name]
            if all(k in pos for k in (a0, a1, b0, b1)):
                target = _frame(pos[a1] - pos[a0], pos[b1] - pos[b0])
                source = _frame(rest[a1] - rest[a0], rest[b1] - rest[b0])
                world[:, j] = target @ source.T
                continue
        child = SINGLE_CHILD.get(name)
        if child is None or child not in pos or name not in pos:
            world[:, j] = parent_rot  # leaf or unmatched joint: keep the parent's rotation
            continue
        current = np.einsum("tab,b->ta", parent_rot, _unit(rest[child] - rest[name]))
        world[:, j] = _min_rotation(current, _unit(pos[child] - pos[name])) @ parent_rot

    local = world.copy()
    for j, parent in enumerate(SMPL_PARENTS):
        if parent >= 0:
            local[:, j] = np.swapaxes(world[:, parent], -1, -2) @ world[:, j]
    local[:, 0] = Z_UP_TO_Y_UP.T @ world[:, 0]  # BVH is Y-up; sequences are stored Z-up
    poses = matrix_to_axis_angle(torch.from_numpy(local)).numpy()

    # Scale BVH units to metres by leg length, then place the pelvis.
    leg_bvh = np.linalg.norm(pos["left_knee"] - pos["left_hip"], axis=-1).mean() + np.linalg.norm(
        pos["left_ankle"] - pos["left_knee"], axis=-1).mean()
    leg_body = np.linalg.norm(rest["left_knee"] - rest["left_hip"]) + np.linalg.norm(
        rest["left_ankle"] - rest["left_knee"])
    trans = (pos["pelvis"] * leg_body / max(leg_bvh, 1e-9)) @ Z_UP_TO_Y_UP
    trans = trans - trans[:1] * np.array([1, 1, 0])  # start at the origin, keep height
    return MotionSequence(motion.path.stem, poses, trans, np.zeros(10), motion.fps).resampled(TARGET_FPS)


def load_bvh_cached(path: str | Path, rest_joints: np.ndarray, cache_dir: str | Path) -> MotionSequence:
    """Retarget once, then reuse the AMASS-layout ``.npz`` cached under ``cache_dir``."""
    from key2mesh_train.mocap.amass import load_amass_npz

    path = Path(path)
    key = hashlib.sha1(path.read_bytes() + rest_joints.astype(np.float32).tobytes()).hexdigest()[:16]
    cached = Path(cache_dir) / f"{path.stem}-{key}.npz"
    if cached.exists():
        seq = load_amass_npz(cached)
        seq.name = path.stem
        return seq
    seq = retarget_bvh(read_bvh(path), rest_joints)
    cached.parent.mkdir(parents=True, exist_ok=True)
    seq.save_npz(cached)
    return seq
