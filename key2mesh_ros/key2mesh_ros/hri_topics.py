"""REP-155 (ROS4HRI) body topics, so ROS4HRI tools and libraries see our people.

``/humans/bodies/tracked`` (``hri_msgs/IdsList``) lists the tracked bodies; per body
``<id>`` (``b`` + our track id, e.g. ``b7``: a ROS name token cannot start with a digit, and
the TF frames use the same id): ``skeleton2d`` (``hri_msgs/Skeleton2D``, normalised image
coordinates), ``roi`` (``hri_msgs/NormalizedRegionOfInterest2D``) and ``joint_states``
(``sensor_msgs/JointState``: each SMPL joint's rotation relative to its parent as intrinsic
x, y, z angles, three revolute joints ``<joint>_rx``, ``_ry``, ``_rz`` per SMPL joint, so a
chain of revolute joints reproduces the pose). Each message goes out as serialised bytes
(:mod:`key2mesh_ros.cdr`). A body's publishers are created when its track
appears and destroyed when the tracker forgets it: nothing accumulates over a long run. A
body topic without subscribers is not filled or published.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from key2mesh.keypoints import SMPL_JOINT_NAMES, coco17_to_hri_skeleton18
from key2mesh_ros.cdr import Layout, LayoutCache, stamp_index, write_stamp


def body_id(track_id: int) -> str:
    """The REP-155 body id of a track: the same string in topics and TF frames."""
    return f"b{track_id}"


JOINT_STATE_NAMES: tuple[str, ...] = tuple(f"{joint}_r{axis}" for joint in SMPL_JOINT_NAMES for axis in "xyz")


class HriBodies:
    """The REP-155 topics of one node; ``publish`` once per processed frame."""

    def __init__(self, node, prefix: str = "/humans/bodies", qos=10) -> None:
        from hri_msgs.msg import IdsList

        self.node = node
        self.prefix = prefix.rstrip("/")
        self.qos = qos
        self.tracked_publisher = node.create_publisher(IdsList, f"{self.prefix}/tracked", qos)
        self.bodies: dict[str, tuple] = {}  # id -> (skeleton2d, roi, joint_states) publishers
        self.layouts = LayoutCache(self._layouts, size=4)
        self.tracked_layouts = LayoutCache(self._tracked_layout, size=4)

    def _publishers(self, body_id: str) -> tuple:
        """The body's ``skeleton2d``, ``roi`` and ``joint_states`` publishers, made once."""
        publishers = self.bodies.get(body_id)
        if publishers is None:
            from hri_msgs.msg import NormalizedRegionOfInterest2D, Skeleton2D
            from sensor_msgs.msg import JointState

            base = f"{self.prefix}/{body_id}"
            publishers = self.bodies[body_id] = (
                self.node.create_publisher(Skeleton2D, f"{base}/skeleton2d", self.qos),
                self.node.create_publisher(NormalizedRegionOfInterest2D, f"{base}/roi", self.qos),
                self.node.create_publisher(JointState, f"{base}/joint_states", self.qos))
        return publishers

    @staticmethod
    def _tracked_layout(frame_id: str, tracked: tuple[int, ...]) -> Layout:
        """``/humans/bodies/tracked`` for one set of tracks: the same bytes until a track comes or goes."""
        from hri_msgs.msg import IdsList

        message = IdsList(ids=[body_id(t) for t in tracked])
        message.header.frame_id = frame_id
        layout = Layout(message)
        layout.fields["stamps"] = stamp_index(layout, [("header",)])
        return layout

    @staticmethod
    def _layouts(frame_id: str) -> list[tuple[Layout, str, tuple[int, int]]]:
        """One body's three messages as layouts (:mod:`key2mesh_ros.cdr`), the same for every
        body, each with the type of its numbers and the bytes they fill (consecutive)."""
        from hri_msgs.msg import NormalizedPointOfInterest2D, NormalizedRegionOfInterest2D, Skeleton2D
        from sensor_msgs.msg import JointState

        skeleton = Skeleton2D(skeleton=[NormalizedPointOfInterest2D() for _ in range(18)])
        roi = NormalizedRegionOfInterest2D()
        states = JointState(name=list(JOINT_STATE_NAMES), position=[0.0] * len(JOINT_STATE_NAMES))
        layouts = []
        # Each message's numbers: runs of `count` values from each path.
        for message, dtype, paths, count in (
                (skeleton, "<f4", [("skeleton", k, "x") for k in range(18)], 3),  # x, y, c
                (roi, "<f4", [("xmin",)], 5),  # xmin, ymin, xmax, ymax, c
                (states, "<f8", [("position",)], len(JOINT_STATE_NAMES))):
            message.header.frame_id = frame_id
            layout = Layout(message)
            layout.fields["stamps"] = stamp_index(layout, [("header",)])
            layouts.append((layout, dtype, layout.span(layout.runs(paths, count, dtype), dtype)))
        return layouts

    def forget(self, keep: set[str]) -> None:
        """Destroy the publishers of every body not in ``keep``."""
        for body_id in [b for b in self.bodies if b not in keep]:
            for publisher in self.bodies.pop(body_id):
                self.node.destroy_publisher(publisher)

    def publish(self, header, width: int, height: int, tracked: list[int], ids: list[int] = (),
                keypoints: np.ndarray | None = None, boxes: np.ndarray | None = None,
                scores: np.ndarray | None = None, poses: np.ndarray | None = None) -> None:
        """``tracked``: every track id the tracker still holds (seen now or recently); this
        frame's bodies: track ``ids``, ``keypoints [P,17,3]`` (pixels), ``boxes [P,4]``,
        ``scores [P]`` and SMPL ``poses [P,72]``."""
        self.forget({body_id(t) for t in tracked})
        tracked_layout = self.tracked_layouts(header.frame_id, tuple(tracked))
        buffer = tracked_layout.buffer()
        write_stamp(buffer, tracked_layout.fields["stamps"], header.stamp)
        self.tracked_publisher.publish(bytes(buffer))
        if not len(ids):
            return
        # Publishers first (made from the start, so they can be discovered), then only the
        # messages someone reads are computed and filled: [P,3] subscribed or not.
        publishers = [self._publishers(body_id(track_id)) for track_id in ids]
        wanted = np.array([[bool(p.get_subscription_count()) for p in body] for body in publishers]).reshape(-1, 3)
        if not wanted.any():
            return
        count = len(ids)
        scale = np.array([1.0 / max(width, 1), 1.0 / max(height, 1)], dtype=np.float32)
        values: list[np.ndarray | None] = [None, None, None]
        if wanted[:, 0].any():
            points = coco17_to_hri_skeleton18(keypoints)  # [P,18,3]
            # Normalised coordinates and confidences within [0, 1] (np.minimum/maximum: a
            # fraction of np.clip's call cost).
            values[0] = np.minimum(np.maximum(points * np.array([*scale, 1.0], np.float32), 0.0), 1.0).reshape(count, -1)
        if wanted[:, 1].any():
            corners = np.minimum(np.maximum(np.asarray(boxes, np.float32).reshape(-1, 2, 2) * scale, 0.0), 1.0)
            values[1] = np.concatenate([corners.reshape(count, 4), np.reshape(scores, (count, 1))], 1)
        if wanted[:, 2].any():
            values[2] = Rotation.from_rotvec(np.asarray(poses, np.float64).reshape(-1, 3)).as_euler("XYZ").reshape(count, -1)
        for kind, ((layout, dtype, (start, stop)), numbers) in enumerate(zip(self.layouts(header.frame_id), values,
                                                                               strict=True)):
            if numbers is None:
                continue
            buffer = layout.buffer()
            write_stamp(buffer, layout.fields["stamps"], header.stamp)
            head, tail, numbers = bytes(buffer[:start]), bytes(buffer[stop:]), np.ascontiguousarray(numbers, dtype)
            for i in np.flatnonzero(wanted[:, kind]):
                publishers[i][kind].publish(head + numbers[i].tobytes() + tail)

    def close(self) -> None:
        self.forget(set())
        self.node.destroy_publisher(self.tracked_publisher)
