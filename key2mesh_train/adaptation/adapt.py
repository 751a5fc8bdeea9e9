"""Unsupervised domain adaptation to a target camera (the paper's ADDA-style recipe).

The source network (MoCap pre-trained) is frozen. A target feature extractor starts as a
copy of the source one and is trained so that (a) a WGAN-GP critic cannot tell its features
on target detections from source features on MoCap-synthesised keypoints, (b) the frozen
SMPL head's output reprojects onto the target detections (weighted by confidence), (c) on
source inputs its features stay those of the source extractor, and (d) MoCap supervision
keeps flowing. No 3D label of the target domain is used.

Beyond the paper, a warm start comes first (``adapt.warm_start_steps``): MoCap carrying the
target detector's own noise, read off the unlabelled detections (``warm_start.py``). And what is
written is chosen without labels (``adapt.keep_best``): the source, the warm start and every
adversarial epoch are scored on MoCap seen through that same noise, and the best is kept.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from key2mesh.checkpoint import load_checkpoint, partial_path, run_progress, save_checkpoint
from key2mesh.keypoints import normalize_keypoints, visible_mask
from key2mesh.network import Key2MeshNet
from key2mesh_train.adaptation.critic import Critic, domain_accuracy, gradient_penalty
from key2mesh_train.adaptation.warm_start import detection_residuals, warm_start
from key2mesh_train.config import TrainConfig, config_to_dict
from key2mesh_train.evaluation.evaluate import score
from key2mesh_train.interruption import CleanStop, StopRequests, TrainingInterrupted
from key2mesh_train.keypoint_noise import ReplayedResiduals
from key2mesh_train.losses import pretrain_losses, reprojection_loss
from key2mesh_train.pretrain import TrainingData, prepare_data, sample_batch
from key2mesh_train.synthetic import synthesize

log = logging.getLogger(__name__)
Monitor = Callable[[Key2MeshNet], dict[str, float]]


def target_tensors(keypoints_px: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised inputs and per-joint reprojection weights (confidence, 0 when missing)."""
    kp = np.asarray(keypoints_px, np.float32)
    inputs = torch.from_numpy(normalize_keypoints(kp))
    weights = np.where(visible_mask(kp), np.clip(np.nan_to_num(kp[..., 2]), 0, 1), 0.0).astype(np.float32)
    return inputs, torch.from_numpy(weights)


def stage_label(record: dict) -> str:
    """A history record's stage: ``source``, ``warm start`` or the adversarial epoch's number."""
    stage = record.get("stage", "adversarial")
    return str(record["epoch"]) if stage == "adversarial" else stage


def evaluate_on(network: Key2MeshNet, body, batch: dict[str, torch.Tensor]) -> dict[str, float]:
    """MPJPE and PA-MPJPE (mm) of ``network`` on ``batch`` (``input [N,17,3]``, ``joints3d [N,24,3]``)."""
    network.eval()
    with torch.no_grad():
        pred = network(batch["input"])
        joints = body(pred["betas"], pred["rotmats"], with_vertices=False, root_relative=True)["joints"]
    return score(joints, batch["joints3d"])


def validation_set(bank, body, noise: ReplayedResiduals, config: TrainConfig) -> dict[str, torch.Tensor]:
    """``config.adapt.validation_people`` MoCap people seen through the target's replayed
    residuals ``noise`` (``input``, ``joints3d``): labelled, yet shaped like the target domain,
    so stages can be compared without a 3D label of the target. Fixed by ``adapt.seed``."""
    gen = torch.Generator().manual_seed(config.adapt.seed + 1)
    rot, betas = sample_batch(bank, config.adapt.validation_people, gen)
    batch = synthesize(rot, betas, body, config.synthetic.for_replayed_detections(), gen, noise=noise)
    return {"input": batch["input"], "joints3d": batch["joints3d"]}


