"""Crafted pickles run nothing: body models and 3DPW files go through one restricted unpickler."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from key2mesh.body_model import read_body_model_file
from key2mesh.safe_pickle import RefusedPickleError, load_pickle
from key2mesh_train.evaluation.datasets import read_3dpw_sequence


class _Payload:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.target}",)


def _crafted(path, target, inside_dict=True):
    evil = _Payload(target)
    with open(path, "wb") as handle:
        pickle.dump({"v_template": np.zeros((3, 3)), "poses": evil} if inside_dict else evil, handle)


@pytest.mark.parametrize("reader", [read_body_model_file, read_3dpw_sequence, load_pickle])
def test_a_crafted_pickle_runs_nothing(tmp_path, reader):
    target = tmp_path / "pwned"
    path = tmp_path / "model.pkl"
    _crafted(path, target)
    with pytest.raises(RefusedPickleError, match=r"model\.pkl: refused to load posix\.system|model\.pkl: refused to load os\.system"):
        reader(path)
    assert not target.exists()


def test_arrays_sparse_matrices_and_chumpy_still_load(tmp_path):
    import scipy.sparse

    path = tmp_path / "ok.pkl"
    data = {"a": np.arange(6).reshape(2, 3), "j": scipy.sparse.csc_matrix(np.eye(3)), "s": np.float32(2.5),
            "names": ["x", "y"]}
    with open(path, "wb") as handle:
        pickle.dump(data, handle, protocol=2)
    loaded = load_pickle(path)
    np.testing.assert_array_equal(loaded["a"], data["a"])
    assert loaded["j"].shape == (3, 3) and loaded["s"] == 2.5 and loaded["names"] == ["x", "y"]
    (tmp_path / "bad.pkl").write_bytes(b"\x80\x04garbage")
    with pytest.raises(ValueError, match="bad.pkl"):
        load_pickle(tmp_path / "bad.pkl")
