"""Checkpoints: network weights plus the config needed to rebuild it, nothing pickled.

Loaded with ``torch.load(weights_only=True)`` so a checkpoint from a bag or a colleague
cannot execute code.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from key2mesh.network import Key2MeshNet, NetworkConfig


def save_checkpoint(path: str | os.PathLike, network: Key2MeshNet, meta: dict[str, Any] | None = None,
                    extra_state: dict[str, Any] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": "key2mesh-checkpoint-v1",
        "network_config": dataclasses.asdict(network.config),
        "state_dict": network.state_dict(),
        "meta": meta or {},
        "extra_state": extra_state or {},
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)  # never leave a half-written checkpoint behind
    return path


def load_checkpoint(path: str | os.PathLike) -> tuple[Key2MeshNet, dict[str, Any]]:
    """Rebuild the network in eval mode; returns ``(network, payload)``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"checkpoint not found: {path}. Produce one with 'key2mesh-train pretrain' "
            f"(see README)."
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for corrupt files
        raise ValueError(f"{path}: not a readable key2mesh checkpoint ({err})") from err
    if not isinstance(payload, dict) or payload.get("format") != "key2mesh-checkpoint-v1":
        raise ValueError(f"{path}: not a key2mesh checkpoint (missing format tag)")
    network = Key2MeshNet(NetworkConfig(**payload["network_config"]))
    network.load_state_dict(payload["state_dict"])
    return network.eval(), payload
