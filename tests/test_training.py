import dataclasses

import numpy as np
import pytest
import torch

from key2mesh.checkpoint import load_checkpoint
from key2mesh.keypoints import NUM_KEYPOINTS, SMPL_FLIP
from key2mesh.network import Key2MeshNet, count_parameters
from key2mesh.rotations import axis_angle_to_matrix
from key2mesh_train.config import load_config
from key2mesh_train.keypoint_noise import DetectorNoise
from key2mesh_train.losses import pretrain_losses
from key2mesh_train.pretrain import prepare_data, pretrain, sample_batch
from key2mesh_train.synthetic import SyntheticConfig, augment_poses, sample_cameras, synthesize


def test_paper_sized_network():
    net = Key2MeshNet()
    assert 6.3e6 < count_parameters(net) < 6.7e6
    out = net.eval()(torch.rand(3, NUM_KEYPOINTS, 3))
    assert out["betas"].shape == (3, 10) and out["rotmats"].shape == (3, 24, 3, 3)


def test_synthetic_batch_is_consistent(body):
    gen = torch.Generator().manual_seed(0)
    rot = torch.eye(3).repeat(64, 24, 1, 1)
    cfg = SyntheticConfig(drop_prob=0.0, jitter_px=0.0, truncate=False).paper_recipe()
    batch = synthesize(rot, torch.zeros(64, 10), body, cfg, gen)
    kp = batch["keypoints_px"]
    assert kp.shape == (64, 17, 3) and (kp[..., 2] == 1).all()
    # Without noise the normalised input equals the clean 2D target.
    assert torch.allclose(batch["input"][..., :2], batch["target2d"], atol=1e-4)
    # Reprojecting the 3D keypoints through the sampled camera gives the pixels back.
    cam = batch["keypoints3d"] + batch["pelvis_cam"][:, None]
    px = cam[..., :2] / cam[..., 2:] * batch["focal"][:, None, None] + batch["principal"][:, None]
    assert torch.allclose(px, kp[..., :2], atol=1e-3)
    # Upright bodies seen by an upright camera: head is above (smaller y) than the ankles.
    assert (kp[:, 0, 1] < kp[:, 15, 1]).all()


def test_augmentation_drops_and_truncates(body):
    gen = torch.Generator().manual_seed(1)
    rot = torch.eye(3).repeat(512, 24, 1, 1)
    cfg = SyntheticConfig(drop_prob=0.2, focal_min=700, focal_max=900, distance_min=2, distance_max=2.5).paper_recipe()
    batch = synthesize(rot, torch.zeros(512, 10), body, cfg, gen,
                       noise=DetectorNoise(sigma=0.02, miss_prob=0.1, low_conf_prob=0.2))
    conf = batch["keypoints_px"][..., 2]
    assert 0.2 < (conf == 0).float().mean() < 0.8  # drops + misses + truncation at the borders
    inside = batch["keypoints_px"][..., :2]
    visible = conf > 0
    assert (inside[visible][:, 0] >= 0).all() and (inside[visible][:, 0] < 640).all()
    assert torch.isfinite(batch["input"]).all()


def test_losses_are_zero_for_perfect_prediction(body):
    gen = torch.Generator().manual_seed(2)
    rot = torch.eye(3).repeat(8, 24, 1, 1)
    far = SyntheticConfig(drop_prob=0, jitter_px=0, distance_min=15, distance_max=20, focal_min=2000).paper_recipe()
    batch = synthesize(rot, torch.randn(8, 10, generator=gen), body, far, gen)
    terms = pretrain_losses({"rotmats": batch["rotmats"], "betas": batch["betas"]}, batch, body, load_config().losses)
    assert terms["joints3d"] < 1e-5 and terms["rotations"] < 1e-6 and terms["betas"] < 1e-6
    # Far away, weak perspective is close to the pinhole view: about 0.014-0.033 over seeds,
    # against 0.3 and more for a body turned around.
    assert terms["keypoints2d"] < 0.04
    wrong = batch["rotmats"].clone()
    wrong[:, 0] = torch.diag(torch.tensor([-1.0, 1.0, -1.0])) @ wrong[:, 0]  # turned around
    bad = pretrain_losses({"rotmats": wrong, "betas": batch["betas"]}, batch, body, load_config().losses)
    assert bad["keypoints2d"] > 5 * terms["keypoints2d"] and bad["joints3d"] > 0.05


