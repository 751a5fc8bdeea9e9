"""ROS 2 bags to and from ROS topics: write rclpy messages, record a node's output, play a bag.

Messages stay CDR bytes end to end: rclpy serialises and deserialises them, rosbags only
handles the container (reading lives in :mod:`key2mesh.bags`), so a recorded bag replays
bit-identical into real ROS 2 tools.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterable
from pathlib import Path

from rclpy.serialization import deserialize_message, serialize_message

from key2mesh.bags import read_raw, typestore


def message_class(msgtype: str):
    """``sensor_msgs/msg/Image`` -> the rclpy class."""
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def msgtype_of(msg) -> str:
    module = type(msg).__module__.split(".")[0]
    return f"{module}/msg/{type(msg).__name__}"


def _storage(path: Path, storage: str):
    from rosbags.rosbag2 import StoragePlugin

    if storage not in ("mcap", "sqlite3"):
        raise ValueError(f"storage must be mcap or sqlite3, got {storage!r}")
    return StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3


def write_raw(path: str | Path, records: Iterable[tuple[str, str, int, bytes]], storage: str = "mcap") -> Path:
    """Write ``(topic, msgtype, timestamp_ns, CDR bytes)`` records into a new bag folder."""
    from rosbags.rosbag2 import Writer

    path = Path(path)
    if path.exists():
        raise FileExistsError(f"bag already exists: {path}")
    store = typestore()
    with Writer(path, version=9, storage_plugin=_storage(path, storage)) as writer:
        connections = {}
        for topic, kind, stamp, raw in records:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, kind, typestore=store)
            writer.write(connections[topic], int(stamp), raw)
    return path


def write_bag(path: str | Path, messages: Iterable[tuple[str, object, int]], storage: str = "mcap") -> Path:
    """Write ``(topic, rclpy message, timestamp_ns)`` tuples into a new bag folder."""
    records = ((topic, msgtype_of(msg), stamp, serialize_message(msg)) for topic, msg, stamp in messages)
    return write_raw(path, records, storage)


class BagRecorder:
    """Subscribe to topics on ``node`` and keep their raw CDR bytes; ``save`` writes a bag."""

    def __init__(self, node, topics: dict[str, type], qos=10) -> None:
        self.records: list[tuple[str, str, int, bytes]] = []
        self.node = node
        for topic, cls in topics.items():
            kind = f"{cls.__module__.split('.')[0]}/msg/{cls.__name__}"
            node.create_subscription(cls, topic, self._callback(topic, kind), qos, raw=True)

    def _callback(self, topic: str, kind: str):
        def record(raw: bytes) -> None:
            self.records.append((topic, kind, time.time_ns(), raw))

        return record

    def save(self, path: str | Path, storage: str = "mcap") -> Path:
        return write_raw(path, self.records, storage)


def play_bag(node, path: str | Path, topics: Iterable[str] | None = None, rate: float = 1.0,
             qos=None, spin=None) -> int:
    """Publish a bag's messages on ``node`` at ``rate`` x recorded speed; returns the count.

    ``spin`` (e.g. ``lambda: rclpy.spin_once(node, timeout_sec=0)``) runs between messages
    so the caller's subscriptions keep flowing during playback.
    """
    from rclpy.qos import qos_profile_sensor_data

    publishers: dict[str, object] = {}
    start_wall = time.monotonic()
    first_stamp = None
    count = 0
    classes: dict[str, type] = {}
    for topic, msgtype, stamp, raw in read_raw(path, topics):
        if topic not in classes:
            classes[topic] = message_class(msgtype)
        msg = deserialize_message(raw, classes[topic])
        if topic not in publishers:
            publishers[topic] = node.create_publisher(type(msg), topic, qos or qos_profile_sensor_data)
        first_stamp = stamp if first_stamp is None else first_stamp
        due = start_wall + (stamp - first_stamp) / 1e9 / max(rate, 1e-6)
        while time.monotonic() < due:
            if spin is not None:
                spin()
            time.sleep(min(0.005, max(0.0, due - time.monotonic())))
        publishers[topic].publish(msg)
        count += 1
    return count
