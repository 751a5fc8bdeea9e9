"""A real detector's measured errors, replayed in pre-training (key2mesh_train/detector_residuals.py,
keypoint_noise.load_replayed_residuals, synthetic.replayed_residuals)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import YOLO_ONNX

from key2mesh.keypoints import NUM_KEYPOINTS
from key2mesh_train.config import load_config


def _person() -> torch.Tensor:
    """Clean keypoints [1,17,2] in a 100 x 200 px box."""
    xy = torch.zeros(1, NUM_KEYPOINTS, 2)
    xy[0, :, 0] = torch.linspace(100, 200, NUM_KEYPOINTS)
    xy[0, :, 1] = torch.linspace(50, 250, NUM_KEYPOINTS)
    return xy


def test_residuals_are_offsets_in_units_of_the_true_box():
    from key2mesh_train.detector_residuals import residuals_from_detections
    from key2mesh_train.keypoint_noise import MAX_RESIDUAL, ReplayedResiduals

    clean = _person()
    detected = torch.cat([clean.clone(), torch.full((1, NUM_KEYPOINTS, 1), 0.9)], -1)
    detected[0, 0, :2] += torch.tensor([10.0, -20.0])  # the box's longer side is 200 px
    detected[0, 1, 2] = 0.05  # below the confidence threshold: missed
    detected[0, 2, :2] += torch.tensor([0.0, 300.0])  # a wild detection: capped
    residuals, confidences = residuals_from_detections(detected, clean)
    torch.testing.assert_close(residuals[0, 0], torch.tensor([0.05, -0.1]))
    assert residuals[0, 1].abs().sum() == 0 and confidences[0, 1] == 0
    assert residuals[0, 2].norm() == pytest.approx(MAX_RESIDUAL)
    assert residuals[0, 3:].abs().max() < 1e-6 and (confidences[0, 3:] == 0.9).all()
    # Replayed on the same person, they give the detections back (what pre-training sees).
    points, conf = ReplayedResiduals(residuals, confidences).apply(clean, torch.ones(1, NUM_KEYPOINTS),
                                                                   torch.Generator().manual_seed(0))
    torch.testing.assert_close(points[0, [0, *range(3, NUM_KEYPOINTS)]], detected[0, [0, *range(3, NUM_KEYPOINTS)], :2])
    assert conf[0, 1] == 0 and conf[0, 0] == pytest.approx(0.9)


def test_a_residuals_file_is_checked_when_loaded(tmp_path):
    from key2mesh_train.keypoint_noise import load_replayed_residuals

    with pytest.raises(FileNotFoundError, match="detector-residuals"):
        load_replayed_residuals(tmp_path / "none.npz")
    np.savez(tmp_path / "other.npz", something=np.zeros(3))
    with pytest.raises(ValueError, match="not a detector residuals file"):
        load_replayed_residuals(tmp_path / "other.npz")
    np.savez(tmp_path / "shape.npz", residuals=np.zeros((4, 12, 2)), confidences=np.zeros((4, 12)))
    with pytest.raises(ValueError, match="must be finite"):
        load_replayed_residuals(tmp_path / "shape.npz")
    np.savez(tmp_path / "ok.npz", residuals=np.zeros((4, NUM_KEYPOINTS, 2)), confidences=np.ones((4, NUM_KEYPOINTS)))
    assert load_replayed_residuals(tmp_path / "ok.npz").residuals.shape == (4, NUM_KEYPOINTS, 2)


def test_replayed_steps_are_the_share_asked_for():
    from key2mesh_train.pretrain import replay_step

    for share in (0.0, 0.3, 0.5, 1.0):
        assert sum(replay_step(step, share) for step in range(1000)) == round(1000 * share)


def test_pretraining_replays_measured_residuals(tmp_path, monkeypatch):
    from key2mesh.checkpoint import load_checkpoint
    from key2mesh_train import pretrain as pretrain_module
    from key2mesh_train.keypoint_noise import ReplayedResiduals

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "residuals.npz", residuals=rng.normal(0, 0.02, (50, NUM_KEYPOINTS, 2)),
             confidences=rng.uniform(0.2, 1.0, (50, NUM_KEYPOINTS)))
    config = load_config("tiny.yaml", [f"data.cache_dir={tmp_path}", f"pretrain.checkpoint={tmp_path / 'r.pt'}",
                                       "data.mocap=[]", "pretrain.steps=10",
                                       f"synthetic.replayed_residuals={tmp_path / 'residuals.npz'}",
                                       "synthetic.replayed_residuals_share=0.5"])
    seen = []
    real = pretrain_module.synthesize

    def recording(*args, noise=None, **kwargs):
        seen.append((noise, args[3].drop_prob))
        return real(*args, noise=noise, **kwargs)

    monkeypatch.setattr(pretrain_module, "synthesize", recording)
    network, payload = load_checkpoint(pretrain_module.pretrain(config, progress=False))
    assert payload["meta"]["finished"] and payload["meta"]["step"] == 10
    replayed = [drop for noise, drop in seen if isinstance(noise, ReplayedResiduals)]
    assert len(replayed) == 5 and set(replayed) == {0.0}  # the detector's own misses, no random drops on top
    assert len(seen) == 10 and all(drop == config.synthetic.drop_prob for noise, drop in seen if noise is None)


@pytest.mark.skipif(not YOLO_ONNX.exists(), reason=f"real detector not present at {YOLO_ONNX}")
def test_measuring_a_real_detector(tmp_path):
    from key2mesh.detector import PoseDetector
    from key2mesh_train.detector_residuals import measure_detector_residuals
    from key2mesh_train.keypoint_noise import load_replayed_residuals

    config = load_config("tiny.yaml", [f"data.cache_dir={tmp_path}", "data.mocap=[]"])
    summary = measure_detector_residuals(config, 6, PoseDetector(YOLO_ONNX), tmp_path / "res.npz", progress=False)
    replay = load_replayed_residuals(tmp_path / "res.npz")
    assert 0 < summary["found"] == len(replay.residuals) <= 6
    assert 0 <= summary["missed_joints"] < 1
    # A detector on a rendered body is off by some percent of its height, not by nothing or by the whole box.
    offsets = [v for v in summary["median_offset_pct"].values() if v is not None]
    assert 0 < np.median(offsets) < 20
