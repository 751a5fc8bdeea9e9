import numpy as np
import pytest
import torch
from conftest import YOLO_ONNX

from key2mesh.checkpoint import load_checkpoint
from key2mesh_train.adaptation.adapt import adapt, target_tensors
from key2mesh_train.adaptation.benchmark import make_target_domain
from key2mesh_train.adaptation.critic import Critic, domain_accuracy, gradient_penalty
from key2mesh_train.config import load_config
from key2mesh_train.keypoint_noise import MODELLED_TARGET_BIAS


def test_critic_shape_and_penalty():
    critic = Critic(16)
    assert not any(isinstance(m, torch.nn.BatchNorm1d | torch.nn.LayerNorm) for m in critic.modules())
    assert critic(torch.randn(5, 16)).shape == (5,)
    unit = Critic(16)  # make it the linear map x -> x[0]: gradient norm exactly 1
    for layer in unit.layers:
        if isinstance(layer, torch.nn.Linear):
            torch.nn.init.eye_(layer.weight)
            torch.nn.init.zeros_(layer.bias)
        if isinstance(layer, torch.nn.PReLU):
            layer.weight.data.fill_(1.0)
    unit.eval()  # no dropout
    assert gradient_penalty(unit, torch.randn(8, 16), torch.randn(8, 16)) < 1e-10
    assert domain_accuracy(torch.ones(10), -torch.ones(10)) == 1.0
    assert domain_accuracy(torch.zeros(10), torch.zeros(10)) == 0.5


def test_target_weights_follow_confidence():
    kp = np.full((2, 17, 3), 100.0, np.float32)
    kp[..., 0] += np.arange(17)
    kp[0, :, 2] = 0.7
    kp[0, 3, 2] = 0.05  # below threshold: ignored
    kp[1, :, 2] = np.nan
    inputs, weights = target_tensors(kp)
    assert torch.isfinite(inputs).all()
    assert weights[0, 0] == pytest.approx(0.7) and weights[0, 3] == 0 and weights[1].sum() == 0


def test_target_camera_tilt_foreshortens_standing_people(tiny_config):
    # Same seed, same people and cameras; only the tilt differs. Looking down 40 degrees
    # shortens the nose-to-ankles height in the image by about cos(40) plus perspective.
    def heights(tilt):
        _, batch = make_target_domain(tiny_config, 96, seed=3, tilt_deg=tilt)
        kp = batch["keypoints_px"].numpy()
        return kp[:, [15, 16], 1].mean(1) - kp[:, 0, 1], (kp[:, [0, 15, 16], 2] > 0).all(1)

    level, seen_level = heights(0.0)
    tilted, seen_tilted = heights(40.0)
    both = seen_level & seen_tilted
    assert both.sum() >= 20
    assert np.median(tilted[both] / level[both]) < 0.92
    with pytest.raises(ValueError, match="tilt"):
        make_target_domain(tiny_config, 8, seed=3, tilt_deg=95.0)


def _target_people(config, people=96):
    _, batch = make_target_domain(config, people, seed=3)
    return batch["keypoints_px"].numpy()


def test_adaptation_trains_encoder_only_and_resumes(tiny_config, tiny_checkpoint, tmp_path):
    config = load_config("tiny.yaml", [f"data.cache_dir={tiny_config.data.cache_dir}", "data.mocap=[]",
                                       "adapt.epochs=2", "adapt.steps_per_epoch=3", "adapt.keep_best=false"])
    target_px = _target_people(config)
    calls = []

    def flaky_monitor(net):
        calls.append(1)
        if len(calls) == 4:  # source, warm start, epoch 1: dies during epoch 2, after epoch 1 was saved
            raise KeyboardInterrupt
        return {"probe": float(len(calls))}

    out = tmp_path / "adapted.pt"
    with pytest.raises(KeyboardInterrupt):
        adapt(config, tiny_checkpoint, target_px, out, progress=False, monitor=flaky_monitor)
    assert out.with_suffix(".partial.pt").exists() and not out.exists()
    # The partial file keeps the warm-started reference, so a resumed run holds the encoder to it.
    _, partial = load_checkpoint(out.with_suffix(".partial.pt"), allow_unfinished=True)
    original, _ = load_checkpoint(tiny_checkpoint)
    warmed = partial["extra_state"]["source"]
    assert any(not torch.equal(warmed[k], v) for k, v in original.state_dict().items() if k.startswith("encoder."))
    result = adapt(config, tiny_checkpoint, target_px, out, resume=True, progress=False, monitor=lambda n: {})
    history = result["history"]
    assert [(h["stage"], h["epoch"]) for h in history] == \
        [("source", 0), ("warm start", 0), ("adversarial", 1), ("adversarial", 2)]
    assert all(0.0 <= h["domain_accuracy"] <= 1.0 for h in history[2:])
    assert result["selected"] == "2"  # keep_best off: the last epoch is written
    assert not out.with_suffix(".partial.pt").exists()
    source, _ = load_checkpoint(tiny_checkpoint)
    adapted, payload = load_checkpoint(out)
    assert payload["meta"]["stage"] == "adapt"
    changed = [not torch.equal(a, b) for a, b in zip(source.encoder.parameters(), adapted.encoder.parameters(), strict=True)]
    assert any(changed)
    for a, b in zip(list(source.head.parameters()) + list(source.out.parameters()),
                    list(adapted.head.parameters()) + list(adapted.out.parameters()), strict=True):
        assert torch.equal(a, b)  # the SMPL head is frozen


