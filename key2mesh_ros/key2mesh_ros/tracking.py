"""Track ids across frames by box overlap, and One-Euro smoothing of 2D keypoints."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from key2mesh.boxes import box_iou
from key2mesh.keypoints import visible_mask


def _alpha(cutoff: np.ndarray | float, dt: np.ndarray) -> np.ndarray:
    """One-Euro smoothing factor for a cutoff frequency (Hz) over a time step ``dt`` (s)."""
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


def one_euro_step(value: np.ndarray, derivative: np.ndarray, dt: np.ndarray, sample: np.ndarray, min_cutoff: float,
                  beta: float, d_cutoff: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """One step of the One-Euro filter (Casiez et al., CHI 2012: smooth when still, quick when
    moving) for several series at once: last ``value`` and ``derivative`` ``[N,...]``, time steps
    ``dt [N]`` (> 0) and new ``sample [N,...]`` -> new value and derivative. One call for all
    tracks of a frame, not a handful of numpy calls per person."""
    dt = dt.reshape((-1,) + (1,) * (value.ndim - 1))
    derivative = derivative + _alpha(d_cutoff, dt) * ((sample - value) / dt - derivative)
    cutoff = min_cutoff + beta * np.abs(derivative)
    return value + _alpha(cutoff, dt) * (sample - value), derivative


@dataclass
class Track:
    track_id: int
    box: np.ndarray
    last_seen: float
    score: float = 0.0
    keypoints: np.ndarray | None = None  # [17,3] last detection (pixels)
    seen: np.ndarray | None = None  # [17] which of them the detector saw
    velocity: np.ndarray | None = None  # [17,2] pixels per second, from the last two detections
    box_velocity: np.ndarray | None = None  # [4]
    smoothed: np.ndarray | None = None  # [17,2] One-Euro state: last output and its derivative
    smoothed_derivative: np.ndarray | None = None


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
            # Greedy: the best-overlapping pair first, each box and track used once.
            iou = box_iou(boxes, np.array([tr.box for tr in self.tracks]))
            rows, cols = np.nonzero(iou >= self.iou_threshold)
            order = np.argsort(-iou[rows, cols], kind="stable")  # ties: the first in row-major order
            free_tracks = set(range(len(self.tracks)))
            for i, j in zip(rows[order].tolist(), cols[order].tolist(), strict=True):
                if ids[i] < 0 and j in free_tracks:
                    ids[i] = j
                    free_tracks.discard(j)
        seen_now = visible_mask(keypoints)  # [N,17], once for everyone
        tracks = []
        for i, match in enumerate(ids):
            if match < 0:
                tracks.append(Track(self.next_id, boxes[i], t))
                self.next_id += 1
                self.tracks.append(tracks[-1])
            else:
                tracks.append(self.tracks[match])
        # Motion model for frames without detection, from each matched track's last detection:
        # all of them at once (np.array of a list of arrays: a quarter of np.stack's cost).
        moving = [i for i, tr in enumerate(tracks) if tr.keypoints is not None and t > tr.last_seen]
        if moving:
            dt = np.array([t - tracks[i].last_seen for i in moving])[:, None]
            last = np.array([tracks[i].keypoints for i in moving])
            both = (seen_now[moving] & np.array([tracks[i].seen for i in moving]))[..., None]
            velocity = np.where(both, (keypoints[moving, :, :2] - last[..., :2]) / dt[..., None], 0.0)
            box_velocity = (boxes[moving] - np.array([tracks[i].box for i in moving])) / dt
            for k, i in enumerate(moving):
                tracks[i].velocity, tracks[i].box_velocity = velocity[k], box_velocity[k]
        out = keypoints.copy()
        if self.smoothing and len(tracks):
            out[..., :2] = self._smooth(tracks, keypoints[..., :2], seen_now, t)
        for i, track in enumerate(tracks):
            track.box, track.last_seen = boxes[i], t
            track.keypoints, track.seen = keypoints[i].copy(), seen_now[i]
            track.score = float(scores[i]) if scores is not None else track.score
        return [track.track_id for track in tracks], out

    def _smooth(self, tracks: list[Track], xy: np.ndarray, seen: np.ndarray, t: float) -> np.ndarray:
        """One-Euro smoothed ``xy [N,17,2]`` of ``tracks`` at ``t`` (their filter state updated).
        Unseen joints hold their last value, so a reappearing joint does not swing in; a new
        track has none, so they keep the detector's own guess (never a fake 0, 0)."""
        started = [i for i, tr in enumerate(tracks) if tr.smoothed is not None and t > tr.last_seen]
        out = xy.copy()
        if started:
            value = np.array([tracks[i].smoothed for i in started])
            sample = np.where(seen[started][..., None], xy[started], value)
            dt = np.array([t - tracks[i].last_seen for i in started])
            out[started], derivative = one_euro_step(value, np.array([tracks[i].smoothed_derivative for i in started]),
                                                     dt, sample, self.min_cutoff, self.beta)
        row = {i: k for k, i in enumerate(started)}
        for i, track in enumerate(tracks):
            k = row.get(i)  # None: a new track (or time going back), whose filter starts here
            track.smoothed, track.smoothed_derivative = out[i], np.zeros_like(xy[i]) if k is None else derivative[k]
        return out
