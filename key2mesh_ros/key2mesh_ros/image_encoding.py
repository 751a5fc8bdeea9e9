"""RGB pixels -> ``sensor_msgs/Image`` (the inverse of :mod:`key2mesh.image_decoding`)."""

from __future__ import annotations

import numpy as np


def rgb_to_image(rgb: np.ndarray, header=None, encoding: str = "rgb8"):
    """``[H,W,3]`` uint8 RGB -> ``sensor_msgs/Image`` (``rgb8`` or ``bgr8``)."""
    from sensor_msgs.msg import Image

    if encoding not in ("rgb8", "bgr8"):
        raise ValueError("rgb_to_image writes rgb8 or bgr8")
    pixels = rgb if encoding == "rgb8" else rgb[..., ::-1]
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding, msg.is_bigendian, msg.step = encoding, 0, int(rgb.shape[1] * 3)
    msg.data = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
    return msg
