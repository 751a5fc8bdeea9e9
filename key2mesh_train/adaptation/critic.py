"""The domain critic: a Wasserstein critic on the network's 1024-d features (WGAN-GP)."""

from __future__ import annotations

import torch
from torch import nn


class Critic(nn.Module):
    """Linear 1024-1024, PReLU, Dropout, Linear 1024-1024, PReLU, Linear 1; no normalisation
    (batch statistics would leak between the two domains and break the gradient penalty)."""

    def __init__(self, width: int = 1024, dropout: float = 0.2) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(width, width), nn.PReLU(), nn.Dropout(dropout),
            nn.Linear(width, width), nn.PReLU(),
            nn.Linear(width, 1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features).squeeze(-1)


def gradient_penalty(critic: Critic, source: torch.Tensor, target: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """WGAN-GP: push the critic's gradient norm to 1 on random source/target interpolates."""
    n = min(source.shape[0], target.shape[0])
    alpha = torch.rand(n, 1, generator=generator)
    mixed = (alpha * source[:n].detach() + (1 - alpha) * target[:n].detach()).requires_grad_(True)
    scores = critic(mixed)
    grad, = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return ((grad.norm(dim=-1) - 1) ** 2).mean()


def domain_accuracy(source_scores: torch.Tensor, target_scores: torch.Tensor) -> float:
    """Share of samples the critic puts on the right side of the midpoint of its two means:
    0.5 means the domains are indistinguishable in feature space."""
    threshold = (source_scores.mean() + target_scores.mean()) / 2
    correct = (source_scores > threshold).float().sum() + (target_scores <= threshold).float().sum()
    return float(correct / (source_scores.numel() + target_scores.numel()))
