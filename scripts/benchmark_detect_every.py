#!/usr/bin/env python3
"""Accuracy against rate when the detector runs only every Nth frame (node parameter ``detect_every``).

A moving sequence is recorded first: the stand-in body walks across a 640x480 view at 30 fps
(procedural walk, 4 m away, 1 m/s), rendered and read by the real YOLO-pose detector on every
frame. Then, for each N, the node's tracker (``key2mesh_ros.tracking.Tracker``) sees a
detection every Nth frame and carries the person by its constant-velocity motion model in
between, as the node does. Printed per N: keypoint error of what the node would feed Key2Mesh,
against the body's true projected keypoints (median, % of body height), the same for the
every-frame detections, and the frame rate the detector time allows (measured detector time /
N + the rest of the frame, measured here). Needs ../shared/models/yolo11n-pose.onnx.
Usage: ``python scripts/benchmark_detect_every.py [--frames 90] [--every 1 2 3 5]``.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch


def record_walk(frames: int, seed: int = 0):
    """Rendered frames ``[T,480,640,3]`` and true keypoints ``[T,17,2]`` of a body walking across."""
    from key2mesh.body_model import load_skinned_body
    from key2mesh.rotations import axis_angle_to_matrix
    from key2mesh_train.adaptation.render import BodyRenderer
    from key2mesh_train.mocap.procedural import generate_sequence

    body = load_skinned_body()
    rng = np.random.default_rng(seed)
    motion = generate_sequence("walk", rng, frames=frames)
    poses = torch.as_tensor(motion.poses, dtype=torch.float32).clone()
    # Upright for an OpenCV camera (half turn about x), walking towards +x: a profile view.
    facing = axis_angle_to_matrix(torch.tensor([[np.pi, 0.0, 0.0]]))[0]
    turn = axis_angle_to_matrix(torch.tensor([[0.0, np.pi / 2, 0.0]]))[0]
    from key2mesh.rotations import matrix_to_axis_angle

    poses[:, 0] = matrix_to_axis_angle((facing @ turn)[None]).expand(frames, 3)
    rotmats = axis_angle_to_matrix(poses.reshape(-1, 3)).reshape(frames, 24, 3, 3)
    posed = body(torch.zeros(frames, 10), rotmats, with_vertices=True, root_relative=True)
    t = np.arange(frames) / 30.0
    trans = torch.as_tensor(np.stack([-1.5 + 1.0 * t, np.full(frames, 0.25), np.full(frames, 4.0)], 1),
                            dtype=torch.float32)
    focal, principal = 500.0, np.array([320.0, 240.0])

    def project(points):
        return (points[..., :2] / points[..., 2:3] * focal).numpy() + principal

    renderer = BodyRenderer(body.faces.numpy(), body.lbs_weights.numpy(), 640, 480)
    images, truth = [], []
    for i in range(frames):
        vertices = posed["vertices"][i] + trans[i]
        images.append(renderer.render(vertices.numpy(), project(vertices), rng))
        truth.append(project(posed["keypoints"][i] + trans[i]))
    return np.stack(images), np.stack(truth)


def keypoint_error(pred: np.ndarray, truth: np.ndarray) -> float:
    """Median keypoint error over visible predictions, in % of the true body height."""
    height = truth[:, 1].max() - truth[:, 1].min()
    seen = pred[:, 2] > 0.1
    return float(np.median(np.linalg.norm(pred[seen, :2] - truth[seen], axis=-1)) / height * 100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--every", type=int, nargs="+", default=[1, 2, 3, 5])
    args = parser.parse_args()

    from key2mesh_ros.tracking import Tracker

    from key2mesh.detector import PoseDetector
    from key2mesh.paths import shared_detector

    if not shared_detector().exists():
        print(f"needs the real detector at {shared_detector()}", file=sys.stderr)
        return 1
    detector = PoseDetector(str(shared_detector()))
    images, truth = record_walk(args.frames)
    detections, detect_ms = [], []
    for image in images:
        start = time.perf_counter()
        found = detector.detect(image)
        detect_ms.append((time.perf_counter() - start) * 1000)
        detections.append(found[0] if found else None)
    detector_ms = float(np.median(detect_ms))
    seen = sum(d is not None for d in detections)
    print(f"walk: {args.frames} frames 640x480 at 30 fps, person found in {seen}; detector {detector_ms:.1f} ms a frame "
          f"({detector.description})")
    print(f"{'every N':>8}{'detector calls':>16}{'keypoint error %':>18}{'rest ms':>9}{'max rate Hz':>13}")
    for every in args.every:
        tracker = Tracker(smoothing=False)
        errors, rest_ms = [], []
        for i, detection in enumerate(detections):
            t = i / 30.0
            start = time.perf_counter()
            if i % every == 0 or not tracker.ids:
                if detection is None:
                    continue
                _, keypoints = tracker.update(detection.box[None], detection.keypoints[None], t,
                                              np.array([detection.score]))
            else:
                _, _, _, keypoints = tracker.predict(t)
                if not len(keypoints):
                    continue
                rest_ms.append((time.perf_counter() - start) * 1000)
            errors.append(keypoint_error(keypoints[0], truth[i]))
        calls = len(range(0, args.frames, every))
        per_frame = (detector_ms * calls + float(np.sum(rest_ms))) / args.frames
        print(f"{every:>8}{calls:>16}{np.median(errors):>18.2f}{np.median(rest_ms) if rest_ms else 0:>9.2f}"
              f"{1000 / per_frame:>13.1f}")
    print("keypoint error: median distance to the body's true keypoints over visible joints, % of its height; "
          "max rate: detector-bound frames per second on these cores (the rest of the frame excluded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
