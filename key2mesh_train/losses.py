"""Pre-training losses: joint-weighted L1 on 2D/3D joints, L1 on rotations and betas."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from key2mesh.keypoints import COCO17_WEIGHTS, SMPL_JOINT_WEIGHTS
from key2mesh.projection import fit_weak_perspective
from key2mesh.skinning import SkinnedBody


@dataclass
class LossWeights:
    keypoints2d: float = 0.3
    joints3d: float = 0.3
    rotations: float = 1.0
    betas: float = 1.0


def weighted_l1(pred: torch.Tensor, target: torch.Tensor, joint_weights: torch.Tensor,
                mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over batch of ``sum_j w_j |pred_j - target_j|_1 / sum_j w_j``."""
    w = joint_weights.to(pred)[None].expand(pred.shape[0], -1)
    if mask is not None:
        w = w * mask
    err = (pred - target).abs().sum(-1)
    return ((err * w).sum(-1) / w.sum(-1).clamp_min(1e-6)).mean()


def fitted_projection(keypoints3d: torch.Tensor, target2d: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """3D keypoints ``[B,17,3]`` projected by the weak-perspective camera that best fits the
    normalised 2D targets ``[B,17,2]``, each joint weighted by confidence times its COCO weight."""
    projected, _, _ = fit_weak_perspective(keypoints3d, target2d, weights * torch.as_tensor(COCO17_WEIGHTS).to(weights))
    return projected


def reprojection_loss(keypoints3d: torch.Tensor, target2d: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weak-perspective 2D L1 between predicted 3D keypoints and normalised 2D targets."""
    projected = fitted_projection(keypoints3d, target2d, weights)
    return weighted_l1(projected, target2d, torch.as_tensor(COCO17_WEIGHTS), weights)


def pretrain_losses(pred: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], body: SkinnedBody,
                    weights: LossWeights) -> dict[str, torch.Tensor]:
    posed = body(pred["betas"], pred["rotmats"], with_vertices=False)
    joints = posed["joints"] - posed["joints"][:, :1]
    keypoints = posed["keypoints"] - posed["joints"][:, :1]
    terms = {
        "joints3d": weighted_l1(joints, batch["joints3d"], torch.as_tensor(SMPL_JOINT_WEIGHTS)),
        "keypoints2d": reprojection_loss(keypoints, batch["target2d"], batch["weights2d"]),
        "rotations": (pred["rotmats"] - batch["rotmats"]).abs().mean(),
        "betas": (pred["betas"] - batch["betas"]).abs().mean(),
    }
    terms["total"] = sum(getattr(weights, k) * v for k, v in terms.items())
    return terms
