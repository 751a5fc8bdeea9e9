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


class UnfinishedCheckpointError(ValueError):
    """A checkpoint whose training run stopped before its planned end."""


def partial_path(path: str | os.PathLike) -> Path:
    """Where a run keeps its periodic state: beside the result, never mistaken for it."""
    path = Path(path)
    return path.with_name(path.stem + ".partial" + path.suffix)


def run_progress(payload: dict[str, Any]) -> tuple[int, int | None, bool]:
    """``(steps done, steps planned or None, finished)`` of a loaded checkpoint's run. Files
    from before runs recorded ``finished`` count as finished unless their step falls short of
    the steps their own config planned."""
    meta = payload.get("meta", {})
    done = int(meta.get("step", 0))
    planned = meta.get("steps_planned")
    if planned is None:
        stage_config = meta.get("config", {}).get(meta.get("stage", ""), {})
        planned = stage_config.get("steps") if isinstance(stage_config, dict) else None
    finished = bool(meta["finished"]) if "finished" in meta else (planned is None or done >= int(planned))
    return done, (int(planned) if planned is not None else None), finished


def save_checkpoint(path: str | os.PathLike, network: Key2MeshNet, meta: dict[str, Any] | None = None,
                    extra_state: dict[str, Any] | None = None, half: bool = False) -> Path:
    """Write atomically: a temporary file renamed over ``path``. A write that fails (a full
    disk) leaves the previous file intact and no temporary behind. ``half`` stores fp16
    weights (the shipped model; they load back as fp32)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = network.state_dict()
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    payload = {
        "format": "key2mesh-checkpoint-v1",
        "network_config": dataclasses.asdict(network.config),
        "state_dict": state,
        "meta": meta or {},
        "extra_state": extra_state or {},
    }
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)  # never leave a half-written checkpoint behind
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise OSError(f"could not write checkpoint {path} ({err}); any previous file there is intact") from err
        raise
    return path


def load_checkpoint(path: str | os.PathLike, allow_unfinished: bool = False) -> tuple[Key2MeshNet, dict[str, Any]]:
    """Rebuild the network in eval mode; returns ``(network, payload)``.

    A checkpoint of a run that did not finish is refused (it would silently give worse
    meshes) unless ``allow_unfinished`` (resuming it).
    """
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
    done, planned, finished = run_progress(payload)
    if not finished and not allow_unfinished:
        stage = payload.get("meta", {}).get("stage", "training")
        raise UnfinishedCheckpointError(
            f"{path} is an unfinished {stage} run (step {done} of {planned}); finish it with "
            f"'key2mesh-train {stage} --resume' or delete it to start over")
    network = Key2MeshNet(NetworkConfig(**payload["network_config"]))
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    network.load_state_dict(state)
    return network.eval(), payload
