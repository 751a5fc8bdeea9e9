"""The robot-facing conventions, without the detector: TF frames (REP-155), ROS4HRI topics,
depth pairing and distance, diagnostics levels. Messages go over real rclpy transport."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from key2mesh.keypoints import COCO17_NAMES, HRI_SKELETON18_NAMES, SMPL_JOINT_NAMES, coco17_to_hri_skeleton18


def _spin_until(node, done, timeout=10.0):
    import rclpy

    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    return done()


def posed_person(body, seed=0):
    """A body seen by an OpenCV camera: pose [72] with the root in the camera frame, joints [24,3]."""
    from key2mesh.rotations import axis_angle_to_matrix, matrix_to_axis_angle

    gen = torch.Generator().manual_seed(seed)
    pose = 0.3 * torch.randn(24, 3, generator=gen)
    # Upright, facing the camera: SMPL's body frame (Y up, facing +Z) seen from the front by a
    # camera with y down and z forward is a half turn about x, then a little yaw.
    facing = axis_angle_to_matrix(torch.tensor([[np.pi, 0.0, 0.0]]))[0]
    yaw = axis_angle_to_matrix(torch.tensor([[0.0, 0.4, 0.0]]))[0]
    pose[0] = matrix_to_axis_angle((facing @ yaw)[None])[0]
    rotmats = axis_angle_to_matrix(pose)
    joints = body(torch.zeros(1, 10), rotmats[None], with_vertices=False, root_relative=True)["joints"][0]
    return pose.reshape(-1).numpy(), joints.numpy().astype(np.float64) + np.array([0.3, -0.1, 3.0])


def test_tf_chain_reproduces_the_joints_and_rep155_axes(body):
    from key2mesh_ros.tf_frames import chain_to_camera, person_transforms
    from scipy.spatial.transform import Rotation

    pose, joints = posed_person(body)
    table = {}
    for parent, child, translation, quat in person_transforms(pose, joints):
        name = "body" if child == "body" else SMPL_JOINT_NAMES[child]
        parent_name = "camera" if parent == "" else "body" if parent == "body" else SMPL_JOINT_NAMES[parent]
        table[name] = (parent_name, translation, quat)
    assert table["pelvis"][0] == "body" and table["left_knee"][0] == "left_hip" and len(table) == 25
    for j, name in enumerate(SMPL_JOINT_NAMES):
        np.testing.assert_allclose(chain_to_camera(table, name), joints[j], atol=1e-6)
    hips = joints[[1, 2]].mean(0)
    np.testing.assert_allclose(chain_to_camera(table, "body"), hips, atol=1e-9)
    # REP-155 axes: z up (towards the neck), y to the person's left, x forward (towards the camera).
    axes = Rotation.from_quat(table["body"][2]).as_matrix()
    up = joints[SMPL_JOINT_NAMES.index("neck")] - hips
    left = joints[SMPL_JOINT_NAMES.index("left_hip")] - joints[SMPL_JOINT_NAMES.index("right_hip")]
    assert axes[:, 2] @ up / np.linalg.norm(up) > 0.8
    assert axes[:, 1] @ left / np.linalg.norm(left) > 0.8
    assert axes[:, 0] @ np.array([0.0, 0.0, -1.0]) > 0.7  # facing the camera, yawed a little


def test_tf_message_over_ros(ros, body):
    from key2mesh_ros.tf_frames import TfFrames, chain_to_camera
    from std_msgs.msg import Header
    from tf2_msgs.msg import TFMessage

    people = [(7, *posed_person(body, 1)), (9, *posed_person(body, 2))]
    received = []
    ros.create_subscription(TFMessage, "/tf_test", received.append, 10)
    publisher = ros.create_publisher(TFMessage, "/tf_test", 10)
    header = Header(frame_id="camera_color_optical_frame")
    header.stamp.sec = 42
    ids, poses, joints = zip(*people, strict=True)
    message = TfFrames().serialized(header, list(ids), np.stack(poses), np.stack(joints))  # bytes, as the node sends
    assert _spin_until(ros, lambda: (publisher.publish(message), bool(received))[1])
    transforms = received[0].transforms
    assert len(transforms) == 2 * 25 and all(t.header.stamp.sec == 42 for t in transforms)
    table = {t.child_frame_id: (t.header.frame_id,
                                np.array([t.transform.translation.x, t.transform.translation.y, t.transform.translation.z]),
                                np.array([t.transform.rotation.x, t.transform.rotation.y, t.transform.rotation.z,
                                          t.transform.rotation.w])) for t in transforms}
    assert table["body_b7"][0] == "camera_color_optical_frame" and table["pelvis_b7"][0] == "body_b7"
    assert table["left_wrist_b9"][0] == "left_elbow_b9"
    for track, _, joints in people:
        for j, name in enumerate(SMPL_JOINT_NAMES):
            np.testing.assert_allclose(chain_to_camera(table, f"{name}_b{track}"), joints[j], atol=1e-5)


def test_hri_skeleton_order_and_neck():
    keypoints = np.random.default_rng(0).uniform(0, 100, (17, 3)).astype(np.float32)
    out = coco17_to_hri_skeleton18(keypoints)
    for i, name in enumerate(HRI_SKELETON18_NAMES):
        if name != "neck":
            np.testing.assert_array_equal(out[i], keypoints[COCO17_NAMES.index(name)])
    shoulders = keypoints[[5, 6]]
    np.testing.assert_allclose(out[1, :2], shoulders[:, :2].mean(0))
    assert out[1, 2] == shoulders[:, 2].min()
    batch = np.stack([keypoints, keypoints[::-1]])  # people at once, each as alone
    for person, alone in zip(coco17_to_hri_skeleton18(batch), batch, strict=True):
        np.testing.assert_array_equal(person, coco17_to_hri_skeleton18(alone))
    # hri_msgs/Skeleton2D's own constants, which ROS4HRI tools index by.
    from hri_msgs.msg import Skeleton2D

    for i, name in enumerate(HRI_SKELETON18_NAMES):
        assert getattr(Skeleton2D, name.upper()) == i


def test_hri_topics_follow_tracks_without_leaking(ros, body, monkeypatch):
    import rclpy
    from hri_msgs.msg import IdsList, NormalizedRegionOfInterest2D, Skeleton2D
    from key2mesh_ros.hri_topics import JOINT_STATE_NAMES, HriBodies
    from sensor_msgs.msg import JointState
    from std_msgs.msg import Header

    owner = rclpy.create_node("key2mesh_hri_owner")
    hri = HriBodies(owner, prefix="/hri_test/bodies")
    tracked, skeletons, rois, states = [], [], [], []
    ros.create_subscription(IdsList, "/hri_test/bodies/tracked", tracked.append, 10)
    ros.create_subscription(Skeleton2D, "/hri_test/bodies/b3/skeleton2d", skeletons.append, 10)
    ros.create_subscription(NormalizedRegionOfInterest2D, "/hri_test/bodies/b3/roi", rois.append, 10)
    ros.create_subscription(JointState, "/hri_test/bodies/b3/joint_states", states.append, 10)
    pose, _ = posed_person(body)
    keypoints = np.zeros((17, 3), np.float32)
    keypoints[:, :2] = [320, 240]
    keypoints[:, 2] = 0.9
    box = np.array([[64, 48, 320, 480]], np.float32)

    def people(track):
        return [track], keypoints[None], box, np.array([0.8]), pose[None]

    base = len(list(owner.publishers))

    def frame():
        hri.publish(Header(frame_id="camera"), 640, 480, [3], *people(3))
        return bool(tracked and skeletons and rois and states)

    assert _spin_until(ros, frame)
    assert tracked[-1].ids == ["b3"]
    point = skeletons[-1].skeleton[Skeleton2D.LEFT_HIP]
    assert (point.x, point.y) == pytest.approx((0.5, 0.5)) and point.c == pytest.approx(0.9)
    roi = rois[-1]
    assert (roi.xmin, roi.ymin, roi.xmax, roi.ymax, roi.c) == pytest.approx((0.1, 0.1, 0.5, 1.0, 0.8))
    assert list(states[-1].name) == list(JOINT_STATE_NAMES) and len(states[-1].position) == 72
    # A body topic nobody subscribes to is neither filled nor published: b4 has no listener.
    two = ([3, 4], np.stack([keypoints] * 2), np.repeat(box, 2, 0), np.array([0.8, 0.7]), np.stack([pose] * 2))
    hri.publish(Header(), 640, 480, [3, 4], *two)
    sent = []
    for body_id in ("b3", "b4"):
        for publisher in hri.bodies[body_id]:
            publisher.publish = lambda msg, topic=publisher.topic_name: sent.append(topic)
    hri.publish(Header(), 640, 480, [3, 4], *two)
    assert sorted(sent) == sorted(f"/hri_test/bodies/b3/{t}" for t in ("skeleton2d", "roi", "joint_states"))
    # Nor is anything computed for it: with b4 alone in view no skeleton, box or angle is made.
    import key2mesh_ros.hri_topics as hri_topics

    def unread(*_):
        raise AssertionError("computed for a body nobody reads")

    with monkeypatch.context() as patch:
        patch.setattr(hri_topics, "coco17_to_hri_skeleton18", unread)
        patch.setattr(hri_topics.Rotation, "from_rotvec", unread)
        hri.publish(Header(), 640, 480, [3, 4], *(part[1:] for part in two))
    hri.publish(Header(), 640, 480, [3], *people(3))  # b4 forgotten
    # Three publishers per body while it is tracked, destroyed once the tracker forgets it, however
    # many bodies come and go.
    assert len(list(owner.publishers)) == base + 3
    for track in range(100, 300):
        hri.publish(Header(), 640, 480, [track], *people(track))
        assert len(list(owner.publishers)) == base + 3
    hri.publish(Header(), 640, 480, [])
    assert len(list(owner.publishers)) == base and not hri.bodies

    def body_topics():
        names = owner.get_publisher_names_and_types_by_node("key2mesh_hri_owner", "/")
        return [name for name, _ in names if name.startswith("/hri_test/bodies/") and not name.endswith("/tracked")]

    assert _spin_until(owner, lambda: not body_topics()), body_topics()
    hri.close()
    owner.destroy_node()


def _depth_msg(depth_m: np.ndarray, encoding: str, stamp_ns: int):
    from sensor_msgs.msg import Image

    msg = Image(encoding=encoding, height=depth_m.shape[0], width=depth_m.shape[1])
    data = (depth_m * 1000).astype(np.uint16) if encoding == "16UC1" else depth_m.astype(np.float32)
    msg.step = depth_m.shape[1] * data.itemsize
    msg.data = data.tobytes()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return msg


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_depth_distance_under_the_torso(encoding):
    from key2mesh_ros.depth import DepthBuffer, depth_to_metres, torso_distance

    depth = np.full((240, 320), 5.0, np.float32)  # the wall behind
    depth[60:200, 120:200] = 3.0  # the person
    depth[100:104, 150:154] = 0.0  # a hole (no return) under one keypoint: ignored
    metres = depth_to_metres(_depth_msg(depth, encoding, 10))
    assert np.isnan(metres[101, 151]) and metres[0, 0] == pytest.approx(5.0)
    keypoints = np.zeros((17, 3), np.float32)
    # The colour image is 640x480: twice the depth image's size, so pixel coordinates scale.
    keypoints[[5, 6, 11, 12]] = [[300, 200, 0.9], [340, 200, 0.9], [305, 300, 0.9], [335, 300, 0.9]]
    assert torso_distance(metres, keypoints, (640, 480)) == pytest.approx(3.0, abs=1e-3)
    keypoints[[5, 6, 11, 12], 2] = 0.0  # torso not seen: no distance
    assert torso_distance(metres, keypoints, (640, 480)) is None
    buffer = DepthBuffer()
    for ms in (0, 33, 66):
        buffer.add(_depth_msg(depth, encoding, ms * 1_000_000))
    assert buffer.closest(40 * 1_000_000, 0.05).header.stamp.nanosec == 33_000_000
    assert buffer.closest(500 * 1_000_000, 0.05) is None


def test_depth_errors_say_why():
    from key2mesh_ros.depth import DepthError, depth_to_metres

    msg = _depth_msg(np.ones((4, 4), np.float32), "32FC1", 0)
    msg.encoding = "rgb8"
    with pytest.raises(DepthError, match="16UC1"):
        depth_to_metres(msg)
    msg = _depth_msg(np.ones((4, 4), np.float32), "32FC1", 0)
    msg.data = msg.data[:10]
    with pytest.raises(DepthError, match="bytes"):
        depth_to_metres(msg)


def test_diagnostics_levels():
    from key2mesh_ros.diagnostics import ERROR, OK, WARN, Window, assess, diagnostic_array

    def window(received, processed, failed=0):
        return Window(1.0, received, processed, 0, failed, 0, processed)

    assert assess(window(30, 10), 2.0, "active", "/cam")[0] == OK
    assert assess(window(30, 1), 2.0, "active", "/cam") == (WARN, "processing 1.0 Hz, below min_rate_hz 2")
    assert assess(window(0, 0), 2.0, "active", "/cam") == (WARN, "no images on /cam")
    assert assess(window(30, 10, failed=3), 2.0, "active", "/cam")[0] == ERROR
    assert assess(window(30, 0), 2.0, "paused", "/cam")[0] == OK
    from builtin_interfaces.msg import Time

    array = diagnostic_array(Time(sec=1), "key2mesh_node", WARN, "slow", {"backend": "onnxruntime", "rate_hz": 1.0})
    status = array.status[0]
    assert status.level == bytes([WARN]) and status.name == "key2mesh_node: pipeline"
    assert {kv.key: kv.value for kv in status.values} == {"backend": "onnxruntime", "rate_hz": "1.0"}


def test_choice_parameters_declare_their_allowed_values():
    from key2mesh_ros.node import CHOICES, PARAMETERS

    for name, allowed in CHOICES.items():
        assert name in PARAMETERS and all(isinstance(value, str) for value in allowed), name
        assert PARAMETERS[name][0] in allowed, name
