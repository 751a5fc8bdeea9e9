import pickle
import sys
import types

import numpy as np
import pytest
import torch

from key2mesh.body_model import DEFAULT_BODY_MODEL, load_skinned_body, load_smplx_model, read_body_model_file
from key2mesh.rotations import axis_angle_to_matrix
from key2mesh.skinning import SkinnedBody


def test_stand_in_body_is_smpl_format():
    body_file = read_body_model_file(DEFAULT_BODY_MODEL)
    assert body_file.data["kintree_table"].shape == (2, 24)
    assert body_file.data["shapedirs"].shape[1:] == (3, 10)
    assert "anny" in body_file.description
    weights = body_file.data["weights"]
    np.testing.assert_allclose(weights.sum(1), 1.0, atol=1e-5)


@pytest.mark.parametrize("with_correctives", [False, True])
def test_lbs_matches_smplx(with_correctives, tmp_path):
    """The exportable LBS reproduces smplx to <= 1e-5 m on random poses and shapes."""
    path = DEFAULT_BODY_MODEL
    if with_correctives:  # exercise the pose-corrective path too, as real SMPL has one
        data = read_body_model_file(DEFAULT_BODY_MODEL).data
        data["posedirs"] = np.random.default_rng(0).normal(0, 1e-3, (data["v_template"].shape[0], 3, 207)).astype(np.float32)
        path = tmp_path / "with_posedirs.pkl"
        path.write_bytes(pickle.dumps(data))
    model = load_smplx_model(path)
    body = SkinnedBody(model, model.body_file.keypoint_vertex_ids)
    assert body.has_pose_correctives == with_correctives
    torch.manual_seed(0)
    betas = torch.randn(8, 10)
    aa = torch.randn(8, 24, 3) * 0.6
    ref = model(betas=betas, global_orient=aa[:, 0], body_pose=aa[:, 1:].reshape(8, -1), transl=torch.zeros(8, 3))
    out = body(betas, axis_angle_to_matrix(aa))
    assert (out["vertices"] - ref.vertices).abs().max() <= 1e-5
    assert (out["joints"] - ref.joints[:, :24]).abs().max() <= 1e-5
    # smplx appends the face vertices after the 24 joints as nose, reye, leye, rear, lear
    assert (out["keypoints"][:, :5] - ref.joints[:, [24, 26, 25, 28, 27]]).abs().max() <= 1e-5


def _write_chumpy_style_pickle(path, data):
    """Pickle with arrays wrapped in a class named chumpy.ch.Ch, as official SMPL files are."""
    module = types.ModuleType("chumpy")
    ch = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = x

        def __getstate__(self):
            return {"x": self.x}

    Ch.__module__, Ch.__qualname__ = "chumpy.ch", "Ch"
    ch.Ch = Ch
    sys.modules["chumpy"], sys.modules["chumpy.ch"] = module, ch
    try:
        wrapped = {k: Ch(v) if k in ("shapedirs", "v_template") else v for k, v in data.items()}
        path.write_bytes(pickle.dumps(wrapped, protocol=2))
    finally:
        del sys.modules["chumpy"], sys.modules["chumpy.ch"]


def test_official_style_chumpy_pickle_loads_without_chumpy(tmp_path):
    data = read_body_model_file(DEFAULT_BODY_MODEL).data
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    _write_chumpy_style_pickle(path, data)
    assert "chumpy" not in sys.modules
    body = load_skinned_body(tmp_path)  # a folder resolves to SMPL_NEUTRAL.pkl inside
    ref = load_skinned_body()
    assert torch.equal(body.v_template, ref.v_template)
    assert torch.equal(body.shapedirs_cm, ref.shapedirs_cm)


def test_missing_and_corrupt_body_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="make_body_model.py"):
        load_skinned_body(tmp_path / "nope.pkl")
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="bad.pkl"):
        load_skinned_body(bad)
    partial = tmp_path / "partial.pkl"
    partial.write_bytes(pickle.dumps({"v_template": np.zeros((3, 3))}))
    with pytest.raises(ValueError, match="missing SMPL fields"):
        load_skinned_body(partial)
