#!/usr/bin/env python3
"""Per-stage latency of the running node at a camera rate (default 30 Hz).

Starts key2mesh-node in its own process, publishes a real photo as sensor_msgs/Image at
the given rate over ROS 2, and prints the node's own per-stage statistics (decode, detect,
lift = tracking + the fused Key2Mesh graph, graph = the fused graph's own run, publish and
its parts: placing people, the /human_mesh message, markers, TF, ROS4HRI; non_detector,
total) and the answered and dropped frame rates. Then the ratio of everything but the
detector to the fused graph, twice: to the graph's time in the same frames, and to the graph
timed alone right after (warm caches, no detector between runs).
Run after ``key2mesh-demo`` (or ``key2mesh-train export``), which writes the default graph.
Usage: ``python scripts/benchmark_node.py [--rate 30] [--seconds 20] [--photo bus]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=30.0, help="published frames per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--photo", choices=("bus", "zidane", "astronaut"), default="bus")
    parser.add_argument("--onnx", default="", help="fused graph ('' = the node's default: the shipped model or yours)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--detector-runtime", default="auto", choices=("auto", "onnxruntime", "ultralytics"),
                        help="ultralytics: the path before the ONNX Runtime one, for a before/after figure")
    parser.add_argument("--detector-size", type=int, default=640, help="detector input size (multiple of 32)")
    parser.add_argument("--detect-every", type=int, default=1, help="node parameter detect_every")
    parser.add_argument("--graph-int8", action=argparse.BooleanOptionalAction, default=None,
                        help="node parameter graph_int8 (default: the node's own default, on)")
    parser.add_argument("--spinning", action=argparse.BooleanOptionalAction, default=None,
                        help="node parameter onnxruntime_spinning (default: the node's own default)")
    parser.add_argument("--plain", action="store_true",
                        help="/human_mesh only: no TF, ROS4HRI topics or markers (what they cost)")
    parser.add_argument("--mesh-only-consumer", action="store_true",
                        help="subscribe to /human_mesh alone (default: to every output, TF, markers and each "
                             "body's ROS4HRI topics too, as a robot using all of them would; the node skips "
                             "outputs nobody subscribes to)")
    parser.add_argument("--raw-consumers", action="store_true",
                        help="subscribers take each message as its serialised bytes, as cheap as a C++ subscriber's "
                             "deserialisation (default: rclpy builds Python messages, which on 2 cores competes "
                             "with the node for CPU)")
    args = parser.parse_args()

    from key2mesh_ros.ros_environment import configure_ros_environment

    configure_ros_environment(localhost_only=True)
    import rclpy
    from key2mesh_ros.demo_data import demo_photos
    from key2mesh_ros.image_encoding import rgb_to_image
    from key2mesh_ros.node import PARAMETERS, PUBLISH_PARTS
    from key2mesh_ros.node_process import NodeProcess, wait_for, write_params
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import String

    from key2mesh.paths import artifacts_dir
    from key2mesh_msgs.msg import HumanMeshArray

    out_dir = artifacts_dir() / "benchmark_node"
    params = write_params(out_dir / "params.yaml", onnx_model=args.onnx, backend=args.backend, stats_period_s=1.0,
                          detector_runtime=args.detector_runtime, detector_image_size=args.detector_size,
                          detect_every=args.detect_every,
                          **({} if args.spinning is None else {"onnxruntime_spinning": args.spinning}),
                          **({} if args.graph_int8 is None else {"graph_int8": args.graph_int8}),
                          **({"publish_tf": False, "hri_topics": False, "publish_markers": False} if args.plain else {}))
    rgb = demo_photos()[args.photo]
    rclpy.init()
    node = rclpy.create_node("key2mesh_benchmark")
    answers, stats = [], []
    node.create_subscription(HumanMeshArray, "/human_mesh", answers.append, 10, raw=args.raw_consumers)
    node.create_subscription(String, "/human_mesh/stats", stats.append, 10)
    if not args.mesh_only_consumer:
        consume_every_output(node, args.raw_consumers)
    publisher = node.create_publisher(Image, "/camera/image_raw", qos_profile_sensor_data)
    info_publisher = node.create_publisher(CameraInfo, "/camera/camera_info", qos_profile_sensor_data)
    from key2mesh_ros.demo_data import camera_info_msg, guess_camera_matrix

    camera = guess_camera_matrix(rgb.shape[1], rgb.shape[0])

    def spin() -> None:
        rclpy.spin_once(node, timeout_sec=0.001)

    msg = rgb_to_image(rgb)
    try:
        with NodeProcess(params, out_dir / "node.log") as proc:
            wait_for(lambda: publisher.get_subscription_count() > 0 and bool(stats), 120, spin, "the node", proc)
            warm_answers = len(answers)
            sent, start = 0, time.monotonic()
            while time.monotonic() - start < args.seconds:
                due = start + sent / args.rate
                while time.monotonic() < due:
                    spin()
                msg.header.stamp = node.get_clock().now().to_msg()
                msg.header.frame_id = "camera"
                # Calibrated: people get positions, so TF and markers are part of the cost too.
                info_publisher.publish(camera_info_msg(msg.header, rgb.shape[1], rgb.shape[0], camera))
                publisher.publish(msg)
                sent += 1
            time.sleep(1.5)
            for _ in range(100):
                spin()
            report = json.loads(stats[-1].data)
    finally:
        node.destroy_node()
        rclpy.shutdown()
    answered = len(answers) - warm_answers
    print(f"{args.photo}: {rgb.shape[1]}x{rgb.shape[0]} at {args.rate:.0f} Hz for {args.seconds:.0f} s; "
          f"backend {report['backend']}; people/frame {report['people'] / max(report['frames'], 1):.1f}")
    print(f"sent {sent}, answered {answered} ({answered / args.seconds:.1f} Hz), dropped as stale {report['dropped']}")
    print(f"{'stage':<14}{'median ms':>8}{'p90 ms':>10}")
    for stage, values in report["stages"].items():
        label = f"  {stage}" if stage in PUBLISH_PARTS else stage  # the parts of publish
        print(f"{label:<14}{values['median_ms']:>8.2f}{values['p90_ms']:>10.2f}")
    stages = report["stages"]
    people = max(1, round(report["people"] / max(report["frames"], 1)))
    int8 = PARAMETERS["graph_int8"][0] if args.graph_int8 is None else args.graph_int8
    fused, provider = fused_graph_ms(people, args.onnx, int8)
    rest, in_node = stages["non_detector"]["median_ms"], stages["graph"]["median_ms"]
    print(f"everything but the detector (decode + lift + publish, per frame): {rest:.2f} ms for {people} people")
    print(f"  the fused Key2Mesh graph in the same frames: {in_node:.2f} ms; ratio {rest / in_node:.2f}")
    print(f"  the fused graph alone, warm, at batch {people}: {fused:.2f} ms (ONNX Runtime {provider}, "
          f"{'int8' if int8 else 'fp32'}, measured right after); ratio {rest / fused:.2f}")
    if provider == "CUDAExecutionProvider":
        print(f"GPU row: the node ran with backend {report['backend']}; fused graph on the GPU {fused:.2f} ms")
    else:
        print("GPU row: none (no NVIDIA GPU / ONNX Runtime CUDA provider on this machine)")
    return 0


def consume_every_output(node, raw: bool = False) -> None:
    """Subscribe to /tf, the markers, /humans/bodies/tracked and, as bodies appear, each body's
    ROS4HRI topics (what a ROS4HRI library does), so the node pays for all of its outputs.
    ``raw``: take them as serialised bytes (the tracked list is always read: it names the bodies)."""
    from hri_msgs.msg import IdsList, NormalizedRegionOfInterest2D, Skeleton2D
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import JointState
    from tf2_msgs.msg import TFMessage
    from visualization_msgs.msg import MarkerArray

    node.create_subscription(TFMessage, "/tf", lambda _: None, QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE),
                             raw=raw)
    node.create_subscription(MarkerArray, "/human_mesh/markers", lambda _: None, 10, raw=raw)
    bodies: set[str] = set()

    def on_tracked(msg) -> None:
        for body in set(msg.ids) - bodies:
            bodies.add(body)
            for kind, name in ((Skeleton2D, "skeleton2d"), (NormalizedRegionOfInterest2D, "roi"), (JointState, "joint_states")):
                node.create_subscription(kind, f"/humans/bodies/{body}/{name}", lambda _: None, 10, raw=raw)

    node.create_subscription(IdsList, "/humans/bodies/tracked", on_tracked, 10)


def fused_graph_ms(batch: int, onnx: str = "", int8: bool = False) -> tuple[float, str]:
    """Median time of the node's fused graph (``onnx``, '' = the default export; ``int8``: its
    int8 copy) at ``batch`` people, and the ONNX Runtime provider that ran it (CUDA where an
    NVIDIA GPU and the CUDA provider exist)."""
    from key2mesh.backends import create_backend
    from key2mesh.paths import exported_onnx
    from key2mesh_train.latency import time_backend

    backend = create_backend("onnxruntime", onnx_path=onnx or exported_onnx(), int8=int8)
    return time_backend(backend, batch, repeats=200, warmup=10)[0], backend.provider


if __name__ == "__main__":
    sys.exit(main())