def test_adaptation_fits_the_target_detections(tiny_config, tiny_checkpoint, tmp_path):
    """Without any 3D label, training the target extractor on the reprojection term alone
    makes the model explain the target's 2D detections better (the term is wired right)."""
    from key2mesh.body_model import load_skinned_body
    from key2mesh_train.losses import reprojection_loss

    config = load_config("tiny.yaml", [f"data.cache_dir={tiny_config.data.cache_dir}", "data.mocap=[]",
                                       "adapt.epochs=2", "adapt.steps_per_epoch=60", "adapt.batch_size=64",
                                       "adapt.critic_steps=1", "adapt.w_domain=0", "adapt.w_feature=0",
                                       "adapt.w_source=0", "adapt.warm_start_steps=0", "adapt.keep_best=false"])
    target_px = _target_people(config, 1024)
    inputs, weights = target_tensors(target_px)
    body = load_skinned_body()

    def fit(network):
        with torch.no_grad():
            pred = network.eval()(inputs)
            kp = body(pred["betas"], pred["rotmats"], with_vertices=False, root_relative=True)["keypoints"]
            return float(reprojection_loss(kp, inputs[..., :2], weights))

    before = fit(load_checkpoint(tiny_checkpoint)[0])
    result = adapt(config, tiny_checkpoint, target_px, tmp_path / "a.pt", progress=False)
    after = fit(load_checkpoint(tmp_path / "a.pt")[0])
    assert after < 0.9 * before, f"reprojection fit {before:.4f} -> {after:.4f}"
    assert MODELLED_TARGET_BIAS.hip_widen > 0 and [h["stage"] for h in result["history"]] == \
        ["source", "adversarial", "adversarial"]


def test_adaptation_keeps_the_stage_with_the_lowest_label_free_validation_error(tiny_config, tiny_checkpoint, tmp_path):
    """An adversarial stage that wrecks the encoder (a large step, the critic alone) must not be
    what is written: every stage is scored on MoCap carrying the target's own residuals and the
    lowest is kept, also across an interruption. With keep_best off the last epoch is written."""
    from key2mesh_train.adaptation.adapt import evaluate_on, stage_label, validation_set
    from key2mesh_train.adaptation.warm_start import detection_residuals
    from key2mesh_train.keypoint_noise import ReplayedResiduals
    from key2mesh_train.pretrain import prepare_data

    overrides = [f"data.cache_dir={tiny_config.data.cache_dir}", "data.mocap=[]", "adapt.epochs=2",
                 "adapt.steps_per_epoch=4", "adapt.lr=0.05", "adapt.w_domain=100", "adapt.w_feature=0",
                 "adapt.w_source=0", "adapt.w_reprojection=0", "adapt.critic_steps=1", "adapt.warm_start_steps=20",
                 "adapt.validation_people=256"]
    config = load_config("tiny.yaml", overrides)
    target_px = _target_people(config)
    # The same validation people adapt draws: the source's residuals on the target, seed adapt.seed + 1.
    body, bank, _ = prepare_data(config, progress=False)
    source, _ = load_checkpoint(tiny_checkpoint)
    inputs, weights = target_tensors(target_px)
    validation = validation_set(bank, body, ReplayedResiduals(detection_residuals(source, body, inputs, weights),
                                                              weights), config)

    def validation_error(path):
        return evaluate_on(load_checkpoint(path)[0], body, validation)["PA-MPJPE"]

    calls = []

    def interrupting_monitor(net):  # dies in the second epoch, after the first one was saved
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return {}

    out = tmp_path / "kept.pt"
    with pytest.raises(KeyboardInterrupt):
        adapt(config, tiny_checkpoint, target_px, out, progress=False, monitor=interrupting_monitor)
    result = adapt(config, tiny_checkpoint, target_px, out, resume=True, progress=False)
    errors = {stage_label(h): h["validation_PA-MPJPE"] for h in result["history"]}
    assert list(errors) == ["source", "warm start", "1", "2"]
    assert errors["2"] > 1.2 * min(errors["source"], errors["warm start"]), errors  # the stage did wreck it
    assert result["selected"] == min(errors, key=errors.get) != "2"
    assert validation_error(out) == pytest.approx(errors[result["selected"]], abs=1e-3)
    assert load_checkpoint(out)[1]["meta"]["selected"] == result["selected"]

    last = adapt(load_config("tiny.yaml", overrides + ["adapt.keep_best=false"]), tiny_checkpoint, target_px,
                 tmp_path / "last.pt", progress=False)
    assert last["selected"] == "2"
    assert validation_error(tmp_path / "last.pt") == pytest.approx(last["history"][-1]["validation_PA-MPJPE"], abs=1e-3)


