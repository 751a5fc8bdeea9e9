"""Retarget BVH motion of any supported rig (``rigs.py``) to SMPL joint rotations.

Everything is solved from world joint positions computed by the BVH's own forward
kinematics, never from raw channel values: rest poses differ between rigs (T-pose,
arms-down, or meaningless), positions do not. Each SMPL joint's world rotation starts from
its parent's (which carries twist down the chain) and is turned by the smallest rotation
that points its bone where the BVH bone points; the pelvis and upper spine, which branch,
are solved from two directions at once. Twist about a bone's own axis is not observable
from joint positions and is not recovered.

CMU conversions have zero-length bones (``LowerBack`` on ``Hips``, ``Neck`` on ``Spine1``):
a bone measured between two points that coincide has no direction, and a pelvis built on
one freezes every child. So the spine is taken as a polyline from pelvis to neck with
coincident points dropped, and SMPL's spine1-3 are placed along it at the body's own rest
proportions.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from key2mesh.keypoints import SMPL_JOINT_NAMES, SMPL_PARENTS
from key2mesh.rotations import matrix_to_axis_angle
from key2mesh_train.mocap.bvh import BVHMotion, read_bvh
from key2mesh_train.mocap.rigs import resolve_rig
from key2mesh_train.mocap.sequence import TARGET_FPS, Z_UP_TO_Y_UP, MotionSequence

# Part of the cache key: bump it when the retargeter's output changes, so stale caches are not reused.
RETARGET_VERSION = b"rigs-v3"
# Joints whose rotation is fixed by one bone: joint -> the place its bone points to.
SINGLE_CHILD = {
    "left_hip": "left_knee", "right_hip": "right_knee", "left_knee": "left_ankle",
    "right_knee": "right_ankle", "left_ankle": "left_foot", "right_ankle": "right_foot",
    "spine1": "spine2", "spine2": "spine3", "neck": "head", "left_collar": "left_shoulder",
    "right_collar": "right_shoulder", "left_shoulder": "left_elbow", "right_shoulder": "right_elbow",
    "left_elbow": "left_wrist", "right_elbow": "right_wrist", "left_wrist": "left_hand",
    "right_wrist": "right_hand", "head": "head_top",
}
# Branching joints: (from, to) along the body, then a right-to-left direction across it
# from their own children. Where a rig's collars sit on one point (CMU's mb and asf), the
# upper spine takes the shoulders' line instead (see ``_solve_world_rotations``).
TWO_DIRECTIONS = {
    "pelvis": (("pelvis", "spine1"), ("right_hip", "left_hip")),
    "spine3": (("spine3", "neck"), ("right_collar", "left_collar")),
}
ACROSS_FALLBACK = {("right_collar", "left_collar"): ("right_shoulder", "left_shoulder")}
# Length units a BVH may use, as metres per unit; picked by which makes the leg human-sized.
UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": 0.0254, "cmu": 0.056444}
LEG_LENGTH_M = 0.80  # hip joint to ankle, typical adult
# Up axes a file may use -> rotation taking that axis to +Y.
UP_ROTATIONS = {
    "+y": np.eye(3), "-y": np.diag([1.0, -1.0, -1.0]), "+z": Z_UP_TO_Y_UP,
    "-z": np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]),
    "+x": np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]), "-x": np.array([[0.0, 1, 0], [-1, 0, 0], [0, 0, 1]]),
}
# Bones compared between the retargeted body and the BVH (quality report and tests).
CHECKED_BONES = (
    ("left_hip", "left_knee"), ("right_hip", "right_knee"), ("left_knee", "left_ankle"),
    ("right_knee", "right_ankle"), ("left_shoulder", "left_elbow"), ("right_shoulder", "right_elbow"),
    ("left_elbow", "left_wrist"), ("right_elbow", "right_wrist"), ("pelvis", "neck"), ("neck", "head"),
    ("right_hip", "left_hip"), ("right_shoulder", "left_shoulder"),
)
CHECKED_JOINTS = ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
                  "neck", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
                  "left_wrist", "right_wrist")


@dataclass
class RetargetReport:
    """What the retargeter decided and how well the result follows the BVH."""

    rig: str
    units: str
    up_axis: str
    frames: int  # BVH frames used (before resampling to 30 fps)
    skipped_frames: int  # a T-pose frame 0, all-zero frames
    height_m: float  # median standing extent of the BVH joints, in metres by ``units``
    bone_angle_median_deg: float
    bone_angle_p95_deg: float
    joint_error_mm: float  # per-frame similarity-aligned error of CHECKED_JOINTS, on the target body
    motion_spread_mm: float  # mean distance of root-relative joints from their mean pose (0 = frozen)

    def as_dict(self) -> dict:
        return asdict(self)


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


def _leg_length(pos: dict[str, np.ndarray]) -> float:
    """Median hip-to-ankle length over both legs and all frames, in file units."""
    legs = [np.linalg.norm(pos[f"{s}_knee"] - pos[f"{s}_hip"], axis=-1)
            + np.linalg.norm(pos[f"{s}_ankle"] - pos[f"{s}_knee"], axis=-1) for s in ("left", "right")]
    return float(np.median(np.concatenate(legs)))


def guess_units(leg_length: float) -> str:
    """The unit that makes a leg of ``leg_length`` file units closest to a human's."""
    return min(UNITS, key=lambda u: abs(np.log(max(leg_length, 1e-9) * UNITS[u] / LEG_LENGTH_M)))


