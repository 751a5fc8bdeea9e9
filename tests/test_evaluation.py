import pickle

import numpy as np
import pytest
import torch

from key2mesh.checkpoint import load_checkpoint
from key2mesh.keypoints import OPENPOSE18_NAMES
from key2mesh.rotations import axis_angle_to_matrix
from key2mesh_train.evaluation.datasets import read_3dpw, read_h36m_protocol2
from key2mesh_train.evaluation.evaluate import evaluate_network, posed_body
from key2mesh_train.evaluation.metrics import mpjpe, pa_mpjpe, procrustes_align, pve
from key2mesh_train.evaluation.smplify import PosePrior, SMPLifyConfig, fit_smplify
from key2mesh_train.synthetic import SyntheticConfig, synthesize


def test_procrustes_recovers_similarity_transform():
    torch.manual_seed(0)
    target = torch.randn(4, 24, 3)
    rot = axis_angle_to_matrix(torch.randn(4, 3))
    source = 0.7 * target @ rot.transpose(1, 2) + torch.randn(4, 1, 3)
    assert torch.allclose(procrustes_align(source, target), target, atol=1e-5)
    assert pa_mpjpe(source, target).max() < 1e-5
    reflected = target * torch.tensor([-1.0, 1.0, 1.0])  # a mirror image is not a rotation
    assert pa_mpjpe(reflected, target).min() > 0.01
    # On the 14 protocol joints: errors elsewhere (a hand, the toes) do not count, nor align.
    from key2mesh_train.evaluation.metrics import BODY14

    assert len(set(BODY14)) == 14
    moved = source.clone()
    others = [j for j in range(24) if j not in BODY14]
    moved[:, others] += 0.5
    assert pa_mpjpe(moved, target, BODY14).max() < 1e-5 < pa_mpjpe(moved, target).min()


def test_metric_definitions():
    gt = torch.zeros(1, 24, 3)
    pred = gt.clone()
    pred[:, 1:] += torch.tensor([0.0, 0.0, 0.03])  # every non-root joint 3 cm off
    assert mpjpe(pred, gt).item() == pytest.approx(0.03 * 23 / 24, abs=1e-6)
    assert mpjpe(pred + 5.0, gt).item() == pytest.approx(mpjpe(pred, gt).item(), abs=1e-5)  # root aligned
    verts = torch.ones(1, 10, 3)
    assert pve(verts + 0.01, verts, pred, gt).item() == pytest.approx(0.01 * 3 ** 0.5, abs=1e-6)


def _write_3dpw(path, body, frames=6):
    rng = np.random.default_rng(0)
    poses = np.concatenate([np.array([[np.pi, 0, 0]] * frames), rng.normal(0, 0.2, (frames, 69))], 1)
    betas = rng.normal(0, 0.5, 10)
    cam = np.tile(np.eye(4), (frames, 1, 1))
    cam[:, :3, 3] = [0, 0, 4]
    rot = axis_angle_to_matrix(torch.from_numpy(poses.reshape(frames, 24, 3)).float())
    out = body(torch.from_numpy(np.tile(betas, (frames, 1))).float(), rot, with_vertices=False)
    kp = out["keypoints"] - out["joints"][:, :1] + torch.tensor([0, 0, 4.0])
    px = (kp[..., :2] / kp[..., 2:] * 1000 + 500).numpy()
    coco = np.concatenate([px, np.ones((frames, 17, 1))], -1)
    op = np.zeros((frames, 18, 3))
    from key2mesh.keypoints import COCO17_NAMES

    for j, name in enumerate(COCO17_NAMES):
        op[:, OPENPOSE18_NAMES.index(name)] = coco[:, j]
    seq = {"sequence": "downtown_test", "poses": [poses], "betas": [np.concatenate([betas, np.zeros(6)])],
           "trans": [np.zeros((frames, 3))], "poses2d": [op.transpose(0, 2, 1)], "cam_poses": cam,
           "campose_valid": [np.array([True] * (frames - 1) + [False])], "genders": ["m"]}
    (path / "sequenceFiles" / "test").mkdir(parents=True)
    with open(path / "sequenceFiles" / "test" / "downtown_test.pkl", "wb") as handle:
        pickle.dump(seq, handle, protocol=2)
    return poses, betas


def test_3dpw_reader_and_evaluation(tmp_path, body, tiny_checkpoint):
    poses, betas = _write_3dpw(tmp_path, body)
    evalset = read_3dpw(tmp_path)
    assert len(evalset) == 5  # last frame has no valid camera pose
    np.testing.assert_allclose(evalset.betas[0], betas, atol=1e-6)
    network, _ = load_checkpoint(tiny_checkpoint)
    metrics = evaluate_network(network, evalset, body)
    assert set(metrics) == {"MPJPE", "PA-MPJPE", "PVE"}
    assert 0 < metrics["PA-MPJPE"] <= metrics["MPJPE"] + 1e-6


def test_h36m_protocol2_reader(tmp_path):
    n = 8
    np.savez(tmp_path / "h36m.npz", keypoints2d=np.random.rand(n, 17, 3).astype(np.float32),
             joints3d=np.random.rand(n, 17, 3) * 1000, subject=np.array(["S9", "S11", "S1", "S9"] * 2),
             camera=np.array(["60457274"] * 6 + ["55011271"] * 2))
    evalset = read_h36m_protocol2(tmp_path / "h36m.npz")
    assert len(evalset) == 5  # S1 and the side camera are not protocol 2
    assert evalset.joints3d.max() <= 1.0  # millimetres converted to metres
    with pytest.raises(ValueError, match="missing key"):
        np.savez(tmp_path / "bad.npz", keypoints2d=np.zeros((1, 17, 3)))
        read_h36m_protocol2(tmp_path / "bad.npz")


