"""Track ids across frames by box overlap, and One-Euro smoothing of 2D keypoints."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from key2mesh.boxes import box_iou
from key2mesh.keypoints import visible_mask


class OneEuroFilter:
    """One-Euro filter (Casiez et al., CHI 2012) on arrays: smooth when still, quick when moving."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.value: np.ndarray | None = None
        self.derivative: np.ndarray | None = None
        self.time: float | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, value: np.ndarray, t: float) -> np.ndarray:
        if self.value is None or self.time is None or t <= self.time:
            self.value, self.derivative, self.time = value.copy(), np.zeros_like(value), t
            return value
        dt = t - self.time
        derivative = (value - self.value) / dt
        self.derivative = self.derivative + self._alpha(self.d_cutoff, dt) * (derivative - self.derivative)
        cutoff = self.min_cutoff + self.beta * np.abs(self.derivative)
        self.value = self.value + self._alpha(cutoff, dt) * (value - self.value)
        self.time = t
        return self.value


@dataclass
class Track:
    track_id: int
    box: np.ndarray
    last_seen: float
    filter: OneEuroFilter = field(default_factory=OneEuroFilter)
    score: float = 0.0
    keypoints: np.ndarray | None = None  # [17,3] last output (pixels)
    seen: np.ndarray | None = None  # [17] which of them the detector saw
    velocity: np.ndarray | None = None  # [17,2] pixels per second, from the last two detections
    box_velocity: np.ndarray | None = None  # [4]


class Tracker:
    """Greedy IoU matching; a track not seen for ``max_age_s`` is forgotten."""

    def __init__(self, iou_threshold: float = 0.3, max_age_s: float = 1.0, smoothing: bool = True,
                 min_cutoff: float = 1.0, beta: float = 0.05) -> None:
        self.iou_threshold, self.max_age_s, self.smoothing = iou_threshold, max_age_s, smoothing
        self.min_cutoff, self.beta = min_cutoff, beta
        self.tracks: list[Track] = []
        self.next_id = 1

    def prune(self, t: float) -> None:
        """Forget tracks unseen for longer than ``max_age_s`` at time ``t``."""
        self.tracks = [tr for tr in self.tracks if t - tr.last_seen <= self.max_age_s and t >= tr.last_seen]

    @property
    def ids(self) -> list[int]:
        """Every track still held: seen in the last frame or within ``max_age_s``."""
        return [tr.track_id for tr in self.tracks]

    def predict(self, t: float) -> tuple[list[int], np.ndarray, np.ndarray, np.ndarray]:
        """Where the tracks are at ``t`` by their constant-velocity motion since last seen: ids,
        boxes ``[N,4]``, scores ``[N]`` and keypoints ``[N,17,3]`` (for frames the detector
        skips). Tracks are neither refreshed nor aged by it."""
        live = [tr for tr in self.tracks if tr.keypoints is not None and 0 <= t - tr.last_seen <= self.max_age_s]
        if not live:
            return [], np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 17, 3), np.float32)
        boxes, keypoints = [], []
        for tr in live:
            dt = t - tr.last_seen
            points = tr.keypoints.copy()
            if tr.velocity is not None:
                points[:, :2] += tr.velocity * dt
            keypoints.append(points)
            boxes.append(tr.box + (tr.box_velocity * dt if tr.box_velocity is not None else 0.0))
        return ([tr.track_id for tr in live], np.stack(boxes).astype(np.float32),
                np.array([tr.score for tr in live], np.float32), np.stack(keypoints).astype(np.float32))

    def update(self, boxes: np.ndarray, keypoints: np.ndarray, t: float,
               scores: np.ndarray | None = None) -> tuple[list[int], np.ndarray]:
        """Assign ids to ``boxes [N,4]``; returns ids and (smoothed) keypoints ``[N,17,3]``."""
        self.prune(t)
        ids = [-1] * len(boxes)
        if self.tracks and len(boxes):
            iou = box_iou(boxes, np.stack([tr.box for tr in self.tracks]))
            for _ in range(min(iou.shape)):
                i, j = np.unravel_index(np.argmax(iou), iou.shape)
                if iou[i, j] < self.iou_threshold:
                    break
                ids[i] = j
                iou[i, :], iou[:, j] = -1, -1
        out = keypoints.copy()
        seen_now = visible_mask(keypoints)  # [N,17], once for everyone
        result = []
        for i, match in enumerate(ids):
            if match < 0:
                track = Track(self.next_id, boxes[i], t, OneEuroFilter(self.min_cutoff, self.beta))
                self.next_id += 1
                self.tracks.append(track)
            else:
                track = self.tracks[match]
                dt = t - track.last_seen
                if dt > 0 and track.keypoints is not None:  # motion model for frames without detection
                    both = (seen_now[i] & track.seen)[:, None]
                    track.velocity = np.where(both, (keypoints[i, :, :2] - track.keypoints[:, :2]) / dt, 0.0)
                    track.box_velocity = (boxes[i] - track.box) / dt
                track.box, track.last_seen = boxes[i], t
            if self.smoothing:
                xy = keypoints[i, :, :2]
                seen = seen_now[i]
                # Unseen joints hold their last value, so a reappearing joint does not swing in; a
                # new track has none, so they keep the detector's own guess (never a fake 0, 0).
                previous = track.filter.value if track.filter.value is not None else xy
                out[i, :, :2] = track.filter(np.where(seen[:, None], xy, previous), t)
            track.keypoints, track.seen = keypoints[i].copy(), seen_now[i]
            track.score = float(scores[i]) if scores is not None else track.score
            result.append(track.track_id)
        return result, out
