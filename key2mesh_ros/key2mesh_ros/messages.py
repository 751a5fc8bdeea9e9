"""Build ROS messages from Key2Mesh outputs cheaply: arrays are filled from bytes, never
element by element (assigning a numpy array to a message field costs milliseconds)."""

from __future__ import annotations

import array

import numpy as np
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from key2mesh.keypoints import COCO17_NAMES, SMPL_JOINT_NAMES, SMPL_PARENTS
from key2mesh_msgs.msg import BodyModelInfo, HumanMesh, HumanMeshArray


def float_array(values: np.ndarray) -> array.array:
    """``values`` as float32 ``array.array``: one copy, straight from the array's buffer."""
    out = array.array("f")
    values = np.ascontiguousarray(values, dtype=np.float32)
    if values.size:  # a byte view of the array itself: no intermediate bytes object
        out.frombytes(memoryview(values.reshape(-1)).cast("B"))
    return out


def human_mesh(header, track_id: int, score: float, box: np.ndarray, keypoints: np.ndarray, pose: np.ndarray,
               betas: np.ndarray, joints: np.ndarray, vertices: np.ndarray | None,
               position: np.ndarray | None, position_source: int | None = None) -> HumanMesh:
    """One person's message. ``joints [24,3]`` and ``vertices [V,3]`` are root-relative; with a
    ``position [3]`` both are published in the camera frame, and ``vertices`` is shifted **in
    place** (it is the graph's output buffer: a mesh is copied once, into the message)."""
    msg = HumanMesh()
    msg.header = header
    msg.track_id = int(track_id)
    msg.detection_score = float(score)
    msg.bbox = float_array(box)
    msg.keypoints_2d = float_array(np.nan_to_num(keypoints, nan=0.0))
    msg.pose = float_array(pose)
    msg.betas = float_array(betas)
    if position is not None:
        offset = np.asarray(position, np.float32)
        joints = joints + offset
        if vertices is not None:
            vertices += offset
    msg.joints = float_array(joints)
    if vertices is not None:
        msg.vertices = float_array(vertices)
    if position is not None:
        msg.position = Point(x=float(position[0]), y=float(position[1]), z=float(position[2]))
        msg.position_valid = True
    msg.position_source = HumanMesh.POSITION_NONE if position is None else \
        position_source if position_source is not None else HumanMesh.POSITION_BODY_SIZE
    return msg


def human_mesh_array(header, humans: list[HumanMesh], latency_ms: float) -> HumanMeshArray:
    msg = HumanMeshArray()
    msg.header = header
    msg.humans = humans
    msg.latency_ms = float(latency_ms)
    return msg


def body_model_info(name: str, faces: np.ndarray | None, num_vertices: int) -> BodyModelInfo:
    msg = BodyModelInfo()
    msg.body_model = name
    msg.num_vertices = int(num_vertices)
    if faces is not None:
        out = array.array("I")
        out.frombytes(np.ascontiguousarray(faces, dtype=np.uint32).tobytes())
        msg.faces = out
    msg.joint_names = list(SMPL_JOINT_NAMES)
    msg.keypoint_names = list(COCO17_NAMES)
    return msg


_BONES = [(j, p) for j, p in enumerate(SMPL_PARENTS) if p >= 0]
_BONE_INDEX = np.array(_BONES).reshape(-1)


def _points(xyz: np.ndarray) -> list[Point]:
    return [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in xyz]


class SkeletonMarkers:
    """Joints as spheres and bones as lines, one pair of markers per person. Each track's two
    markers and their points are made once and refilled every frame: building ~70 Points per
    person per frame would cost more than the network itself."""

    def __init__(self, lifetime_s: float = 0.5) -> None:
        self.lifetime_s = lifetime_s
        self.cache: dict[int, tuple[Marker, Marker]] = {}

    def _markers(self, track_id: int) -> tuple[Marker, Marker]:
        if track_id not in self.cache:
            colour = ColorRGBA(r=0.1 + 0.8 * ((track_id * 0.37) % 1.0), g=0.8, b=0.3, a=1.0)
            pair = []
            for kind, marker_type, count in (("joints", Marker.SPHERE_LIST, len(SMPL_PARENTS)),
                                             ("bones", Marker.LINE_LIST, 2 * len(_BONES))):
                m = Marker()
                m.ns, m.id, m.type, m.action = f"key2mesh_{kind}", int(track_id), marker_type, Marker.ADD
                m.pose.orientation.w = 1.0
                m.scale.x = m.scale.y = m.scale.z = 0.04 if kind == "joints" else 0.015
                m.color = colour
                m.lifetime.sec, m.lifetime.nanosec = int(self.lifetime_s), int((self.lifetime_s % 1) * 1e9)
                m.points = [Point() for _ in range(count)]
                pair.append(m)
            self.cache[track_id] = (pair[0], pair[1])
        return self.cache[track_id]

    def forget(self, keep: set[int]) -> None:
        for track_id in [t for t in self.cache if t not in keep]:
            del self.cache[track_id]

    def message(self, header, joints_by_person: list[np.ndarray], ids: list[int]) -> MarkerArray:
        markers = MarkerArray()
        for joints, track_id in zip(joints_by_person, ids, strict=True):
            for marker, points in zip(self._markers(track_id), (joints, joints[_BONE_INDEX]), strict=True):
                marker.header = header
                for point, (x, y, z) in zip(marker.points, np.asarray(points, dtype=np.float64).tolist(), strict=True):
                    point.x, point.y, point.z = x, y, z
                markers.markers.append(marker)
        return markers


def mesh_marker(header, vertices: np.ndarray, faces: np.ndarray, track_id: int, lifetime_s: float = 1.0) -> Marker:
    """Full mesh as a TRIANGLE_LIST: heavy (tens of thousands of Points), so rate-limit it."""
    m = Marker()
    m.header = header
    m.ns, m.id, m.type, m.action = "key2mesh_mesh", int(track_id), Marker.TRIANGLE_LIST, Marker.ADD
    m.pose.orientation.w = 1.0
    m.scale.x = m.scale.y = m.scale.z = 1.0
    m.color = ColorRGBA(r=0.7, g=0.7, b=0.9, a=0.8)
    m.lifetime.sec, m.lifetime.nanosec = int(lifetime_s), int((lifetime_s % 1) * 1e9)
    m.points = _points(vertices[faces.reshape(-1)])
    return m
