"""Does adaptation work without 3D labels? A target domain is built from held-out motion
seen through a robot-like camera, in one of two ways:

- ``detector``: the bodies are rendered and the real YOLO-pose detector reads them, so the
  keypoints carry a real detector's joint definitions, errors, confidences and misses;
- ``synthetic``: modelled detector biases (per-joint offsets, misses, low confidences).

Adaptation sees only the 2D keypoints; PA-MPJPE against the withheld 3D ground truth is
reported before, during and after. For scale, the same encoder is also fine-tuned *with*
the withheld labels (never used by adaptation), to show what 3D labels would give.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from key2mesh.checkpoint import load_checkpoint
from key2mesh.keypoints import SMPL_JOINT_WEIGHTS, normalize_keypoints
from key2mesh.network import Key2MeshNet
from key2mesh.skinning import SkinnedBody
from key2mesh_train.adaptation.adapt import adapt, evaluate_on, stage_label, trainable_target_copy
from key2mesh_train.config import TrainConfig
from key2mesh_train.keypoint_noise import MODELLED_TARGET_BIAS
from key2mesh_train.losses import weighted_l1
from key2mesh_train.pretrain import TrainingData, prepare_data, sample_batch
from key2mesh_train.synthetic import SyntheticConfig, synthesize

DOMAINS = ("auto", "detector", "synthetic")


MAX_TILT_DEG = 60.0  # steeper views foreshorten a standing body to little more than head and shoulders


def target_camera(base: SyntheticConfig, tilt_deg: float = 0.0) -> SyntheticConfig:
    """A wide-lens robot camera; ``tilt_deg`` > 0 looks down on people (pre-training saw +-20)."""
    if not -MAX_TILT_DEG <= tilt_deg <= MAX_TILT_DEG:
        raise ValueError(f"camera tilt {tilt_deg} deg is out of range: the benchmark's camera covers "
                         f"-{MAX_TILT_DEG:g} to {MAX_TILT_DEG:g} deg")
    return dataclasses.replace(base.paper_recipe(), focal_min=450.0, focal_max=650.0, distance_min=1.5, distance_max=5.0,
                               drop_prob=0.0, pitch_roll_deg=10.0, pitch_offset_deg=tilt_deg)


def make_target_domain(config: TrainConfig, people: int, seed: int, detector=None, progress: bool = False,
                       data: TrainingData | None = None, tilt_deg: float = 0.0) -> tuple[SkinnedBody, dict[str, torch.Tensor]]:
    """``people`` held-out bodies as the target sees them: ``keypoints_px``, network ``input``
    and the withheld ``joints3d``. With a ``detector`` (a ``PoseDetector``) they are rendered
    and detected (bodies it misses are left out); else modelled biases are applied.
    ``data`` is :func:`prepare_data`'s result when the caller already has it; ``tilt_deg`` is
    how far the robot's camera looks down (see :func:`target_camera`)."""
    body, _, held_out = data or prepare_data(config, progress=False)
    camera = target_camera(config.synthetic, tilt_deg)
    if detector is None:
        gen = torch.Generator().manual_seed(seed)
        rot, betas = sample_batch(held_out, people, gen)
        return body, synthesize(rot, betas, body, camera, gen, noise=MODELLED_TARGET_BIAS)
    from key2mesh_train.adaptation.rendered_detections import detect_rendered_people

    batch = detect_rendered_people(body, held_out, camera, people, seed, detector, config.data.cache_dir, progress)
    batch["input"] = normalize_keypoints(batch["keypoints_px"])
    return body, batch


