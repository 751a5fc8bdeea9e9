"""Messages the node publishes as serialised bytes (key2mesh_ros/cdr.py): the layout must be
what rclpy's own serialiser gives, field for field, and each output's bytes must read back as
the numbers that went in. Over-the-wire checks are in test_ros_conventions.py and test_ros_node.py."""

from __future__ import annotations

import array

import numpy as np
import pytest


@pytest.fixture(scope="module", autouse=True)
def ros_environment():
    from key2mesh_ros.ros_environment import configure_ros_environment

    configure_ros_environment(localhost_only=True)


def _messages():
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
    from geometry_msgs.msg import Point, TransformStamped
    from hri_msgs.msg import IdsList, NormalizedPointOfInterest2D, NormalizedRegionOfInterest2D, Skeleton2D
    from sensor_msgs.msg import JointState
    from tf2_msgs.msg import TFMessage
    from visualization_msgs.msg import Marker, MarkerArray

    from key2mesh_msgs.msg import HumanMesh, HumanMeshArray

    t = TransformStamped(child_frame_id="left_wrist_b12")
    t.header.frame_id, t.header.stamp.sec, t.header.stamp.nanosec = "camera", 7, 123
    t.transform.translation.x, t.transform.rotation.w = -1.25, 0.5
    marker = Marker(ns="key2mesh_bones", id=4, type=Marker.LINE_LIST, text="odd length",
                    points=[Point(x=1.0, y=2.0, z=3.0), Point(x=-4.0)])
    marker.header.frame_id = "cam"
    human = HumanMesh(track_id=3, detection_score=0.75, bbox=[1.0, 2.0, 3.0, 4.0],
                      keypoints_2d=array.array("f", range(51)), vertices=array.array("f", range(9)),
                      position_valid=True, position_source=HumanMesh.POSITION_DEPTH)
    human.position.z = 2.5
    return [
        TFMessage(), TFMessage(transforms=[t, t]), MarkerArray(markers=[marker, Marker()]),
        JointState(name=["a", "bc"], position=[1.0, 2.0]),  # empty velocity and effort
        JointState(name=["a"], position=[], velocity=[3.0], effort=[]),
        Skeleton2D(skeleton=[NormalizedPointOfInterest2D(x=0.5, y=0.25, c=1.0)] * 18),
        NormalizedRegionOfInterest2D(xmin=0.1, ymax=0.9, c=0.5), IdsList(ids=["b1", "b22", "b333"]),
        HumanMeshArray(humans=[human, HumanMesh()], latency_ms=3.5), HumanMeshArray(),
        DiagnosticArray(status=[DiagnosticStatus(level=DiagnosticStatus.WARN, name="x",
                                                 values=[KeyValue(key="k", value="v")])]),
    ]


@pytest.mark.parametrize("index", range(11))
def test_layout_is_what_rclpy_serialises(index):
    from key2mesh_ros.cdr import encode
    from rclpy.serialization import deserialize_message, serialize_message

    message = _messages()[index]
    ours, offsets = encode(message)
    theirs = serialize_message(message)
    assert deserialize_message(ours, type(message)) == deserialize_message(theirs, type(message))
    # rclpy leaves room after an empty sequence that it does not fill; otherwise same length.
    assert len(ours) <= len(theirs)
    assert encode(deserialize_message(ours, type(message)))[0] == ours
    if index == 1:  # offsets say where each number is
        assert np.frombuffer(ours, "<f8", 1, offsets[("transforms", 1, "transform", "translation", "x")])[0] == -1.25
        assert np.frombuffer(ours, "<u4", 1, offsets[("transforms", 0, "header", "stamp", "nanosec")])[0] == 123


