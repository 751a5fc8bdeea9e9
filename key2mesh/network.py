"""The Key2Mesh network: a residual MLP from normalised 2D keypoints to SMPL parameters."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from key2mesh.keypoints import NUM_BETAS, NUM_KEYPOINTS, NUM_SMPL_JOINTS
from key2mesh.mirror import mirror_normalized_keypoints, mirror_rotmats
from key2mesh.rotations import matrix_to_rot6d, rot6d_to_matrix


@dataclass
class NetworkConfig:
    num_keypoints: int = NUM_KEYPOINTS
    hidden: int = 1024
    dropout: float = 0.2
    encoder_blocks: int = 2
    head_blocks: int = 1
    # Inference (eval mode) also reads the mirrored keypoints and averages the two answers,
    # mirrored back: one batch of twice the people through the MLP, a few mm better on held-out
    # performers. Training never mirrors inside the network (the data is mirrored instead).
    mirror_average: bool = False


class ResidualBlock(nn.Module):
    """Two Linear+BN+PReLU+Dropout layers with an identity skip (Martinez et al. 2017)."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(width, width), nn.BatchNorm1d(width), nn.PReLU(), nn.Dropout(dropout),
            nn.Linear(width, width), nn.BatchNorm1d(width), nn.PReLU(), nn.Dropout(dropout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


class Key2MeshNet(nn.Module):
    """Feature extractor (what domain adaptation retrains) + SMPL head (kept frozen then).

    Input ``[B, K, 3]`` normalised keypoints (x, y, visibility). Output 6D rotations for 24
    joints (root = camera-frame orientation) and 10 betas. Predictions are residuals on an
    identity pose and mean shape, which makes the untrained network start from a T-pose.
    """

    def __init__(self, config: NetworkConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or NetworkConfig()
        width = config.hidden
        self.encoder = nn.Sequential(
            nn.Linear(config.num_keypoints * 3, width), nn.BatchNorm1d(width), nn.PReLU(),
            nn.Dropout(config.dropout),
            *[ResidualBlock(width, config.dropout) for _ in range(config.encoder_blocks)],
        )
        self.head = nn.Sequential(*[ResidualBlock(width, config.dropout) for _ in range(config.head_blocks)])
        self.out = nn.Linear(width, NUM_BETAS + NUM_SMPL_JOINTS * 6)
        nn.init.normal_(self.out.weight, std=1e-3)
        nn.init.zeros_(self.out.bias)
        identity6d = torch.tensor([1.0, 0, 0, 0, 1, 0]).repeat(NUM_SMPL_JOINTS)
        self.register_buffer("pose_offset", identity6d)

    def features(self, keypoints: torch.Tensor) -> torch.Tensor:
        """The 1024-d features the domain critic looks at."""
        return self.encoder(keypoints.flatten(1))

    def decode(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        raw = self.out(self.head(features))
        betas = raw[:, :NUM_BETAS]
        pose6d = (raw[:, NUM_BETAS:] + self.pose_offset).reshape(-1, NUM_SMPL_JOINTS, 6)
        return {"betas": betas, "pose6d": pose6d, "rotmats": rot6d_to_matrix(pose6d)}

    def forward(self, keypoints: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.training or not self.config.mirror_average:
            return self.decode(self.features(keypoints))
        count = keypoints.shape[0]
        both = self.decode(self.features(torch.cat([keypoints, mirror_normalized_keypoints(keypoints)])))
        # Mean of the two rotations, projected back onto rotations through the 6D form.
        rotmats = both["rotmats"][:count] + mirror_rotmats(both["rotmats"][count:])
        pose6d = matrix_to_rot6d(rotmats)
        return {"betas": (both["betas"][:count] + both["betas"][count:]) / 2, "pose6d": pose6d,
                "rotmats": rot6d_to_matrix(pose6d)}


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@torch.no_grad()
def fold_batchnorm(network: Key2MeshNet) -> Key2MeshNet:
    """Inference copy with every eval-mode BatchNorm folded into the Linear before it.

    Same outputs in eval mode, fewer ops: at batch 1 each op's overhead, not the
    arithmetic, is what the deployed graph pays for.
    """
    import copy

    folded = copy.deepcopy(network).eval()
    for module in folded.modules():
        if not isinstance(module, nn.Sequential):
            continue
        layers = list(module)
        for i in range(len(layers) - 1):
            linear, norm = layers[i], layers[i + 1]
            if isinstance(linear, nn.Linear) and isinstance(norm, nn.BatchNorm1d):
                scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
                linear.weight.mul_(scale[:, None])
                linear.bias.copy_((linear.bias - norm.running_mean) * scale + norm.bias)
                module[i + 1] = nn.Identity()
    return folded
