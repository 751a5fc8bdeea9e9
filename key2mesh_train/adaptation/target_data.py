"""Unlabelled target-domain 2D keypoints: from a ROS 2 bag, a folder of images, or a file."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from key2mesh.keypoints import NUM_KEYPOINTS

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def _detections_to_array(people: list[np.ndarray], source: str, images: int) -> np.ndarray:
    if not people:
        raise ValueError(f"no people detected in {images} image(s) from {source}: nothing to adapt to")
    return np.stack(people).astype(np.float32)


def keypoints_from_bag(path: str | Path, topic: str, detector, progress: bool = True, every: int = 1) -> np.ndarray:
    """Run the detector over every ``every``-th image on ``topic`` (Image or CompressedImage)."""
    from key2mesh.bags import bag_topics, read_bag
    from key2mesh.image_decoding import ImageError, compressed_to_rgb, image_to_rgb

    kinds = bag_topics(path)
    kind = kinds.get(topic)
    # A missing topic is left to read_bag, whose error names the topics present.
    if kind is not None and kind not in ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage"):
        raise ValueError(f"{path}: topic {topic} carries {kind}, not camera images")
    people: list[np.ndarray] = []
    images = 0
    for index, (_, msgtype, _, msg) in enumerate(tqdm(read_bag(path, [topic]), desc="detecting", unit="img",
                                                      disable=not progress)):
        if index % every:
            continue
        try:
            rgb = image_to_rgb(msg) if msgtype.endswith("/Image") else compressed_to_rgb(msg)
        except ImageError as err:
            log.warning("skipping image %d: %s", index, err)
            continue
        images += 1
        people.extend(d.keypoints for d in detector.detect(rgb)[: detector.max_people])
    return _detections_to_array(people, f"{path} {topic}", images)


def keypoints_from_images(folder: str | Path, detector, progress: bool = True) -> np.ndarray:
    import cv2

    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}")
    people: list[np.ndarray] = []
    images = 0
    for path in tqdm(files, desc="detecting", unit="img", disable=not progress):
        bgr = cv2.imread(str(path))
        if bgr is None:
            log.warning("skipping unreadable image %s", path)
            continue
        images += 1
        people.extend(d.keypoints for d in detector.detect(np.ascontiguousarray(bgr[..., ::-1]))[: detector.max_people])
    return _detections_to_array(people, str(folder), images)


def keypoints_from_file(path: str | Path) -> np.ndarray:
    """``.npy`` or ``.npz`` (key ``keypoints``) of COCO-17 pixel keypoints ``[N,17,3]``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"keypoints file not found: {path}")
    data = np.load(path, allow_pickle=False)
    if isinstance(data, np.lib.npyio.NpzFile):
        if "keypoints" not in data.files:
            raise ValueError(f"{path}: no 'keypoints' array (keys: {data.files})")
        data = data["keypoints"]
    keypoints = np.asarray(data, np.float32)
    if keypoints.ndim != 3 or keypoints.shape[1:] != (NUM_KEYPOINTS, 3) or keypoints.shape[0] == 0:
        raise ValueError(f"{path}: keypoints must be [N,17,3] with N > 0, got {keypoints.shape}")
    return keypoints
