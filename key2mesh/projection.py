"""Cameras: pinhole projection and the closed-form weak-perspective fit.

The network predicts a camera-frame orientation but no camera, so 2D losses and overlays
align predicted keypoints to the observed ones with the best scale and offset (a weighted
least-squares fit, differentiable) instead of learning a camera the input cannot determine.
"""

from __future__ import annotations

import torch


def project_pinhole(points: torch.Tensor, focal: torch.Tensor, principal: torch.Tensor) -> torch.Tensor:
    """Camera-frame points ``[B,N,3]`` (OpenCV axes, z forward) -> pixels ``[B,N,2]``."""
    z = points[..., 2:3].clamp_min(1e-3)
    return points[..., :2] / z * focal[:, None, None] + principal[:, None, :]


def fit_weak_perspective(points: torch.Tensor, target: torch.Tensor, weights: torch.Tensor):
    """Scale ``s [B]`` and offset ``t [B,2]`` minimising ``sum w |s*xy + t - target|^2``.

    ``points`` ``[B,N,3]`` camera-frame, ``target`` ``[B,N,2]``, ``weights`` ``[B,N]``.
    Returns ``(projected [B,N,2], scale, offset)``.
    """
    xy = points[..., :2]
    w = weights.clamp_min(0)[..., None]
    total = w.sum(1, keepdim=True).clamp_min(1e-6)
    xy_mean = (w * xy).sum(1, keepdim=True) / total
    tg_mean = (w * target).sum(1, keepdim=True) / total
    xc, tc = xy - xy_mean, target - tg_mean
    scale = (w * xc * tc).sum((1, 2)) / (w * xc * xc).sum((1, 2)).clamp_min(1e-8)
    scale = scale.clamp_min(1e-3)
    offset = tg_mean[:, 0] - scale[:, None] * xy_mean[:, 0]
    return scale[:, None, None] * xy + offset[:, None], scale, offset
