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
from key2mesh_ros.cdr import Layout, LayoutCache, slots, stamp_index, write_stamp
from key2mesh_ros.hri_topics import body_id

# Columns: the REP-155 body axes (forward, left, up) in SMPL's canonical body frame, where the
# body faces +Z, its left is +X and up is +Y.
SMPL_TO_REP155 = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
_HIPS = [SMPL_JOINT_NAMES.index("left_hip"), SMPL_JOINT_NAMES.index("right_hip")]


def _right_product_matrix(b: np.ndarray) -> np.ndarray:
    """``M [4,4]`` with ``q @ M`` the Hamilton product ``q b`` (quaternions x, y, z, w), the
    rotation ``q`` after ``b``: a product with a fixed ``b`` is linear in ``q``, one matmul."""
    bx, by, bz, bw = b
    return np.array([[bw, -bz, by, -bx], [bz, bw, -bx, -by], [-by, bx, bw, -bz], [bx, by, bz, bw]])


_TIMES_SMPL_TO_REP155 = _right_product_matrix(Rotation.from_matrix(SMPL_TO_REP155).as_quat())


def body_frame(track_id: int) -> str:
    return f"body_{body_id(track_id)}"


def joint_frame(joint: int, track_id: int) -> str:
    return f"{SMPL_JOINT_NAMES[joint]}_{body_id(track_id)}"


_PARENTS = np.array(SMPL_PARENTS)


def _tree_levels() -> tuple[np.ndarray, list[tuple[slice, np.ndarray]], np.ndarray]:
    """SMPL's joints ordered by depth in the tree (``order``), each level below the root as a
    slice of that order with its parents' places in it, and the way back to SMPL order."""
    depth = [0] * len(SMPL_PARENTS)
    for j, parent in enumerate(SMPL_PARENTS):  # parents come before children
        depth[j] = 0 if parent < 0 else depth[parent] + 1
    order = sorted(range(len(SMPL_PARENTS)), key=lambda j: (depth[j], j))
    place = np.argsort(order)  # where each joint sits in level order
    levels, start = [], 1
    for level in range(1, max(depth) + 1):
        joints = [j for j in order if depth[j] == level]
        levels.append((slice(start, start + len(joints)), place[_PARENTS[joints]]))
        start += len(joints)
    return np.array(order), levels, place


_ORDER, _LEVELS, _PLACE = _tree_levels()


def global_rotations(local: np.ndarray) -> np.ndarray:
    """Each SMPL joint's rotation relative to its parent ``[P,24,3,3]`` (root in the camera
    frame) -> its global rotation ``[P,24,3,3]``: camera-frame axes of the joint's canonical
    body frame."""
    local = local[:, _ORDER]  # level order: each depth is a contiguous slice
    world = local.copy()  # the root's is its local rotation
    for joints, parents in _LEVELS:  # one product per depth in the tree, every joint of it at once
        np.matmul(world[:, parents], local[:, joints], out=world[:, joints])
    return world[:, _PLACE]


# Each joint frame's parent frame among the body frame's 25 (index 0: ``body``, 1 + j: joint j):
# the pelvis hangs under ``body``, which has the pelvis' axes.
_FRAME_PARENTS = np.array([0] + list(SMPL_PARENTS[1:]))