def resolve_domain(domain: str, detector_path: str | None = None):
    """The detector for ``domain`` (None for ``synthetic``). ``auto`` uses the real detector
    when its model file is on disk and falls back to modelled biases otherwise."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown target domain {domain!r}; choose from {DOMAINS}")
    if domain == "synthetic":
        return None
    from key2mesh.detector import PoseDetector
    from key2mesh.paths import default_detector

    path = detector_path or default_detector()
    if domain == "auto" and not Path(path).is_file():
        return None
    return PoseDetector(path)


def labelled_reference(config: TrainConfig, checkpoint: str | Path, body: SkinnedBody, labelled: dict,
                     steps: int) -> Key2MeshNet:
    """The same trainable encoder, fine-tuned on the adaptation people *with* their 3D joints:
    what labels would buy, to put the unsupervised gain in scale. Never feeds adaptation."""
    source, _ = load_checkpoint(checkpoint)
    network = trainable_target_copy(source)
    network.eval()  # as in adaptation: frozen BatchNorm statistics, only the encoder's weights move
    optimizer = torch.optim.Adam([p for p in network.parameters() if p.requires_grad], lr=config.adapt.lr)
    gen = torch.Generator().manual_seed(config.adapt.seed)
    weights = torch.as_tensor(SMPL_JOINT_WEIGHTS)
    for _ in range(steps):
        index = torch.randint(0, len(labelled["input"]), (config.adapt.batch_size,), generator=gen)
        pred = network(labelled["input"][index])
        joints = body(pred["betas"], pred["rotmats"], with_vertices=False, root_relative=True)["joints"]
        loss = weighted_l1(joints, labelled["joints3d"][index], weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return network


def real_detector_scores(config: TrainConfig, checkpoints: dict[str, str | Path], people: int, detector,
                         progress: bool = True) -> dict[str, dict[str, float]]:
    """Each checkpoint as it is (no adaptation) on held-out bodies rendered and read by a real
    ``detector``, as ``adapt-benchmark`` scores its source model: the same camera, and the same
    people for the same ``people`` (seed 2, cached). A model can win on the synthetic benchmark
    noise and lose here; choosing a model needs both."""
    body, test = make_target_domain(config, people, 2, detector, progress)
    return {name: {**evaluate_on(load_checkpoint(path)[0], body, test), "people": len(test["input"])}
            for name, path in checkpoints.items()}


def run_adaptation_benchmark(config: TrainConfig, checkpoint: str | Path, out: str | Path, adapt_people: int = 2048,
                             test_people: int = 1024, plot: str | Path | None = None, progress: bool = True,
                             domain: str = "auto", detector_path: str | None = None,
                             camera_tilt_deg: float = 0.0, resume: bool = False) -> dict:
    detector = resolve_domain(domain, detector_path)
    data = prepare_data(config, progress=False)  # loaded once: body, MoCap bank and held-out bank
    body, unlabelled = make_target_domain(config, adapt_people, 1, detector, progress, data, camera_tilt_deg)
    _, test = make_target_domain(config, test_people, 2, detector, progress, data, camera_tilt_deg)
    source, _ = load_checkpoint(checkpoint)
    before = evaluate_on(source, body, test)
    # Only 2D pixels (with confidences) leave the target domain; its 3D stays here.
    result = adapt(config, checkpoint, unlabelled["keypoints_px"].numpy(), out, progress=progress,
                   monitor=lambda net: evaluate_on(net, body, test), data=data, resume=resume,
                   command="key2mesh-train adapt-benchmark")
    adapted, _ = load_checkpoint(result["checkpoint"])
    after = evaluate_on(adapted, body, test)
    reference = evaluate_on(labelled_reference(config, checkpoint, body, unlabelled,
                                           config.adapt.epochs * config.adapt.steps_per_epoch), body, test)
    drop = 1 - after["PA-MPJPE"] / before["PA-MPJPE"]
    summary = {"domain": "detector" if detector is not None else "synthetic", "camera_tilt_deg": camera_tilt_deg,
               "adapt_people": len(unlabelled["input"]),
               "test_people": len(test["input"]), "before": before, "after": after, "labelled_reference": reference,
               "relative_pa_mpjpe_drop": drop, "history": result["history"], "selected": result["selected"]}
    if plot:
        save_plot(result["history"], plot, reference["PA-MPJPE"], result["selected"])
    return summary


def save_plot(history: list[dict], path: str | Path, reference_pa_mpjpe: float | None = None,
              selected: str | None = None) -> Path:
    """Target error and label-free validation error by stage (``selected``: the stage kept,
    ringed), and the critic's accuracy by adversarial epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # One point per record: the source model, the warm start (when run), then each epoch.
    steps = list(range(len(history)))
    labels = [stage_label(h).replace(" ", "\n") for h in history]
    fig, ax = plt.subplots(1, 2, figsize=(9, 4.5))
    ax[0].plot(steps, [h["PA-MPJPE"] for h in history], "o-", label="PA-MPJPE")
    ax[0].plot(steps, [h["MPJPE"] for h in history], "s-", label="MPJPE")
    ax[0].plot(steps, [h["validation_PA-MPJPE"] for h in history], "^--", color="C2",
               label="label-free validation PA-MPJPE (what is kept)")
    if reference_pa_mpjpe is not None:
        ax[0].axhline(reference_pa_mpjpe, color="C0", ls=":", label="PA-MPJPE with 3D labels (reference)")
    kept = [i for i, h in enumerate(history) if stage_label(h) == selected]
    if kept:
        ax[0].plot(kept, [history[i]["PA-MPJPE"] for i in kept], "o", ms=14, mfc="none", color="k", label="kept")
    ax[0].set_xticks(steps, labels)
    ax[0].set_xlabel("stage, then adversarial epoch")
    ax[0].set_ylabel("target error (mm)")
    ax[0].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2)
    with_acc = [h for h in history if "domain_accuracy" in h]
    ax[1].plot([h["epoch"] for h in with_acc], [h["domain_accuracy"] for h in with_acc], "o-", color="C3")
    ax[1].set_xticks([h["epoch"] for h in with_acc])
    ax[1].axhline(0.5, color="gray", ls="--")
    ax[1].set_ylim(0.4, 1.0)
    ax[1].set_xlabel("adversarial epoch")
    ax[1].set_ylabel("critic domain accuracy")
    fig.suptitle("Adaptation without 3D labels (held-out target domain)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def format_summary(summary: dict) -> str:
    lines = [f"{'stage':>10} {'MPJPE':>8} {'PA-MPJPE':>9} {'critic acc':>11} {'validation':>11}"]
    for h in summary["history"]:
        acc = f"{h['domain_accuracy']:.3f}" if "domain_accuracy" in h else "-"
        kept = " <- kept" if stage_label(h) == summary["selected"] else ""
        lines.append(f"{stage_label(h):>10} {h['MPJPE']:>8.1f} {h['PA-MPJPE']:>9.1f} {acc:>11} "
                     f"{h['validation_PA-MPJPE']:>11.1f}{kept}")
    before, after, reference = summary["before"], summary["after"], summary["labelled_reference"]
    tilt = summary["camera_tilt_deg"]
    view = f", camera tilted {'down' if tilt > 0 else 'up'} {abs(tilt):g} deg" if tilt else ""
    lines.append("validation: PA-MPJPE on MoCap carrying the target's own residuals, no target label; the lowest "
                 "is kept (adapt.keep_best)")
    lines.append(f"target domain: {summary['domain']} ({summary['adapt_people']} unlabelled people, "
                 f"{summary['test_people']} test people){view}")
    lines.append(f"PA-MPJPE {before['PA-MPJPE']:.1f} -> {after['PA-MPJPE']:.1f} mm "
                 f"({summary['relative_pa_mpjpe_drop']:.1%} relative drop); MPJPE {before['MPJPE']:.1f} -> "
                 f"{after['MPJPE']:.1f} mm")
    lines.append(f"with the withheld 3D labels instead (reference only): PA-MPJPE {reference['PA-MPJPE']:.1f} mm, "
                 f"MPJPE {reference['MPJPE']:.1f} mm")
    return "\n".join(lines)
