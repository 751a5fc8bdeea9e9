"""Detector paths on the demo photos, measured in one run: people found, keypoint agreement
with the reference (ultralytics on the shared int8 ONNX at 640), median ms per frame and the
speed-up, for the default path (ONNX Runtime, fp32, 640 long side, rectangular), the same with
threads busy-waiting within runs (node parameter onnxruntime_spinning), the same square, and smaller input sizes.

    .venv/bin/python scripts/benchmark_detector.py [--model PATH] [--repeats 30]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def timed(detector, rgb, repeats: int) -> tuple[list, float]:
    detections = detector.detect(rgb)  # warm-up (and the fp32 conversion, cached after)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        detector.detect(rgb)
        times.append((time.perf_counter() - start) * 1000)
    return detections, float(np.median(times))


def agreement(reference, other) -> float:
    """Median keypoint distance in % of the person's box height, people matched by box centre."""
    if not reference or not other:
        return float("nan")
    errors = []
    for ref in reference:
        centre = ref.box.reshape(2, 2).mean(0)
        match = min(other, key=lambda d: np.linalg.norm(d.box.reshape(2, 2).mean(0) - centre))
        height = ref.box[3] - ref.box[1]
        errors.append(np.median(np.linalg.norm(ref.keypoints[:, :2] - match.keypoints[:, :2], axis=-1)) / height * 100)
    return float(np.median(errors))


def main() -> int:
    from key2mesh_ros.demo_data import demo_photos

    from key2mesh.detector import PoseDetector
    from key2mesh.paths import default_detector

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=default_detector())
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--sizes", type=int, nargs="*", default=[480, 416, 320],
                        help="smaller detector input sizes to compare (multiples of 32)")
    args = parser.parse_args()
    os.environ.setdefault("YOLO_OFFLINE", "1")
    photos = demo_photos()
    paths = {"ultralytics (reference)": PoseDetector(args.model, runtime="ultralytics"),
             "onnxruntime (default)": PoseDetector(args.model, runtime="onnxruntime"),
             "onnxruntime spinning": PoseDetector(args.model, runtime="onnxruntime", spinning=True),
             "onnxruntime 640 square": PoseDetector(args.model, runtime="onnxruntime", rect=False)}
    for size in args.sizes:
        paths[f"onnxruntime {size}"] = PoseDetector(args.model, runtime="onnxruntime", image_size=size)
    for detector in paths.values():  # each image shape's graph is prepared once: not part of the timing
        for rgb in photos.values():
            detector.detect(rgb)
    print(f"{'path':<26}{'photo':<11}{'people':>7}{'ms':>9}{'kp diff %h':>12}")
    totals = {name: 0.0 for name in paths}
    for photo, rgb in photos.items():
        reference = None
        for name, detector in paths.items():
            found, ms = timed(detector, rgb, args.repeats)
            reference = reference if reference is not None else found
            totals[name] += ms
            print(f"{name:<26}{photo:<11}{len(found):>7}{ms:>9.1f}{agreement(reference, found):>12.2f}")
    names = list(paths)
    for name in names[1:]:
        print(f"speed-up of {name} over the reference: {totals[names[0]] / totals[name]:.2f}x "
              f"({paths[name].description})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
