"""An SMPLify-style optimisation baseline: fit the body to the same 2D keypoints.

Per person: camera-frame root orientation, 23 joint rotations (6D), 10 betas; the camera is
the closed-form weak-perspective fit, so the fit sees exactly what Key2Mesh sees. Robust
(Geman-McClure) reprojection + Gaussian pose prior (from MoCap) + shape prior + a
bend-the-right-way prior for elbows and knees. Two root initialisations (facing towards and
away from the camera), best kept, as in SMPLify.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from key2mesh.keypoints import COCO17_WEIGHTS, SMPL_JOINT_NAMES
from key2mesh.projection import fit_weak_perspective
from key2mesh.rotations import matrix_to_axis_angle, matrix_to_rot6d, rot6d_to_matrix
from key2mesh.skinning import SkinnedBody

_J = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}


@dataclass
class SMPLifyConfig:
    iterations: int = 150
    lr: float = 0.03
    pose_prior: float = 2e-3
    shape_prior: float = 5e-3
    bend_prior: float = 1e-2
    robust_sigma: float = 0.05


class PosePrior:
    """Diagonal Gaussian on body-joint axis-angles, fitted to MoCap frames."""

    def __init__(self, rotmats: torch.Tensor) -> None:
        aa = matrix_to_axis_angle(rotmats[:, 1:]).reshape(rotmats.shape[0], -1)
        self.mean = aa.mean(0)
        self.inv_std = 1.0 / aa.std(0).clamp_min(0.05)

    def __call__(self, body_rotmats: torch.Tensor) -> torch.Tensor:
        aa = matrix_to_axis_angle(body_rotmats).reshape(body_rotmats.shape[0], -1)
        return (((aa - self.mean) * self.inv_std) ** 2).mean(-1)


def _gmof(residual: torch.Tensor, sigma: float) -> torch.Tensor:
    sq = (residual ** 2).sum(-1)
    return sq * sigma ** 2 / (sq + sigma ** 2)


def fit_smplify(inputs: torch.Tensor, body: SkinnedBody, prior: PosePrior,
                cfg: SMPLifyConfig | None = None) -> dict[str, torch.Tensor]:
    """Fit to normalised keypoints ``[B,17,3]``; returns betas, rotmats (camera frame)."""
    cfg = cfg or SMPLifyConfig()
    batch = inputs.shape[0]
    target, visible = inputs[..., :2], inputs[..., 2]
    weights = visible * torch.as_tensor(COCO17_WEIGHTS)
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0]))  # facing the camera, Y-up -> y-down
    away = torch.diag(torch.tensor([-1.0, -1.0, 1.0]))  # facing away
    roots = torch.cat([flip.expand(batch, 3, 3), away.expand(batch, 3, 3)])
    mean_body = rot6d_to_matrix(matrix_to_rot6d(_mean_rotmats(prior)))[None].expand(2 * batch, -1, -1, -1)
    root6d = matrix_to_rot6d(roots).clone().requires_grad_(True)
    body6d = matrix_to_rot6d(mean_body).clone().requires_grad_(True)
    betas = torch.zeros(2 * batch, 10, requires_grad=True)
    target2, weights2 = target.repeat(2, 1, 1), weights.repeat(2, 1)
    optim = torch.optim.Adam([root6d, body6d, betas], lr=cfg.lr)
    bend_sign = torch.zeros(23, 3)
    bend_sign[_J["left_knee"] - 1, 0] = bend_sign[_J["right_knee"] - 1, 0] = -1  # knees bend +x
    bend_sign[_J["left_elbow"] - 1, 1] = 1  # left elbow bends -y
    bend_sign[_J["right_elbow"] - 1, 1] = -1  # right elbow bends +y

    def losses() -> torch.Tensor:
        rotmats = torch.cat([rot6d_to_matrix(root6d)[:, None], rot6d_to_matrix(body6d)], dim=1)
        posed = body(betas, rotmats, with_vertices=False)
        kp = posed["keypoints"] - posed["joints"][:, :1]
        projected, _, _ = fit_weak_perspective(kp, target2, weights2)
        data = (_gmof(projected - target2, cfg.robust_sigma) * weights2).sum(-1) / weights2.sum(-1).clamp_min(1)
        aa = matrix_to_axis_angle(rotmats[:, 1:])
        bend = torch.relu(aa * bend_sign).pow(2).sum((1, 2))
        return data + cfg.pose_prior * prior(rotmats[:, 1:]) + cfg.shape_prior * (betas ** 2).mean(-1) \
            + cfg.bend_prior * bend

    for _ in range(cfg.iterations):
        optim.zero_grad(set_to_none=True)
        losses().sum().backward()
        optim.step()
    with torch.no_grad():
        final = losses()
        best = (final[batch:] < final[:batch]).long()
        pick = torch.arange(batch) + best * batch
        rotmats = torch.cat([rot6d_to_matrix(root6d)[:, None], rot6d_to_matrix(body6d)], dim=1)
        return {"betas": betas[pick].detach(), "rotmats": rotmats[pick].detach()}


def _mean_rotmats(prior: PosePrior) -> torch.Tensor:
    from key2mesh.rotations import axis_angle_to_matrix

    return axis_angle_to_matrix(prior.mean.reshape(23, 3))
