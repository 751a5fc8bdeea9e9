"""The Key2Mesh ROS 2 node: camera image -> YOLO-pose -> Key2Mesh -> /human_mesh, /tf, REP-155.

A lifecycle (managed) node, like its peers yolo_ros and hri_body_detect: ``configure`` loads
the models and creates the topics, ``activate`` starts processing, ``deactivate`` stops it. By
default it configures and activates itself (``autostart``), so it runs without a lifecycle
manager. ``~/enable`` (``std_srvs/SetBool``) pauses and resumes it while active.

Callbacks only stash the newest frame; a worker thread processes it, so a slow frame makes
the node skip to the newest image (counted as dropped) instead of building a backlog.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
from collections import deque
from pathlib import Path

import numpy as np
import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import String
from std_srvs.srv import SetBool
from visualization_msgs.msg import MarkerArray

from key2mesh.image_decoding import ImageError, compressed_to_rgb, image_to_rgb
from key2mesh.keypoints import normalize_keypoints
from key2mesh.projection import camera_matrix_problem, solve_translations
from key2mesh_ros import diagnostics, messages
from key2mesh_ros.depth import DepthBuffer, DepthError, depth_to_metres, torso_distance
from key2mesh_ros.tracking import Tracker

# Per-frame timings (ms). ``lift`` (tracking, normalising, the fused graph) contains ``graph``,
# the fused graph's own run in this frame; ``non_detector`` is decode + lift + publish of the
# same frame, so the two give the overhead ratio frame by frame. ``publish`` splits into
# PUBLISH_PARTS: placing people in the camera frame, the /human_mesh message, markers, TF and
# the ROS4HRI topics (0 in frames where nobody subscribes to them).
STAGES = ("decode", "detect", "lift", "graph", "publish", "non_detector", "total")
PUBLISH_PARTS = ("place", "mesh_message", "markers", "tf", "hri")

PARAMETERS = {
    "image_topic": ("/camera/image_raw", "sensor_msgs/Image input"),
    "compressed_topic": ("", "sensor_msgs/CompressedImage input ('' = off)"),
    "camera_info_topic": ("", "CameraInfo for metric positions ('' = camera_info beside image_topic, as "
                          "image_transport pairs them; 'off' = none)"),
    "output_topic": ("/human_mesh", "key2mesh_msgs/HumanMeshArray output"),
    "detector_model": ("", "YOLO-pose .pt/.onnx/.engine ('' = shared yolo11n-pose.onnx or yolo11n-pose.pt)"),
    "detector_confidence": (0.3, "minimum person box score"),
    "detector_image_size": (640, "detector input size (pixels; fixed-size .onnx exports keep their own)"),
    "detector_rect": (True, "ONNX Runtime detector: rectangular input around the image (a 4:3 frame at 640 runs "
                      "640x480) instead of a padded square"),
    "detector_runtime": ("auto", "auto | onnxruntime | ultralytics (auto: onnxruntime for .onnx models)"),
    "detector_threads": (0, "ONNX Runtime threads for the detector (0 = all cores)"),
    "onnxruntime_spinning": (False, "ONNX Runtime (detector and Key2Mesh): threads busy-wait between operators "
                             "while a model runs, stopped when it ends"),
    "max_people": (20, "at most this many people per image (highest scores kept)"),
    "backend": ("auto", "auto | tensorrt | onnxruntime | torch"),
    "onnx_model": ("", "fused Key2Mesh ONNX ('' = artifacts/key2mesh.onnx, exported from the checkpoint when "
                   "missing or stale)"),
    "graph_int8": (True, "ONNX Runtime: run the int8 copy of the fused graph (hidden network layers in int8, made "
                   "once from the fp32 export): about 1.4x faster on CPU, same held-out accuracy; TensorRT "
                   "ignores it"),
    "checkpoint": ("", "Key2Mesh checkpoint ('' = your finished pre-training in artifacts/, else the shipped model)"),
    "engine": ("", "prebuilt TensorRT engine ('' = build/cache from the ONNX file)"),
    "publish_vertices": (True, "fill HumanMesh.vertices"),
    "publish_markers": (True, "skeleton markers on <output_topic>/markers"),
    "mesh_marker": (False, "also publish full meshes as TRIANGLE_LIST markers (heavy)"),
    "mesh_marker_rate_hz": (1.0, "rate limit for mesh markers"),
    "smoothing": (True, "One-Euro smoothing of 2D keypoints per track"),
    "smoothing_min_cutoff": (1.0, "One-Euro min cutoff (Hz)"),
    "smoothing_beta": (0.05, "One-Euro speed coefficient"),
    "track_max_age_s": (1.0, "forget a track unseen for this long"),
    "stats_period_s": (2.0, "log and publish latency statistics this often (0 = never)"),
    "max_image_pixels": (40_000_000, "refuse larger images (decompression bombs are refused before decoding)"),
    "watchdog_s": (5.0, "report a frame still processing after this long (0 = never)"),
    "autostart": (True, "configure and activate at startup (false: wait for a lifecycle manager)"),
    "publish_tf": (True, "body_<id> and <joint>_<id> frames on /tf (REP-155 axes), for people with a position"),
    "hri_topics": (True, "REP-155 (ROS4HRI) topics under /humans/bodies"),
    "diagnostics_period_s": (1.0, "publish /diagnostics this often (0 = never)"),
    "min_rate_hz": (2.0, "/diagnostics warns when images arrive but fewer frames than this are processed"),
    "depth_topic": ("", "aligned depth image, 16UC1 mm or 32FC1 m ('' = off): distance from depth under the torso"),
    "detect_every": (1, "run the detector on every Nth frame; between, people move by the tracker's motion "
                     "model (1 = every frame)"),
    "depth_tolerance_s": (0.05, "pair a depth image with the colour image when their stamps differ by at most this"),
}


# Choice parameters and their allowed values (also declared in their ParameterDescriptor).
CHOICES = {
    "detector_runtime": ("auto", "onnxruntime", "ultralytics"),
    "backend": ("auto", "tensorrt", "onnxruntime", "torch"),
}


def camera_info_topic(image_topic: str, setting: str) -> str | None:
    """The CameraInfo topic for ``image_topic``: ``setting`` if given, ``None`` for 'off', else the
    ``camera_info`` sibling (``/front/image_raw`` -> ``/front/camera_info``), as image_transport
    pairs them, so moving the image to another namespace moves its calibration with it."""
    if setting == "off":
        return None
    if setting:
        return setting
    namespace, slash, _ = image_topic.rstrip("/").rpartition("/")
    return f"{namespace}{slash}camera_info"  # a relative image topic gets a relative camera_info


class Key2MeshNode(LifecycleNode):
    def __init__(self, **kwargs) -> None:
        super().__init__("key2mesh_node", **kwargs)
        self._entities: list = []  # subscriptions, publishers, timers made by configure
        self._active = False  # lifecycle state: processing only while active ...
        self._enabled = True  # ... and not paused through ~/enable
        for name, (default, description) in PARAMETERS.items():
            allowed = CHOICES.get(name)
            constraint = f"one of: {', '.join(allowed)}" if allowed else ""
            self.declare_parameter(name, default, ParameterDescriptor(description=description,
                                                                      additional_constraints=constraint))
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        for name, allowed in CHOICES.items():
            if p[name] not in allowed:
                raise ValueError(f"parameter {name} must be one of {', '.join(allowed)}, got {p[name]!r}")
        p["camera_info_topic"] = camera_info_topic(p["image_topic"], p["camera_info_topic"])
        self.params = p
        self.configure_error: Exception | None = None
        self._warned: dict[str, float] = {}
        self.timings = {stage: deque(maxlen=600) for stage in STAGES + PUBLISH_PARTS}
        self.counts = {"received": 0, "frames": 0, "dropped": 0, "bad_images": 0, "failed": 0, "people": 0,
                       "depth_positions": 0, "size_positions": 0, "predicted_frames": 0}
        self._frame_index = 0
        self._reported = dict(self.counts)
        self._reported_at = time.monotonic()
        self.create_service(SetBool, "~/enable", self._on_enable)

    # --- lifecycle ------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except Exception as err:  # kept for main() to report in one line
            self.configure_error = err
            self.get_logger().error(f"configure failed: {type(err).__name__}: {err}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = True
        self.get_logger().info(f"active: processing {self.params['image_topic']}")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        with self._cond:
            self._pending = None
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _on_enable(self, request, response):
        self._enabled = bool(request.data)
        if not self._enabled:
            with self._cond:
                self._pending = None
        response.success = True
        response.message = "processing" if self._enabled and self._active else \
            "paused" if not self._enabled else "enabled; the node is not active (lifecycle)"
        self.get_logger().info(f"~/enable {self._enabled}: {response.message}")
        return response

    @property
    def state(self) -> str:
        return "active" if self._active and self._enabled else "paused" if self._active else "inactive"

    def _configure(self) -> None:
        p = self.params
        from key2mesh.backends import create_backend
        from key2mesh.detector import PoseDetector

        self.detector = PoseDetector(p["detector_model"] or None, p["detector_confidence"], p["detector_image_size"],
                                     p["max_people"], runtime=p["detector_runtime"], threads=p["detector_threads"],
                                     rect=p["detector_rect"], spinning=p["onnxruntime_spinning"])
        checkpoint, onnx_path = self._resolve_model(p)
        self.backend = create_backend(p["backend"], onnx_path=onnx_path, checkpoint=checkpoint,
                                      engine_path=p["engine"] or None, spinning=p["onnxruntime_spinning"],
                                      int8=p["graph_int8"])
        self._warm_up()
        self.get_logger().info(f"detector: {self.detector.description}; Key2Mesh backend {self.backend.description}")
        self.tracker = Tracker(max_age_s=p["track_max_age_s"], smoothing=p["smoothing"],
                               min_cutoff=p["smoothing_min_cutoff"], beta=p["smoothing_beta"])
        self.camera_matrix: np.ndarray | None = None
        self.depth = DepthBuffer()

        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        out = p["output_topic"]
        from key2mesh_msgs.msg import BodyModelInfo, HumanMeshArray

        keep = self._entities.append
        self.pub_humans = self.create_publisher(HumanMeshArray, out, reliable)
        self.pub_markers = self.create_publisher(MarkerArray, f"{out}/markers", reliable)
        self.pub_stats = self.create_publisher(String, f"{out}/stats", reliable)
        self.pub_info = self.create_publisher(BodyModelInfo, f"{out}/body_model", latched)
        for entity in (self.pub_humans, self.pub_markers, self.pub_stats, self.pub_info):
            keep(entity)
        self.pub_tf = None
        if p["publish_tf"]:
            from tf2_msgs.msg import TFMessage

            from key2mesh_ros.tf_frames import TfFrames

            self.pub_tf = self.create_publisher(TFMessage, "/tf", QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
            self.tf_frames = TfFrames()
            keep(self.pub_tf)
        self.hri = None
        if p["hri_topics"]:
            from key2mesh_ros.hri_topics import HriBodies

            self.hri = HriBodies(self, qos=reliable)
        self.pub_diagnostics = None
        if p["diagnostics_period_s"] > 0:
            from diagnostic_msgs.msg import DiagnosticArray

            self.pub_diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
            keep(self.pub_diagnostics)
            keep(self.create_timer(p["diagnostics_period_s"], self._publish_diagnostics))
        self.skeleton_markers = messages.SkeletonMarkers()
        self.human_meshes = messages.HumanMeshArrays()
        self.faces = self.backend.faces
        self.pub_info.publish(messages.body_model_info(Path(onnx_path).stem, self.faces, self.backend.num_vertices))
        self.last_mesh_marker = 0.0

        keep(self.create_subscription(Image, p["image_topic"], lambda m: self._stash(m, "raw"), qos_profile_sensor_data))
        if p["compressed_topic"]:
            keep(self.create_subscription(CompressedImage, p["compressed_topic"], lambda m: self._stash(m, "compressed"),
                                          qos_profile_sensor_data))
        if p["camera_info_topic"] is not None:
            keep(self.create_subscription(CameraInfo, p["camera_info_topic"], self._on_camera_info,
                                          qos_profile_sensor_data))
        if p["depth_topic"]:
            keep(self.create_subscription(Image, p["depth_topic"], self.depth.add, qos_profile_sensor_data))

        self._pending: tuple | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._frame_started: float | None = None
        if p["watchdog_s"] > 0:
            keep(self.create_timer(1.0, self._watchdog))
        self._worker = threading.Thread(target=self._work, name="key2mesh_worker", daemon=True)
        self._worker.start()
        if p["stats_period_s"] > 0:
            keep(self.create_timer(p["stats_period_s"], self._publish_stats))

    def _release(self) -> None:
        """Undo ``_configure``: stop the worker, destroy what it created (cleanup, shutdown, a
        failed configure)."""
        if getattr(self, "_worker", None) is not None:
            self._stop.set()
            with self._cond:
                self._cond.notify()
            self._worker.join(timeout=5.0)
            self._worker = None
        if getattr(self, "hri", None) is not None:
            self.hri.close()
            self.hri = None
        for entity in self._entities:
            kind = type(entity).__name__
            destroy = {"Subscription": self.destroy_subscription, "Publisher": self.destroy_publisher,
                       "Timer": self.destroy_timer}.get(kind)
            if destroy is not None:
                destroy(entity)
        self._entities.clear()

    def _warn(self, text: str, period_s: float = 5.0) -> None:
        """Throttle per kind of problem (not per call site), so each distinct fault is reported."""
        key = text[:40]
        now = time.monotonic()
        if now - self._warned.get(key, -1e9) >= period_s:
            self._warned[key] = now
            self.get_logger().warning(text)

    def _resolve_model(self, p: dict) -> tuple[str, str]:
        """The checkpoint and fused graph to run. With ``onnx_model`` left empty the graph is
        the default export, rebuilt from the checkpoint when missing or made from another one;
        a named ONNX file is used as given."""
        from key2mesh.export import ensure_onnx
        from key2mesh.paths import default_model, exported_onnx

        if p["checkpoint"]:
            checkpoint = p["checkpoint"]
        else:
            path, why = default_model()
            checkpoint = str(path)
            self.get_logger().info(why)
        if p["onnx_model"] or p["backend"] == "torch":
            return checkpoint, p["onnx_model"]
        onnx_path, rebuilt = ensure_onnx(checkpoint, exported_onnx())
        if rebuilt:
            self.get_logger().info(f"exported {checkpoint} to {onnx_path}")
        return checkpoint, str(onnx_path)

    def _warm_up(self) -> None:
        """Run both models once so the first camera frame does not pay for lazy setup."""
        self.detector.detect(np.zeros((480, 640, 3), np.uint8))
        self.backend.run(normalize_keypoints(np.ones((1, 17, 3), np.float32)))

    # --- callbacks: constant time -------------------------------------------------------
    def _stash(self, msg, kind: str) -> None:
        self.counts["received"] += 1
        if not (self._active and self._enabled):
            return
        with self._cond:
            if self._pending is not None:
                self.counts["dropped"] += 1  # a newer frame arrived before this one was taken
            self._pending = (msg, kind, time.perf_counter())
            self._cond.notify()

    def _on_camera_info(self, msg: CameraInfo) -> None:
        """Keep the last valid calibration; a bad one is reported (once per kind of fault,
        throttled) and ignored, so one broken message can neither stall nor misplace anyone."""
        k = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
        problem = camera_matrix_problem(k, msg.width, msg.height)
        if problem is None:
            self.camera_matrix = k
        else:
            kept = "keeping the last valid one" if self.camera_matrix is not None else "positions stay invalid"
            self._warn(f"CameraInfo rejected: {problem}; {kept}")

    # --- worker ------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                while self._pending is None and not self._stop.is_set():
                    self._cond.wait(0.1)
                if self._stop.is_set():
                    return
                msg, kind, received = self._pending
                self._pending = None
            self._frame_started = time.monotonic()
            try:
                self.process(msg, kind, received)
            except ImageError as err:
                self.counts["bad_images"] += 1
                self._warn(f"skipping image: {err}")
            except Exception as err:  # keep the robot's perception alive; say what broke
                if not self.context.ok() or self._stop.is_set():
                    return  # shutting down: publishers are gone
                self.counts["failed"] += 1
                self.get_logger().error(f"frame failed: {type(err).__name__}: {err}", throttle_duration_sec=2.0)
            finally:
                self._frame_started = None

    def _watchdog(self) -> None:
        """A frame that never finishes must not go unnoticed: say so while it lasts."""
        started = self._frame_started
        if started is not None and time.monotonic() - started > self.params["watchdog_s"]:
            self.get_logger().error(f"a frame has been processing for {time.monotonic() - started:.0f} s; "
                                    "the node answers nothing until it ends", throttle_duration_sec=5.0)

    def process(self, msg, kind: str, received: float) -> None:
        """One camera frame -> one ``HumanMeshArray``: decode ``[H,W,3]`` RGB, detect people
        (``[P,17,3]`` pixel keypoints), track and smooth them, normalise to ``[P,17,3]``, run
        the fused graph (``joints [P,24,3]``, ``vertices [P,V,3]``, SMPL parameters), place each
        body in the camera frame (CameraInfo, else body size) and publish. ``kind`` is
        ``raw`` or ``compressed``; ``received`` the perf_counter time the frame arrived."""
        t0 = time.perf_counter()
        limit = self.params["max_image_pixels"]
        rgb = image_to_rgb(msg, limit) if kind == "raw" else compressed_to_rgb(msg, limit)
        t1 = time.perf_counter()
        self._frame_index += 1
        every = self.params["detect_every"]
        track_ids, boxes, scores, smoothed = self.tracker.predict(received) if every > 1 and \
            self._frame_index % every else ([], None, None, None)
        predicted = bool(track_ids)  # a skipped detection: people carried by the tracker's motion model
        if not predicted:
            detections = self.detector.detect(rgb)
            if len(detections) > self.params["max_people"]:
                self._warn(f"more than {self.params['max_people']} people in view: keeping the "
                           f"{self.params['max_people']} most confident (parameter max_people)")
                detections = detections[: self.params["max_people"]]
        t2 = time.perf_counter()
        people = 0
        if not predicted and detections:
            boxes = np.array([d.box for d in detections])
            scores = np.array([d.score for d in detections], np.float32)
            keypoints = np.array([d.keypoints for d in detections], np.float32)
            bad = ~np.isfinite(keypoints).all(-1)
            if bad.any():
                self._warn(f"{int(bad.sum())} keypoints with NaN from the detector: treated as missing")
                keypoints[bad] = 0.0
            track_ids, smoothed = self.tracker.update(boxes, keypoints, received, scores)
        graph = 0.0
        if track_ids:
            inputs = normalize_keypoints(smoothed)
            graph = time.perf_counter()
            out = self.backend.run(inputs)
            graph = time.perf_counter() - graph
            t3 = time.perf_counter()
            positions, sources = self._positions(msg.header, rgb.shape, out, smoothed)
            placing = time.perf_counter()
            vertices = out["vertices"] if self.params["publish_vertices"] else None
            self.pub_humans.publish(self.human_meshes.serialized(
                msg.header, track_ids, scores, boxes, smoothed, out["pose"], out["betas"], out["joints"], vertices,
                positions, sources, (time.perf_counter() - received) * 1000))
            people = len(track_ids)
            placed = np.flatnonzero(~np.isnan(positions).any(1))  # people with a camera-frame position
        else:
            self.tracker.prune(received)
            t3 = placing = time.perf_counter()
            self.pub_humans.publish(self.human_meshes.empty(msg.header, (time.perf_counter() - received) * 1000))
            placed = np.zeros(0, np.int64)
        meshing = time.perf_counter()
        if len(placed):
            placed_ids = [track_ids[i] for i in placed]
            placed_joints = out["joints"][placed] + positions[placed][:, None]
        # Markers, TF and the per-body ROS4HRI topics are built only while someone subscribes
        # (RViz closed, no tf listener): what nobody reads costs nothing. /human_mesh always goes out.
        if self.params["publish_markers"] and len(placed) and self.pub_markers.get_subscription_count():
            self.pub_markers.publish(self.skeleton_markers.serialized(msg.header, placed_joints, placed_ids))
            if self._mesh_markers_due():
                self.pub_markers.publish(MarkerArray(markers=[
                    messages.mesh_marker(msg.header, out["vertices"][i] + positions[i], self.faces, track_ids[i])
                    for i in placed]))
        marking = time.perf_counter()
        if self.pub_tf is not None and len(placed) and self.pub_tf.get_subscription_count():
            self.pub_tf.publish(self.tf_frames.serialized(msg.header, placed_ids, out["pose"][placed], placed_joints))
        framing = time.perf_counter()
        if self.hri is not None:
            if track_ids:
                self.hri.publish(msg.header, rgb.shape[1], rgb.shape[0], self.tracker.ids, track_ids, smoothed, boxes,
                                 scores, out["pose"])
            else:
                self.hri.publish(msg.header, rgb.shape[1], rgb.shape[0], self.tracker.ids)
        t4 = time.perf_counter()
        for stage, value in zip(STAGES + PUBLISH_PARTS, (
                t1 - t0, t2 - t1, t3 - t2, graph, t4 - t3, (t1 - t0) + (t4 - t2), t4 - received,
                placing - t3, meshing - placing, marking - meshing, framing - marking, t4 - framing), strict=True):
            self.timings[stage].append(value * 1000)
        self.counts["frames"] += 1
        self.counts["predicted_frames"] += int(predicted)
        self.counts["people"] += people

    def _positions(self, header, shape: tuple, out: dict, keypoints: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """Camera-frame pelvis positions ``[P,3]`` (NaN: unknown) and where each came from
        (``HumanMesh.POSITION_*``): body size through CameraInfo, its distance replaced by the
        median depth under the torso where an aligned depth image of this stamp has one."""
        from key2mesh_msgs.msg import HumanMesh

        count = len(keypoints)
        if self.camera_matrix is None:
            return np.full((count, 3), np.nan), [HumanMesh.POSITION_NONE] * count
        positions = solve_translations(out["keypoints3d"], keypoints[..., :2], keypoints[..., 2], self.camera_matrix)
        sources = np.where(np.isnan(positions).any(1), HumanMesh.POSITION_NONE, HumanMesh.POSITION_BODY_SIZE).tolist()
        depth_msg = self.depth.closest(header.stamp.sec * 1_000_000_000 + header.stamp.nanosec,
                                       self.params["depth_tolerance_s"]) if self.params["depth_topic"] else None
        if depth_msg is not None:
            try:
                depth = depth_to_metres(depth_msg)
            except DepthError as err:
                self._warn(f"ignoring depth image: {err}")
                depth = None
            for i in range(count) if depth is not None else ():
                distance = torso_distance(depth, keypoints[i], (shape[1], shape[0]))
                if distance is not None and sources[i] == HumanMesh.POSITION_BODY_SIZE and positions[i][2] > 0:
                    positions[i] = positions[i] * (distance / positions[i][2])  # same ray, measured distance
                    sources[i] = HumanMesh.POSITION_DEPTH
        self.counts["depth_positions"] += sources.count(HumanMesh.POSITION_DEPTH)
        self.counts["size_positions"] += sources.count(HumanMesh.POSITION_BODY_SIZE)
        return positions, sources

    def _mesh_markers_due(self) -> bool:
        """Full meshes as markers are heavy: only with ``mesh_marker``, at most ``mesh_marker_rate_hz``."""
        now = time.monotonic()
        rate = self.params["mesh_marker_rate_hz"]
        if not self.params["mesh_marker"] or self.faces is None or rate <= 0 or now - self.last_mesh_marker < 1 / rate:
            return False
        self.last_mesh_marker = now
        return True

    def stats(self) -> dict:
        def summary(values):
            data = np.asarray(values, dtype=np.float64)
            if data.size == 0:
                return {"median_ms": None, "p90_ms": None}
            return {"median_ms": round(float(np.median(data)), 3), "p90_ms": round(float(np.percentile(data, 90)), 3)}

        return {"stages": {s: summary(v) for s, v in self.timings.items()}, **self.counts, "backend": self.backend.name}

    def _publish_stats(self) -> None:
        stats = self.stats()
        self.pub_stats.publish(String(data=json.dumps(stats)))
        total = stats["stages"]["total"]
        if stats["frames"]:
            self.get_logger().info(f"{stats['frames']} frames, {stats['dropped']} dropped, total median "
                                   f"{total['median_ms']} ms", throttle_duration_sec=10.0)

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        delta = {k: self.counts[k] - self._reported.get(k, 0) for k in self.counts}
        window = diagnostics.Window(now - self._reported_at, delta["received"], delta["frames"], delta["dropped"],
                                    delta["failed"], delta["bad_images"], delta["people"])
        self._reported, self._reported_at = dict(self.counts), now
        level, text = diagnostics.assess(window, self.params["min_rate_hz"], self.state, self.params["image_topic"])
        total = self.stats()["stages"]["total"]
        source = "depth" if delta["depth_positions"] else "body size" if delta["size_positions"] else "none"
        values = {
            "state": self.state, "rate_hz": round(window.processed / max(window.seconds, 1e-9), 2),
            "input_rate_hz": round(window.received / max(window.seconds, 1e-9), 2),
            "latency_median_ms": total["median_ms"], "latency_p90_ms": total["p90_ms"],
            "people": delta["people"], "dropped_frames": delta["dropped"], "failed_frames": delta["failed"],
            "bad_images": delta["bad_images"], "position_source": source,
            "backend": self.backend.name, "detector": self.detector.description,
        }
        self.pub_diagnostics.publish(diagnostics.diagnostic_array(self.get_clock().now().to_msg(), self.get_name(),
                                                                  level, text, values))

    def destroy_node(self) -> None:
        self._active = False
        self._release()
        super().destroy_node()


def _fatal(what: str, debug: bool) -> int:
    """A fatal startup fault as one line (the full traceback only with --debug)."""
    if debug:
        traceback.print_exc()
    print(f"key2mesh-node: error: {what}", file=sys.stderr)
    return 1


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__


def main(args: list[str] | None = None, debug: bool = False) -> int:
    """Run the node; a fault at startup (missing or corrupt model, engine, detector, parameter
    file or value) ends in one line ``key2mesh-node: error: ...`` and exit code 1."""
    try:
        rclpy.init(args=args)
    except Exception as err:  # rclpy's RCLError, e.g. a parameter file that is not YAML
        return _fatal(f"cannot start ROS 2: {_first_line(err)} (check --params and --ros-args)", debug)
    node = None
    try:
        try:
            node = Key2MeshNode()
            if node.params["autostart"]:
                if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
                    err = node.configure_error or RuntimeError("configure failed")
                    return _fatal(f"{type(err).__name__}: {_first_line(err)}", debug)
                node.trigger_activate()
            else:
                node.get_logger().info("autostart is off: waiting for a lifecycle manager to configure and activate")
        except Exception as err:
            return _fatal(f"{type(err).__name__}: {_first_line(err)}", debug)
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
