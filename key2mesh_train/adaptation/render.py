"""A small software renderer for posed bodies, so that a real detector can look at them.

Painter's algorithm with OpenCV polygon fills (back to front), Lambert shading, and
clothing-like colours by body part. It is not photo-real; it only has to give a real
2D pose detector a person to find, so that its keypoints carry the detector's own joint
definitions, misses and confidences rather than our projection's.
"""

from __future__ import annotations

import cv2
import numpy as np

# SMPL joints whose skin is drawn as trousers, and as bare skin (head, hands).
_LEG_JOINTS = (1, 2, 4, 5, 7, 8, 10, 11)
_SKIN_JOINTS = (12, 15, 20, 21, 22, 23)
_SUBPIXEL_BITS = 2  # cv2 fixed-point vertices: quarter-pixel edges
_LIGHT = np.array([0.3, -0.5, -0.8]) / np.linalg.norm([0.3, -0.5, -0.8])


class BodyRenderer:
    """Render one posed mesh (camera frame, metres, OpenCV axes) into an RGB image."""

    def __init__(self, faces: np.ndarray, lbs_weights: np.ndarray, width: int = 640, height: int = 480) -> None:
        self.faces = np.asarray(faces, np.int64)
        self.width, self.height = int(width), int(height)
        owner = np.asarray(lbs_weights).argmax(-1)
        # A face belongs to a part when at least two of its corners do.
        self.leg_face = np.isin(owner, _LEG_JOINTS)[self.faces].sum(1) >= 2
        self.skin_face = np.isin(owner, _SKIN_JOINTS)[self.faces].sum(1) >= 2

    def render(self, vertices: np.ndarray, pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``[H,W,3]`` uint8 RGB of camera-frame ``vertices [V,3]`` (depth order, shading) drawn at
        their projections ``pixels [V,2]``; ``rng`` draws the background and clothing colours."""
        vertices = np.asarray(vertices, np.float64)
        if not np.isfinite(vertices).all() or (vertices[:, 2] <= 0).any():
            raise ValueError("every vertex must be finite and in front of the camera (z > 0)")
        image = np.empty((self.height, self.width, 3), np.uint8)
        image[:] = rng.uniform(50, 210, 3).astype(np.uint8)
        shirt, trousers = rng.uniform(40, 230, 3), rng.uniform(20, 160, 3)
        skin = np.array([200.0, 160.0, 130.0]) * rng.uniform(0.5, 1.1)
        tri = vertices[self.faces]
        normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        normal /= np.linalg.norm(normal, axis=-1, keepdims=True) + 1e-12
        shade = np.clip(np.abs(normal @ _LIGHT), 0.15, 1.0)  # two-sided: winding need not be known
        base = np.where(self.leg_face[:, None], trousers, np.where(self.skin_face[:, None], skin, shirt))
        colours = (base * shade[:, None]).astype(np.uint8).tolist()
        corners = np.round(np.asarray(pixels, np.float64)[self.faces] * (1 << _SUBPIXEL_BITS)).astype(np.int32)
        for k in np.argsort(-tri[:, :, 2].mean(1)):  # far to near
            cv2.fillConvexPoly(image, corners[k], colours[k], lineType=cv2.LINE_AA, shift=_SUBPIXEL_BITS)
        return image
