"""Real photos that ship inside installed packages, for demos and tests (no downloads)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def demo_photos() -> dict[str, np.ndarray]:
    """``{name: HxWx3 uint8 RGB}``: ultralytics' bus.jpg and zidane.jpg, scikit-image's astronaut."""
    import cv2
    import skimage.data
    import ultralytics

    assets = Path(ultralytics.__file__).resolve().parent / "assets"
    photos = {}
    for name in ("bus", "zidane"):
        bgr = cv2.imread(str(assets / f"{name}.jpg"))
        if bgr is None:
            raise FileNotFoundError(f"ultralytics asset missing: {assets / name}.jpg")
        photos[name] = np.ascontiguousarray(bgr[..., ::-1])
    photos["astronaut"] = np.ascontiguousarray(skimage.data.astronaut())
    return photos


def guess_camera_matrix(width: int, height: int, fov_deg: float = 60.0) -> np.ndarray:
    """Intrinsics of a typical camera for photos without calibration (horizontal FOV)."""
    focal = width / 2 / np.tan(np.radians(fov_deg) / 2)
    return np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]], dtype=np.float64)


def camera_info_msg(header, width: int, height: int, camera_matrix: np.ndarray):
    from sensor_msgs.msg import CameraInfo

    msg = CameraInfo()
    msg.header = header
    msg.width, msg.height = int(width), int(height)
    msg.k = [float(v) for v in camera_matrix.reshape(-1)]
    msg.p = [float(camera_matrix[0, 0]), 0.0, float(camera_matrix[0, 2]), 0.0, 0.0, float(camera_matrix[1, 1]),
             float(camera_matrix[1, 2]), 0.0, 0.0, 0.0, 1.0, 0.0]
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    return msg


def build_demo_bag(path: str | Path, repeats: int = 3, period_s: float = 0.5, storage: str = "mcap") -> Path:
    """A bag of the demo photos on /camera/image_raw with matching /camera/camera_info."""
    from builtin_interfaces.msg import Time
    from std_msgs.msg import Header

    from key2mesh_ros.bag_transport import write_bag
    from key2mesh_ros.image_encoding import rgb_to_image

    photos = demo_photos()
    messages = []
    stamp_ns = 1_700_000_000 * 10**9
    for _ in range(repeats):
        for rgb in photos.values():
            header = Header(frame_id="camera", stamp=Time(sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9))
            h, w = rgb.shape[:2]
            messages.append(("/camera/camera_info", camera_info_msg(header, w, h, guess_camera_matrix(w, h)), stamp_ns))
            messages.append(("/camera/image_raw", rgb_to_image(rgb, header), stamp_ns + 1000))
            stamp_ns += int(period_s * 1e9)
    return write_bag(path, messages, storage=storage)
