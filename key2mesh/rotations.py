"""Rotation conversions in torch, all export-friendly (no data-dependent control flow)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rot6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """6D rotation ``[..., 6]`` -> rotation matrix ``[..., 3, 3]`` by Gram-Schmidt.

    The 6D form is the first two *columns* of the matrix (Zhou et al., CVPR 2019), the
    continuous representation the paper regresses.
    """
    a1, a2 = x[..., 0:3], x[..., 3:6]
    b1 = F.normalize(a1, dim=-1, eps=1e-8)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1, eps=1e-8)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(m: torch.Tensor) -> torch.Tensor:
    """Rotation matrix ``[..., 3, 3]`` -> 6D ``[..., 6]`` (first two columns)."""
    return torch.cat([m[..., :, 0], m[..., :, 1]], dim=-1)


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``[..., 3]`` -> rotation matrix ``[..., 3, 3]`` (Rodrigues)."""
    angle = aa.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    axis = aa / angle
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*aa.shape[:-1], 3, 3)
    s, c = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand_as(k)
    return eye + s * k + (1 - c) * (k @ k)


def matrix_to_axis_angle(m: torch.Tensor) -> torch.Tensor:
    """Rotation matrix ``[..., 3, 3]`` -> axis-angle ``[..., 3]``, stable near 0 and pi."""
    # Through the quaternion: avoids the 1/sin(angle) blow-up of the direct formula.
    q = matrix_to_quaternion(m)
    w, xyz = q[..., :1], q[..., 1:]
    norm = xyz.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(norm, w)
    scale = torch.where(norm > 1e-8, angle / norm.clamp_min(1e-12), 2.0 / w.clamp_min(1e-12))
    return xyz * scale


def matrix_to_quaternion(m: torch.Tensor) -> torch.Tensor:
    """Rotation matrix ``[..., 3, 3]`` -> unit quaternion ``[..., 4]`` (w, x, y, z), w >= 0."""
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    q_abs = torch.sqrt(torch.clamp(torch.stack([
        1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22,
    ], dim=-1), min=1e-12))
    candidates = torch.stack([
        torch.stack([q_abs[..., 0] ** 2, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
        torch.stack([m[..., 2, 1] - m[..., 1, 2], q_abs[..., 1] ** 2, m[..., 1, 0] + m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0]], -1),
        torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] + m[..., 0, 1], q_abs[..., 2] ** 2, m[..., 2, 1] + m[..., 1, 2]], -1),
        torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 2, 1] + m[..., 1, 2], q_abs[..., 3] ** 2], -1),
    ], dim=-2) / (2 * q_abs[..., None].clamp_min(0.1))
    best = q_abs.argmax(-1)
    q = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = F.normalize(q, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def euler_to_matrix(yaw: torch.Tensor, pitch: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """Rotation ``R = Ry(yaw) @ Rx(pitch) @ Rz(roll)`` for a Y-up body, angles in radians."""
    def rot(axis: int, a: torch.Tensor) -> torch.Tensor:
        c, s = torch.cos(a), torch.sin(a)
        o, z = torch.ones_like(a), torch.zeros_like(a)
        if axis == 0:
            rows = [o, z, z, z, c, -s, z, s, c]
        elif axis == 1:
            rows = [c, z, s, z, o, z, -s, z, c]
        else:
            rows = [c, -s, z, s, c, z, z, z, o]
        return torch.stack(rows, -1).reshape(*a.shape, 3, 3)

    return rot(1, yaw) @ rot(0, pitch) @ rot(2, roll)
