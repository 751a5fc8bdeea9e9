"""``/diagnostics`` for a robot's monitor: rate, latency, people, backend, dropped frames.

One ``diagnostic_msgs/DiagnosticStatus`` per report. The level says what a monitor should do:
OK while frames are processed at least at ``min_rate_hz`` (or the node is paused on purpose),
WARN when images arrive but fewer frames than that are processed, or none arrive at all,
ERROR when frames failed (the detector or model raised) since the last report.
"""

from __future__ import annotations

from dataclasses import dataclass

OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels (bytes on the wire)


@dataclass
class Window:
    """What happened between two reports (counts are differences of the node's counters)."""

    seconds: float
    received: int
    processed: int
    dropped: int
    failed: int
    bad_images: int
    people: int


def assess(window: Window, min_rate_hz: float, state: str, image_topic: str) -> tuple[int, str]:
    """``(level, message)`` for one report window; ``state`` is ``active``, ``paused`` or
    ``inactive``."""
    rate = window.processed / window.seconds if window.seconds > 0 else 0.0
    if state != "active":
        return OK, f"{state}: not processing images"
    if window.failed:
        return ERROR, f"{window.failed} frames failed (see the node's log)"
    if window.received == 0:
        return WARN, f"no images on {image_topic}"
    if rate < min_rate_hz:
        return WARN, f"processing {rate:.1f} Hz, below min_rate_hz {min_rate_hz:g}"
    return OK, f"processing {rate:.1f} Hz"


def diagnostic_array(stamp, node_name: str, level: int, message: str, values: dict[str, object]):
    """A ``DiagnosticArray`` with one status named ``<node>: pipeline``."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    status = DiagnosticStatus(level=bytes([level]), name=f"{node_name}: pipeline", message=message,
                              hardware_id=str(values.get("backend", "")))
    status.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
    array = DiagnosticArray()
    array.header.stamp = stamp
    array.status = [status]
    return array
