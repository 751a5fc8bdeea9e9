"""Messages published as serialised bytes: a message is laid out once and each frame writes only
its numbers, straight from arrays, into a copy of those bytes.

Why: at camera rate the node publishes hundreds of small nested messages per frame (25 TF
frames, 2 markers and 3 ROS4HRI messages per person). Building them as rclpy objects and
converting them to C costs milliseconds, more than the network; ``Publisher.publish(bytes)``
sends bytes as they are. The layout is little-endian CDR, the encoding rclpy's
``serialize_message`` produces, worked out from each message type's own field list
(``SLOT_TYPES``), so it follows the installed ROS 2 distribution's definitions; the tests
check it against ``serialize_message`` and ``deserialize_message``.
"""

from __future__ import annotations

import functools
import struct
from collections import OrderedDict
from collections.abc import Callable, Hashable

import numpy as np

_HEADER = b"\x00\x01\x00\x00"  # CDR, little-endian, no options
_FORMATS = {"boolean": "?", "octet": "B", "char": "B", "uint8": "B", "int8": "b", "int16": "h", "uint16": "H",
            "int32": "i", "uint32": "I", "int64": "q", "uint64": "Q", "float": "f", "double": "d"}

Path = tuple  # field names and sequence indices, e.g. ("transforms", 3, "transform", "rotation", "w")


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray(_HEADER)
        self.offsets: dict[Path, int] = {}

    def align(self, size: int) -> None:
        # CDR aligns each primitive to its own size, counted from the end of the 4-byte header.
        self.out += bytes(-(len(self.out) - len(_HEADER)) % size)

    def primitive(self, fmt: str, value, path: Path) -> None:
        size = struct.calcsize(fmt)
        self.align(size)
        self.offsets[path] = len(self.out)
        if isinstance(value, bytes):  # octet
            value = value[0]
        elif isinstance(value, str):  # char
            value = ord(value)
        self.out += struct.pack("<" + fmt, value)

    def primitives(self, fmt: str, values, path: Path) -> None:
        """A run of primitives (a sequence's elements or a fixed array); ``path`` gets the first."""
        if fmt == "B" and len(values) and isinstance(values[0], bytes):  # octet[]: a list of bytes
            values = [v[0] for v in values]
        data = np.asarray(values, dtype="<" + fmt).tobytes()
        if data:  # an empty sequence is not aligned (rclpy's serialiser reserves room for it anyway)
            self.align(struct.calcsize(fmt))
        self.offsets[path] = len(self.out)
        self.out += data

    def string(self, text: str) -> None:
        data = text.encode() + b"\x00"
        self.align(4)
        self.out += struct.pack("<I", len(data)) + data

    def count(self, n: int) -> None:
        self.align(4)
        self.out += struct.pack("<I", n)

    def message(self, msg, path: Path = ()) -> None:
        for slot, kind in zip(type(msg).__slots__, type(msg).SLOT_TYPES, strict=False):
            self.value(kind, getattr(msg, slot), path + (slot.lstrip("_"),))

    def value(self, kind, value, path: Path) -> None:
        name = type(kind).__name__
        if name == "BasicType":
            self.primitive(_FORMATS[kind.typename], value, path)
        elif name in ("UnboundedString", "BoundedString"):
            self.string(value)
        elif name == "NamespacedType":
            self.message(value, path)
        elif name in ("UnboundedSequence", "BoundedSequence", "Array"):
            if name != "Array":
                self.count(len(value))
            element = kind.value_type
            if type(element).__name__ == "BasicType":
                self.primitives(_FORMATS[element.typename], value, path)
            else:
                for i, item in enumerate(value):
                    self.value(element, item, path + (i,))
        else:
            raise TypeError(f"cannot serialise a {name} field ({'.'.join(map(str, path))})")


def encode(msg) -> tuple[bytes, dict[Path, int]]:
    """``msg`` as CDR bytes (what ``rclpy.serialization.serialize_message`` writes, with padding
    zeroed and without the unused room it leaves after an empty sequence) and the byte offset
    of each primitive field by path; a primitive sequence's path gives its first element."""
    writer = _Writer()
    writer.message(msg)
    return bytes(writer.out), writer.offsets


