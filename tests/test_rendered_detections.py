"""The renderer and the real-detector target domain of the adaptation benchmark."""

import numpy as np
import pytest
import torch
from conftest import YOLO_ONNX

from key2mesh.keypoints import SMPL_JOINT_NAMES
from key2mesh.projection import project_pinhole
from key2mesh_train.adaptation.render import BodyRenderer


def _posed_in_view(body, distance=3.0):
    posed = body(torch.zeros(1, 10), torch.eye(3).expand(1, 24, 3, 3).clone())
    # Body frame is Y-up facing +Z; the camera frame is y-down, z-forward, looking at the front.
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
    vertices = (posed["vertices"][0] - posed["joints"][0, :1]) @ flip.T + torch.tensor([0.0, 0.0, distance])
    joints = (posed["joints"][0] - posed["joints"][0, :1]) @ flip.T + torch.tensor([0.0, 0.0, distance])
    return vertices.numpy(), joints


def test_renderer_draws_the_body_where_it_projects(body):
    vertices, joints = _posed_in_view(body)
    renderer = BodyRenderer(body.faces.numpy(), body.lbs_weights.numpy(), 320, 240)
    focal, principal = 150.0, np.array([160.0, 120.0])
    project = lambda v: project_pinhole(torch.as_tensor(v, dtype=torch.float32)[None], torch.tensor([focal]),  # noqa: E731
                                        torch.as_tensor(principal)[None].float())[0].numpy()
    image = renderer.render(vertices, project(vertices), np.random.default_rng(0))
    assert image.shape == (240, 320, 3) and image.dtype == np.uint8
    background = image[0, 0]
    assert (image[2, 2] == background).all() and (image[-3, -3] == background).all()
    for joint in ("pelvis", "spine3", "left_knee", "right_knee"):  # inside the body: drawn over
        x, y = np.round(project(joints[SMPL_JOINT_NAMES.index(joint)][None])[0]).astype(int).tolist()
        assert (image[y, x] != background).any(), joint
    painted = (image != background).any(-1)
    assert 0.02 < painted.mean() < 0.5
    again = renderer.render(vertices, project(vertices), np.random.default_rng(0))
    assert np.array_equal(image, again)  # colours come from the caller's generator only
    with pytest.raises(ValueError, match="in front of the camera"):
        renderer.render(vertices - np.array([0, 0, 5.0]), project(vertices), np.random.default_rng(0))


@pytest.mark.skipif(not YOLO_ONNX.exists(), reason=f"real detector not present at {YOLO_ONNX}")
def test_real_detector_reads_rendered_bodies_and_caches(tiny_config, tmp_path):
    from key2mesh.detector import PoseDetector
    from key2mesh_train.adaptation.benchmark import make_target_domain
    from key2mesh_train.config import load_config

    config = load_config("tiny.yaml", [f"data.cache_dir={tmp_path}", "data.mocap=[]"])
    detector = PoseDetector(YOLO_ONNX)
    body, batch = make_target_domain(config, 6, seed=4, detector=detector)
    found = len(batch["keypoints_px"])
    assert found >= 4 and batch["detected_fraction"] == pytest.approx(found / 6)
    assert batch["joints3d"].shape == (found, 24, 3) and batch["input"].shape == (found, 17, 3)
    _, synthetic = make_target_domain(config, 6, seed=4)  # same bodies, same cameras, projected instead
    kp, truth = batch["keypoints_px"], synthetic["keypoints_px"][batch["body_index"]]
    assert torch.allclose(batch["joints3d"], synthetic["joints3d"][batch["body_index"]], atol=1e-5)
    height = truth[..., 1].amax(-1) - truth[..., 1].amin(-1)
    # The detector's confident keypoints sit on the bodies, within a fraction of their height.
    error = (kp[..., :2] - truth[..., :2]).norm(dim=-1) / height[:, None]
    assert error[kp[..., 2] > 0.5].median() < 0.15
    assert len(list(tmp_path.glob("detector_domain_*.npz"))) == 1

    def no_detection(*_):
        raise AssertionError("a cached domain must not run the detector again")

    detector.detect = no_detection
    _, cached = make_target_domain(config, 6, seed=4, detector=detector)
    assert torch.equal(cached["keypoints_px"], batch["keypoints_px"])


@pytest.mark.skipif(not YOLO_ONNX.exists(), reason=f"real detector not present at {YOLO_ONNX}")
def test_benchmark_also_scores_models_on_real_detections(tiny_checkpoint, tmp_path, capsys):
    """`benchmark --real-detector N`: every model, unadapted, on the same rendered and detected
    held-out bodies (what adapt-benchmark calls the source score)."""
    from key2mesh_train.cli import main as train_cli

    args = ["benchmark", "--config", "tiny.yaml", "--set", f"data.cache_dir={tmp_path}", "--set", "data.mocap=[]",
            "--checkpoint", str(tiny_checkpoint), "--compare", f"again={tiny_checkpoint}", "--people", "16",
            "--smplify-people", "2", "--plot", "", "--real-detector", "6", "--detector", str(YOLO_ONNX)]
    assert train_cli(args) == 0
    section = capsys.readouterr().out.split("real detector: ")[1]
    found = int(section.split()[0])
    assert 4 <= found <= 6
    rows = [line.split() for line in section.splitlines() if line.startswith("Key2Mesh")]
    assert [row[0] for row in rows] == ["Key2Mesh", "Key2Mesh,"] and len(rows) == 2
    first, second = rows[0][1:5], rows[1][2:6]  # people, MPJPE, PA-MPJPE, PVE (absent: nan)
    assert first == second and int(first[0]) == found  # the same file under two names: the same people, same scores
    assert 0 < float(first[2]) < 1000 and 0 < float(first[1]) < 2000
    assert len(list(tmp_path.glob("detector_domain_*.npz"))) == 1  # rendered and detected once, cached
