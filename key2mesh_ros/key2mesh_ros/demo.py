"""``key2mesh-demo``: the main job end to end on the shipped defaults.

1. pick the model: your own finished pre-training if there is one, else the shipped model
   (trained on real CMU motion; never an unfinished run); 2. export the fused ONNX graph
   (again only when the model changed); 3. build a ROS 2 bag from real photos
   that ship with ultralytics and scikit-image; 4. play it into the real node over ROS 2
   transport and record /human_mesh to a bag; 5. draw the meshes over the photos.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from key2mesh.paths import artifacts_dir, exported_onnx, trained_checkpoint


def ensure_model(checkpoint: Path | None, onnx_path: Path) -> Path:
    """The checkpoint to run (``None``: :func:`key2mesh.paths.default_model`), exported to
    ``onnx_path`` unless that already holds it. No training happens here."""
    from key2mesh.export import ensure_onnx
    from key2mesh.paths import default_model

    if checkpoint is None:
        checkpoint, why = default_model()
        print(f"[1/5] {why}")
    else:
        print(f"[1/5] using checkpoint {checkpoint}")
    _, rebuilt = ensure_onnx(checkpoint, onnx_path)
    print(f"[2/5] {'exported' if rebuilt else 'up to date:'} {onnx_path}")
    return checkpoint


def run_demo(out_dir: Path, checkpoint: Path | None, onnx_path: Path, storage: str = "mcap",
             timeout_s: float = 180.0) -> dict:
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from visualization_msgs.msg import MarkerArray

    from key2mesh.bags import read_bag
    from key2mesh.image_decoding import image_to_rgb
    from key2mesh_msgs.msg import BodyModelInfo, HumanMeshArray
    from key2mesh_ros.bag_transport import BagRecorder, play_bag
    from key2mesh_ros.demo_data import build_demo_bag, demo_photos, guess_camera_matrix
    from key2mesh_ros.node_process import NodeProcess, wait_for, write_params
    from key2mesh_ros.overlay import render_overlay
    from key2mesh_ros.ros_environment import configure_ros_environment

    checkpoint = ensure_model(checkpoint, onnx_path)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    input_bag = build_demo_bag(out_dir / "input_bag", storage=storage)
    photos = demo_photos()
    stamps_of: dict[str, set] = {name: set() for name in photos}
    frames = 0
    for _, _, _, msg in read_bag(input_bag, ["/camera/image_raw"]):
        rgb = image_to_rgb(msg)
        name = next(n for n, p in photos.items() if p.shape == rgb.shape and np.array_equal(p, rgb))
        stamps_of[name].add((msg.header.stamp.sec, msg.header.stamp.nanosec))
        frames += 1
    print(f"[3/5] demo bag {input_bag} ({frames} images, {storage})")

    def done() -> bool:  # every photo answered at least once (the node may skip a stale frame)
        seen = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in outputs}
        return all(stamps & seen for stamps in stamps_of.values())

    params = write_params(out_dir / "params.yaml", onnx_model=str(onnx_path), checkpoint=str(checkpoint),
                          mesh_marker=False, stats_period_s=1.0)
    configure_ros_environment(localhost_only=True)
    rclpy.init()
    node = rclpy.create_node("key2mesh_demo")
    outputs: list = []
    info: list = []
    node.create_subscription(HumanMeshArray, "/human_mesh", outputs.append, 10)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(BodyModelInfo, "/human_mesh/body_model", info.append, latched)
    recorder = BagRecorder(node, {"/human_mesh": HumanMeshArray, "/human_mesh/markers": MarkerArray})

    def spin() -> None:
        rclpy.spin_once(node, timeout_sec=0.01)

    try:
        with NodeProcess(params, out_dir / "node.log") as proc:
            wait_for(lambda: bool(info), timeout_s, spin, "the node to start (body model info)", proc)
            time.sleep(1.0)  # let discovery of the image subscription settle
            print(f"[4/5] playing the bag into key2mesh_node (backend log: {out_dir / 'node.log'})")
            # One image per second: every frame is processed, none dropped as stale.
            play_bag(node, input_bag, rate=0.5, spin=spin)
            wait_for(done, timeout_s, spin, "a /human_mesh result for every photo", proc)
        output_bag = recorder.save(out_dir / "output_bag", storage=storage)
    finally:
        node.destroy_node()
        rclpy.shutdown()

    faces = np.frombuffer(info[0].faces, dtype=np.uint32).reshape(-1, 3).astype(np.int64)
    summary = {"frames": frames, "answered": len(outputs)}
    import cv2

    for name, rgb in photos.items():
        result = [m for m in outputs if (m.header.stamp.sec, m.header.stamp.nanosec) in stamps_of[name]][-1]
        meshes = [np.frombuffer(h.vertices, np.float32).reshape(-1, 3) for h in result.humans if h.position_valid]
        keypoints = [np.frombuffer(h.keypoints_2d, np.float32).reshape(17, 3) for h in result.humans]
        k = guess_camera_matrix(rgb.shape[1], rgb.shape[0])
        image = render_overlay(rgb, meshes, faces, k, keypoints)
        path = out_dir / f"overlay_{name}.png"
        cv2.imwrite(str(path), image[..., ::-1])
        summary[name] = {"people": len(result.humans), "scores": [round(h.detection_score, 2) for h in result.humans],
                         "distance_m": [round(h.position.z, 2) for h in result.humans if h.position_valid],
                         "latency_ms": round(result.latency_ms, 1), "overlay": str(path)}
    print(f"[5/5] recorded {output_bag}; overlays in {out_dir}")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="key2mesh-demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=artifacts_dir() / "demo", help="output folder (replaced)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="model to run (default: your finished pre-training at "
                        f"{trained_checkpoint()} if any, else the shipped model)")
    parser.add_argument("--onnx", type=Path, default=exported_onnx(), help="where the fused graph is exported")
    parser.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="bag storage format")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = run_demo(args.out, args.checkpoint, args.onnx, args.storage)
    except (FileNotFoundError, TimeoutError, RuntimeError, ValueError) as err:
        print(f"key2mesh-demo: error: {err}", file=sys.stderr)
        return 2
    print(f"  {summary.pop('answered')} of {summary.pop('frames')} frames answered (the node skips stale frames)")
    for name, row in summary.items():
        print(f"  {name:<10} people={row['people']} scores={row['scores']} distance_m={row['distance_m']} "
              f"latency={row['latency_ms']} ms -> {row['overlay']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