def guess_up_axis(pos: dict[str, np.ndarray]) -> str:
    """The world axis from the feet to the head, over the whole motion."""
    feet = (pos["left_ankle"] + pos["right_ankle"]) / 2
    up = np.median(_unit(pos["head"] - feet), axis=0)
    axis = int(np.argmax(np.abs(up)))
    return ("+" if up[axis] > 0 else "-") + "xyz"[axis]


def _is_t_pose(pos: dict[str, np.ndarray], t: int) -> bool:
    """Arms straight out to the sides, level: the calibration pose conversions put at frame 0."""
    upper = [_unit(pos[f"{s}_elbow"][t] - pos[f"{s}_shoulder"][t]) for s in ("left", "right")]
    lower = [_unit(pos[f"{s}_wrist"][t] - pos[f"{s}_elbow"][t]) for s in ("left", "right")]
    level = all(abs(u[1]) < np.sin(np.radians(20)) for u in upper)
    straight = all(float(u @ v) > np.cos(np.radians(20)) for u, v in zip(upper, lower, strict=True))
    return level and straight and float(upper[0] @ upper[1]) < -0.9


def _spine_points(chain: list[np.ndarray], rest: dict[str, np.ndarray], min_length: float) -> dict[str, np.ndarray]:
    """SMPL spine1-3 placed along the BVH's pelvis-to-neck polyline at the body's rest proportions."""
    kept = [chain[0]]
    for point in chain[1:]:
        if np.median(np.linalg.norm(point - kept[-1], axis=-1)) > min_length:
            kept.append(point)
        elif point is chain[-1]:  # the neck ends the chain even if its bone is short
            kept[-1] = point
    if len(kept) < 2:
        raise ValueError("spine has no length (pelvis and neck coincide)")
    points = np.stack(kept, axis=1)  # [T,P,3]
    seg = np.linalg.norm(np.diff(points, axis=1), axis=-1)  # [T,P-1]
    cum = np.concatenate([np.zeros((points.shape[0], 1)), np.cumsum(seg, axis=1)], axis=1)
    names = ["pelvis", "spine1", "spine2", "spine3", "neck"]
    rest_cum = np.cumsum([0.0] + [np.linalg.norm(rest[b] - rest[a]) for a, b in zip(names, names[1:], strict=False)])
    out = {}
    for name, fraction in zip(names[1:4], rest_cum[1:4] / rest_cum[-1], strict=True):
        target = fraction * cum[:, -1]  # [T]
        k = np.clip((cum < target[:, None]).sum(1) - 1, 0, points.shape[1] - 2)
        rows = np.arange(points.shape[0])
        w = ((target - cum[rows, k]) / np.maximum(seg[rows, k], 1e-9))[:, None]
        out[name] = (1 - w) * points[rows, k] + w * points[rows, k + 1]
    return out


