"""Image messages -> RGB pixels, without cv_bridge (none installs from PyPI).

Works on any object with the ``sensor_msgs/Image`` or ``CompressedImage`` fields: rclpy
messages in the node, rosbags messages when training reads a bag.
"""

from __future__ import annotations

import numpy as np

# encoding -> (channels, dtype, to-RGB channel order or None for grey)
ENCODINGS = {
    "rgb8": (3, np.uint8, (0, 1, 2)),
    "bgr8": (3, np.uint8, (2, 1, 0)),
    "rgba8": (4, np.uint8, (0, 1, 2)),
    "bgra8": (4, np.uint8, (2, 1, 0)),
    "mono8": (1, np.uint8, None),
    "8UC1": (1, np.uint8, None),
    "8UC3": (3, np.uint8, (2, 1, 0)),  # OpenCV convention: BGR
    "mono16": (1, np.uint16, None),
    "16UC1": (1, np.uint16, None),
}


class ImageError(ValueError):
    """An image message that cannot be turned into pixels; the message says why."""


# A 4K frame is 8.3 MP; 40 MP leaves room for any real camera while a decompression bomb
# (a small PNG that decodes to 10000x10000) is refused before it stalls the node.
MAX_IMAGE_PIXELS = 40_000_000


def image_to_rgb(msg, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """``sensor_msgs/Image`` -> contiguous ``[H,W,3]`` uint8 RGB (a read-only view of the
    message's buffer for unpadded rgb8, a copy otherwise).

    Honours ``step`` (row padding) and ``is_bigendian`` (16-bit); 16-bit grey is scaled to
    8 bits by its maximum, since detectors want 8-bit colour.
    """
    encoding = msg.encoding
    if encoding not in ENCODINGS:
        raise ImageError(f"unsupported encoding {encoding!r}; supported: {', '.join(ENCODINGS)}")
    channels, dtype, order = ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise ImageError(f"empty image ({width}x{height})")
    if height * width > max_pixels:
        raise ImageError(f"image of {width}x{height} is over max_image_pixels {max_pixels / 1e6:.0f} MP")
    itemsize = np.dtype(dtype).itemsize
    row_bytes = width * channels * itemsize
    if step < row_bytes:
        raise ImageError(f"step {step} is smaller than a row ({row_bytes} bytes for {width} px {encoding})")
    data = np.frombuffer(msg.data, dtype=np.uint8)
    if data.size < step * (height - 1) + row_bytes:
        raise ImageError(f"data has {data.size} bytes, {width}x{height} {encoding} with step {step} needs {step * height}")
    if itemsize == 1 and order == (0, 1, 2) and channels == 3 and step == row_bytes:
        # rgb8 without row padding, the common case: a read-only view, no copy at all.
        return data[: height * row_bytes].reshape(height, width, 3)
    rows = np.lib.stride_tricks.as_strided(data, shape=(height, row_bytes), strides=(step, 1))
    pixels = rows.copy().view(np.dtype(dtype).newbyteorder(">" if msg.is_bigendian else "<") if itemsize > 1 else dtype)
    pixels = pixels.reshape(height, width, channels)
    if itemsize > 1:
        peak = max(int(pixels.max()), 1)
        pixels = (pixels.astype(np.float32) * (255.0 / peak)).astype(np.uint8)
    if order is None:
        return np.ascontiguousarray(np.repeat(pixels, 3, axis=2))
    return np.ascontiguousarray(pixels[..., list(order)])


def compressed_size(data: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a compressed image's header, without decoding it (None: unknown)."""
    import io
    import warnings

    from PIL import Image as PILImage

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL's own bomb warning: we decide below
            saved, PILImage.MAX_IMAGE_PIXELS = PILImage.MAX_IMAGE_PIXELS, None
            try:
                with PILImage.open(io.BytesIO(data)) as image:
                    return image.size
            finally:
                PILImage.MAX_IMAGE_PIXELS = saved
    except Exception:  # not a format PIL knows: OpenCV still gets to try
        return None


def compressed_to_rgb(msg, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` (jpeg/png) -> ``[H,W,3]`` uint8 RGB. The header's size
    is checked first: an image over ``max_pixels`` is refused without decoding it."""
    import cv2

    buffer = np.frombuffer(msg.data, dtype=np.uint8)
    if buffer.size == 0:
        raise ImageError("empty compressed image")
    size = compressed_size(bytes(msg.data[:1 << 16])) or compressed_size(bytes(msg.data))
    if size is not None and size[0] * size[1] > max_pixels:
        raise ImageError(f"compressed image decodes to {size[0]}x{size[1]} ({size[0] * size[1] / 1e6:.0f} MP), over "
                         f"max_image_pixels {max_pixels / 1e6:.0f} MP: refused without decoding")
    bgr = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError(f"corrupt or unsupported compressed image (format {msg.format!r}, {buffer.size} bytes)")
    return np.ascontiguousarray(bgr[..., ::-1])