def test_human_mesh_array_bytes_read_back():
    from key2mesh_ros.messages import HumanMeshArrays
    from rclpy.serialization import deserialize_message
    from std_msgs.msg import Header

    from key2mesh_msgs.msg import HumanMesh, HumanMeshArray

    rng = np.random.default_rng(0)
    count, num_vertices = 3, 50
    keypoints = rng.uniform(0, 500, (count, 17, 3)).astype(np.float32)
    keypoints[1, 4] = np.nan
    arrays = dict(scores=rng.uniform(size=count).astype(np.float32), boxes=rng.uniform(0, 500, (count, 4)),
                  keypoints=keypoints, poses=rng.normal(size=(count, 72)), betas=rng.normal(size=(count, 10)),
                  joints=rng.normal(size=(count, 24, 3)).astype(np.float32),
                  vertices=rng.normal(size=(count, num_vertices, 3)).astype(np.float32))
    positions = np.array([[0.1, 0.2, 3.0], [np.nan] * 3, [-1.0, 0.0, 5.0]])
    vertices_before = arrays["vertices"].copy()
    header = Header(frame_id="camera_color_optical_frame")
    header.stamp.sec, header.stamp.nanosec = 1234, 5678
    meshes = HumanMeshArrays()
    data = meshes.serialized(header, [7, 8, 9], **arrays, positions=positions,
                             sources=[HumanMesh.POSITION_DEPTH, HumanMesh.POSITION_BODY_SIZE,
                                      HumanMesh.POSITION_BODY_SIZE], latency_ms=12.5)
    message = deserialize_message(data, HumanMeshArray)
    assert message.header == header and message.latency_ms == 12.5 and len(message.humans) == count
    np.testing.assert_array_equal(arrays["vertices"], vertices_before)  # the graph's buffers are left alone
    for i, human in enumerate(message.humans):
        placed = i != 1
        offset = positions[i] if placed else np.zeros(3)
        assert human.header == header and human.track_id == 7 + i
        assert human.detection_score == pytest.approx(arrays["scores"][i])
        np.testing.assert_allclose(human.bbox, arrays["boxes"][i], rtol=1e-6)
        np.testing.assert_allclose(human.keypoints_2d, np.nan_to_num(keypoints[i]).reshape(-1), rtol=1e-6)
        np.testing.assert_allclose(human.pose, arrays["poses"][i], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(human.betas, arrays["betas"][i], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(np.reshape(human.joints, (24, 3)), arrays["joints"][i] + offset, atol=1e-5)
        np.testing.assert_allclose(np.reshape(human.vertices, (-1, 3)), vertices_before[i] + offset, atol=1e-5)
        assert human.position_valid == placed
        assert human.position_source == [HumanMesh.POSITION_DEPTH, HumanMesh.POSITION_NONE,
                                         HumanMesh.POSITION_BODY_SIZE][i]
        np.testing.assert_allclose([human.position.x, human.position.y, human.position.z], offset)
    # The same people again, none placed now: the reused bytes keep nothing of the last message.
    again = deserialize_message(meshes.serialized(header, [7, 8, 9], **arrays, positions=np.full((count, 3), np.nan),
                                                  sources=[1, 1, 1], latency_ms=1.0), HumanMeshArray)
    for i, human in enumerate(again.humans):
        assert not human.position_valid and human.position_source == HumanMesh.POSITION_NONE and human.position.z == 0
        np.testing.assert_allclose(np.reshape(human.vertices, (-1, 3)), vertices_before[i], atol=1e-6)
    # No meshes asked for, and nobody in view.
    data = meshes.serialized(header, [7, 8, 9], **{**arrays, "vertices": None}, positions=positions,
                             sources=[1, 1, 1], latency_ms=1.0)
    assert all(len(h.vertices) == 0 for h in deserialize_message(data, HumanMeshArray).humans)
    empty = deserialize_message(meshes.empty(header, 2.0), HumanMeshArray)
    assert empty.header == header and not empty.humans and empty.latency_ms == 2.0


def test_skeleton_markers_bytes_read_back():
    from key2mesh_ros.messages import SkeletonMarkers
    from rclpy.serialization import deserialize_message
    from std_msgs.msg import Header
    from visualization_msgs.msg import Marker, MarkerArray

    from key2mesh.keypoints import SMPL_PARENTS

    joints = np.random.default_rng(1).normal(size=(2, 24, 3))
    header = Header(frame_id="cam")
    header.stamp.sec = 99
    markers = SkeletonMarkers(lifetime_s=0.5)
    message = deserialize_message(markers.serialized(header, joints, [4, 11]), MarkerArray)
    assert [(m.ns, m.id, m.type) for m in message.markers] == [
        ("key2mesh_joints", 4, Marker.SPHERE_LIST), ("key2mesh_bones", 4, Marker.LINE_LIST),
        ("key2mesh_joints", 11, Marker.SPHERE_LIST), ("key2mesh_bones", 11, Marker.LINE_LIST)]
    for m in message.markers:
        assert m.header == header and m.lifetime.nanosec == 500_000_000 and m.pose.orientation.w == 1.0

    def points(marker):
        return np.array([[p.x, p.y, p.z] for p in marker.points])

    for person in range(2):
        np.testing.assert_array_equal(points(message.markers[2 * person]), joints[person])
        bones = points(message.markers[2 * person + 1]).reshape(-1, 2, 3)
        expected = [(j, p) for j, p in enumerate(SMPL_PARENTS) if p >= 0]
        np.testing.assert_array_equal(bones, [[joints[person, j], joints[person, p]] for j, p in expected])
    assert deserialize_message(markers.serialized(header, np.zeros((0, 24, 3)), []), MarkerArray).markers == []


def test_layout_cache_keeps_the_latest_few():
    from key2mesh_ros.cdr import LayoutCache

    built = []
    cache = LayoutCache(lambda *key: built.append(key) or key, size=3)
    for key in [(1,), (2,), (1,), (3,), (4,), (1,), (2,)]:
        assert cache(*key) == key
    assert built == [(1,), (2,), (3,), (4,), (2,)]  # (1,) kept while in use, (2,) dropped, rebuilt
    assert len(cache.layouts) == 3
