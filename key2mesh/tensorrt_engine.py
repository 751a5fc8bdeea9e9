"""TensorRT engines built from the exported ONNX graph, on the machine that runs them.

Engines are tied to the TensorRT version and the GPU, so they are never shipped: each is
cached under a name holding the TensorRT version, GPU name and ONNX hash, so a stale engine
is never used.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import torch

from key2mesh.export import INPUT_NAME, file_sha256
from key2mesh.keypoints import NUM_KEYPOINTS

log = logging.getLogger(__name__)


def tensorrt_available() -> tuple[bool, str]:
    """(usable, reason). Never touches TensorRT unless a CUDA GPU is present."""
    if not torch.cuda.is_available():
        return False, "no CUDA GPU visible"
    try:
        import tensorrt  # noqa: F401
    except ImportError as err:
        return False, f"tensorrt not installed ({err})"
    return True, "ok"


def engine_cache_path(onnx_path: str | os.PathLike, cache_dir: str | os.PathLike, fp16: bool) -> Path:
    import tensorrt as trt

    gpu = re.sub(r"[^A-Za-z0-9]+", "-", torch.cuda.get_device_name(0)).strip("-")
    digest = file_sha256(onnx_path)[:16]
    name = f"{Path(onnx_path).stem}-trt{trt.__version__}-{gpu}-{digest}{'-fp16' if fp16 else ''}.engine"
    return Path(cache_dir) / name


def build_engine(onnx_path: str | os.PathLike, cache_dir: str | os.PathLike | None = None, fp16: bool = False,
                 max_batch: int = 64) -> Path:
    """Build (or reuse from the cache) a TensorRT engine for ``onnx_path``."""
    ok, reason = tensorrt_available()
    if not ok:
        raise RuntimeError(f"cannot build a TensorRT engine: {reason}")
    import tensorrt as trt

    cache_dir = Path(cache_dir or Path(onnx_path).parent / "engines")
    path = engine_cache_path(onnx_path, cache_dir, fp16)
    if path.exists():
        log.info("reusing cached engine %s", path)
        return path
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    profile.set_shape(INPUT_NAME, (1, NUM_KEYPOINTS, 3), (1, NUM_KEYPOINTS, 3), (max_batch, NUM_KEYPOINTS, 3))
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT engine build failed")
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(bytes(serialized))
    os.replace(tmp, path)  # an interrupted build never leaves a half-written engine
    log.info("built TensorRT engine %s", path)
    return path