def test_adapt_cli_input_errors(tiny_checkpoint, tmp_path, capsys):
    from key2mesh_ros.bag_transport import write_bag
    from key2mesh_ros.image_encoding import rgb_to_image

    from key2mesh_train.cli import main

    np.save(tmp_path / "bad.npy", np.zeros((3, 5)))
    assert main(["adapt", "--checkpoint", str(tiny_checkpoint), "--keypoints", str(tmp_path / "bad.npy")]) == 2
    assert "[N,17,3]" in capsys.readouterr().err
    assert main(["adapt", "--checkpoint", str(tmp_path / "none.pt"), "--keypoints", str(tmp_path / "bad.npy")]) == 2
    assert "source checkpoint not found" in capsys.readouterr().err
    if not YOLO_ONNX.exists():
        pytest.skip("bag cases need the real detector")
    empty = write_bag(tmp_path / "empty", [])
    assert main(["adapt", "--checkpoint", str(tiny_checkpoint), "--bag", str(empty)]) == 2
    assert "no topic" in capsys.readouterr().err
    nobody = write_bag(tmp_path / "nobody", [("/camera/image_raw", rgb_to_image(np.zeros((240, 320, 3), np.uint8)), 1)])
    assert main(["adapt", "--checkpoint", str(tiny_checkpoint), "--bag", str(nobody), "--topic", "/front"]) == 2
    assert "topics in the bag" in capsys.readouterr().err
    assert main(["adapt", "--checkpoint", str(tiny_checkpoint), "--bag", str(nobody)]) == 2
    assert "no people detected" in capsys.readouterr().err


@pytest.mark.skipif(not YOLO_ONNX.exists(), reason=f"real detector not present at {YOLO_ONNX}")
def test_adapt_from_a_real_bag_end_to_end(tiny_config, tiny_checkpoint, tmp_path):
    from key2mesh_ros.demo_data import build_demo_bag

    from key2mesh_train.adaptation.adapt import adapt_to_recording

    bag = build_demo_bag(tmp_path / "robot_bag", repeats=1, storage="sqlite3")
    config = load_config("tiny.yaml", [f"data.cache_dir={tiny_config.data.cache_dir}", "data.mocap=[]"])
    result = adapt_to_recording(config, tiny_checkpoint, bag=str(bag), out=tmp_path / "robot.pt",
                               onnx_out=str(tmp_path / "robot.onnx"))
    assert result["target_people"] == 7  # bus 4 + zidane 2 + astronaut 1
    assert (tmp_path / "robot.onnx").exists() and (tmp_path / "robot.pt").exists()


def test_adapt_benchmark_cli_reports_before_after_and_labelled_reference(tiny_config, tiny_checkpoint, tmp_path,
                                                                         capsys):
    from key2mesh_train.cli import main

    plot = tmp_path / "adaptation.png"
    code = main(["adapt-benchmark", "--config", "tiny.yaml", "--set", f"data.cache_dir={tiny_config.data.cache_dir}",
                 "--set", "data.mocap=[]", "--set", "adapt.epochs=2", "--set", "adapt.steps_per_epoch=2",
                 "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "bench.pt"), "--domain", "synthetic",
                 "--adapt-people", "64", "--test-people", "48", "--plot", str(plot), "--camera-tilt", "30"])
    out = capsys.readouterr().out
    assert code == 0 and plot.stat().st_size > 0
    assert "target domain: synthetic (64 unlabelled people, 48 test people), camera tilted down 30 deg" in out
    assert "relative drop" in out and "with the withheld 3D labels instead" in out
    table = out.splitlines()[1:5]
    assert [line[:10].strip() for line in table] == ["source", "warm start", "1", "2"]  # one row per stage and epoch
    validation = [float(line.split()[-3 if "kept" in line else -1]) for line in table]
    kept = [i for i, line in enumerate(table) if line.endswith("<- kept")]
    assert len(kept) == 1 and validation[kept[0]] == min(validation), out  # the lowest label-free validation error
    assert main(["adapt-benchmark", "--checkpoint", str(tiny_checkpoint), "--domain", "detector",
                 "--detector", str(tmp_path / "missing.onnx")]) == 2
    assert "detector model not found" in capsys.readouterr().err