def test_smplify_fits_2d_better_than_its_start(body):
    gen = torch.Generator().manual_seed(0)
    rot = axis_angle_to_matrix(0.25 * torch.randn(6, 24, 3, generator=gen))
    rot[:, 0] = torch.eye(3)
    batch = synthesize(rot, torch.zeros(6, 10), body, SyntheticConfig(drop_prob=0, jitter_px=0, yaw_deg=30).paper_recipe(), gen)
    prior = PosePrior(rot)
    start = fit_smplify(batch["input"], body, prior, SMPLifyConfig(iterations=0))
    fitted = fit_smplify(batch["input"], body, prior, SMPLifyConfig(iterations=150))
    gt_j, _ = posed_body(body, batch["betas"], batch["rotmats"])
    err0 = pa_mpjpe(posed_body(body, start["betas"], start["rotmats"])[0], gt_j).mean()
    err1 = pa_mpjpe(posed_body(body, fitted["betas"], fitted["rotmats"])[0], gt_j).mean()
    assert err1 < 0.9 * err0


def test_solve_translation_recovers_camera_position(body):
    from key2mesh.projection import solve_translation

    rot = torch.eye(3).repeat(1, 24, 1, 1)
    rot[:, 0] = torch.diag(torch.tensor([1.0, -1.0, -1.0]))  # facing the camera, y down
    kp = body(torch.zeros(1, 10), rot, with_vertices=False, root_relative=True)["keypoints"][0].double().numpy()
    k = np.array([[800.0, 0, 320], [0, 800.0, 240], [0, 0, 1]])
    t = np.array([0.4, -0.2, 3.5])
    cam = kp + t
    px = cam[:, :2] / cam[:, 2:] * 800 + [320, 240]
    weights = np.ones(17)
    weights[[3, 4]] = 0  # missing ears must not matter
    px[[3, 4]] = np.nan
    weights[0], px[0] = 0.05, (0.0, 0.0)  # a detector's near-zero guess counts as missing, as in the input
    np.testing.assert_allclose(solve_translation(kp, px, weights, k), t, atol=1e-6)
    assert solve_translation(kp, px, np.zeros(17), k) is None  # nothing visible
    assert solve_translation(kp, px, weights, -k) is None  # nonsense calibration
    for bad in (np.inf, np.nan):  # inf once hung LAPACK for good; NaN failed every frame
        broken = k.copy()
        broken[0, 0] = broken[1, 2] = bad
        assert solve_translation(kp, px, weights, broken) is None
    # Several people in one batched solve, each as alone; one that cannot be placed is NaN.
    from key2mesh.projection import solve_translations

    shifts = np.array([[0.4, -0.2, 3.5], [-1.0, 0.1, 6.0], [0.0, 0.0, 2.0]])
    pixels = np.stack([(kp + s)[:, :2] / (kp + s)[:, 2:] * 800 + [320, 240] for s in shifts])
    confidences = np.ones((3, 17))
    confidences[2] = 0
    got = solve_translations(np.stack([kp] * 3), pixels, confidences, k)
    np.testing.assert_allclose(got[:2], shifts[:2], atol=1e-6)
    assert np.isnan(got[2]).all()


def test_solve_translations_is_the_weighted_least_squares_fit():
    """The closed form against a general solver: noisy pixels, uneven weights, one joint missing."""
    from key2mesh.projection import solve_translations

    rng = np.random.default_rng(3)
    k = np.array([[610.0, 0, 330], [0, 590.0, 250], [0, 0, 1]])
    points = rng.normal(0, 0.4, (5, 17, 3))
    shifts = np.column_stack([rng.uniform(-1, 1, 5), rng.uniform(-0.5, 0.5, 5), rng.uniform(2, 7, 5)])
    cam = points + shifts[:, None]
    pixels = cam[..., :2] / cam[..., 2:] * [610, 590] + [330, 250] + rng.normal(0, 4, (5, 17, 2))
    weights = rng.uniform(0.2, 1.0, (5, 17))
    weights[:, 5] = 0.0
    got = solve_translations(points, pixels, weights, k)
    for person in range(5):
        du, dv = pixels[person, :, 0] - 330, pixels[person, :, 1] - 250
        x, y, z = points[person].T
        a = np.concatenate([np.column_stack([np.full(17, 610.0), np.zeros(17), -du]),
                            np.column_stack([np.zeros(17), np.full(17, 590.0), -dv])])
        b = np.concatenate([du * z - 610 * x, dv * z - 590 * y])
        root = np.sqrt(np.concatenate([weights[person]] * 2))
        expected = np.linalg.lstsq(a * root[:, None], b * root, rcond=None)[0]
        np.testing.assert_allclose(got[person], expected, rtol=1e-9, atol=1e-9)
    # A non-finite weight makes that joint missing, not the person unplaceable.
    broken = weights.copy()
    broken[0, 7], broken[1, 2] = np.inf, np.nan
    kept = weights.copy()
    kept[0, 7] = kept[1, 2] = 0.0
    np.testing.assert_allclose(solve_translations(points, pixels, broken, k), solve_translations(points, pixels, kept, k))
    # Every usable pixel at one point: the depth is undetermined, so nobody is placed.
    same = np.broadcast_to(pixels[:1, :1], pixels[:1].shape)
    assert np.isnan(solve_translations(points[:1], same, weights[:1], k)).all()
