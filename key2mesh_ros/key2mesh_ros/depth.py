"""Metric distance from an aligned depth image, where the robot has an RGB-D camera.

message_filters does not install from PyPI, so colour and depth are paired here by stamp: the
node keeps the last few depth images and takes the one closest to the colour image's stamp
within a tolerance. A person's distance is the median depth under the torso keypoints
(shoulders and hips, a small patch each); the body-size estimate is kept where depth is
missing, invalid or too far off in time.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from key2mesh.keypoints import COCO17_NAMES, CONFIDENCE_THRESHOLD

TORSO = [COCO17_NAMES.index(n) for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]
ENCODINGS = {"16UC1": (np.uint16, 0.001), "mono16": (np.uint16, 0.001), "32FC1": (np.float32, 1.0)}


class DepthError(ValueError):
    """A depth image that cannot be used; the message says why."""


def depth_to_metres(msg) -> np.ndarray:
    """``sensor_msgs/Image`` 16UC1 (millimetres) or 32FC1 (metres) -> ``[H,W]`` float32 metres;
    0, NaN and inf (no return) become NaN."""
    if msg.encoding not in ENCODINGS:
        raise DepthError(f"depth encoding {msg.encoding!r} not supported; use 16UC1 (mm) or 32FC1 (m)")
    dtype, scale = ENCODINGS[msg.encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    itemsize = np.dtype(dtype).itemsize
    if height == 0 or width == 0 or step < width * itemsize or len(msg.data) < step * height:
        raise DepthError(f"depth image of {width}x{height} with step {step} has {len(msg.data)} bytes")
    order = ">" if msg.is_bigendian else "<"
    rows = np.frombuffer(msg.data, dtype=np.uint8)[: step * height].reshape(height, step)
    depth = rows[:, : width * itemsize].copy().view(np.dtype(dtype).newbyteorder(order)).astype(np.float32) * scale
    depth[~np.isfinite(depth) | (depth <= 0)] = np.nan
    return depth


def torso_distance(depth: np.ndarray, keypoints: np.ndarray, image_size: tuple[int, int], patch: int = 2,
                   max_range_m: float = 20.0) -> float | None:
    """Median depth (metres) under a person's visible torso keypoints ``[17,3]`` (pixels of the
    colour image of ``image_size`` (width, height); the depth image may differ in resolution).
    None when no torso keypoint has a valid depth."""
    height, width = depth.shape
    sx, sy = width / max(image_size[0], 1), height / max(image_size[1], 1)
    samples = []
    for index in TORSO:
        x, y, c = keypoints[index]
        if not (c > CONFIDENCE_THRESHOLD and np.isfinite(x) and np.isfinite(y)):
            continue
        u, v = int(round(x * sx)), int(round(y * sy))
        if not (0 <= u < width and 0 <= v < height):
            continue
        window = depth[max(v - patch, 0): v + patch + 1, max(u - patch, 0): u + patch + 1]
        samples.append(window[np.isfinite(window) & (window <= max_range_m)])
    values = np.concatenate(samples) if samples else np.empty(0)
    return float(np.median(values)) if values.size else None


class DepthBuffer:
    """The last few depth images, to pair with colour images by stamp."""

    def __init__(self, size: int = 8) -> None:
        self.images: deque = deque(maxlen=size)

    def add(self, msg) -> None:
        self.images.append(msg)

    def closest(self, stamp_ns: int, tolerance_s: float):
        """The depth image nearest ``stamp_ns`` within ``tolerance_s``, else None."""
        best, best_gap = None, tolerance_s * 1e9
        for msg in list(self.images):
            gap = abs(msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec - stamp_ns)
            if gap <= best_gap:
                best, best_gap = msg, gap
        return best
