"""The target detector's noise read off unlabelled detections, and its replay on MoCap."""

import pytest
import torch

from key2mesh.checkpoint import load_checkpoint
from key2mesh.keypoints import COCO17_NAMES
from key2mesh_train.adaptation.adapt import target_tensors
from key2mesh_train.adaptation.warm_start import detection_residuals
from key2mesh_train.keypoint_noise import MAX_RESIDUAL, DetectorNoise, ReplayedResiduals
from key2mesh_train.pretrain import prepare_data, sample_batch
from key2mesh_train.synthetic import synthesize

HIPS = [COCO17_NAMES.index("left_hip"), COCO17_NAMES.index("right_hip")]


def test_replayed_noise_gives_each_person_one_target_pattern():
    points = torch.tensor([[[0.0, 0.0]] * 16 + [[100.0, 200.0]]])  # box side 200 px
    conf = torch.ones(1, 17)
    conf[0, 5] = 0  # outside the image: stays missing whatever the target saw
    residuals = torch.zeros(1, 17, 2)
    residuals[0, 0] = torch.tensor([0.1, -0.05])
    target_conf = torch.full((1, 17), 0.8)
    target_conf[0, 2] = 0  # the target missed this joint
    noisy, noisy_conf = ReplayedResiduals(residuals, target_conf).apply(points, conf, torch.Generator().manual_seed(0))
    torch.testing.assert_close(noisy[0, 0], torch.tensor([20.0, -10.0]))
    torch.testing.assert_close(noisy[0, 1:], points[0, 1:])
    assert noisy_conf[0, 2] == 0 and noisy_conf[0, 5] == 0 and noisy_conf[0, 0] == pytest.approx(0.8)


def test_residuals_recover_a_systematic_detector_offset(tiny_config, tiny_checkpoint):
    """Hips that a detector places 8 % of height too high show up as upward hip residuals,
    without any 3D label; unseen joints get none and no residual exceeds the cap."""
    body, bank, _ = prepare_data(tiny_config, progress=False)
    network, _ = load_checkpoint(tiny_checkpoint)
    rot, betas = sample_batch(bank, 512, torch.Generator().manual_seed(0))

    def hip_residual_y(noise):
        batch = synthesize(rot, betas, body, tiny_config.synthetic, torch.Generator().manual_seed(1), noise=noise)
        inputs, weights = target_tensors(batch["keypoints_px"].numpy())
        residuals = detection_residuals(network, body, inputs, weights)
        assert (residuals[weights == 0] == 0).all()
        assert residuals.norm(dim=-1).max() <= MAX_RESIDUAL + 1e-6
        seen = weights[:, HIPS] > 0
        return float(residuals[:, HIPS, 1][seen].mean())

    shift = hip_residual_y(DetectorNoise(sigma=0.0, hip_raise=0.08)) - hip_residual_y(DetectorNoise(sigma=0.0))
    assert shift < -0.02, f"hip residuals moved by {shift:.3f} box units (image y points down)"