def _solve_world_rotations(pos: dict[str, np.ndarray], rest: dict[str, np.ndarray], frames: int,
                           min_length: float) -> np.ndarray:
    world = np.zeros((frames, 24, 3, 3))
    for j, name in enumerate(SMPL_JOINT_NAMES):
        parent = SMPL_PARENTS[j]
        parent_rot = np.broadcast_to(np.eye(3), (frames, 3, 3)) if parent < 0 else world[:, parent]
        if name in TWO_DIRECTIONS:
            (a0, a1), (b0, b1) = TWO_DIRECTIONS[name]
            if np.median(np.linalg.norm(pos[b1] - pos[b0], axis=-1)) < min_length:
                b0, b1 = ACROSS_FALLBACK[(b0, b1)]
            target = _frame(pos[a1] - pos[a0], pos[b1] - pos[b0])
            source = _frame(rest[a1] - rest[a0], rest[b1] - rest[b0])
            world[:, j] = target @ source.T
            continue
        child = SINGLE_CHILD.get(name)
        if child is None or child not in pos:
            world[:, j] = parent_rot  # leaf or unmatched joint: keep the parent's rotation
            continue
        current = np.einsum("tab,b->ta", parent_rot, _unit(rest[child] - rest[name]))
        world[:, j] = _min_rotation(current, _unit(pos[child] - pos[name])) @ parent_rot
    return world


def pose_rest_joints(world: np.ndarray, rest_joints: np.ndarray) -> np.ndarray:
    """Root-relative joints ``[T,24,3]`` of the body posed by world rotations ``[T,24,3,3]``."""
    joints = np.zeros(world.shape[:2] + (3,))
    for j, parent in enumerate(SMPL_PARENTS):
        if parent >= 0:
            joints[:, j] = joints[:, parent] + world[:, parent] @ (rest_joints[j] - rest_joints[parent])
    return joints


def _quality(world: np.ndarray, pos: dict[str, np.ndarray], rest_joints: np.ndarray) -> dict[str, float]:
    from key2mesh_train.evaluation.metrics import procrustes_align

    index = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}
    ours = pose_rest_joints(world, rest_joints)
    angles = []
    for a, b in CHECKED_BONES:
        mine = _unit(ours[:, index[b]] - ours[:, index[a]])
        theirs = _unit(pos[b] - pos[a])
        angles.append(np.degrees(np.arccos(np.clip((mine * theirs).sum(-1), -1, 1))))
    angles = np.concatenate(angles)
    picked = [index[n] for n in CHECKED_JOINTS]
    bvh = np.stack([pos[n] for n in CHECKED_JOINTS], axis=1)
    aligned = procrustes_align(torch.from_numpy(bvh), torch.from_numpy(ours[:, picked])).numpy()
    error = np.linalg.norm(aligned - ours[:, picked], axis=-1).mean()
    centred = ours - ours.mean(1, keepdims=True)
    spread = np.linalg.norm(centred - centred.mean(0), axis=-1).mean()
    return {"bone_angle_median_deg": float(np.median(angles)), "bone_angle_p95_deg": float(np.percentile(angles, 95)),
            "joint_error_mm": float(error * 1000), "motion_spread_mm": float(spread * 1000)}


