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


_PARENTS = np.array(SMPL_PARENTS)


def global_rotations(poses: np.ndarray) -> np.ndarray:
    """SMPL axis-angle poses ``[P,72]`` (root in the camera frame) -> each joint's global rotation
    ``[P,24,3,3]``: camera-frame axes of the joint's canonical body frame."""
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, 24, 3)
    local = Rotation.from_rotvec(poses.reshape(-1, 3)).as_matrix().reshape(-1, 24, 3, 3)
    world = np.empty_like(local)
    for j, parent in enumerate(SMPL_PARENTS):  # parents come before children
        world[:, j] = local[:, j] if parent < 0 else world[:, parent] @ local[:, j]
    return world


def people_transforms(poses: np.ndarray, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Translations ``[P,25,3]`` and quaternions ``[P,25,4]`` (x, y, z, w) of each person's frames,
    each in its parent frame: index 0 is ``body_<id>`` in the camera frame, ``1 + j`` SMPL joint
    ``j`` in its parent (``pelvis`` in ``body``). Batched over people: one rotation conversion
    for everyone, so a crowd costs little more than one person.

    ``poses [P,72]``: SMPL axis-angle, root orientation in the camera frame; ``joints [P,24,3]``:
    camera-frame joint positions in metres.
    """
    joints = np.asarray(joints, dtype=np.float64).reshape(-1, 24, 3)
    count = len(joints)
    frames = global_rotations(poses) @ SMPL_TO_REP155  # [P,24,3,3] joint frames in camera axes
    origin = joints[:, _HIPS].mean(1)  # [P,3]
    # Every frame with its parent's rotation and position: the body frame under the camera,
    # the pelvis under the body frame, the other joints under their SMPL parents.
    rot = np.concatenate([frames[:, :1], frames], 1)  # [P,25,3,3]: body frame = pelvis axes
    pos = np.concatenate([origin[:, None], joints], 1)  # [P,25,3]
    parent_rot = np.concatenate([np.broadcast_to(np.eye(3), (count, 1, 3, 3)), frames[:, :1],
                                 frames[:, np.maximum(_PARENTS[1:], 0)]], 1)
    parent_pos = np.concatenate([np.zeros((count, 1, 3)), origin[:, None], joints[:, _PARENTS[1:]]], 1)
    translations = np.einsum("pkji,pkj->pki", parent_rot, pos - parent_pos)
    relative = np.einsum("pkji,pkjl->pkil", parent_rot, rot)
    quats = Rotation.from_matrix(relative.reshape(-1, 3, 3)).as_quat().reshape(count, 25, 4)
    return translations, quats


def person_transforms(pose: np.ndarray, joints: np.ndarray) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """One person's frames as ``(parent, child, translation [3], quaternion xyzw [4])``: parent
    ``""`` is the camera frame, ``"body"`` the body frame, an int a joint (tools and tests)."""
    translations, quats = people_transforms(np.asarray(pose)[None], np.asarray(joints)[None])
    out = [("", "body", translations[0, 0], quats[0, 0])]
    for j, parent in enumerate(SMPL_PARENTS):
        out.append(("body" if parent < 0 else parent, j, translations[0, j + 1], quats[0, j + 1]))
    return out


class TfFrames:
    """Builds each frame's ``tf2_msgs/TFMessage``, reusing each track's 25 ``TransformStamped``
    (their frame names never change), so a frame costs setting numbers, not building objects."""

    def __init__(self) -> None:
        self.cache: dict[int, list] = {}

    def _transforms(self, track_id: int) -> list:
        from geometry_msgs.msg import TransformStamped

        if track_id not in self.cache:
            names = [body_frame(track_id)] + [joint_frame(j, track_id) for j in range(24)]
            parents = [None, names[0]] + [names[1 + p] for p in SMPL_PARENTS[1:]]
            self.cache[track_id] = [TransformStamped(child_frame_id=child) for child in names]
            for t, parent in zip(self.cache[track_id], parents, strict=True):
                if parent is not None:
                    t.header.frame_id = parent
        return self.cache[track_id]

    def forget(self, keep: set[int]) -> None:
        for track_id in [t for t in self.cache if t not in keep]:
            del self.cache[track_id]

    def message(self, header, track_ids: list[int], poses: np.ndarray, joints: np.ndarray):
        """``TFMessage`` for people ``track_ids`` with ``poses [P,72]`` and camera-frame ``joints
        [P,24,3]``, stamped like the image ``header`` and parented to its frame."""
        from tf2_msgs.msg import TFMessage

        message = TFMessage()
        if not track_ids:
            return message
        translations, quats = people_transforms(poses, joints)
        values = np.concatenate([translations, quats], -1).tolist()  # plain floats: fast setters
        for track_id, person in zip(track_ids, values, strict=True):
            transforms = self._transforms(track_id)
            transforms[0].header.frame_id = header.frame_id
            for t, (x, y, z, qx, qy, qz, qw) in zip(transforms, person, strict=True):
                t.header.stamp = header.stamp
                translation, rotation = t.transform.translation, t.transform.rotation
                translation.x, translation.y, translation.z = x, y, z
                rotation.x, rotation.y, rotation.z, rotation.w = qx, qy, qz, qw
            message.transforms.extend(transforms)
        return message


def tf_message(header, people: list[tuple[int, np.ndarray, np.ndarray]]):
    """``tf2_msgs/TFMessage`` for ``(track id, pose [72], camera-frame joints [24,3])`` per person."""
    if not people:
        return TfFrames().message(header, [], np.zeros((0, 72)), np.zeros((0, 24, 3)))
    ids, poses, joints = zip(*people, strict=True)
    return TfFrames().message(header, list(ids), np.stack(poses), np.stack(joints))


def chain_to_camera(transforms: dict[str, tuple[str, np.ndarray, np.ndarray]], frame: str) -> np.ndarray:
    """Position of ``frame``'s origin in the root frame by chaining ``{child: (parent, translation,
    quaternion xyzw)}`` the way a tf2 listener does (used by tests and tools)."""
    position = np.zeros(3)
    while frame in transforms:
        parent, translation, quat = transforms[frame]
        position = Rotation.from_quat(quat).as_matrix() @ position + translation
        frame = parent
    return position
