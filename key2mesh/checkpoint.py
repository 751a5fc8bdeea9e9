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


PRECISIONS = ("fp32", "fp16", "int8")


def quantize_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-row int8: ``weight [out, in]`` ~= ``q [out, in] * scale [out, 1]``.
    One scale per row keeps a row of small weights from losing its precision to a large one."""
    scale = weight.abs().amax(1, keepdim=True).clamp_min(1e-12) / 127.0
    return torch.round(weight / scale).clamp(-127, 127).to(torch.int8), scale.float()


def save_checkpoint(path: str | os.PathLike, network: Key2MeshNet, meta: dict[str, Any] | None = None,
                    extra_state: dict[str, Any] | None = None, precision: str = "fp32") -> Path:
    """Write atomically: a temporary file renamed over ``path``. A write that fails (a full
    disk) leaves the previous file intact and no temporary behind.

    ``precision``: how the weights are stored; they always load back as
    fp32. ``fp16`` halves the file; ``int8`` stores every Linear weight matrix as int8 with one
    fp32 scale per output row (the rest fp16), a quarter of fp32: what lets a wider shipped
    model stay under the repository's size limit."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in network.state_dict().items()}
    scales = {}
    if precision == "int8":
        linear = {f"{name}.weight" for name, m in network.named_modules() if isinstance(m, torch.nn.Linear)}
        for key in linear:
            state[key], scales[key] = quantize_int8(state[key].float())
    if precision != "fp32":
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    payload = {
        "format": "key2mesh-checkpoint-v1",
        "network_config": dataclasses.asdict(network.config),
        "state_dict": state,
        "meta": {**(meta or {}), "precision": precision},
        "extra_state": extra_state or {},
    }
    if scales:
        payload["int8_scales"] = scales
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
    scales = payload.get("int8_scales", {})
    state = {k: v.float() * scales[k] if k in scales else v.float() if v.is_floating_point() else v
             for k, v in payload["state_dict"].items()}
    network.load_state_dict(state)
    return network.eval(), payload