@functools.cache
def _grid(dtype: str) -> tuple[int, int]:
    """Item size and the byte where a ``dtype`` view of a message starts: CDR aligns values to
    their size from the end of the 4-byte header, so 8-byte values sit at 4 + 8k. (Cached:
    every published message asks, and ``np.dtype`` is slow to make.)"""
    size = np.dtype(dtype).itemsize
    return size, len(_HEADER) % size


def slots(buffer: bytearray, dtype: str) -> np.ndarray:
    """A writable view of ``buffer`` as ``dtype`` (``'<f8'``, ``'<f4'``, ``'<u4'``, ...) whose
    elements are CDR's aligned places for that type: element ``(offset - 4 % size) // size``
    is the value at byte ``offset``."""
    size, base = _grid(dtype)
    return np.frombuffer(buffer, dtype=dtype, count=(len(buffer) - base) // size, offset=base)


class Layout:
    """A message serialised once; ``index`` turns field paths into positions in :func:`slots`
    views, so a frame's numbers go in with one numpy assignment per field kind."""

    def __init__(self, msg) -> None:
        self.data, self.offsets = encode(msg)
        self.fields: dict[str, np.ndarray] = {}  # slot positions, named by whoever fills the layout
        self._scratch: bytearray | None = None

    def index(self, paths, dtype: str) -> np.ndarray:
        """Positions of the fields ``paths`` (any nesting of lists of paths) in a ``dtype`` view."""
        def offset(item):
            return self.offsets[item] if isinstance(item, tuple) else [offset(x) for x in item]

        size, base = _grid(dtype)
        positions = np.asarray(offset(paths), dtype=np.int64)
        if ((positions - base) % size).any():
            raise ValueError(f"fields not aligned for {dtype}")
        return (positions - base) // size

    def runs(self, paths: list[Path], count: int, dtype: str) -> np.ndarray:
        """Positions ``[len(paths), count]`` of ``count`` consecutive values starting at each of
        ``paths`` (a primitive array's elements, or a message of ``count`` same-typed fields)."""
        return self.index(paths, dtype).reshape(-1, 1) + np.arange(count)

    def span(self, index: np.ndarray, dtype: str) -> tuple[int, int]:
        """The bytes ``[start, stop)`` that the positions ``index`` of a ``dtype`` view cover,
        which must be consecutive: a message is then its bytes before, the numbers, the bytes after."""
        size, base = _grid(dtype)
        flat = np.asarray(index).reshape(-1)
        if not len(flat) or (flat != flat[0] + np.arange(len(flat))).any():
            raise ValueError("fields are not consecutive")
        start = base + int(flat[0]) * size
        return start, start + len(flat) * size

    def buffer(self) -> bytearray:
        """A fresh copy of the bytes to fill."""
        return bytearray(self.data)

    def scratch(self) -> bytearray:
        """The same working copy of the bytes on every call, for a writer that sets every number
        of the layout each time (it holds the last message's): a mesh-sized message is not
        copied from the template every frame."""
        if self._scratch is None:
            self._scratch = self.buffer()
        return self._scratch


def stamp_index(layout: Layout, header_paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """``<i4`` and ``<u4`` positions of ``sec`` and ``nanosec`` in each ``std_msgs/Header`` at
    ``header_paths``: one image stamp goes into every header of a frame's message."""
    return (layout.index([p + ("stamp", "sec") for p in header_paths], "<i4"),
            layout.index([p + ("stamp", "nanosec") for p in header_paths], "<u4"))


def write_stamp(buffer: bytearray, index: tuple[np.ndarray, np.ndarray], stamp) -> None:
    slots(buffer, "<i4")[index[0]] = stamp.sec
    slots(buffer, "<u4")[index[1]] = stamp.nanosec


class LayoutCache:
    """The ``size`` most recently used layouts, by key (camera frame and the people in view:
    they change now and then, so a long run must not keep every layout it ever made)."""

    def __init__(self, build: Callable[..., Layout], size: int = 16) -> None:
        self.build = build
        self.size = size
        self.layouts: OrderedDict[Hashable, Layout] = OrderedDict()

    def __call__(self, *key) -> Layout:
        if key in self.layouts:
            self.layouts.move_to_end(key)
        else:
            self.layouts[key] = self.build(*key)
            if len(self.layouts) > self.size:
                self.layouts.popitem(last=False)
        return self.layouts[key]
