"""YOLO-pose person detector returning COCO-17 keypoints per person (ONNX Runtime or ultralytics)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from key2mesh.paths import default_detector

log = logging.getLogger(__name__)


@dataclass
class Detection:
    box: np.ndarray  # [4] x_min, y_min, x_max, y_max (pixels)
    score: float
    keypoints: np.ndarray  # [17, 3] x, y, confidence (pixels)


class PoseDetector:
    """YOLO-pose people and COCO-17 keypoints from ``.pt``, ``.onnx`` and ``.engine`` models.

    ``runtime`` picks the path: ``onnxruntime`` runs an ``.onnx`` model directly (fp32; a
    quantised graph is converted once and cached), the fastest CPU path; ``ultralytics`` runs
    any model through ultralytics (``.pt``, TensorRT ``.engine``); ``auto`` takes the first for
    ``.onnx`` files and the second otherwise. ``description`` says which was chosen. ``rect``
    (ONNX Runtime path): letterbox each image to the smallest rectangle around it at long side
    ``image_size`` instead of a square (less padding to compute; ultralytics does the same for
    ``.pt`` models). ``spinning`` (ONNX Runtime path): its threads busy-wait between operators
    within a run (:mod:`key2mesh.onnxruntime_options`).
    """

    RUNTIMES = ("auto", "onnxruntime", "ultralytics")

    def __init__(self, model_path: str | os.PathLike | None = None, confidence: float = 0.3, image_size: int = 640,
                 max_people: int = 20, device: str | None = None, runtime: str = "auto", threads: int = 0,
                 rect: bool = True, spinning: bool = False) -> None:
        os.environ.setdefault("YOLO_OFFLINE", "1")  # robots are often offline: never phone home
        os.environ.setdefault("YOLO_VERBOSE", "False")
        if runtime not in self.RUNTIMES:
            raise ValueError(f"detector runtime must be one of {', '.join(self.RUNTIMES)}, got {runtime!r}")
        path = str(model_path or default_detector())
        if path.endswith((".onnx", ".engine")) or os.sep in path:
            if not Path(path).is_file():
                raise FileNotFoundError(f"detector model not found: {path}")
        self.path = path
        self.confidence = confidence
        self.max_people = max_people
        self.device = device
        if runtime == "onnxruntime" and not path.endswith(".onnx"):
            raise ValueError(f"detector runtime onnxruntime needs an .onnx model, got {path}")
        self._onnx = None
        if runtime == "onnxruntime" or (runtime == "auto" and path.endswith(".onnx")):
            from key2mesh.onnx_detector import OnnxPoseDetector

            self._onnx = OnnxPoseDetector(path, confidence, max_people, threads, image_size=image_size, rect=rect,
                                          spinning=spinning)
            self.image_size = self._onnx.image_size
            self.description = self._onnx.description
            return
        import onnxruntime
        from ultralytics import YOLO

        onnxruntime.set_default_logger_severity(3)  # quantised exports log one line per pruned tensor
        self.model = YOLO(path, task="pose")
        self.image_size = image_size
        self.description = f"ultralytics {Path(path).name}, {image_size}x{image_size}"

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        """People in an ``[H,W,3]`` uint8 RGB image, best first; at most ``max_people + 1`` so a
        caller can tell that the cap was hit."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"detector wants HxWx3 uint8 RGB, got {rgb.shape} {rgb.dtype}")
        if self._onnx is not None:
            boxes, scores, keypoints = self._onnx.raw(rgb)
            return [Detection(boxes[i], float(scores[i]), keypoints[i]) for i in range(len(scores))]
        # ultralytics treats numpy images as BGR (OpenCV order)
        result = self.model.predict(np.ascontiguousarray(rgb[..., ::-1]), conf=self.confidence, imgsz=self.image_size,
                                    max_det=self.max_people + 1, verbose=False, device=self.device)[0]
        if result.keypoints is None or result.boxes is None or len(result.boxes) == 0:
            return []
        boxes = result.boxes.xyxy.cpu().numpy().astype(np.float32)
        scores = result.boxes.conf.cpu().numpy().astype(np.float32)
        keypoints = result.keypoints.data.cpu().numpy().astype(np.float32)
        if keypoints.shape[-1] == 2:  # models without keypoint confidences
            keypoints = np.concatenate([keypoints, np.ones_like(keypoints[..., :1])], -1)
        order = np.argsort(-scores)
        return [Detection(boxes[i], float(scores[i]), keypoints[i]) for i in order]
