"""Score predictions against ground truth: MPJPE, PA-MPJPE, PVE (all in millimetres)."""

from __future__ import annotations

import numpy as np
import torch

from key2mesh.keypoints import normalize_keypoints
from key2mesh.rotations import axis_angle_to_matrix
from key2mesh.skinning import SkinnedBody
from key2mesh_train.evaluation.datasets import EvalSet
from key2mesh_train.evaluation.metrics import mpjpe, pa_mpjpe, pve


@torch.no_grad()
def posed_body(body: SkinnedBody, betas: torch.Tensor, rotmats: torch.Tensor, chunk: int = 512):
    joints, vertices = [], []
    for s in range(0, betas.shape[0], chunk):
        out = body(betas[s : s + chunk], rotmats[s : s + chunk], with_vertices=True)
        joints.append(out["joints"])
        vertices.append(out["vertices"])
    return torch.cat(joints), torch.cat(vertices)


def score(pred_joints: torch.Tensor, gt_joints: torch.Tensor, pred_vertices: torch.Tensor | None = None,
          gt_vertices: torch.Tensor | None = None) -> dict[str, float]:
    """Mean metrics in millimetres over the batch."""
    out = {
        "MPJPE": float(mpjpe(pred_joints, gt_joints).mean() * 1000),
        "PA-MPJPE": float(pa_mpjpe(pred_joints, gt_joints).mean() * 1000),
    }
    if pred_vertices is not None and gt_vertices is not None:
        out["PVE"] = float(pve(pred_vertices, gt_vertices, pred_joints, gt_joints).mean() * 1000)
    return out


@torch.no_grad()
def evaluate_network(network: torch.nn.Module, evalset: EvalSet, body: SkinnedBody) -> dict[str, float]:
    """Run ``network`` on an :class:`EvalSet` and score it against its ground truth."""
    network.eval()
    inputs = torch.from_numpy(normalize_keypoints(evalset.keypoints2d))
    pred = network(inputs)
    joints, vertices = posed_body(body, pred["betas"], pred["rotmats"])
    if evalset.poses is not None:
        rot = axis_angle_to_matrix(torch.from_numpy(evalset.poses.reshape(-1, 24, 3)).float())
        gt_joints, gt_vertices = posed_body(body, torch.from_numpy(evalset.betas).float(), rot)
        return score(joints, gt_joints, vertices, gt_vertices)
    index = evalset.smpl_joint_index
    gt = torch.from_numpy(np.asarray(evalset.joints3d)).float()
    # Joints-only GT (H36M): align on the shared pelvis, no mesh error.
    return score(joints[:, index], gt)
