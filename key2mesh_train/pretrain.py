"""Pre-training on MoCap: synthetic 2D from posed bodies -> SMPL parameters.

Runs as one process, or under ``torchrun`` with PyTorch DDP (one process per GPU, or CPU
processes with the gloo backend): same config, same checkpoint format, the batch split
across processes. Periodic state goes to ``<checkpoint>.partial.pt``; the checkpoint itself
is written once, when the run completes, so an interrupted run never poses as a model.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from key2mesh.body_model import load_skinned_body
from key2mesh.checkpoint import load_checkpoint, partial_path, run_progress, save_checkpoint
from key2mesh.network import Key2MeshNet, ResidualBlock
from key2mesh.paths import trained_checkpoint
from key2mesh.skinning import SkinnedBody
from key2mesh_train.config import TrainConfig, config_to_dict
from key2mesh_train.interruption import CleanStop, StopRequests, TrainingInterrupted
from key2mesh_train.keypoint_noise import load_replayed_residuals
from key2mesh_train.losses import pretrain_losses
from key2mesh_train.mocap.dataset import PoseBank, load_pose_bank
from key2mesh_train.synthetic import augment_poses, synthesize

log = logging.getLogger(__name__)


def rest_joints(body: SkinnedBody) -> np.ndarray:
    """T-pose joints [24,3] of the mean shape (what BVH retargeting aligns bones to)."""
    return body.shaped_joints(torch.zeros(1, 10))[0].double().numpy()


# The body model, the training MoCap bank and the held-out bank, as prepare_data returns them.
TrainingData = tuple[SkinnedBody, PoseBank, PoseBank]


def load_bank(config: TrainConfig, progress: bool = True) -> tuple[SkinnedBody, PoseBank]:
    """The body model and every MoCap frame ``config.data`` names, before the split."""
    body = load_skinned_body(config.data.body_model)
    bank = load_pose_bank(config.data.mocap, config.data.cache_dir, rest_joints(body),
                          config.data.procedural_sequences, config.data.frame_stride, progress)
    return body, bank


def prepare_data(config: TrainConfig, progress: bool = True) -> TrainingData:
    body, bank = load_bank(config, progress)
    train, held_out = bank.split(config.data.held_out_fraction, config.data.held_out_subjects)
    log.info("pose bank: %d train frames (%d sequences), %d held-out frames (subjects %s)", len(train),
             len(set(train.sequence_ids)), len(held_out), sorted(held_out.subjects()))
    return body, train, held_out


def sample_batch(bank: PoseBank, size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    index = torch.randint(0, len(bank), (size,), generator=gen, device=gen.device).to(bank.rotmats.device)
    return bank.rotmats[index], bank.betas[index]


def data_digest(bank: PoseBank) -> str:
    """Which training data a run saw: its sequence names and frame count."""
    text = json.dumps([sorted(bank.names[i] for i in set(bank.sequence_ids.tolist())), len(bank)])
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def config_digest(config: TrainConfig) -> str:
    values = config_to_dict(config)
    values["pretrain"] = {k: v for k, v in values["pretrain"].items() if k not in ("steps", "checkpoint")}
    return hashlib.sha1(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _distributed() -> tuple[int, int, torch.device]:
    """``(rank, world size, device)``; starts the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world <= 1:
        return 0, 1, torch.device("cuda" if cuda else "cpu")
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    return dist.get_rank(), world, torch.device(f"cuda:{local}" if cuda else "cpu")


def grow_from(network: Key2MeshNet, initial: Key2MeshNet) -> list[str]:
    """Copy ``initial``'s weights into ``network``, which may have more residual blocks.

    New blocks start as the identity (the last BatchNorm's scale is zero, so the block adds
    nothing), so the grown network predicts exactly what ``initial`` did and training adds
    capacity from there instead of starting over. Returns the new blocks' names. Any other
    difference (width, keypoint count) is an error naming the layers."""
    wanted = network.state_dict()
    given = initial.state_dict()
    mismatched = [k for k in given if k not in wanted or given[k].shape != wanted[k].shape]
    if mismatched:
        raise ValueError(f"pretrain.init_from: its layers do not match network: in this config "
                         f"(not in it or another shape: {mismatched[:5]})")
    new_blocks = sorted({k.rsplit(".layers.", 1)[0] for k in wanted if k not in given})
    modules = dict(network.named_modules())
    for name in new_blocks:
        if not isinstance(modules.get(name), ResidualBlock):
            raise ValueError(f"pretrain.init_from: network: adds {name}, which is not a residual block")
    network.load_state_dict(given, strict=False)
    with torch.no_grad():
        for name in new_blocks:
            last_norm = [m for m in modules[name].layers if isinstance(m, torch.nn.BatchNorm1d)][-1]
            last_norm.weight.zero_()
    return new_blocks


