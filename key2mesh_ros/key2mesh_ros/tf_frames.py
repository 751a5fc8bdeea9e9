"""People as TF frames, the REP-155 (ROS4HRI) way: ``body_<id>`` per person, joints below it
(``<id>`` is the body id of :func:`key2mesh_ros.hri_topics.body_id`, e.g. ``body_b7``).

``body_<id>`` has its origin at mid-hips and REP-155 axes (x forward out of the chest, y to the
person's left, z up), its parent the camera frame of the image header. Each SMPL joint is a
frame ``<joint>_<id>`` whose parent is its SMPL parent joint (``pelvis_<id>`` under
``body_<id>``), oriented as that joint's global rotation in the same axes, so a person in the
T-pose has every frame aligned with ``body_<id>``. Chaining the transforms from the camera
frame reproduces the published camera-frame joints.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from key2mesh.keypoints import SMPL_JOINT_NAMES, SMPL_PARENTS
from key2mesh_ros.hri_topics import body_id

# Columns: the REP-155 body axes (forward, left, up) in SMPL's canonical body frame, where the
# body faces +Z, its left is +X and up is +Y.
SMPL_TO_REP155 = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
_HIPS = [SMPL_JOINT_NAMES.index("left_hip"), SMPL_JOINT_NAMES.index("right_hip")]


def body_frame(track_id: int) -> str:
    return f"body_{body_id(track_id)}"


def joint_frame(joint: int, track_id: int) -> str:
    return f"{SMPL_JOINT_NAMES[joint]}_{body_id(track_id)}"


def global_rotations(pose: np.ndarray) -> np.ndarray:
    """SMPL axis-angle pose ``[72]`` (root in the camera frame) -> each joint's global rotation
    ``[24,3,3]``: camera-frame axes of the joint's canonical body frame."""
    local = Rotation.from_rotvec(np.asarray(pose, dtype=np.float64).reshape(24, 3)).as_matrix()
    world = np.empty_like(local)
    for j, parent in enumerate(SMPL_PARENTS):  # parents come before children
        world[j] = local[j] if parent < 0 else world[parent] @ local[j]
    return world


def person_transforms(pose: np.ndarray, joints: np.ndarray) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """``(parent, child, translation [3], quaternion xyzw [4])`` for one person: the body frame in
    the camera frame (parent ``""``: the caller's camera frame), then the 24 joint frames.

    ``pose [72]``: SMPL axis-angle, root orientation in the camera frame; ``joints [24,3]``:
    camera-frame joint positions in metres.
    """
    joints = np.asarray(joints, dtype=np.float64)
    frames = global_rotations(pose) @ SMPL_TO_REP155  # [24,3,3] joint frames in camera axes
    origin = joints[_HIPS].mean(0)
    out = [("", "body", origin, Rotation.from_matrix(frames[0]).as_quat())]
    for j, parent in enumerate(SMPL_PARENTS):
        parent_rot, parent_pos, parent_name = (frames[0], origin, "body") if parent < 0 else \
            (frames[parent], joints[parent], parent)
        translation = parent_rot.T @ (joints[j] - parent_pos)
        rotation = Rotation.from_matrix(parent_rot.T @ frames[j]).as_quat()
        out.append((parent_name, j, translation, rotation))
    return out


def tf_message(header, people: list[tuple[int, np.ndarray, np.ndarray]]):
    """``tf2_msgs/TFMessage`` for ``(track id, pose [72], camera-frame joints [24,3])`` per person,
    stamped and parented like the image ``header``."""
    from geometry_msgs.msg import TransformStamped
    from tf2_msgs.msg import TFMessage

    message = TFMessage()
    for track_id, pose, joints in people:
        for parent, child, translation, quat in person_transforms(pose, joints):
            t = TransformStamped()
            t.header.stamp = header.stamp
            t.header.frame_id = header.frame_id if parent == "" else \
                body_frame(track_id) if parent == "body" else joint_frame(parent, track_id)
            t.child_frame_id = body_frame(track_id) if child == "body" else joint_frame(child, track_id)
            t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = map(float, translation)
            (t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z,
             t.transform.rotation.w) = map(float, quat)
            message.transforms.append(t)
    return message


def chain_to_camera(transforms: dict[str, tuple[str, np.ndarray, np.ndarray]], frame: str) -> np.ndarray:
    """Position of ``frame``'s origin in the root frame by chaining ``{child: (parent, translation,
    quaternion xyzw)}`` the way a tf2 listener does (used by tests and tools)."""
    position = np.zeros(3)
    while frame in transforms:
        parent, translation, quat = transforms[frame]
        position = Rotation.from_quat(quat).as_matrix() @ position + translation
        frame = parent
    return position