def retarget(motion: BVHMotion, rest_joints: np.ndarray) -> tuple[MotionSequence, RetargetReport, dict[str, np.ndarray]]:
    """BVH motion -> SMPL sequence for a body whose T-pose joints are ``rest_joints [24,3]``.

    Returns the sequence (at the BVH's frame rate), a report, and the BVH's own positions of
    the matched places ``{place: [T,3]}`` in metres, Y-up (for contact sheets and checks).
    """
    ends = {j.name for j in motion.joints if j.end_offset is not None}
    rig, matched = resolve_rig([j.name for j in motion.joints], ends)
    zero_rows = ~motion.frames.any(axis=1)  # an all-zero frame is the rest pose at the origin, not motion
    names = sorted({n for found in matched.values() for n in found})
    raw = motion.positions(names)
    pos = {place: raw[found[0]] for place, found in matched.items() if place != "spine"}
    up_axis = guess_up_axis(pos)
    turn = UP_ROTATIONS[up_axis]
    raw = {n: p @ turn.T for n, p in raw.items()}
    pos = {place: raw[found[0]] for place, found in matched.items() if place != "spine"}
    skip = zero_rows.copy()
    if len(skip) > 1 and not skip[0] and _is_t_pose(pos, 0):
        skip[0] = True
    if skip.all():
        raise ValueError(f"{motion.path}: no motion frames (only a T-pose or all-zero frames)")
    raw = {n: p[~skip] for n, p in raw.items()}
    pos = {n: p[~skip] for n, p in pos.items()}
    frames = int((~skip).sum())

    leg_bvh = _leg_length(pos)
    units = guess_units(leg_bvh)
    index = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}
    rest = {n: rest_joints[i] for n, i in index.items()}
    rest["head_top"] = rest["head"] + np.array([0.0, 1.0, 0.0])  # the head's own axis points up at rest
    chain = [pos["pelvis"]] + [raw[n] for n in matched.get("spine", [])] + [pos["neck"]]
    pos.update(_spine_points(chain, rest, min_length=0.02 * leg_bvh))

    world = _solve_world_rotations(pos, rest, frames, min_length=0.02 * leg_bvh)
    local = world.copy()
    for j, parent in enumerate(SMPL_PARENTS):
        if parent >= 0:
            local[:, j] = np.swapaxes(world[:, parent], -1, -2) @ world[:, j]
    local[:, 0] = Z_UP_TO_Y_UP.T @ world[:, 0]  # sequences are stored Z-up, as AMASS
    poses = matrix_to_axis_angle(torch.from_numpy(local)).numpy()

    # Scale BVH units to the body by leg length, then place the pelvis.
    leg_body = np.linalg.norm(rest["left_knee"] - rest["left_hip"]) + np.linalg.norm(rest["left_ankle"] - rest["left_knee"])
    trans = (pos["pelvis"] * leg_body / max(leg_bvh, 1e-9)) @ Z_UP_TO_Y_UP
    trans = trans - trans[:1] * np.array([1, 1, 0])  # start at the origin, keep height
    seq = MotionSequence(motion.path.stem, poses, trans, np.zeros(10), motion.fps)

    metres = UNITS[units]
    all_points = np.stack(list(raw.values()), axis=1)
    height = float(np.median(all_points[..., 1].max(1) - all_points[..., 1].min(1)) * metres)
    report = RetargetReport(rig.name, units, up_axis, frames, int(skip.sum()), height,
                            **_quality(world, pos, rest_joints))
    return seq, report, {n: p * metres for n, p in pos.items()}


def retarget_bvh(motion: BVHMotion, rest_joints: np.ndarray) -> MotionSequence:
    """BVH motion -> SMPL sequence at 30 fps (see :func:`retarget`)."""
    return retarget(motion, rest_joints)[0].resampled(TARGET_FPS)


def load_bvh_cached(path: str | Path, rest_joints: np.ndarray, cache_dir: str | Path) -> MotionSequence:
    """Retarget once, then reuse the AMASS-layout ``.npz`` cached under ``cache_dir``."""
    from key2mesh_train.mocap.amass import load_amass_npz

    path = Path(path)
    key = hashlib.sha1(RETARGET_VERSION + path.read_bytes() + rest_joints.astype(np.float32).tobytes()).hexdigest()[:16]
    cached = Path(cache_dir) / f"{path.stem}-{key}.npz"
    if cached.exists():
        seq = load_amass_npz(cached)
        seq.name = path.stem
        return seq
    seq = retarget_bvh(read_bvh(path), rest_joints)
    cached.parent.mkdir(parents=True, exist_ok=True)
    seq.save_npz(cached)
    return seq
