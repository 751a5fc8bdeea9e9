"""3D accuracy metrics (MPJPE, PA-MPJPE, PVE) and the one Procrustes alignment they share."""

from __future__ import annotations

import torch

from key2mesh.keypoints import SMPL_JOINT_NAMES

PELVIS = SMPL_JOINT_NAMES.index("pelvis")
HIPS = (SMPL_JOINT_NAMES.index("left_hip"), SMPL_JOINT_NAMES.index("right_hip"))
# The 14 body joints of the common 3DPW / Human3.6M protocol (LSP order of parts), as SMPL
# joints: no spine, hands or toes, whose rotations 17 body keypoints barely show. SMPL's neck and
# head joints stand in for the protocol's neck and head top.
BODY14 = tuple(SMPL_JOINT_NAMES.index(name) for name in (
    "right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle", "right_wrist",
    "right_elbow", "right_shoulder", "left_shoulder", "left_elbow", "left_wrist", "neck", "head"))


def procrustes_align(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Similarity-align ``source [B,N,3]`` to ``target [B,N,3]`` (rotation, scale, shift).

    Umeyama's closed form with a reflection guard: returns ``s R source + t`` minimising the
    squared distance to ``target``.
    """
    src = source.double()
    tgt = target.double()
    mu_s, mu_t = src.mean(1, keepdim=True), tgt.mean(1, keepdim=True)
    xs, xt = src - mu_s, tgt - mu_t
    var_s = (xs ** 2).sum((1, 2))
    cov = xt.transpose(1, 2) @ xs  # [B,3,3]
    u, sigma, vt = torch.linalg.svd(cov)
    d = torch.sign(torch.det(u @ vt))
    fix = torch.ones_like(sigma)
    fix[:, 2] = d
    rot = u @ torch.diag_embed(fix) @ vt
    scale = (sigma * fix).sum(-1) / var_s.clamp_min(1e-12)
    aligned = scale[:, None, None] * (xs @ rot.transpose(1, 2)) + mu_t
    return aligned.to(source.dtype)


def _root_align(points: torch.Tensor, root: str) -> torch.Tensor:
    if root == "pelvis":
        return points - points[:, PELVIS : PELVIS + 1]
    if root == "hips":
        return points - points[:, list(HIPS)].mean(1, keepdim=True)
    raise ValueError(f"root must be 'pelvis' or 'hips', got {root!r}")


def mpjpe(pred: torch.Tensor, target: torch.Tensor, root: str = "pelvis") -> torch.Tensor:
    """Per-sample mean joint error after root alignment, in the input's units ``[B]``."""
    return (_root_align(pred, root) - _root_align(target, root)).norm(dim=-1).mean(-1)


def pa_mpjpe(pred: torch.Tensor, target: torch.Tensor, joints: tuple[int, ...] | None = None) -> torch.Tensor:
    """Per-sample mean joint error after Procrustes alignment ``[B]``, over ``joints`` only
    (aligned on them too) when given, e.g. :data:`BODY14`."""
    if joints is not None:
        pred, target = pred[:, list(joints)], target[:, list(joints)]
    return (procrustes_align(pred, target) - target).norm(dim=-1).mean(-1)


def pve(pred_vertices: torch.Tensor, target_vertices: torch.Tensor, pred_joints: torch.Tensor,
        target_joints: torch.Tensor) -> torch.Tensor:
    """Per-vertex error ``[B]`` with both meshes shifted so their pelvis joints coincide."""
    pred = pred_vertices - pred_joints[:, PELVIS : PELVIS + 1]
    tgt = target_vertices - target_joints[:, PELVIS : PELVIS + 1]
    return (pred - tgt).norm(dim=-1).mean(-1)