def trainable_target_copy(source: Key2MeshNet) -> Key2MeshNet:
    """A copy of ``source`` whose feature extractor trains and whose SMPL head stays frozen."""
    target = copy.deepcopy(source)
    target.requires_grad_(False)
    target.encoder.requires_grad_(True)
    return target


def adapt(config: TrainConfig, source_checkpoint: str | Path, target_keypoints: np.ndarray, out: str | Path,
          resume: bool = False, progress: bool = True, monitor: Monitor | None = None,
          data: TrainingData | None = None, command: str = "key2mesh-train adapt") -> dict:
    """Adapt ``source_checkpoint`` to unlabelled ``target_keypoints [N,17,3]`` (COCO-17 pixels
    and confidences) and write the adapted checkpoint to ``out``.

    The target network starts as a copy of the source; a warm start on MoCap carrying the
    target's replayed residuals, then the adversarial stage (critic on encoder features
    ``[B,hidden]``, reprojection ``[B,17,2]``, feature and source terms). ``data`` is
    :func:`prepare_data`'s result when the caller already has it; ``command`` is what an
    interrupted run tells the user to resume with. Every stage is scored on
    :func:`validation_set` (``validation_PA-MPJPE`` in its history record); with
    ``adapt.keep_best`` the lowest is written, else the last epoch. Returns ``{"checkpoint",
    "history", "selected"}`` (``source``, ``warm start`` or the epoch's number).
    """
    cfg = config.adapt
    if len(target_keypoints) < 2:
        raise ValueError(f"need at least 2 target people to adapt, got {len(target_keypoints)}")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    body, bank, _ = data or prepare_data(config, progress=False)
    source, _ = load_checkpoint(source_checkpoint)
    source.requires_grad_(False)
    target = trainable_target_copy(source)
    target.eval()  # BatchNorm keeps the source statistics; only weights adapt
    critic = Critic(source.config.hidden)
    opt_encoder = torch.optim.Adam(target.encoder.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
    opt_critic = torch.optim.Adam(critic.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
    inputs_t, weights_t = target_tensors(target_keypoints)

    out = Path(out)
    partial = partial_path(out)
    total = cfg.epochs * cfg.steps_per_epoch
    start, history, sums, warm_done = 0, [], {}, False
    validation: dict[str, torch.Tensor] | None = None  # fixed at the start, kept for a resumed run
    best: dict | None = None  # the lowest validation error so far: its value, stage and weights
    if partial.exists() and not resume:
        log.warning("an unfinished adaptation exists at %s; starting over (use --resume to continue it)", partial)
    if resume and partial.exists():
        network, payload = load_checkpoint(partial, allow_unfinished=True)
        target.load_state_dict(network.state_dict())
        state = payload["extra_state"]
        critic.load_state_dict(state["critic"])
        opt_encoder.load_state_dict(state["opt_encoder"])
        opt_critic.load_state_dict(state["opt_critic"])
        source.load_state_dict(state["source"])  # the warm-started reference, not the file's
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        start, warm_done = run_progress(payload)[0], bool(state["warm_done"])
        history, sums = list(state["history"]), dict(state["sums"])
        validation, best = state["validation"], state["best"]
        log.info("resuming adaptation at step %d of %d from %s", start, total, partial)

    def save_partial(done: int) -> None:
        meta = {"step": done, "steps_planned": total, "stage": "adapt", "finished": False,
                "source": str(source_checkpoint)}
        save_checkpoint(partial, target, meta=meta, extra_state={
            "source": source.state_dict(), "critic": critic.state_dict(), "opt_encoder": opt_encoder.state_dict(),
            "opt_critic": opt_critic.state_dict(), "generator": gen.get_state(), "torch_rng": torch.get_rng_state(),
            "history": history, "sums": sums, "warm_done": warm_done, "validation": validation, "best": best})

    def validated(label: str) -> float:
        """The target network's validation error; remembered (weights too) when the lowest yet."""
        nonlocal best
        value = evaluate_on(target, body, validation)["PA-MPJPE"]
        if best is None or value < best["value"]:
            best = {"value": value, "stage": label,  # the weights only when they may be written back
                    "state": {k: v.detach().clone() for k, v in target.state_dict().items()} if cfg.keep_best else None}
        return value

    def draw_batches() -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        rot, betas = sample_batch(bank, cfg.batch_size, gen)
        index = torch.randint(0, len(inputs_t), (cfg.batch_size,), generator=gen)
        return synthesize(rot, betas, body, config.synthetic, gen), inputs_t[index], weights_t[index]

    def adversarial_step() -> dict[str, torch.Tensor]:
        critic.train()
        for _ in range(cfg.critic_steps):
            # Fresh batches each critic step, so the critic estimates the distance between the
            # two feature distributions rather than memorising one pair of batches.
            src, x_t, w_t = draw_batches()
            with torch.no_grad():
                f_s, f_t_fixed = source.features(src["input"]), target.features(x_t)
            # The critic scores source high and target low; the penalty keeps it 1-Lipschitz.
            loss_c = critic(f_t_fixed).mean() - critic(f_s).mean() + \
                cfg.gradient_penalty * gradient_penalty(critic, f_s, f_t_fixed, gen)
            opt_critic.zero_grad(set_to_none=True)
            loss_c.backward()
            opt_critic.step()
        src, x_t, w_t = draw_batches()
        with torch.no_grad():
            f_s = source.features(src["input"])
        f_t = target.features(x_t)
        pred_t = target.decode(f_t)
        posed = body(pred_t["betas"], pred_t["rotmats"], with_vertices=False, root_relative=True)
        reprojection = reprojection_loss(posed["keypoints"], x_t[..., :2], w_t)
        domain = -critic(f_t).mean()
        f_ts = target.features(src["input"])
        feature = (f_ts - f_s).pow(2).mean()
        source_loss = pretrain_losses(target.decode(f_ts), src, body, config.losses)["total"]
        loss = cfg.w_reprojection * reprojection + cfg.w_domain * domain + cfg.w_feature * feature + \
            cfg.w_source * source_loss
        if not torch.isfinite(loss):
            raise FloatingPointError("non-finite adaptation loss")
        opt_encoder.zero_grad(set_to_none=True)
        loss.backward()
        opt_encoder.step()
        return {"critic": loss_c, "reprojection": reprojection, "domain": domain, "feature": feature,
                "source": source_loss}

    def end_of_epoch(epoch: int) -> dict:
        critic.eval()
        with torch.no_grad():
            rot, betas = sample_batch(bank, 512, gen)
            probe_s = source.features(synthesize(rot, betas, body, config.synthetic, gen)["input"])
            probe_t = target.features(inputs_t[torch.randint(0, len(inputs_t), (512,), generator=gen)])
            accuracy = domain_accuracy(critic(probe_s), critic(probe_t))
        record = {"epoch": epoch + 1, "stage": "adversarial", "domain_accuracy": accuracy,
                  "validation_PA-MPJPE": validated(str(epoch + 1)), **{f"loss_{k}": v for k, v in sums.items()}}
        if monitor is not None:
            record.update(monitor(target))
        return record

    done = start
    saved = start if resume and partial.exists() else None  # the step of the partial state on disk
    bar = tqdm(total=total, initial=start, desc="adapt", unit="step", disable=not progress)
    try:
        with StopRequests() as stop:
            if not warm_done:
                noise = ReplayedResiduals(detection_residuals(source, body, inputs_t, weights_t), weights_t)
                validation = validation_set(bank, body, noise, config)
                history.append({"epoch": 0, "stage": "source", "validation_PA-MPJPE": validated("source"),
                                **(monitor(target) if monitor is not None else {})})
                if cfg.warm_start_steps > 0:
                    warm_start(target, body, bank, noise, config, gen, progress)
                    # The warmed network is the adversarial stage's reference: its features on MoCap
                    # are what the critic and the feature loss hold the target extractor to.
                    source = copy.deepcopy(target).requires_grad_(False)
                    history.append({"epoch": 0, "stage": "warm start", "validation_PA-MPJPE": validated("warm start"),
                                    **(monitor(target) if monitor is not None else {})})
                warm_done = True
            while done < total:
                if stop.requested:
                    raise CleanStop(stop.requested)
                epoch, step_in_epoch = divmod(done, cfg.steps_per_epoch)
                if step_in_epoch == 0:
                    sums = dict.fromkeys(("critic", "reprojection", "domain", "feature", "source"), 0.0)
                for key, value in adversarial_step().items():
                    sums[key] += float(value.detach()) / cfg.steps_per_epoch
                done += 1
                bar.update(1)
                if done % cfg.steps_per_epoch == 0:
                    history.append(end_of_epoch(epoch))
                    bar.set_postfix(domain_acc=f"{history[-1]['domain_accuracy']:.2f}",
                                    reproj=f"{sums['reprojection']:.4f}")
                    if done < total:
                        save_partial(done)
                        saved = done
    except KeyboardInterrupt as err:
        bar.close()
        if isinstance(err, CleanStop):  # between two steps: the state is whole
            save_partial(done)
            saved = done
        if saved is None:  # nothing worth keeping yet (e.g. a second Ctrl-C in the warm start)
            raise
        raise TrainingInterrupted(partial, saved, command) from err
    bar.close()
    last = history[-1]
    selected = stage_label(last)
    if cfg.keep_best and best["stage"] != selected and best["state"] is None:
        log.warning("keeping %s: the run was started with adapt.keep_best off, so %s's weights were not kept",
                    selected, best["stage"])
    elif cfg.keep_best and best["stage"] != selected:
        log.info("keeping %s: label-free validation PA-MPJPE %.1f mm, against %.1f mm after %s", best["stage"],
                 best["value"], last["validation_PA-MPJPE"], selected)
        target.load_state_dict(best["state"])
        selected = best["stage"]
    save_checkpoint(out, target, meta={"stage": "adapt", "step": total, "steps_planned": total, "finished": True,
                                       "source": str(source_checkpoint), "history": history, "selected": selected,
                                       "target_people": int(len(target_keypoints)), "config": config_to_dict(config)})
    partial.unlink(missing_ok=True)
    return {"checkpoint": str(out), "history": history, "selected": selected}


def adapt_to_recording(config: TrainConfig, checkpoint: str | Path, bag: str | None = None,
                      topic: str = "/camera/image_raw", images: str | None = None, keypoints: str | None = None,
                      detector: str | None = None, out: str | Path | None = None,
                      onnx_out: str | Path | None = None, resume: bool = False) -> dict:
    """The ``adapt`` CLI: collect the target camera's detections (a bag, a folder of images or a
    keypoints file), adapt to them, export the adapted model (``onnx_out``; None skips).
    ``out`` defaults to ``config.adapt.checkpoint``."""
    out = out or config.adapt.checkpoint
    from key2mesh_train.adaptation import target_data

    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"source checkpoint not found: {checkpoint} (run 'key2mesh-train pretrain')")
    if keypoints:
        target_px = target_data.keypoints_from_file(keypoints)
    else:
        from key2mesh.detector import PoseDetector

        pose_detector = PoseDetector(detector)
        if bag:
            target_px = target_data.keypoints_from_bag(bag, topic, pose_detector)
        else:
            target_px = target_data.keypoints_from_images(images, pose_detector)
    log.info("adapting to %d target people", len(target_px))
    result = adapt(config, checkpoint, target_px, out, resume=resume)
    if onnx_out:
        from key2mesh.export import export_onnx

        result["onnx"] = str(export_onnx(out, onnx_out))
    result["target_people"] = int(len(target_px))
    result["final_domain_accuracy"] = result["history"][-1].get("domain_accuracy")  # None without adversarial epochs
    return result
