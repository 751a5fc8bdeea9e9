"""Track ids by box overlap and One-Euro smoothing of the node's keypoints."""

import numpy as np
import pytest
from key2mesh_ros.tracking import Tracker

from key2mesh.boxes import box_iou


def test_box_iou():
    a = np.array([[0, 0, 10, 10.0]])
    assert box_iou(a, a)[0, 0] == pytest.approx(1.0)
    assert box_iou(a, np.array([[5, 0, 15, 10.0]]))[0, 0] == pytest.approx(50 / 150)
    assert box_iou(a, np.array([[20, 20, 30, 30.0]]))[0, 0] == 0.0


def _person(x: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    keypoints = np.ones((17, 3), np.float32)
    keypoints[:, 0] = x + rng.uniform(0, 50, 17)
    keypoints[:, 1] = rng.uniform(100, 300, 17)
    return np.array([x, 100, x + 50, 300.0]), keypoints


def test_tracker_keeps_ids_by_overlap_and_forgets_old_tracks():
    rng = np.random.default_rng(0)
    tracker = Tracker(max_age_s=1.0, smoothing=False)
    (box_a, kp_a), (box_b, kp_b) = _person(0, rng), _person(300, rng)
    ids, _ = tracker.update(np.stack([box_a, box_b]), np.stack([kp_a, kp_b]), 0.0)
    assert ids == [1, 2]
    ids, _ = tracker.update(np.stack([box_b + 5, box_a + 5]), np.stack([kp_b, kp_a]), 0.1)  # moved, swapped order
    assert ids == [2, 1]
    ids, _ = tracker.update(np.stack([box_a]), kp_a[None], 2.0)  # gone longer than max_age_s: a new person
    assert ids == [3]


def test_smoothing_damps_jitter_and_unseen_joints_keep_a_real_position():
    rng = np.random.default_rng(1)
    box, clean = _person(100, rng)
    tracker = Tracker(smoothing=True, min_cutoff=1.0, beta=0.0)
    first = clean.copy()
    first[3, :2], first[3, 2] = (40.0, 50.0), 0.05  # below the confidence threshold: unseen
    _, out = tracker.update(box[None], first[None], 0.0)
    # A new track has no history: its unseen joints keep the detector's guess, never (0, 0),
    # which would drag anything that reads them (metric placement, overlays) off the person.
    np.testing.assert_array_equal(out[0], first)
    raw, smoothed = [], []
    for step in range(1, 30):
        noisy = clean.copy()
        noisy[:, :2] += rng.normal(0, 4.0, (17, 2))
        noisy[3, 2] = 0.05
        _, out = tracker.update(box[None], noisy[None], step / 30)
        raw.append(noisy[:, :2] - clean[:, :2])
        smoothed.append(out[0, :, :2] - clean[:, :2])
        assert out[0, 3, 2] == pytest.approx(0.05)  # confidences pass through untouched
    seen = np.arange(17) != 3
    assert np.abs(np.array(smoothed)[10:, seen]).mean() < 0.6 * np.abs(np.array(raw)[10:, seen]).mean()
    np.testing.assert_allclose(out[0, 3, :2], (40.0, 50.0))  # an unseen joint holds its last value


def test_prediction_carries_people_between_detections():
    """``detect_every``: between detections a track moves by its constant velocity."""
    rng = np.random.default_rng(1)
    tracker = Tracker(max_age_s=1.0, smoothing=False)
    box, keypoints = _person(100, rng)
    keypoints[3, 2] = 0.0  # a joint unseen: it must not fly off
    tracker.update(box[None], keypoints[None], 0.0, np.array([0.9]))
    moved = keypoints.copy()
    moved[:, 0] += 10.0  # 10 px in 0.1 s: 100 px/s
    tracker.update((box + [10, 0, 10, 0])[None], moved[None], 0.1, np.array([0.8]))
    ids, boxes, scores, predicted = tracker.predict(0.15)
    assert ids == [1] and scores[0] == pytest.approx(0.8)
    seen = keypoints[:, 2] > 0
    np.testing.assert_allclose(predicted[0, seen, 0], keypoints[seen, 0] + 15.0, atol=1e-4)
    np.testing.assert_allclose(predicted[0, ~seen, 0], moved[~seen, 0], atol=1e-4)
    np.testing.assert_allclose(boxes[0], box + [15, 0, 15, 0], atol=1e-4)
    assert tracker.tracks[0].last_seen == 0.1  # predicting neither refreshes nor ages a track
    assert tracker.predict(2.0)[0] == []  # too old to carry