def test_pretraining_learns_and_resumes(tiny_config, tmp_path):
    config = load_config("tiny.yaml", [f"data.cache_dir={tmp_path}", f"pretrain.checkpoint={tmp_path / 'a.pt'}",
                                       "data.mocap=[]", "pretrain.steps=60", "pretrain.lr=0.003"])
    body, train, _ = prepare_data(config, progress=False)
    gen = torch.Generator().manual_seed(5)
    rot, betas = sample_batch(train, 256, gen)
    probe = synthesize(rot, betas, body, config.synthetic, gen)

    def probe_loss(network):
        with torch.no_grad():
            return float(pretrain_losses(network.eval()(probe["input"]), probe, body, config.losses)["total"])

    untrained = Key2MeshNet(config.network)
    path = pretrain(config, progress=False)
    trained, payload = load_checkpoint(path)
    assert payload["meta"]["step"] == 60
    assert probe_loss(trained) < 0.8 * probe_loss(untrained)
    config.pretrain.steps = 70
    pretrain(config, resume=True, progress=False)
    _, payload = load_checkpoint(path)
    assert payload["meta"]["step"] == 70


def test_corrupt_and_foreign_checkpoints(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="bad.pt"):
        load_checkpoint(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": np.zeros(3)}, foreign)
    with pytest.raises(ValueError):
        load_checkpoint(foreign)
    with pytest.raises(FileNotFoundError, match="pretrain"):
        load_checkpoint(tmp_path / "missing.pt")


def test_config_rejects_unknown_keys(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("pretrain:\n  stepz: 3\n")
    with pytest.raises(ValueError, match="stepz"):
        load_config(path)
    assert load_config(None, ["pretrain.steps=7"]).pretrain.steps == 7


def test_config_gives_each_value_its_field_type(tmp_path):
    # YAML reads 1e-4 (no dot) as a string: it must still reach the optimiser as a float.
    path = tmp_path / "c.yaml"
    path.write_text("adapt:\n  lr: 3e-4\n  w_domain: 1\ndata:\n  body_model: null\n")
    config = load_config(path, ["pretrain.lr=2e-3", "adapt.epochs=4.0"])
    assert config.adapt.lr == pytest.approx(3e-4) and isinstance(config.adapt.lr, float)
    assert isinstance(config.adapt.w_domain, float) and config.pretrain.lr == pytest.approx(2e-3)
    assert config.adapt.epochs == 4 and isinstance(config.adapt.epochs, int) and config.data.body_model is None
    for bad, key in (("adapt.lr=fast", "adapt.lr"), ("adapt.epochs=2.5", "adapt.epochs"),
                     ("synthetic.truncate=3", "synthetic.truncate"), ("adapt=3", "adapt")):
        with pytest.raises(ValueError, match=key):
            load_config(None, [bad])


def test_mirroring_reflects_the_posed_body(body):
    gen = torch.Generator().manual_seed(3)
    rot = axis_angle_to_matrix(0.4 * torch.randn(16, 24, 3, generator=gen))
    cfg = SyntheticConfig(mirror_prob=1.0, betas_std=0.0)
    mirrored, betas = augment_poses(rot, torch.zeros(16, 10), cfg, gen)
    a = body(betas, rot, with_vertices=False)["joints"]
    b = body(betas, mirrored, with_vertices=False)["joints"]
    a, b = a - a[:, :1], b - b[:, :1]
    reflected = a[:, list(SMPL_FLIP)] * torch.tensor([-1.0, 1.0, 1.0])
    # The stand-in body is symmetric to a few millimetres: its mirrored pose is the reflection.
    assert (b - reflected).norm(dim=-1).max() < 0.01
    assert (b - a).norm(dim=-1).mean() > 0.05
    _, drawn = augment_poses(rot, torch.zeros(16, 10), SyntheticConfig(mirror_prob=0.0, betas_std=0.4), gen)
    assert 0.2 < drawn.std() < 0.6 and drawn.abs().max() <= 1.0


def test_robot_cameras_look_down_from_robot_heights(body):
    gen = torch.Generator().manual_seed(4)
    rot = torch.eye(3).repeat(512, 24, 1, 1)
    cfg = SyntheticConfig(robot_camera_prob=1.0, edge_prob=0.0, detector_noise_prob=0.0, drop_prob=0.0, jitter_px=0.0,
                          pitch_roll_deg=0.0, truncate=False)
    focal, principal, pelvis, pitch = sample_cameras(512, cfg, gen)
    mounted = pitch > 0
    assert mounted.float().mean() > 0.4 and (pitch <= torch.deg2rad(torch.tensor(45.0))).all()
    # Back in a level world the camera sits 0.5-1.8 m high over a pelvis at 0.7-1.0 m.
    below = pelvis[:, 1] * torch.cos(pitch) + pelvis[:, 2] * torch.sin(pitch)
    assert (below[mounted] > 0.5 - 1.0 - 1e-4).all() and (below[mounted] < 1.8 - 0.7 + 1e-4).all()
    distance = pelvis[mounted].norm(dim=-1)
    assert (distance >= cfg.distance_min - 1e-4).all() and (distance <= cfg.distance_max + 1e-4).all()
    # The camera's own pitch turns the upright body: its up axis, in the camera (y down,
    # z forward), leans toward the camera by the pitch, wherever in the image the body lands.
    gen = torch.Generator().manual_seed(4)
    batch = synthesize(rot, torch.zeros(512, 10), body, cfg, gen)
    _, _, _, pitch = sample_cameras(512, cfg, torch.Generator().manual_seed(4))
    mounted = pitch > 0
    spine = torch.nn.functional.normalize(batch["joints3d"][:, 12] - batch["joints3d"][:, 0], dim=-1)
    expected = torch.stack([torch.zeros_like(pitch), -torch.cos(pitch), -torch.sin(pitch)], dim=-1)
    angle = torch.rad2deg(torch.arccos((spine * expected).sum(-1).clamp(-1, 1)))
    assert angle[mounted].median() < 8.0, angle[mounted].median()
    assert (pitch[mounted] > 0.5).any()


def test_mirrored_keypoints_are_the_mirrored_body(body):
    """The network's mirrored input is what the camera sees of the mirrored pose."""
    from key2mesh.keypoints import normalize_keypoints
    from key2mesh.mirror import mirror_normalized_keypoints, mirror_rotmats
    from key2mesh.projection import project_pinhole

    gen = torch.Generator().manual_seed(5)
    rot = axis_angle_to_matrix(0.4 * torch.randn(8, 24, 3, generator=gen))
    rot[:, 0] = axis_angle_to_matrix(torch.tensor([torch.pi, 0.0, 0.0]))  # upright in OpenCV axes

    def seen(rotmats):
        points = body(torch.zeros(8, 10), rotmats, with_vertices=False, root_relative=True)["keypoints"]
        pixels = project_pinhole(points + torch.tensor([0.0, 0.0, 4.0]), torch.full((8,), 1000.0),
                                 torch.tensor([[320.0, 240.0]]).expand(8, 2))
        return normalize_keypoints(torch.cat([pixels, torch.ones(8, NUM_KEYPOINTS, 1)], -1))

    ours = mirror_normalized_keypoints(seen(rot))
    torch.testing.assert_close(mirror_normalized_keypoints(ours), seen(rot))
    # The stand-in body is symmetric to a few mm: 4 m away that is well under 1 % of the box.
    assert (ours - seen(mirror_rotmats(rot))).abs().max() < 0.01
    assert (ours - seen(rot)).abs().max() > 0.05


def test_mirror_average_is_mirror_equivariant():
    from key2mesh.mirror import mirror_normalized_keypoints, mirror_rotmats
    from key2mesh.network import NetworkConfig

    network = Key2MeshNet(NetworkConfig(hidden=64, dropout=0.0, mirror_average=True)).eval()
    torch.nn.init.normal_(network.out.weight, std=0.1)
    x = torch.rand(6, NUM_KEYPOINTS, 3)
    x[..., 2] = (x[..., 2] > 0.2).float()
    x[..., :2] = torch.where(x[..., 2:] > 0, x[..., :2], torch.full_like(x[..., :2], 0.5))
    with torch.no_grad():
        plain = network.decode(network.features(x))
        averaged, of_mirrored = network(x), network(mirror_normalized_keypoints(x))
    torch.testing.assert_close(mirror_rotmats(of_mirrored["rotmats"]), averaged["rotmats"], atol=1e-5, rtol=0)
    torch.testing.assert_close(of_mirrored["betas"], averaged["betas"])
    eye = torch.eye(3).expand_as(averaged["rotmats"])
    torch.testing.assert_close(averaged["rotmats"] @ averaged["rotmats"].transpose(-1, -2), eye, atol=1e-5, rtol=0)
    assert (plain["rotmats"] - averaged["rotmats"]).abs().max() > 1e-3  # it did average something
    network.train()
    torch.testing.assert_close(network(x)["rotmats"], network.decode(network.features(x))["rotmats"])


def test_growing_a_model_keeps_its_answers_then_trains(tiny_checkpoint, tiny_config, tmp_path):
    from key2mesh.network import NetworkConfig
    from key2mesh_train.pretrain import grow_from

    small, _ = load_checkpoint(tiny_checkpoint)
    wider = Key2MeshNet(NetworkConfig(**{**small.config.__dict__, "hidden": small.config.hidden * 2}))
    with pytest.raises(ValueError, match="do not match"):
        grow_from(wider, small)
    config = small.config.__dict__ | {"encoder_blocks": small.config.encoder_blocks + 1,
                                      "head_blocks": small.config.head_blocks + 1}
    grown = Key2MeshNet(NetworkConfig(**config))
    assert grow_from(grown, small) == [f"encoder.{4 + small.config.encoder_blocks}", f"head.{small.config.head_blocks}"]
    x = torch.rand(4, NUM_KEYPOINTS, 3)
    small.eval(), grown.eval()
    with torch.no_grad():
        torch.testing.assert_close(grown(x)["rotmats"], small(x)["rotmats"])
    # Through pretrain: init_from a smaller model, more blocks in network:.
    out = tmp_path / "grown.pt"
    overrides = {"pretrain": {**tiny_config.pretrain.__dict__, "init_from": str(tiny_checkpoint), "checkpoint": str(out),
                              "steps": 20}}
    grown_config = dataclasses.replace(tiny_config, pretrain=type(tiny_config.pretrain)(**overrides["pretrain"]),
                                       network=NetworkConfig(**config))
    network, payload = load_checkpoint(pretrain(grown_config, progress=False))
    assert network.config.encoder_blocks == small.config.encoder_blocks + 1 and payload["meta"]["finished"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_pretraining_on_a_gpu_draws_its_batches_there(tmp_path):
    """On a GPU the synthetic batches are drawn there (generator, pose bank and body on the
    device), and a short run trains and writes a checkpoint that loads on the CPU."""
    import copy

    config = load_config("tiny.yaml", [f"data.cache_dir={tmp_path}", f"pretrain.checkpoint={tmp_path / 'gpu.pt'}",
                                       "data.mocap=[]", "pretrain.steps=30"])
    body, train, _ = prepare_data(config, progress=False)
    gen = torch.Generator(device="cuda").manual_seed(0)
    bank = type(train)(train.rotmats.cuda(), train.betas.cuda(), train.sequence_ids, train.names)
    rot, betas = sample_batch(bank, 32, gen)
    batch = synthesize(rot, betas, copy.deepcopy(body).cuda(), config.synthetic, gen)
    assert {v.device.type for v in batch.values()} == {"cuda"}
    network, payload = load_checkpoint(pretrain(config, progress=False))
    assert payload["meta"]["step"] == 30 and next(network.parameters()).device.type == "cpu"


def test_every_shipped_config_loads_chains_and_is_listed():
    """A mistyped key fails at load; every config is named in the README's config list; a config
    that starts from a checkpoint starts from one another config writes (the documented chain
    of stages reproduces), and the replayed detections name a file detector-residuals writes."""
    from conftest import ROOT

    from key2mesh_train.config import CONFIG_DIR

    configs = {path.name: load_config(path.name) for path in sorted(CONFIG_DIR.glob("*.yaml"))}
    assert {"default.yaml", "detector_noise.yaml", "detector_noise_gpu_continue.yaml"} <= set(configs)
    readme = (ROOT / "README.md").read_text()
    written = {config.pretrain.checkpoint for config in configs.values()}
    for name, config in configs.items():
        assert name in readme, f"{name} is not in the README's config list"
        assert config.pretrain.init_from in (None, *written), f"{name}: nothing writes {config.pretrain.init_from}"
        assert config.synthetic.replayed_residuals in (None, "", "artifacts/detector_residuals.npz",
                                                       "artifacts/detector_residuals_6k.npz"), name
    with pytest.raises(ValueError):
        load_config(None, ["pretrain.stepz=3"])
