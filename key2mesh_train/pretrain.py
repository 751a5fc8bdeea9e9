"""Pre-training on MoCap: synthetic 2D from posed bodies -> SMPL parameters."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from key2mesh.body_model import load_skinned_body
from key2mesh.checkpoint import load_checkpoint, save_checkpoint
from key2mesh.lbs import SkinnedBody
from key2mesh.network import Key2MeshNet
from key2mesh_train.config import TrainConfig, config_to_dict
from key2mesh_train.losses import pretrain_losses
from key2mesh_train.mocap.dataset import PoseBank, load_pose_bank
from key2mesh_train.synthetic import synthesize

log = logging.getLogger(__name__)


def rest_joints(body: SkinnedBody) -> np.ndarray:
    """T-pose joints [24,3] of the mean shape (what BVH retargeting aligns bones to)."""
    return body.shaped_joints(torch.zeros(1, 10))[0].double().numpy()


# The body model, the training MoCap bank and the held-out bank, as prepare_data returns them.
TrainingData = tuple[SkinnedBody, PoseBank, PoseBank]


def prepare_data(config: TrainConfig, progress: bool = True) -> TrainingData:
    body = load_skinned_body(config.data.body_model)
    bank = load_pose_bank(config.data.mocap, config.data.cache_dir, rest_joints(body),
                          config.data.procedural_sequences, config.data.frame_stride, progress)
    train, held_out = bank.split(config.data.held_out_fraction)
    log.info("pose bank: %d train frames, %d held-out frames", len(train), len(held_out))
    return body, train, held_out


def sample_batch(bank: PoseBank, size: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    index = torch.randint(0, len(bank), (size,), generator=gen)
    return bank.rotmats[index], bank.betas[index]


def pretrain(config: TrainConfig, resume: bool = False, progress: bool = True) -> Path:
    cfg = config.pretrain
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    body, train_bank, _ = prepare_data(config, progress)
    network = Key2MeshNet(config.network)
    optimizer = torch.optim.Adam(network.parameters(), lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [int(cfg.steps * cfg.lr_decay_at)], 0.1)
    start = 0
    checkpoint = Path(cfg.checkpoint)
    if resume and checkpoint.exists():
        network, payload = load_checkpoint(checkpoint)
        optimizer = torch.optim.Adam(network.parameters(), lr=cfg.lr)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [int(cfg.steps * cfg.lr_decay_at)], 0.1)
        state = payload["extra_state"]
        if "optimizer" in state:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
        start = int(payload["meta"].get("step", 0))
        log.info("resumed from %s at step %d", checkpoint, start)
    network.train()
    bar = tqdm(range(start, cfg.steps), desc="pretrain", unit="step", disable=not progress, initial=start, total=cfg.steps)
    history: list[dict[str, float]] = []

    def save(step: int) -> None:
        save_checkpoint(checkpoint, network, meta={"step": step, "stage": "pretrain", "config": config_to_dict(config)},
                        extra_state={"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()})

    for step in bar:
        rotmats, betas = sample_batch(train_bank, cfg.batch_size, gen)
        batch = synthesize(rotmats, betas, body, config.synthetic, gen)
        pred = network(batch["input"])
        terms = pretrain_losses(pred, batch, body, config.losses)
        if not torch.isfinite(terms["total"]):
            raise FloatingPointError(f"non-finite loss at step {step}: {({k: float(v) for k, v in terms.items()})}")
        optimizer.zero_grad(set_to_none=True)
        terms["total"].backward()
        optimizer.step()
        scheduler.step()
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            record = {k: float(v.detach()) for k, v in terms.items()}
            history.append({"step": step, **record})
            bar.set_postfix(loss=f"{record['total']:.4f}", joints_l1=f"{record['joints3d'] * 1000:.0f}mm")
        if (step + 1) % cfg.checkpoint_every == 0:
            save(step + 1)
    save(cfg.steps)
    log.info("saved %s", checkpoint)
    return checkpoint
