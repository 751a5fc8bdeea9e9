"""Cameras: pinhole projection and the closed-form weak-perspective fit.

The network predicts a camera-frame orientation but no camera, so 2D losses and overlays
align predicted keypoints to the observed ones with the best scale and offset (a weighted
least-squares fit, differentiable) instead of learning a camera the input cannot determine.
"""

from __future__ import annotations

import numpy as np
import torch

from key2mesh.keypoints import CONFIDENCE_THRESHOLD


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


def solve_translation(points: np.ndarray, pixels: np.ndarray, weights: np.ndarray, camera_matrix: np.ndarray) -> np.ndarray | None:
    """Camera-frame translation ``t [3]`` that best projects ``points + t`` onto ``pixels``.

    ``points [N,3]`` are root-relative, camera-oriented 3D keypoints, ``pixels [N,2]`` the
    detections, ``weights [N]`` their confidences, ``camera_matrix`` the 3x3 K. Joints below
    the confidence threshold count as missing, as in the network's input: a detector's
    near-zero guesses (or placeholders for unseen joints) must not pull the depth. The pinhole
    equations are linear in ``t`` (DLT-style), so this is one weighted least-squares solve;
    returns None when fewer than 3 joints are usable or the person would be behind the camera.
    """
    fx, fy, cx, cy = camera_matrix[0, 0], camera_matrix[1, 1], camera_matrix[0, 2], camera_matrix[1, 2]
    ok = (weights >= CONFIDENCE_THRESHOLD) & np.isfinite(pixels).all(-1) & np.isfinite(points).all(-1)
    if ok.sum() < 3 or fx <= 0 or fy <= 0:
        return None
    p, uv, w = points[ok].astype(np.float64), pixels[ok].astype(np.float64), np.sqrt(weights[ok])
    du, dv = uv[:, 0] - cx, uv[:, 1] - cy
    zeros = np.zeros_like(du)
    rows_u = np.stack([np.full_like(du, fx), zeros, -du], -1)
    rows_v = np.stack([zeros, np.full_like(dv, fy), -dv], -1)
    a = np.concatenate([rows_u * w[:, None], rows_v * w[:, None]])
    b = np.concatenate([(du * p[:, 2] - fx * p[:, 0]) * w, (dv * p[:, 2] - fy * p[:, 1]) * w])
    t, *_ = np.linalg.lstsq(a, b, rcond=None)
    if t[2] <= 0.1:
        return None
    return t
