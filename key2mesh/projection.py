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


def camera_matrix_problem(camera_matrix: np.ndarray, width: int, height: int) -> str | None:
    """What is wrong with a calibration ``K [3,3]`` for images of ``width x height`` (0: not
    known), or None. Focal lengths must be finite and positive; the principal point finite
    and within half an image of the image (a real camera's lies near the centre): a NaN or
    infinite K hangs or breaks the least-squares solve, and a far-off principal point puts
    people kilometres away."""
    k = np.asarray(camera_matrix, dtype=np.float64)
    if k.shape != (3, 3) or not np.isfinite(k).all():
        return "non-finite values in K"
    if k[0, 0] <= 0 or k[1, 1] <= 0:
        return f"focal lengths must be positive (fx={k[0, 0]:g}, fy={k[1, 1]:g})"
    if width > 0 and height > 0:
        cx, cy = k[0, 2], k[1, 2]
        if not (-0.5 * width <= cx <= 1.5 * width and -0.5 * height <= cy <= 1.5 * height):
            return f"principal point ({cx:g}, {cy:g}) is far outside the {width}x{height} image"
    return None


def solve_translation(points: np.ndarray, pixels: np.ndarray, weights: np.ndarray, camera_matrix: np.ndarray) -> np.ndarray | None:
    """Camera-frame translation ``t [3]`` that best projects ``points + t`` onto ``pixels``.

    ``points [N,3]`` are root-relative, camera-oriented 3D keypoints, ``pixels [N,2]`` the
    detections, ``weights [N]`` their confidences, ``camera_matrix`` the 3x3 K. Returns None
    when fewer than 3 joints are usable or the person would be behind the camera. One person
    of :func:`solve_translations`.
    """
    t = solve_translations(points[None], pixels[None], weights[None], camera_matrix)[0]
    return None if np.isnan(t).any() else t


def solve_translations(points: np.ndarray, pixels: np.ndarray, weights: np.ndarray,
                       camera_matrix: np.ndarray) -> np.ndarray:
    """Translations ``[P,3]`` for ``P`` people at once (``points [P,N,3]``, ``pixels [P,N,2]``,
    ``weights [P,N]``); a row of NaN where a person cannot be placed.

    Joints below the confidence threshold count as missing, as in the network's input: a
    detector's near-zero guesses (or placeholders for unseen joints) must not pull the depth.
    The pinhole equations are linear in ``t`` (DLT-style): per joint ``fx (x + tx) = du (z + tz)``
    and ``fy (y + ty) = dv (z + tz)`` with ``du, dv`` the pixel's offset from the principal
    point. Their weighted least-squares normal equations have a fixed pattern, so ``tx`` and
    ``ty`` are eliminated by hand and each person costs seven weighted sums: one batched
    product for everyone, no linear solver (for a few people LAPACK's per-call setup, or a
    general 3x3 solve in numpy, costs more than the arithmetic). Nothing non-finite is used.
    """
    people = points.shape[0]
    out = np.full((people, 3), np.nan)
    k = np.asarray(camera_matrix, dtype=np.float64)
    if people == 0 or not np.isfinite(k).all() or k[0, 0] <= 0 or k[1, 1] <= 0:
        return out
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    p, uv, w = points.astype(np.float64), pixels.astype(np.float64), weights.astype(np.float64)
    finite = np.isfinite(uv).all(-1) & np.isfinite(p).all(-1)  # [P,N]
    ok = finite & np.isfinite(w) & (w >= CONFIDENCE_THRESHOLD)  # a joint with a NaN or inf weight is missing
    if not finite.all():  # zero weight is not enough: 0 * NaN is NaN
        p, uv = np.where(finite[..., None], p, 0.0), np.where(finite[..., None], uv, 0.0)
    w = np.where(ok, w, 0.0)
    du, dv = uv[..., 0] - cx, uv[..., 1] - cy  # [P,N]
    b1, b2 = du * p[..., 2] - fx * p[..., 0], dv * p[..., 2] - fy * p[..., 1]  # right-hand sides
    # Weighted sums per person: W, Su, Sv, Suu + Svv, B1, B2, C = sum w (du b1 + dv b2).
    terms = np.stack([np.ones_like(du), du, dv, du * du + dv * dv, b1, b2, du * b1 + dv * b2], -1)  # [P,N,7]
    total, su, sv, suv, sb1, sb2, c = (w[:, None] @ terms)[:, 0].T  # each [P]
    # Normal equations: fx^2 W tx - fx Su tz = fx B1; fy^2 W ty - fy Sv tz = fy B2;
    # -fx Su tx - fy Sv ty + (Suu + Svv) tz = -C. Putting tx, ty from the first two into the
    # third leaves tz * spread = Su B1 + Sv B2 - C W, where spread = W^2 times the weighted
    # variance of the pixel offsets: zero when every usable pixel is the same point.
    spread = total * suv - su * su - sv * sv
    usable = (ok.sum(-1) >= 3) & (spread > 1e-12 * total * suv)
    safe = np.where(usable, spread, 1.0)
    tz = (su * sb1 + sv * sb2 - c * total) / safe
    safe_total = np.where(usable, total, 1.0)
    solved = np.stack([(sb1 + su * tz) / (fx * safe_total), (sb2 + sv * tz) / (fy * safe_total), tz], -1)
    usable &= np.isfinite(solved).all(-1) & (tz > 0.1)  # behind (or at) the camera: no placement
    out[usable] = solved[usable]
    return out
