"""Left/right mirroring of keypoints and poses: the one definition that pre-training's mirror
augmentation and the network's mirror-averaged inference share.

A person mirrored through the camera's (or body's) x = 0 plane swaps left and right: COCO-17
keypoints swap sides and their normalised x becomes ``1 - x``; every SMPL joint rotation swaps
sides and is conjugated by the reflection ``diag(-1, 1, 1)``. Mirroring twice is the identity.
"""

from __future__ import annotations

import torch

from key2mesh.keypoints import COCO17_FLIP, SMPL_FLIP

# diag(-1, 1, 1) @ R @ diag(-1, 1, 1) flips the sign of the entries that mix x with y or z.
_CONJUGATION_SIGNS = torch.tensor([[1.0, -1.0, -1.0], [-1.0, 1.0, 1.0], [-1.0, 1.0, 1.0]])


def mirror_normalized_keypoints(keypoints: torch.Tensor) -> torch.Tensor:
    """Network input ``[B,17,3]`` (normalised x, y, visibility) of the mirrored person. Missing
    joints sit at 0.5, which mirroring keeps."""
    mirrored = keypoints[:, list(COCO17_FLIP)]
    return torch.cat([1.0 - mirrored[..., :1], mirrored[..., 1:]], dim=-1)


def mirror_rotmats(rotmats: torch.Tensor) -> torch.Tensor:
    """SMPL rotations ``[B,24,3,3]`` (root in any frame whose x axis is the mirror's normal) of
    the mirrored pose."""
    return rotmats[:, list(SMPL_FLIP)] * _CONJUGATION_SIGNS.to(rotmats)
