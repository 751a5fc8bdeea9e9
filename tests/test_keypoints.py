import json

import numpy as np
import pytest
import torch

from key2mesh.keypoints import (
    COCO17_NAMES,
    OPENPOSE18_NAMES,
    load_openpose_json,
    normalization_box,
    normalize_keypoints,
    openpose18_to_coco17,
)


def test_normalisation_follows_official_recipe():
    kp = np.zeros((17, 3), np.float32)
    kp[:, 0] = np.linspace(100, 200, 17)  # 100 px wide
    kp[:, 1] = np.linspace(50, 450, 17)  # 400 px tall: the longer side
    kp[:, 2] = 0.9
    kp[3, 2] = 0.05  # below the 0.1 threshold: masked, set to 0.5
    out = normalize_keypoints(kp)
    visible = np.delete(np.arange(17), 3)
    centre = np.array([150.0, 250.0])
    expected = (kp[visible, :2] - centre) / 400.0 + 0.5
    np.testing.assert_allclose(out[visible, :2], expected, atol=1e-6)
    np.testing.assert_array_equal(out[3], [0.5, 0.5, 0.0])
    assert out[visible, 2].min() == 1.0


def test_nan_keypoints_are_masked_not_propagated():
    kp = np.random.default_rng(0).uniform(0, 400, (2, 17, 3)).astype(np.float32)
    kp[..., 2] = 1.0
    kp[0, 4, 0] = np.nan
    kp[1, :, 2] = np.nan  # a detector glitch: no usable joint at all
    out = normalize_keypoints(kp)
    assert np.isfinite(out).all()
    assert out[0, 4, 2] == 0 and out[1, :, 2].sum() == 0


def test_numpy_and_torch_agree_and_roundtrip():
    kp = np.random.default_rng(1).uniform(0, 640, (4, 17, 3)).astype(np.float32)
    kp[..., 2] = 1
    a = normalize_keypoints(kp)
    b = normalize_keypoints(torch.from_numpy(kp)).numpy()
    assert isinstance(a, np.ndarray) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-6)
    # Missing, NaN and all-missing people too: training (torch) and the node (numpy) must agree.
    odd = kp.copy()
    odd[0, 3, 2], odd[1, 5, 0], odd[2, :, 2] = 0.05, np.nan, 0.0
    np.testing.assert_allclose(normalize_keypoints(odd), normalize_keypoints(torch.from_numpy(odd)).numpy(), atol=1e-6)
    for x, y in zip(normalization_box(odd), normalization_box(torch.from_numpy(odd)), strict=True):
        np.testing.assert_allclose(x, y.numpy(), atol=1e-4)
    centre, side = normalization_box(torch.from_numpy(kp))
    back = (a[..., :2] - 0.5) * side.numpy()[..., None, None] + centre.numpy()[..., None, :]
    np.testing.assert_allclose(back, kp[..., :2], atol=1e-3)


def test_openpose18_reordering(tmp_path):
    op = np.zeros((18, 3), np.float32)
    for i in range(len(OPENPOSE18_NAMES)):
        op[i] = [i, 10 * i, 1]
    coco = openpose18_to_coco17(op)
    for j, name in enumerate(COCO17_NAMES):
        assert coco[j, 0] == OPENPOSE18_NAMES.index(name)
    path = tmp_path / "frame_keypoints.json"
    path.write_text(json.dumps({"people": [{"pose_keypoints_2d": op.reshape(-1).tolist()}]}))
    np.testing.assert_array_equal(load_openpose_json(path)[0], coco)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        load_openpose_json(bad)
