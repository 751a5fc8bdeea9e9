"""The target detector's noise, read off unlabelled detections and replayed on MoCap.

The source network's body, fitted to each target detection by weak perspective, leaves a
residual per joint: that detector's error on that person (plus some of the network's own).
Replaying whole residual patterns, with the same person's confidences and misses, on clean
MoCap projections gives supervised pairs that look like the target domain, heavy tails and
correlations between joints included, without any 3D label from it. A short supervised
fine-tune on them is the warm start of adaptation; the adversarial stage then starts from it.
"""

from __future__ import annotations

import dataclasses

import torch
from tqdm import tqdm

from key2mesh.keypoints import normalization_box
from key2mesh.lbs import SkinnedBody
from key2mesh.network import Key2MeshNet
from key2mesh_train.config import TrainConfig
from key2mesh_train.losses import fitted_projection, pretrain_losses
from key2mesh_train.mocap.dataset import PoseBank
from key2mesh_train.pretrain import sample_batch
from key2mesh_train.synthetic import synthesize

# In units of the person's box side. A fit that went wrong (a left/right swap, a person the
# network misread) leaves residuals that are not the detector's noise: cap what one joint replays.
MAX_RESIDUAL = 0.25


@torch.no_grad()
def detection_residuals(network: Key2MeshNet, body: SkinnedBody, inputs: torch.Tensor,
                        weights: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """Per-joint residuals ``[N,17,2]`` (box units, 0 where unseen) between normalised target
    inputs ``[N,17,3]`` and the network's body fitted onto them with ``weights [N,17]``: the same
    fit that adaptation's reprojection loss measures."""
    network.eval()
    out = []
    for start in range(0, len(inputs), chunk):
        x, w = inputs[start:start + chunk], weights[start:start + chunk]
        pred = network(x)
        keypoints = body(pred["betas"], pred["rotmats"], with_vertices=False, root_relative=True)["keypoints"]
        residual = x[..., :2] - fitted_projection(keypoints, x[..., :2], w)
        norm = residual.norm(dim=-1, keepdim=True)
        residual = residual * (MAX_RESIDUAL / norm.clamp_min(MAX_RESIDUAL))
        out.append(torch.where((w > 0)[..., None], residual, torch.zeros_like(residual)))
    return torch.cat(out)


@dataclasses.dataclass
class ReplayedNoise:
    """A :class:`key2mesh_train.synthetic.KeypointNoise` that gives each clean person the
    residuals and confidences of one randomly drawn target detection."""

    residuals: torch.Tensor  # [N,17,2], box units
    confidences: torch.Tensor  # [N,17], 0 where the target missed the joint

    def apply(self, points: torch.Tensor, conf: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.randint(0, len(self.residuals), (len(points),), generator=gen)
        _, side = normalization_box(torch.cat([points, conf[..., None]], dim=-1))
        points = points + self.residuals[index] * side[:, None, None]
        return points, torch.where(conf > 0, self.confidences[index], torch.zeros_like(conf))


def warm_start(network: Key2MeshNet, body: SkinnedBody, bank: PoseBank, noise: ReplayedNoise, config: TrainConfig,
               gen: torch.Generator, progress: bool = True) -> None:
    """Fine-tune ``network``'s trainable parameters on MoCap seen through ``noise`` for
    ``config.adapt.warm_start_steps`` steps (the usual pre-training losses)."""
    cfg = config.adapt
    # The target's own misses replace pre-training's random joint drops.
    camera = dataclasses.replace(config.synthetic, drop_prob=0.0)
    optimizer = torch.optim.Adam([p for p in network.parameters() if p.requires_grad], lr=cfg.lr)
    for _ in tqdm(range(cfg.warm_start_steps), desc="warm start", unit="step", disable=not progress):
        rot, betas = sample_batch(bank, cfg.batch_size, gen)
        batch = synthesize(rot, betas, body, camera, gen, noise=noise)
        loss = pretrain_losses(network(batch["input"]), batch, body, config.losses)["total"]
        if not torch.isfinite(loss):
            raise FloatingPointError("non-finite loss in the warm start")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
