"""The warm start of adaptation: the target detector's noise, read off unlabelled detections
and replayed on MoCap (:class:`key2mesh_train.keypoint_noise.ReplayedResiduals`).

The source network's body, fitted to each target detection by weak perspective, leaves a
residual per joint: that detector's error on that person (plus some of the network's own).
Replaying whole residual patterns, with the same person's confidences and misses, on clean
MoCap projections gives supervised pairs that look like the target domain, heavy tails and
correlations between joints included, without any 3D label from it. A short supervised
fine-tune on them is the warm start of adaptation; the adversarial stage then starts from it.
"""

from __future__ import annotations

import torch
from tqdm import tqdm

from key2mesh.network import Key2MeshNet
from key2mesh.skinning import SkinnedBody
from key2mesh_train.config import TrainConfig
from key2mesh_train.keypoint_noise import ReplayedResiduals, capped_residuals
from key2mesh_train.losses import fitted_projection, pretrain_losses
from key2mesh_train.mocap.dataset import PoseBank
from key2mesh_train.pretrain import sample_batch
from key2mesh_train.synthetic import synthesize


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
        out.append(capped_residuals(x[..., :2] - fitted_projection(keypoints, x[..., :2], w), w > 0))
    return torch.cat(out)


def warm_start(network: Key2MeshNet, body: SkinnedBody, bank: PoseBank, noise: ReplayedResiduals, config: TrainConfig,
               gen: torch.Generator, progress: bool = True) -> None:
    """Fine-tune ``network``'s trainable parameters on MoCap seen through ``noise`` for
    ``config.adapt.warm_start_steps`` steps (the usual pre-training losses)."""
    cfg = config.adapt
    camera = config.synthetic.for_replayed_detections()
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
