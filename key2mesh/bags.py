"""Reading ROS 2 bags (mcap and sqlite3) with the pure-Python ``rosbags`` library.

No ROS installation is needed: training reads a robot's logged camera topics here, and the
node package plays and records bags on top of these readers (``key2mesh_ros.bag_transport``).
Messages come back as rosbags objects with the ROS field names, which is all
:mod:`key2mesh.image_decoding` needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path

from key2mesh.paths import message_definitions


class BagError(ValueError):
    """A bag that cannot be used as asked; the message says why (path, topics present)."""


@lru_cache(maxsize=1)
def typestore():
    """The standard ROS 2 types plus key2mesh_msgs (sqlite3 bags store no definitions)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    folder = message_definitions("key2mesh_msgs")
    types = {}
    for path in sorted(folder.glob("*.msg")) if folder else []:
        types.update(get_types_from_msg(path.read_text(), f"key2mesh_msgs/msg/{path.stem}"))
    store.register(types)
    return store


def bag_topics(path: str | Path) -> dict[str, str]:
    """``{topic: msgtype}`` of a bag folder."""
    from rosbags.rosbag2 import Reader

    path = Path(path)
    if not path.exists():
        raise BagError(f"bag not found: {path}")
    try:
        with Reader(path) as reader:
            return {c.topic: c.msgtype for c in reader.connections}
    except Exception as err:  # rosbags raises its own error types for broken bags
        raise BagError(f"{path}: not a readable ROS 2 bag ({err})") from err


def read_raw(path: str | Path, topics: Iterable[str] | None = None) -> Iterator[tuple[str, str, int, bytes]]:
    """Yield ``(topic, msgtype, timestamp_ns, CDR bytes)`` in time order; a missing topic or an
    empty bag is a :class:`BagError` that names what the bag holds."""
    from rosbags.rosbag2 import Reader

    path = Path(path)
    present = bag_topics(path)
    wanted = list(topics) if topics is not None else list(present)
    missing = [t for t in wanted if t not in present]
    if missing:
        raise BagError(f"{path}: no topic {missing}; topics in the bag: {sorted(present) or 'none'}")
    with Reader(path) as reader:
        if reader.message_count == 0:
            raise BagError(f"{path}: the bag is empty")
        connections = [c for c in reader.connections if c.topic in wanted]
        for connection, stamp, raw in reader.messages(connections=connections):
            yield connection.topic, connection.msgtype, stamp, bytes(raw)


def read_bag(path: str | Path, topics: Iterable[str] | None = None) -> Iterator[tuple[str, str, int, object]]:
    """Yield ``(topic, msgtype, timestamp_ns, message)`` in time order (rosbags messages)."""
    store = typestore()
    for topic, msgtype, stamp, raw in read_raw(path, topics):
        yield topic, msgtype, stamp, store.deserialize_cdr(raw, msgtype)
