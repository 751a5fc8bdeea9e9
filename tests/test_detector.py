"""The detector's ONNX Runtime path against ultralytics on the same real model and photos."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import YOLO_ONNX

pytestmark = pytest.mark.skipif(not YOLO_ONNX.exists(), reason=f"real detector not present at {YOLO_ONNX}")


@pytest.fixture(scope="module")
def photos():
    from key2mesh_ros.demo_data import demo_photos

    return demo_photos()


def _keypoint_error(reference, other) -> list[float]:
    """Per reference person: median keypoint distance to the nearest other person, % of box height."""
    errors = []
    for ref in reference:
        centre = ref.box.reshape(2, 2).mean(0)
        match = min(other, key=lambda d: np.linalg.norm(d.box.reshape(2, 2).mean(0) - centre))
        errors.append(float(np.median(np.linalg.norm(ref.keypoints[:, :2] - match.keypoints[:, :2], axis=-1))
                            / (ref.box[3] - ref.box[1]) * 100))
    return errors


def test_onnxruntime_path_finds_what_ultralytics_finds(photos, tmp_path, monkeypatch):
    from key2mesh.detector import PoseDetector

    monkeypatch.setenv("KEY2MESH_ARTIFACTS", str(tmp_path))
    reference = PoseDetector(str(YOLO_ONNX), runtime="ultralytics")
    fast = PoseDetector(str(YOLO_ONNX), rect=False)  # auto: ONNX Runtime on a prepared fp32 graph, square as ultralytics
    assert fast.description.startswith("ONNX Runtime, fp32 graph prepared from yolo11n-pose.onnx, 640x640")
    assert list((tmp_path / "detectors").glob("*-fp32-640.onnx"))  # converted once, cached
    for name, rgb in photos.items():
        want, got = reference.detect(rgb), fast.detect(rgb)
        assert len(got) == len(want), name
        np.testing.assert_allclose([d.score for d in got], [d.score for d in want], atol=0.05)
        # Exact grid constants move keypoints by up to a few pixels against the int8 graph's.
        assert max(_keypoint_error(want, got)) < 3.0, name


def test_rectangular_inputs_find_the_same_people(photos, tmp_path, monkeypatch):
    """The default: each image shape gets the smallest stride-32 rectangle, not a padded square."""
    from key2mesh.detector import PoseDetector
    from key2mesh.onnx_detector import input_shape

    assert input_shape((1080, 810), 640, True) == (640, 480)
    assert input_shape((720, 1280), 640, True) == (384, 640)  # 360 rounded up to a multiple of 32
    assert input_shape((720, 1280), 640, False) == (640, 640)
    monkeypatch.setenv("KEY2MESH_ARTIFACTS", str(tmp_path))
    square, rect = PoseDetector(str(YOLO_ONNX), rect=False), PoseDetector(str(YOLO_ONNX))
    for name, rgb in photos.items():
        want, got = square.detect(rgb), rect.detect(rgb)
        assert len(got) == len(want), name
        np.testing.assert_allclose([d.score for d in got], [d.score for d in want], atol=0.05)
        confident = [d for d in want if d.score > 0.5]  # a half-hidden person at the edge moves more
        assert max(_keypoint_error(confident, got)) < 3.0, name
    assert {(640, 480), (384, 640)} <= set(rect._onnx.sessions)
    spinning = PoseDetector(str(YOLO_ONNX), spinning=True)  # same graph, busy-waiting threads
    assert spinning.description.endswith("spinning within runs") and "spinning" not in rect.description
    options = spinning._onnx.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert options.get_session_config_entry("session.force_spinning_stop") == "1"
    for name, rgb in photos.items():
        want, got = rect.detect(rgb), spinning.detect(rgb)
        np.testing.assert_allclose(np.stack([d.keypoints for d in got]), np.stack([d.keypoints for d in want]),
                                   atol=1e-3, err_msg=name)
    assert rect._onnx.session.get_inputs()[0].shape[2:] == [640, 640]  # prepared at start, checked early
    assert list((tmp_path / "detectors").glob("*-fp32-640x480.onnx"))  # one graph per shape, cached


def test_smaller_input_sizes_really_run_smaller(photos, tmp_path, monkeypatch):
    from key2mesh.detector import PoseDetector

    monkeypatch.setenv("KEY2MESH_ARTIFACTS", str(tmp_path))
    full = PoseDetector(str(YOLO_ONNX), rect=False)
    small = PoseDetector(str(YOLO_ONNX), image_size=320, rect=False)
    assert small.image_size == 320 and small._onnx.session.get_inputs()[0].shape[2:] == [320, 320]
    rgb = photos["zidane"]
    want, got = full.detect(rgb), small.detect(rgb)
    assert len(got) == len(want) == 2
    assert max(_keypoint_error(want, got)) < 8.0
    with pytest.raises(ValueError, match="multiple of 32"):
        PoseDetector(str(YOLO_ONNX), image_size=300)


def test_letterbox_and_decode_map_back_to_the_image():
    from key2mesh.onnx_detector import decode, letterbox

    rgb = np.zeros((200, 100, 3), np.uint8)
    tensor, scale, pad = letterbox(rgb, 64)
    assert tensor.shape == (1, 3, 64, 64) and scale == pytest.approx(0.32) and pad == (16, 0)
    output = np.zeros((1, 56, 3), np.float32)
    output[0, :5, 0] = [32, 32, 16, 32, 0.9]  # a person in the middle of the letterboxed image
    output[0, 5:, 0] = np.tile([32, 32, 0.8], 17)
    output[0, :5, 1] = [33, 32, 16, 32, 0.5]  # the same person again: suppressed
    output[0, 4, 2] = 0.1  # below the threshold
    boxes, scores, keypoints = decode(output, 0.3, 5, scale, pad)
    assert scores.tolist() == pytest.approx([0.9])
    np.testing.assert_allclose(boxes[0], [25, 50, 75, 150], atol=1e-4)
    np.testing.assert_allclose(keypoints[0, 0], [50, 100, 0.8], atol=1e-4)