def replay_step(step: int, share: float) -> bool:
    """Whether ``step`` replays measured residuals: ``share`` of the steps, spread evenly and
    fixed by the step number (a resumed run replays on the same steps; no device sync to decide)."""
    return int((step + 1) * share) > int(step * share)


def pretrain(config: TrainConfig, resume: bool = False, progress: bool = True) -> Path:
    """Pre-train Key2Mesh on ``config.data.mocap`` and write ``config.pretrain.checkpoint``.

    On a GPU the whole step runs there, the synthetic batches too (the pose bank, the body
    model and the random generator live on the device): the CPU only launches work.

    Each step draws ``batch_size`` MoCap frames, mirrors them and draws body shapes
    (``augment_poses``), poses the body and views it through random cameras (``synthesize``:
    network input ``[B,17,3]`` normalised keypoints, targets ``[B,24,3,3]`` rotations, ``[B,10]``
    betas, ``[B,24,3]`` joints), and takes one Adam step on ``pretrain_losses``.

    ``resume`` continues ``<checkpoint>.partial.pt`` (or extends a finished checkpoint to more
    steps). Ctrl-C / SIGTERM save the partial state and raise :class:`TrainingInterrupted`.
    Returns the checkpoint path.
    """
    cfg = config.pretrain
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    rank, world, device = _distributed()
    if cfg.batch_size % world:
        raise ValueError(f"pretrain.batch_size {cfg.batch_size} must split evenly over {world} processes")
    torch.manual_seed(cfg.seed + rank)
    if device.type == "cuda":  # TF32 matrix products: the network is an MLP, fp32 accuracy is not needed
        torch.backends.cuda.matmul.allow_tf32 = True
    synthesis = device if cfg.synthesize_on_device else torch.device("cpu")
    gen = torch.Generator(device=synthesis).manual_seed(cfg.seed + 1000 * rank)
    if rank > 0:  # rank 0 fills the MoCap cache first; the others then read it
        torch.distributed.barrier()
    body, train_bank, _ = prepare_data(config, progress and rank == 0)
    if world > 1 and rank == 0:
        torch.distributed.barrier()
    loss_body = body if device.type == "cpu" else copy.deepcopy(body).to(device)
    if synthesis.type != "cpu":  # synthesis runs on the device: its inputs live there
        body = loss_body
        train_bank = PoseBank(train_bank.rotmats.to(device), train_bank.betas.to(device),
                              train_bank.sequence_ids, train_bank.names)
    network = Key2MeshNet(config.network)
    checkpoint = Path(cfg.checkpoint)
    partial = partial_path(checkpoint)
    digests = {"data_digest": data_digest(train_bank), "config_digest": config_digest(config)}
    start, history, state = 0, [], {}
    source = partial if partial.exists() else checkpoint if checkpoint.exists() else None
    if source is not None and not resume:
        if source == partial:
            log.warning("an unfinished run exists at %s; starting over (use --resume to continue it)", partial)
        source = None
    if source is not None:
        network, payload = load_checkpoint(source, allow_unfinished=True)
        state = payload["extra_state"]
        start = run_progress(payload)[0]
        history = list(state.get("history", []))
        for key, value in digests.items():
            if payload["meta"].get(key, value) != value:
                log.warning("resuming %s with different %s than it was started with", source, key.split("_")[0])
        log.info("resumed from %s at step %d of %d", source, start, cfg.steps)
    elif cfg.init_from:
        initial, _ = load_checkpoint(cfg.init_from)
        grown = grow_from(network, initial)
        log.info("fine-tuning from %s%s", cfg.init_from,
                 f" with {len(grown)} new residual block(s) starting as identity: {', '.join(grown)}" if grown else "")
    network.to(device).train()
    model = network
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(network, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.Adam(network.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [int(cfg.steps * cfg.lr_decay_at)], 0.1)
    if "optimizer" in state:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scheduler.milestones.clear()
        scheduler.milestones.update({int(cfg.steps * cfg.lr_decay_at): 1})  # the plan may have grown
    if "generator" in state and rank == 0:
        if state.get("generator_device", "cpu") == synthesis.type:
            gen.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
        else:  # a run moved between CPU and GPU: the batches differ from here on, nothing else
            log.warning("resuming a %s run on %s: new random batches from here", state.get("generator_device", "cpu"),
                        synthesis.type)
    per_rank = cfg.batch_size // world
    replay = None  # a measured detector's residuals, replayed on a share of the steps
    if config.synthetic.replayed_residuals:
        replay = load_replayed_residuals(config.synthetic.replayed_residuals, synthesis)
        log.info("replaying %d measured detections on %.0f %% of the steps", len(replay.residuals),
                 100 * config.synthetic.replayed_residuals_share)
    replay_camera = config.synthetic.for_replayed_detections()
    bar = tqdm(range(start, cfg.steps), desc="pretrain", unit="step", disable=not (progress and rank == 0),
               initial=start, total=cfg.steps)

    def save(path: Path, step: int, finished: bool) -> None:
        if rank != 0:
            return
        meta = {"step": step, "steps_planned": cfg.steps, "stage": "pretrain", "finished": finished,
                "world_size": world, **digests, "config": config_to_dict(config)}
        extra = {"history": history}
        if not finished:  # what resuming needs; the result itself carries weights and history only
            extra.update(optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                         generator=gen.get_state(), generator_device=synthesis.type, torch_rng=torch.get_rng_state())
        save_checkpoint(path, network, meta=meta, extra_state=extra)

    done = start  # steps completed
    saved = start if source == partial else None  # the step of the partial state on disk
    try:
        with StopRequests() as stop:
            for step in bar:
                rotmats, betas = sample_batch(train_bank, per_rank, gen)
                rotmats, betas = augment_poses(rotmats, betas, config.synthetic, gen)
                if replay is not None and replay_step(step, config.synthetic.replayed_residuals_share):
                    batch = synthesize(rotmats, betas, body, replay_camera, gen, noise=replay)
                else:
                    batch = synthesize(rotmats, betas, body, config.synthetic, gen)
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                pred = model(batch["input"])
                terms = pretrain_losses(pred, batch, loss_body, config.losses)
                # Checking waits for the device: on a GPU only at log steps, so the CPU can queue ahead.
                checked = device.type == "cpu" or step % cfg.log_every == 0
                if checked and not torch.isfinite(terms["total"]):
                    raise FloatingPointError(f"non-finite loss at step {step}: {({k: float(v) for k, v in terms.items()})}")
                optimizer.zero_grad(set_to_none=True)
                terms["total"].backward()
                optimizer.step()
                scheduler.step()
                done = step + 1
                if step % cfg.log_every == 0 or step == cfg.steps - 1:
                    record = {k: float(v.detach()) for k, v in terms.items()}
                    history.append({"step": step, **record})
                    bar.set_postfix(loss=f"{record['total']:.4f}", joints_l1=f"{record['joints3d'] * 1000:.0f}mm")
                if stop.requested:
                    raise CleanStop(stop.requested)
                if done % cfg.checkpoint_every == 0 and done < cfg.steps:
                    save(partial, done, finished=False)
                    saved = done
    except KeyboardInterrupt as err:
        bar.close()
        if isinstance(err, CleanStop):
            save(partial, done, finished=False)
            saved = done
        if saved is None:
            raise
        command = "key2mesh-train pretrain"
        if Path(cfg.checkpoint) != trained_checkpoint():
            command += f" --out {cfg.checkpoint}"  # plus the same --config/--set as this run
        raise TrainingInterrupted(partial, saved, command) from err
    save(checkpoint, cfg.steps, finished=True)
    if rank == 0:
        partial.unlink(missing_ok=True)
        log.info("saved %s", checkpoint)
    if world > 1:
        torch.distributed.destroy_process_group()
    return checkpoint
