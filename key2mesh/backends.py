"""Runtime backends for the fused graph behind one interface.

``tensorrt`` (engine on an NVIDIA GPU), ``onnxruntime`` (CUDA or CPU provider) and ``torch``
(checkpoint + body model, on the GPU where PyTorch sees one) all take normalised keypoints
``[B,17,3]`` float32 and return the same named arrays. ``auto`` picks the fastest one that is
present and says which. ``auto`` keeps ONNX Runtime ahead of PyTorch even where PyTorch has a
GPU and ONNX Runtime only the CPU: on an H200 machine the eager PyTorch graph took 6.3 ms at
batch 1 on the GPU against 2.0 ms on 16 CPU cores through ONNX Runtime (it won only at batch 64).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from key2mesh.export import INPUT_NAME, body_sidecar_path
from key2mesh.fused_graph import OUTPUT_NAMES
from key2mesh.tensorrt_engine import build_engine, tensorrt_available

log = logging.getLogger(__name__)
BACKEND_ORDER = ("tensorrt", "onnxruntime", "torch")


class BackendUnavailable(RuntimeError):
    """The requested backend cannot run here; the message says why."""


class Backend:
    name = "base"
    provider = "cpu"  # the device that runs the graph: ONNX Runtime's provider name, or cpu / cuda
    faces: np.ndarray | None = None  # mesh triangles, constant
    num_vertices: int = 0

    @property
    def description(self) -> str:
        """What runs the graph, for logs: backend, device and, for ONNX Runtime, the graph file."""
        return f"{self.name} ({self.provider})"

    def run(self, keypoints: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    @staticmethod
    def _check(keypoints: np.ndarray) -> np.ndarray:
        keypoints = np.ascontiguousarray(keypoints, dtype=np.float32)
        if keypoints.ndim != 3 or keypoints.shape[2] != 3:
            raise ValueError(f"keypoints must be [B,K,3], got {keypoints.shape}")
        if not np.isfinite(keypoints).all():
            raise ValueError("normalised keypoints contain NaN/inf; normalise_keypoints() masks them")
        return keypoints


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, checkpoint: str | os.PathLike, body_model: str | os.PathLike | None = None,
                 device: str | None = None) -> None:
        from key2mesh.body_model import load_skinned_body
        from key2mesh.checkpoint import load_checkpoint
        from key2mesh.fused_graph import KeypointsToMesh

        network, _ = load_checkpoint(checkpoint)
        self.body = load_skinned_body(body_model)
        self.faces = self.body.faces.numpy().astype(np.int32)
        self.num_vertices = self.body.num_vertices
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.provider = self.device.type  # what ran it, as ONNX Runtime's backend reports its provider
        self.model = KeypointsToMesh(network, self.body).eval().to(self.device)

    @torch.inference_mode()
    def run(self, keypoints: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.model(torch.from_numpy(self._check(keypoints)).to(self.device))
        return {name: value.cpu().numpy() for name, value in zip(OUTPUT_NAMES, outputs, strict=True)}


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, onnx_path: str | os.PathLike, threads: int = 0, spinning: bool = False) -> None:
        import onnxruntime as ort

        from key2mesh.onnxruntime_options import session_options

        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {onnx_path} (run 'key2mesh-train export')")
        options = session_options(threads, spinning)
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        self.session = ort.InferenceSession(str(onnx_path), options, providers=providers)
        self.provider = self.session.get_providers()[0]
        self.path = onnx_path
        self.faces, self.num_vertices = _load_body_sidecar(onnx_path)

    @property
    def description(self) -> str:
        return f"{self.name} ({self.provider}, {self.path.name})"

    def run(self, keypoints: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: self._check(keypoints)})
        return dict(zip(OUTPUT_NAMES, outputs, strict=True))


class TensorRTBackend(Backend):
    name = "tensorrt"
    provider = "cuda"

    def __init__(self, onnx_path: str | os.PathLike, engine_path: str | os.PathLike | None = None, fp16: bool = False) -> None:
        ok, reason = tensorrt_available()
        if not ok:
            raise BackendUnavailable(f"tensorrt backend unavailable: {reason}")
        import tensorrt as trt

        engine_path = Path(engine_path) if engine_path else build_engine(onnx_path, fp16=fp16)
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self.engine is None:
            raise BackendUnavailable(f"could not deserialise TensorRT engine {engine_path}")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        self.faces, self.num_vertices = _load_body_sidecar(onnx_path)

    def run(self, keypoints: np.ndarray) -> dict[str, np.ndarray]:
        inputs = torch.from_numpy(self._check(keypoints)).cuda()
        self.context.set_input_shape(INPUT_NAME, tuple(inputs.shape))
        self.context.set_tensor_address(INPUT_NAME, inputs.data_ptr())
        outputs = {}
        for name in OUTPUT_NAMES:
            shape = tuple(self.context.get_tensor_shape(name))
            outputs[name] = torch.empty(shape, dtype=torch.float32, device="cuda")
            self.context.set_tensor_address(name, outputs[name].data_ptr())
        self.context.execute_async_v3(self.stream.cuda_stream)
        self.stream.synchronize()
        return {name: value.cpu().numpy() for name, value in outputs.items()}


def _load_body_sidecar(onnx_path: str | os.PathLike) -> tuple[np.ndarray | None, int]:
    """Faces and vertex count written next to the ONNX file by the exporter."""
    sidecar = body_sidecar_path(onnx_path)
    if not sidecar.exists():
        return None, 0
    with np.load(sidecar) as data:
        return data["faces"], int(data["num_vertices"])


def backend_status() -> dict[str, tuple[bool, str]]:
    """Which backends can run here, with the reason for those that cannot."""
    status = {"tensorrt": tensorrt_available()}
    try:
        import onnxruntime  # noqa: F401

        status["onnxruntime"] = (True, "ok")
    except ImportError as err:
        status["onnxruntime"] = (False, str(err))
    status["torch"] = (True, "ok")
    return status


def create_backend(name: str = "auto", onnx_path: str | os.PathLike | None = None,
                   checkpoint: str | os.PathLike | None = None, engine_path: str | os.PathLike | None = None,
                   body_model: str | os.PathLike | None = None, fp16: bool = False, threads: int = 0,
                   spinning: bool = False, int8: bool = False) -> Backend:
    """Create ``name`` (or the fastest available with ``auto``). A named backend that cannot
    run raises :class:`BackendUnavailable` instead of silently falling back. ``threads`` and
    ``spinning``: ONNX Runtime's (:mod:`key2mesh.onnxruntime_options`). ``int8``: ONNX Runtime
    runs the int8 copy of ``onnx_path`` (:mod:`key2mesh.int8_graph`, made when missing or
    stale); TensorRT always builds from the fp32 graph."""
    if name not in ("auto", *BACKEND_ORDER):
        raise ValueError(f"unknown backend {name!r}; choose auto, {', '.join(BACKEND_ORDER)}")
    status = backend_status()
    candidates = BACKEND_ORDER if name == "auto" else (name,)
    reasons = []
    for candidate in candidates:
        ok, reason = status[candidate]
        if ok and candidate in ("tensorrt", "onnxruntime") and not onnx_path:
            ok, reason = False, "no ONNX file given"
        if ok and candidate == "torch" and not checkpoint:
            ok, reason = False, "no checkpoint given"
        if not ok:
            reasons.append(f"{candidate}: {reason}")
            if name != "auto":
                raise BackendUnavailable(f"backend {candidate!r} unavailable: {reason}")
            continue
        if candidate == "tensorrt":
            backend: Backend = TensorRTBackend(onnx_path, engine_path, fp16)
        elif candidate == "onnxruntime":
            backend = OnnxRuntimeBackend(_int8_copy(onnx_path) if int8 else onnx_path, threads, spinning)
        else:
            backend = TorchBackend(checkpoint, body_model)
        if name == "auto":
            log.info("backend auto -> %s (skipped: %s)", candidate, "; ".join(reasons) or "none")
        return backend
    raise BackendUnavailable("no backend available: " + "; ".join(reasons))


def _int8_copy(onnx_path: str | os.PathLike) -> str | os.PathLike:
    """The int8 copy of ``onnx_path`` for ONNX Runtime, or ``onnx_path`` itself (with a warning)
    where no copy can be made: a speed option must not stop the node."""
    from key2mesh.int8_graph import ensure_int8_graph

    if not Path(onnx_path).is_file():
        return onnx_path  # OnnxRuntimeBackend says what is missing
    try:
        path, rebuilt = ensure_int8_graph(onnx_path)
    except Exception as err:  # unreadable, foreign or unwritable: ONNX Runtime gets the original
        log.warning("running the fp32 graph %s: no int8 copy (%s)", onnx_path, err)
        return onnx_path
    log.info("int8 graph %s %s", path, "made" if rebuilt else "up to date")
    return path
