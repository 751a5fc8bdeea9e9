"""Key2Mesh outputs as ROS messages, cheaply: what goes out every frame (``HumanMeshArray``,
skeleton markers) is written as serialised bytes straight from arrays (:mod:`key2mesh_ros.cdr`);
what goes out rarely is built as message objects, arrays filled from bytes, never element by
element (assigning a numpy array to a message field costs milliseconds)."""

from __future__ import annotations

import array

import numpy as np
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from key2mesh.keypoints import COCO17_NAMES, SMPL_JOINT_NAMES, SMPL_PARENTS
from key2mesh_msgs.msg import BodyModelInfo, HumanMesh, HumanMeshArray
from key2mesh_ros.cdr import Layout, LayoutCache, slots, stamp_index, write_stamp


class HumanMeshArrays:
    """``HumanMeshArray`` messages as serialised bytes (:mod:`key2mesh_ros.cdr`): one layout per
    camera frame, number of people and mesh size; each frame every field is written from the
    graph's arrays, and each mesh is copied once, straight into the bytes."""

    def __init__(self) -> None:
        self.layouts = LayoutCache(self._layout, size=8)  # each holds a working copy of a frame's meshes

    @staticmethod
    def _layout(frame_id: str, people: int, num_vertices: int) -> Layout:
        humans = []
        for _ in range(people):
            human = HumanMesh(keypoints_2d=array.array("f", bytes(4 * 3 * len(COCO17_NAMES))),
                              vertices=array.array("f", bytes(4 * 3 * num_vertices)))
            human.header.frame_id = frame_id
            humans.append(human)
        message = HumanMeshArray(humans=humans)
        message.header.frame_id = frame_id
        layout = Layout(message)
        paths = [("humans", i) for i in range(people)]
        fields = layout.fields
        fields["stamps"] = stamp_index(layout, [("header",)] + [p + ("header",) for p in paths])
        fields["track_id"] = layout.index([p + ("track_id",) for p in paths], "<u4")
        fields["detection_score"] = layout.index([p + ("detection_score",) for p in paths], "<f4")
        for name, size in (("bbox", 4), ("keypoints_2d", 3 * len(COCO17_NAMES)), ("pose", 72), ("betas", 10),
                           ("joints", 72), ("vertices", 3 * num_vertices)):
            fields[name] = layout.runs([p + (name,) for p in paths], size, "<f4")
        fields["position"] = layout.index([[p + ("position", a) for a in "xyz"] for p in paths], "<f8").reshape(-1, 3)
        fields["position_valid"] = layout.index([p + ("position_valid",) for p in paths], "<u1")
        fields["position_source"] = layout.index([p + ("position_source",) for p in paths], "<u1")
        fields["latency_ms"] = layout.index([("latency_ms",)], "<f4")
        return layout

    def serialized(self, header, track_ids: list[int], scores: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray,
                   poses: np.ndarray, betas: np.ndarray, joints: np.ndarray, vertices: np.ndarray | None,
                   positions: np.ndarray, sources: list[int], latency_ms: float) -> bytes:
        """People ``track_ids`` with ``scores [P]``, ``boxes [P,4]``, pixel ``keypoints [P,17,3]``
        (NaN sent as 0), SMPL ``poses [P,72]``, ``betas [P,10]``, root-relative ``joints [P,24,3]``
        and ``vertices [P,V,3]`` (``None``: no meshes), camera-frame pelvis ``positions [P,3]``
        (NaN: unknown; where known, joints and mesh are sent in the camera frame) and their
        ``sources`` (``HumanMesh.POSITION_*``)."""
        count = len(track_ids)
        if not count:
            return self.empty(header, latency_ms)
        num_vertices = 0 if vertices is None else vertices.shape[1]
        layout = self.layouts(header.frame_id, count, num_vertices)
        fields = layout.fields
        buffer = layout.scratch()  # every number below is written: nothing of the last frame stays
        f4, f8, u1 = slots(buffer, "<f4"), slots(buffer, "<f8"), slots(buffer, "<u1")
        write_stamp(buffer, fields["stamps"], header.stamp)
        f4[fields["latency_ms"]] = latency_ms
        placed = np.isfinite(positions).all(1)
        offsets = np.where(placed[:, None], positions, 0.0)  # [P,3]
        slots(buffer, "<u4")[fields["track_id"]] = track_ids
        f4[fields["detection_score"]] = scores
        f4[fields["bbox"]] = np.asarray(boxes).reshape(count, 4)
        f4[fields["keypoints_2d"]] = np.nan_to_num(np.asarray(keypoints), nan=0.0).reshape(count, -1)
        f4[fields["pose"]] = np.asarray(poses).reshape(count, 72)
        f4[fields["betas"]] = np.asarray(betas).reshape(count, 10)
        f4[fields["joints"]] = (np.asarray(joints).reshape(count, 24, 3) + offsets[:, None]).reshape(count, 72)
        for i, first in enumerate(fields["vertices"][:, 0] if num_vertices else ()):
            # The one copy of a mesh, shifted into the camera frame on its way into the bytes; one
            # axis at a time, as adding a [3] offset to [V,3] runs numpy's loop three values at a time.
            mesh = f4[first:first + 3 * num_vertices].reshape(-1, 3)
            for axis in range(3):
                np.add(vertices[i, :, axis], np.float32(offsets[i, axis]), out=mesh[:, axis])
        f8[fields["position"]] = offsets
        u1[fields["position_valid"]] = placed
        u1[fields["position_source"]] = np.where(placed, sources, HumanMesh.POSITION_NONE)
        return bytes(buffer)

    def empty(self, header, latency_ms: float) -> bytes:
        """A ``HumanMeshArray`` with nobody in it."""
        layout = self.layouts(header.frame_id, 0, 0)
        buffer = layout.buffer()
        write_stamp(buffer, layout.fields["stamps"], header.stamp)
        slots(buffer, "<f4")[layout.fields["latency_ms"]] = latency_ms
        return bytes(buffer)


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
    """Joints as spheres and bones as lines, one pair of markers per person, as serialised bytes
    (:mod:`key2mesh_ros.cdr`): the markers are laid out once per camera frame and set of
    people, and each frame writes the stamps and every point in one go."""

    def __init__(self, lifetime_s: float = 0.5) -> None:
        self.lifetime_s = lifetime_s
        self.layouts = LayoutCache(self._layout)

    def _marker(self, frame_id: str, track_id: int, kind: str) -> Marker:
        m = Marker()
        m.header.frame_id = frame_id
        m.ns, m.id, m.action = f"key2mesh_{kind}", int(track_id), Marker.ADD
        m.type = Marker.SPHERE_LIST if kind == "joints" else Marker.LINE_LIST
        m.pose.orientation.w = 1.0
        m.scale.x = m.scale.y = m.scale.z = 0.04 if kind == "joints" else 0.015
        m.color = ColorRGBA(r=0.1 + 0.8 * ((track_id * 0.37) % 1.0), g=0.8, b=0.3, a=1.0)
        m.lifetime.sec, m.lifetime.nanosec = int(self.lifetime_s), int((self.lifetime_s % 1) * 1e9)
        m.points = [Point() for _ in range(len(SMPL_PARENTS) if kind == "joints" else len(_BONE_INDEX))]
        return m

    def _layout(self, frame_id: str, track_ids: tuple[int, ...]) -> Layout:
        markers = [self._marker(frame_id, t, kind) for t in track_ids for kind in ("joints", "bones")]
        layout = Layout(MarkerArray(markers=markers))
        layout.fields["stamps"] = stamp_index(layout, [("markers", i, "header") for i in range(len(markers))])
        # [P, 24 sphere centres + 2 x 23 line ends, 3]
        points = [[("markers", 2 * p, "points", k) for k in range(len(SMPL_PARENTS))]
                  + [("markers", 2 * p + 1, "points", k) for k in range(len(_BONE_INDEX))] for p in range(len(track_ids))]
        layout.fields["points"] = layout.index([[[q + (a,) for a in "xyz"] for q in person] for person in points], "<f8")
        return layout

    def serialized(self, header, joints: np.ndarray, track_ids: list[int]) -> bytes:
        """``MarkerArray`` bytes for camera-frame ``joints [P,24,3]`` of people ``track_ids``."""
        layout = self.layouts(header.frame_id, tuple(int(t) for t in track_ids))
        buffer = layout.buffer()
        if len(track_ids):
            joints = np.asarray(joints, np.float64).reshape(-1, len(SMPL_PARENTS), 3)
            write_stamp(buffer, layout.fields["stamps"], header.stamp)
            slots(buffer, "<f8")[layout.fields["points"]] = np.concatenate([joints, joints[:, _BONE_INDEX]], 1)
        return bytes(buffer)


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
