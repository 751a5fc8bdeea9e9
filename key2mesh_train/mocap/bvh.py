"""A small BVH reader: skeleton, channels and forward kinematics (CMU MoCap style)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class BVHError(ValueError):
    """A malformed BVH file; the message names the file and line."""


@dataclass
class BVHJoint:
    name: str
    parent: int
    offset: np.ndarray
    channels: list[str] = field(default_factory=list)
    end_offset: np.ndarray | None = None


@dataclass
class BVHMotion:
    path: Path
    joints: list[BVHJoint]
    frames: np.ndarray  # [T, total_channels]
    frame_time: float

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    def index(self, name: str) -> int:
        for i, joint in enumerate(self.joints):
            if joint.name == name:
                return i
        raise KeyError(name)

    def global_transforms(self) -> tuple[np.ndarray, np.ndarray]:
        """World rotations ``[T,J,3,3]`` and positions ``[T,J,3]`` of every joint."""
        frames = self.frames.shape[0]
        rots = np.zeros((frames, len(self.joints), 3, 3))
        pos = np.zeros((frames, len(self.joints), 3))
        column = 0
        for j, joint in enumerate(self.joints):
            local_rot = np.broadcast_to(np.eye(3), (frames, 3, 3)).copy()
            local_pos = np.broadcast_to(joint.offset, (frames, 3)).copy()
            for channel in joint.channels:
                values = self.frames[:, column]
                column += 1
                axis = "XYZ".index(channel[0].upper())
                if channel.lower().endswith("position"):
                    local_pos[:, axis] = values
                else:
                    local_rot = local_rot @ _axis_rotation(axis, np.radians(values))
            if joint.parent < 0:
                rots[:, j], pos[:, j] = local_rot, local_pos
            else:
                rots[:, j] = rots[:, joint.parent] @ local_rot
                pos[:, j] = pos[:, joint.parent] + np.einsum("tab,tb->ta", rots[:, joint.parent], local_pos)
        return rots, pos

    def positions(self, names: list[str]) -> dict[str, np.ndarray]:
        """World positions ``[T,3]`` of joints by name; ``Name.end`` is that joint's End Site."""
        rots, pos = self.global_transforms()
        out = {}
        for name in names:
            base, _, end = name.partition(".")
            j = self.index(base)
            if end:
                offset = self.joints[j].end_offset
                if offset is None:
                    raise KeyError(f"{base} has no End Site")
                out[name] = pos[:, j] + rots[:, j] @ offset
            else:
                out[name] = pos[:, j]
        return out

    def drop_frames(self, mask: np.ndarray) -> BVHMotion:
        """A copy without the frames where ``mask [T]`` is true."""
        return BVHMotion(self.path, self.joints, self.frames[~mask], self.frame_time)


def _axis_rotation(axis: int, angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros(angle.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    out[..., axis, axis] = 1
    out[..., i, i], out[..., i, j], out[..., j, i], out[..., j, j] = c, -s, s, c
    return out


def read_bvh(path: str | Path) -> BVHMotion:
    path = Path(path)
    try:
        lines = path.read_text(errors="strict").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise BVHError(f"{path}: cannot read BVH ({err})") from err
    joints: list[BVHJoint] = []
    stack: list[int] = []
    in_end_site = False
    line_no = 0

    def fail(message: str) -> BVHError:
        return BVHError(f"{path}:{line_no}: {message}")

    def floats(parts: list[str], count: int) -> np.ndarray:
        try:
            values = np.array([float(p) for p in parts], dtype=np.float64)
        except ValueError as err:
            raise fail(f"expected numbers, got {' '.join(parts)!r}") from err
        if values.size != count:
            raise fail(f"expected {count} numbers, got {values.size}")
        return values

    iterator = iter(enumerate(lines, start=1))
    if not lines or lines[0].strip() != "HIERARCHY":
        line_no = 1
        raise fail("file must start with HIERARCHY")
    next(iterator)
    for line_no, raw in iterator:  # noqa: B007 (read by fail())
        parts = raw.split()
        if not parts:
            continue
        key = parts[0]
        if key in ("ROOT", "JOINT"):
            if len(parts) < 2:
                raise fail(f"{key} without a name")
            parent = stack[-1] if stack else -1
            if key == "ROOT" and joints:
                raise fail("more than one ROOT")
            joints.append(BVHJoint(parts[1], parent, np.zeros(3)))
            stack.append(len(joints) - 1)
        elif key == "End":
            in_end_site = True
        elif key == "{":
            continue
        elif key == "}":
            if in_end_site:
                in_end_site = False
            elif stack:
                stack.pop()
            else:
                raise fail("unbalanced '}'")
        elif key == "OFFSET":
            if not joints:
                raise fail("OFFSET before any joint")
            if in_end_site:
                joints[stack[-1]].end_offset = floats(parts[1:], 3)
            else:
                joints[stack[-1]].offset = floats(parts[1:], 3)
        elif key == "CHANNELS":
            try:
                count = int(parts[1])
            except (IndexError, ValueError) as err:
                raise fail("CHANNELS needs a count") from err
            names = parts[2:]
            if len(names) != count or any(n.lower()[1:] not in ("rotation", "position") for n in names):
                raise fail(f"bad CHANNELS line {raw.strip()!r}")
            joints[stack[-1]].channels = names
        elif key == "MOTION":
            break
        else:
            raise fail(f"unexpected token {key!r}")
    else:
        raise fail("no MOTION section")
    if stack:
        raise fail("unclosed joint block before MOTION")
    if not joints:
        raise fail("no joints")
    try:
        line_no, raw = next(iterator)
        frame_count = int(raw.split(":")[1])
        line_no, raw = next(iterator)
        frame_time = float(raw.split(":")[1])
    except (StopIteration, IndexError, ValueError) as err:
        raise fail("expected 'Frames: N' and 'Frame Time: t'") from err
    if frame_time <= 0:
        raise fail("Frame Time must be positive")
    width = sum(len(j.channels) for j in joints)
    rows = []
    for line_no, raw in iterator:  # noqa: B007 (read by fail())
        if raw.strip():
            rows.append(floats(raw.split(), width))
    if len(rows) != frame_count:
        line_no = len(lines)
        raise fail(f"header says {frame_count} frames, found {len(rows)}")
    if frame_count == 0:
        raise fail("no frames")
    return BVHMotion(path, joints, np.stack(rows), frame_time)