def people_transforms(poses: np.ndarray, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Translations ``[P,25,3]`` and quaternions ``[P,25,4]`` (x, y, z, w) of each person's frames,
    each in its parent frame: index 0 is ``body_<id>`` in the camera frame, ``1 + j`` SMPL joint
    ``j`` in its parent (``pelvis`` in ``body``). Batched over people: one rotation conversion
    for everyone, so a crowd costs little more than one person.

    ``poses [P,72]``: SMPL axis-angle, root orientation in the camera frame; ``joints [P,24,3]``:
    camera-frame joint positions in metres.
    """
    poses = np.asarray(poses, dtype=np.float64).reshape(-1, 24, 3)
    joints = np.asarray(joints, dtype=np.float64).reshape(-1, 24, 3)
    count = len(joints)
    local = Rotation.from_rotvec(poses.reshape(-1, 3))  # one conversion for the matrices and the quaternions
    frames = global_rotations(local.as_matrix().reshape(count, 24, 3, 3)) @ SMPL_TO_REP155  # [P,24,3,3] in camera axes
    origin = 0.5 * (joints[:, _HIPS[0]] + joints[:, _HIPS[1]])  # [P,3]
    # Each frame's position in its parent: the body frame in the camera frame, the pelvis in
    # the body frame (same axes), every other joint in its SMPL parent's frame: R^T (p - p_parent).
    translations = np.empty((count, 25, 3))
    translations[:, 0] = origin
    offsets = joints - np.concatenate([origin[:, None], joints[:, _FRAME_PARENTS[1:]]], 1)  # [P,24,3]
    translations[:, 1:] = (offsets[:, :, None] @ frames[:, _FRAME_PARENTS])[:, :, 0]
    # Rotations: the body frame has the pelvis axes (so the pelvis is the identity under it);
    # joint j in its parent is S^T L_j S for SMPL's local rotation L_j and S = SMPL_TO_REP155,
    # the rotation by L_j's angle about its axis in REP-155 axes (the quaternion's vector part
    # turned by S^T): no matrix goes back to a quaternion.
    local_quats = local.as_quat().reshape(count, 24, 4)
    quats = np.empty((count, 25, 4))
    quats[:, 0] = local_quats[:, 0] @ _TIMES_SMPL_TO_REP155  # body frame = L_0 S
    quats[:, 1] = (0.0, 0.0, 0.0, 1.0)
    quats[:, 2:, :3] = local_quats[:, 1:, :3] @ SMPL_TO_REP155
    quats[:, 2:, 3] = local_quats[:, 1:, 3]
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
    """Each frame's ``tf2_msgs/TFMessage`` as serialised bytes (:mod:`key2mesh_ros.cdr`): the
    frame names and layout are made once per camera frame and set of people, so a frame costs
    one numpy write of every person's 25 transforms, not 25 messages built and converted."""

    def __init__(self) -> None:
        self.layouts = LayoutCache(self._layout)

    @staticmethod
    def _layout(camera_frame: str, track_ids: tuple[int, ...]) -> Layout:
        from geometry_msgs.msg import TransformStamped
        from tf2_msgs.msg import TFMessage

        transforms = []
        for track_id in track_ids:
            names = [body_frame(track_id)] + [joint_frame(j, track_id) for j in range(24)]
            parents = [camera_frame, names[0]] + [names[1 + p] for p in SMPL_PARENTS[1:]]
            for child, parent in zip(names, parents, strict=True):
                t = TransformStamped(child_frame_id=child)
                t.header.frame_id = parent
                transforms.append(t)
        layout = Layout(TFMessage(transforms=transforms))
        paths = [("transforms", i) for i in range(len(transforms))]
        layout.fields["stamps"] = stamp_index(layout, [p + ("header",) for p in paths])
        layout.fields["values"] = layout.index([[p + ("transform", part, axis) for part, axis in _TRANSFORM_FIELDS]
                                                for p in paths], "<f8")  # [P*25, 7]
        return layout

    def serialized(self, header, track_ids: list[int], poses: np.ndarray, joints: np.ndarray) -> bytes:
        """``TFMessage`` bytes for people ``track_ids`` with ``poses [P,72]`` and camera-frame
        ``joints [P,24,3]``, stamped like the image ``header`` and parented to its frame."""
        layout = self.layouts(header.frame_id, tuple(int(t) for t in track_ids))
        buffer = layout.buffer()
        if track_ids:
            translations, quats = people_transforms(poses, joints)
            write_stamp(buffer, layout.fields["stamps"], header.stamp)
            slots(buffer, "<f8")[layout.fields["values"]] = np.concatenate([translations, quats], -1).reshape(-1, 7)
        return bytes(buffer)


_TRANSFORM_FIELDS = [("translation", a) for a in "xyz"] + [("rotation", a) for a in "xyzw"]


def chain_to_camera(transforms: dict[str, tuple[str, np.ndarray, np.ndarray]], frame: str) -> np.ndarray:
    """Position of ``frame``'s origin in the root frame by chaining ``{child: (parent, translation,
    quaternion xyzw)}`` the way a tf2 listener does (used by tests and tools)."""
    position = np.zeros(3)
    while frame in transforms:
        parent, translation, quat = transforms[frame]
        position = Rotation.from_quat(quat).as_matrix() @ position + translation
        frame = parent
    return position
