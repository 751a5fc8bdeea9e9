"""Draw estimated meshes and keypoints over camera images (flat-shaded, painter's order)."""

from __future__ import annotations

import numpy as np

from key2mesh.keypoints import COCO17_SKELETON

PALETTE = np.array([[230, 120, 60], [60, 160, 230], [120, 200, 90], [200, 90, 200], [230, 200, 60]], np.float32)


def render_overlay(rgb: np.ndarray, meshes: list[np.ndarray], faces: np.ndarray, camera_matrix: np.ndarray,
                   keypoints: list[np.ndarray] | None = None, alpha: float = 0.6) -> np.ndarray:
    """``meshes``: camera-frame vertices ``[V,3]`` per person (metres). Returns a new image."""
    import cv2

    canvas = rgb.copy()
    layer = rgb.copy()
    mask = np.zeros(rgb.shape[:2], np.uint8)
    light = np.array([0.3, -0.5, -0.8])
    light /= np.linalg.norm(light)
    triangles, colours, depths = [], [], []
    for person, vertices in enumerate(meshes):
        if vertices is None or len(vertices) == 0 or (vertices[:, 2] <= 0.05).any():
            continue
        uv = vertices[:, :2] / vertices[:, 2:] * np.diag(camera_matrix)[:2] + camera_matrix[:2, 2]
        tri = vertices[faces]
        normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        normals /= np.linalg.norm(normals, axis=1, keepdims=True) + 1e-12
        shade = 0.35 + 0.65 * np.abs(normals @ light)
        base = PALETTE[person % len(PALETTE)]
        triangles.append(uv[faces])
        colours.append(shade[:, None] * base)
        depths.append(tri[:, :, 2].mean(1))
    if triangles:
        tris = np.concatenate(triangles)
        cols = np.concatenate(colours)
        order = np.argsort(-np.concatenate(depths))  # far first
        pts = np.round(tris[order] * 4).astype(np.int32)  # 2 bits of sub-pixel precision
        for poly, colour in zip(pts, cols[order], strict=True):
            cv2.fillConvexPoly(layer, poly, colour.tolist(), lineType=cv2.LINE_AA, shift=2)
            cv2.fillConvexPoly(mask, poly, 255, shift=2)
        blend = mask.astype(bool)
        canvas[blend] = (alpha * layer[blend] + (1 - alpha) * rgb[blend]).astype(np.uint8)
    for kp in keypoints or []:
        for a, b in COCO17_SKELETON:
            if kp[a, 2] > 0.3 and kp[b, 2] > 0.3:
                cv2.line(canvas, tuple(int(v) for v in kp[a, :2]), tuple(int(v) for v in kp[b, :2]), (255, 255, 0), 2)
        for x, y, c in kp:
            if c > 0.3:
                cv2.circle(canvas, (int(x), int(y)), 3, (255, 0, 0), -1)
    return canvas
