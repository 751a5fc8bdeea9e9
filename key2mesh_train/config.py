"""Typed training configuration, read from YAML files with dotted command-line overrides."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from key2mesh import paths
from key2mesh.network import NetworkConfig
from key2mesh_train.keypoint_noise import DetectorNoise
from key2mesh_train.losses import LossWeights
from key2mesh_train.synthetic import SyntheticConfig

CONFIG_DIR = Path(str(resources.files("key2mesh_train") / "configs"))


@dataclass
class DataConfig:
    # MoCap roots (AMASS .npz and CMU .bvh, searched recursively). Missing roots are
    # skipped; if nothing is found, procedural motion is generated under cache_dir.
    mocap: list[str] = field(default_factory=lambda: [str(paths.shared_mocap())])
    cache_dir: str = field(default_factory=lambda: str(paths.mocap_cache()))
    procedural_sequences: int = 180
    frame_stride: int = 2
    held_out_fraction: float = 0.2
    # Performers kept out of training (folder names, e.g. CMU subject "09"); empty: a stable
    # hash of each subject id picks about held_out_fraction of them.
    held_out_subjects: list[str] = field(default_factory=list)
    body_model: str | None = None  # None: $KEY2MESH_BODY_MODEL or the shipped stand-in


@dataclass
class PretrainConfig:
    steps: int = 4000
    batch_size: int = 256
    lr: float = 1e-3
    lr_decay_at: float = 0.7  # fraction of steps after which lr drops 10x
    seed: int = 0
    checkpoint: str = field(default_factory=lambda: str(paths.trained_checkpoint()))
    # Fine-tuning: start from these weights (a finished checkpoint, e.g. the shipped model) with
    # a fresh optimiser; the network is built from `network:` here, so dropout may differ.
    init_from: str | None = None
    checkpoint_every: int = 500
    log_every: int = 50
    num_threads: int = 0  # 0: torch default
    # On a GPU, draw the synthetic batches there too (false: on the CPU, then copied over).
    synthesize_on_device: bool = True


@dataclass
class AdaptConfig:
    epochs: int = 5
    steps_per_epoch: int = 200
    batch_size: int = 128
    lr: float = 1e-4
    critic_steps: int = 10
    gradient_penalty: float = 50.0
    w_reprojection: float = 10.0
    w_domain: float = 0.1
    w_feature: float = 20.0
    w_source: float = 1.0  # supervised MoCap loss keeps the head's input distribution sane
    # Beyond the paper: supervised steps on MoCap carrying the target's own detection noise
    # (key2mesh_train/adaptation/warm_start.py) before the adversarial stage; 0 runs the recipe alone.
    warm_start_steps: int = 300
    # Label-free choice of what is written: the source, the warm start and every adversarial
    # epoch are scored on MoCap carrying the target's own residuals (validation_people of them),
    # and the best one is kept; false keeps the last epoch. Why: without 3D labels the
    # adversarial stage cannot tell that it is making the model worse, and on our measured
    # target it did (docs/ADAPTATION.md).
    keep_best: bool = True
    validation_people: int = 1024
    seed: int = 0
    checkpoint: str = field(default_factory=lambda: str(paths.adapted_checkpoint()))


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    losses: LossWeights = field(default_factory=LossWeights)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    benchmark_noise: DetectorNoise = field(default_factory=lambda: DetectorNoise(
        sigma=0.012, hip_raise=0.02, hip_widen=0.1, miss_prob=0.05, low_conf_prob=0.1))


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(known)
    if unknown:
        raise ValueError(f"unknown config key(s) {sorted(unknown)} in {where}; valid: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in values.items():
        f = known[name]
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise ValueError(f"{where}.{name} is a section: give it keys, not {value!r}")
            kwargs[name] = _build(type(default), value, f"{where}.{name}")
        else:
            kwargs[name] = _coerce(value, hints[name], f"{where}.{name}")
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` as the field's type. YAML reads ``1e-4`` as a string and ``5`` as an int;
    a wrong type should fail here, naming the key, not deep inside training."""
    kinds = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for kind in kinds:
        base = typing.get_origin(kind) or kind
        if value is None and kind is type(None):
            return None
        if base is bool and isinstance(value, bool):
            return value
        if base in (int, float) and isinstance(value, int | float | str) and not isinstance(value, bool):
            try:
                number = float(value)
            except ValueError:
                continue
            if base is float:
                return number
            if number.is_integer():
                return int(number)
        if base is str and isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        if base is list and isinstance(value, list):
            return value
    expected = " or ".join(getattr(k, "__name__", str(k)) for k in kinds)
    raise ValueError(f"{where} must be {expected}, got {value!r}")


def _set_dotted(values: dict[str, Any], dotted: str, raw: str) -> None:
    keys = dotted.split(".")
    target = values
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = yaml.safe_load(raw)


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults <- YAML file <- ``key.sub=value`` overrides."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file() and (CONFIG_DIR / path).is_file():
            path = CONFIG_DIR / path
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: config must be a mapping")
        values = loaded
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        _set_dotted(values, key, raw)
    return _build(TrainConfig, values, str(path or "defaults"))


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)
