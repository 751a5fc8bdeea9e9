"""Does adaptation work without 3D labels? A target domain with detector-like systematic
biases (joint definitions that differ from the body model's, a different camera, misses
and low confidences) is built from held-out motion; adaptation sees only its 2D keypoints;
PA-MPJPE against the withheld 3D ground truth is reported before, during and after."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from key2mesh.checkpoint import load_checkpoint
from key2mesh.network import Key2MeshNet
from key2mesh_train.adapt import adapt
from key2mesh_train.config import TrainConfig
from key2mesh_train.evaluation.evaluate import score
from key2mesh_train.pretrain import prepare_data, sample_batch
from key2mesh_train.synthetic import DetectorNoise, SyntheticConfig, synthesize

# A robot's camera and detector as the network never saw them in pre-training.
TARGET_NOISE = DetectorNoise(sigma=0.015, hip_raise=0.05, hip_widen=0.3, shoulder_raise=0.03, ankle_drop=0.02,
                             face_shift=0.02, miss_prob=0.1, low_conf_prob=0.15)


def target_camera(base: SyntheticConfig, tilt_deg: float = 0.0) -> SyntheticConfig:
    """A wide-lens robot camera; ``tilt_deg`` > 0 looks down on people (pre-training saw +-20)."""
    return dataclasses.replace(base, focal_min=450.0, focal_max=650.0, distance_min=1.5, distance_max=5.0,
                               drop_prob=0.0, pitch_roll_deg=10.0, pitch_offset_deg=tilt_deg)


def make_target_domain(config: TrainConfig, people: int, seed: int):
    body, _, held_out = prepare_data(config, progress=False)
    gen = torch.Generator().manual_seed(seed)
    rot, betas = sample_batch(held_out, people, gen)
    batch = synthesize(rot, betas, body, target_camera(config.synthetic), gen, noise=TARGET_NOISE)
    return body, batch


def evaluate_on(network: Key2MeshNet, body, batch) -> dict[str, float]:
    network.eval()
    with torch.no_grad():
        pred = network(batch["input"])
        joints = body(pred["betas"], pred["rotmats"], with_vertices=False, root_relative=True)["joints"]
    return score(joints, batch["joints3d"])


def run_adaptation_benchmark(config: TrainConfig, checkpoint: str | Path, out: str | Path, adapt_people: int = 4096,
                             test_people: int = 1024, plot: str | Path | None = None, progress: bool = True) -> dict:
    body, unlabelled = make_target_domain(config, adapt_people, seed=1)
    _, test = make_target_domain(config, test_people, seed=2)
    source, _ = load_checkpoint(checkpoint)
    before = evaluate_on(source, body, test)
    # Only 2D pixels (with confidences) leave the target domain; its 3D stays here.
    result = adapt(config, checkpoint, unlabelled["keypoints_px"].numpy(), out, progress=progress,
                   monitor=lambda net: evaluate_on(net, body, test))
    adapted, _ = load_checkpoint(result["checkpoint"])
    after = evaluate_on(adapted, body, test)
    drop = 1 - after["PA-MPJPE"] / before["PA-MPJPE"]
    summary = {"before": before, "after": after, "relative_pa_mpjpe_drop": drop, "history": result["history"]}
    if plot:
        save_plot(result["history"], plot)
    return summary


def save_plot(history: list[dict], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    ax[0].plot(epochs, [h["PA-MPJPE"] for h in history], "o-", label="PA-MPJPE")
    ax[0].plot(epochs, [h["MPJPE"] for h in history], "s-", label="MPJPE")
    ax[0].set_xlabel("epoch")
    ax[0].set_ylabel("target error (mm)")
    ax[0].legend()
    with_acc = [h for h in history if "domain_accuracy" in h]
    ax[1].plot([h["epoch"] for h in with_acc], [h["domain_accuracy"] for h in with_acc], "o-", color="C3")
    ax[1].axhline(0.5, color="gray", ls="--")
    ax[1].set_ylim(0.4, 1.0)
    ax[1].set_xlabel("epoch")
    ax[1].set_ylabel("critic domain accuracy")
    fig.suptitle("Adaptation without 3D labels (held-out target domain)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def format_summary(summary: dict) -> str:
    lines = [f"{'epoch':>5} {'MPJPE':>8} {'PA-MPJPE':>9} {'critic acc':>11}"]
    for h in summary["history"]:
        acc = f"{h['domain_accuracy']:.3f}" if "domain_accuracy" in h else "-"
        lines.append(f"{h['epoch']:>5} {h['MPJPE']:>8.1f} {h['PA-MPJPE']:>9.1f} {acc:>11}")
    lines.append(f"PA-MPJPE {summary['before']['PA-MPJPE']:.1f} -> {summary['after']['PA-MPJPE']:.1f} mm "
                 f"({summary['relative_pa_mpjpe_drop']:.1%} relative drop); MPJPE {summary['before']['MPJPE']:.1f} -> "
                 f"{summary['after']['MPJPE']:.1f} mm")
    return "\n".join(lines)
