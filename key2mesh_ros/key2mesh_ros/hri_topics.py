"""REP-155 (ROS4HRI) body topics, so ROS4HRI tools and libraries see our people.

``/humans/bodies/tracked`` (``hri_msgs/IdsList``) lists the tracked bodies; per body
``<id>`` (``b`` + our track id, e.g. ``b7``: a ROS name token cannot start with a digit, and
the TF frames use the same id): ``skeleton2d`` (``hri_msgs/Skeleton2D``, normalised image
coordinates), ``roi`` (``hri_msgs/NormalizedRegionOfInterest2D``) and ``joint_states``
(``sensor_msgs/JointState``: each SMPL joint's rotation relative to its parent as intrinsic
x, y, z angles, three revolute joints ``<joint>_rx``, ``_ry``, ``_rz`` per SMPL joint, so a
chain of revolute joints reproduces the pose). A body's publishers are created when its track
appears and destroyed when the tracker forgets it: nothing accumulates over a long run. A
body topic without subscribers is not filled or published.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from key2mesh.keypoints import SMPL_JOINT_NAMES, coco17_to_hri_skeleton18


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

    def _body(self, body_id: str) -> dict:
        """The body's publishers and its messages, made once and refilled every frame."""
        from hri_msgs.msg import NormalizedPointOfInterest2D, NormalizedRegionOfInterest2D, Skeleton2D
        from sensor_msgs.msg import JointState

        if body_id not in self.bodies:
            base = f"{self.prefix}/{body_id}"
            skeleton = Skeleton2D()
            skeleton.skeleton = [NormalizedPointOfInterest2D() for _ in range(18)]
            self.bodies[body_id] = {
                "publishers": (self.node.create_publisher(Skeleton2D, f"{base}/skeleton2d", self.qos),
                               self.node.create_publisher(NormalizedRegionOfInterest2D, f"{base}/roi", self.qos),
                               self.node.create_publisher(JointState, f"{base}/joint_states", self.qos)),
                "skeleton": skeleton, "roi": NormalizedRegionOfInterest2D(),
                "joint_states": JointState(name=list(JOINT_STATE_NAMES)),
            }
        return self.bodies[body_id]

    def forget(self, keep: set[str]) -> None:
        """Destroy the publishers of every body not in ``keep``."""
        for body_id in [b for b in self.bodies if b not in keep]:
            for publisher in self.bodies.pop(body_id)["publishers"]:
                self.node.destroy_publisher(publisher)

    def publish(self, header, width: int, height: int, tracked: list[int], ids: list[int] = (),
                keypoints: np.ndarray | None = None, boxes: np.ndarray | None = None,
                scores: np.ndarray | None = None, poses: np.ndarray | None = None) -> None:
        """``tracked``: every track id the tracker still holds (seen now or recently); this
        frame's bodies: track ``ids``, ``keypoints [P,17,3]`` (pixels), ``boxes [P,4]``,
        ``scores [P]`` and SMPL ``poses [P,72]``."""
        from hri_msgs.msg import IdsList

        self.forget({body_id(t) for t in tracked})
        self.tracked_publisher.publish(IdsList(header=header, ids=[body_id(t) for t in tracked]))
        if not len(ids):
            return
        scale = np.array([1.0 / max(width, 1), 1.0 / max(height, 1)], dtype=np.float32)
        points = coco17_to_hri_skeleton18(keypoints)  # [P,18,3]
        points[..., :2] = np.clip(points[..., :2] * scale, 0.0, 1.0)
        points[..., 2] = np.clip(points[..., 2], 0.0, 1.0)
        corners = np.clip(np.asarray(boxes, np.float32).reshape(-1, 2, 2) * scale, 0, 1)
        angles = Rotation.from_rotvec(np.asarray(poses, np.float64).reshape(-1, 3)).as_euler("XYZ").reshape(len(ids), -1)
        for track_id, score, xyc, box, joint_angles_ in zip(ids, np.asarray(scores, np.float64).tolist(),
                                                            points.tolist(), corners.tolist(), angles, strict=True):
            body = self._body(body_id(track_id))  # publishers exist from the start, so they can be discovered
            skeleton_pub, roi_pub, joints_pub = body["publishers"]
            if skeleton_pub.get_subscription_count():  # a topic nobody reads is not filled
                skeleton = body["skeleton"]
                skeleton.header = header
                for point, (x, y, c) in zip(skeleton.skeleton, xyc, strict=True):
                    point.x, point.y, point.c = x, y, c
                skeleton_pub.publish(skeleton)
            if roi_pub.get_subscription_count():
                roi = body["roi"]
                roi.header = header
                (roi.xmin, roi.ymin), (roi.xmax, roi.ymax) = box
                roi.c = score
                roi_pub.publish(roi)
            if joints_pub.get_subscription_count():
                states = body["joint_states"]
                states.header = header
                states.position = joint_angles_
                joints_pub.publish(states)

    def close(self) -> None:
        self.forget(set())
        self.node.destroy_publisher(self.tracked_publisher)
