import shutil

import numpy as np
import pytest
import torch

from key2mesh.keypoints import SMPL_JOINT_NAMES, SMPL_PARENTS
from key2mesh.rotations import axis_angle_to_matrix
from key2mesh_train.mocap.amass import load_amass_npz
from key2mesh_train.mocap.bvh import BVHError, read_bvh
from key2mesh_train.mocap.dataset import build_pose_bank, load_pose_bank
from key2mesh_train.mocap.procedural import write_procedural_dataset
from key2mesh_train.mocap.retarget import BVH_NAMES, load_bvh_cached, retarget_bvh
from key2mesh_train.mocap.sequence import Z_UP_TO_Y_UP
from key2mesh_train.pretrain import rest_joints


def test_amass_smplh_file(tmp_path):
    rng = np.random.default_rng(0)
    poses = rng.normal(0, 0.3, (10, 156)).astype(np.float32)  # SMPL-H: 52 joints
    path = tmp_path / "subject_walk_poses.npz"
    np.savez(path, poses=poses, trans=np.zeros((10, 3)), betas=rng.normal(size=16), gender="male",
             mocap_framerate=120.0)
    seq = load_amass_npz(path)
    assert seq.poses.shape == (10, 24, 3)
    np.testing.assert_allclose(seq.poses[:, :22].reshape(10, -1), poses[:, :66], atol=1e-6)
    assert np.all(seq.poses[:, 22:] == 0) and seq.fps == 120.0 and seq.betas.shape == (10,)
    assert len(seq.resampled(30.0)) == 3


def test_amass_bad_files(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.npz"):
        load_amass_npz(tmp_path / "junk.npz")
    np.savez(tmp_path / "nopose.npz", trans=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="no 'poses'"):
        load_amass_npz(tmp_path / "nopose.npz")


def _smpl_as_bvh(rest_joints: np.ndarray, local_aa: np.ndarray, path, scale: float = 40.0) -> None:
    """Write a BVH with SMPL's skeleton under CMU names (Y-up, inches-like units) whose
    joint rotations are the given SMPL local rotations (ZXY Euler channels)."""
    from scipy.spatial.transform import Rotation

    smpl_to_bvh = {s: names[0] for s, names in BVH_NAMES.items()}
    children = {j: [c for c, p in enumerate(SMPL_PARENTS) if p == j] for j in range(24)}
    lines = ["HIERARCHY"]
    order = []

    def emit(j, depth):
        pad = "  " * depth
        name = smpl_to_bvh[SMPL_JOINT_NAMES[j]]
        head = "ROOT" if j == 0 else "JOINT"
        offset = rest_joints[j] if j == 0 else rest_joints[j] - rest_joints[SMPL_PARENTS[j]]
        lines.append(f"{pad}{head} {name}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {' '.join(f'{v * scale:.6f}' for v in offset)}")
        chans = "6 Xposition Yposition Zposition Zrotation Xrotation Yrotation" if j == 0 else "3 Zrotation Xrotation Yrotation"
        lines.append(f"{pad}  CHANNELS {chans}")
        order.append(j)
        for c in children[j]:
            emit(c, depth + 1)
        if not children[j]:
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET 0 1 0", f"{pad}  }}"])
        lines.append(f"{pad}}}")

    emit(0, 0)
    frames = local_aa.shape[0]
    lines += ["MOTION", f"Frames: {frames}", "Frame Time: 0.0083333"]
    for t in range(frames):
        row = []
        for j in order:
            if j == 0:
                row += list(rest_joints[0] * scale + np.array([0.0, 0.0, t * 0.1]))
            euler = Rotation.from_rotvec(local_aa[t, j]).as_euler("ZXY", degrees=True)
            row += list(euler)
        lines.append(" ".join(f"{v:.6f}" for v in row))
    path.write_text("\n".join(lines) + "\n")


def test_bvh_retarget_recovers_joint_positions(tmp_path, body):
    rest = rest_joints(body)
    rng = np.random.default_rng(0)
    local = rng.normal(0, 0.35, (24, 24, 3))  # 24 frames at 120 fps
    path = tmp_path / "01_01.bvh"
    _smpl_as_bvh(rest, local, path)
    motion = read_bvh(path)
    assert motion.fps == pytest.approx(120, rel=1e-3) and len(motion.joints) == 24
    seq = retarget_bvh(motion, rest)
    assert len(seq) == 6  # resampled to 30 fps
    # Pose both in the same Y-up world; joint positions must agree (twist is unobservable).
    ours = axis_angle_to_matrix(torch.from_numpy(seq.poses)).float()
    ours[:, 0] = torch.from_numpy(Z_UP_TO_Y_UP).float() @ ours[:, 0]
    truth = axis_angle_to_matrix(torch.from_numpy(local[::4])).float()
    zero = torch.zeros(6, 10)
    a = body(zero, ours, with_vertices=False)["joints"]
    b = body(zero, truth, with_vertices=False)["joints"]
    err = (a - a[:, :1] - (b - b[:, :1])).norm(dim=-1)
    assert err.max() < 0.005, f"retargeted joints off by {err.max():.4f} m"
    cached = load_bvh_cached(path, rest, tmp_path / "cache")
    again = load_bvh_cached(path, rest, tmp_path / "cache")  # second call reads the cache
    np.testing.assert_allclose(cached.poses, again.poses, atol=1e-6)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1


@pytest.mark.parametrize("text,line,message", [
    ("HIERARCHY\nROOT Hips\n{\n  OFFSET 0 0 x\n", 4, "expected numbers"),
    ("HIERARCHY\nROOT Hips\n{\n  OFFSET 0 0 0\n  CHANNELS 3 Xposition Yposition\n", 5, "bad CHANNELS"),
    ("HIERARCHY\nROOT Hips\n{\n  OFFSET 0 0 0\n  CHANNELS 1 Xposition\n}\nMOTION\nFrames: 2\nFrame Time: 0.01\n1\n", 10, "header says 2"),
    ("ROOT Hips\n", 1, "must start with HIERARCHY"),
])
def test_bvh_errors_name_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "broken.bvh"
    path.write_text(text)
    with pytest.raises(BVHError, match=rf"broken\.bvh:{line}: .*{message}"):
        read_bvh(path)


def test_procedural_motion_loads_through_amass_path(tmp_path, body):
    files = write_procedural_dataset(tmp_path / "proc", sequences=6, frames=30)
    assert len(files) == 6
    seqs = [load_amass_npz(f) for f in files]
    bank = build_pose_bank(seqs)
    assert len(bank) == 180 and torch.isfinite(bank.rotmats).all()
    train, held = bank.split(0.2)
    assert len(train) + len(held) == len(bank) and len(held) > 0
    assert not set(train.sequence_ids) & set(held.sequence_ids)
    # Bodies stand upright in the Y-up world: head above pelvis.
    joints = body(bank.betas[:30], bank.rotmats[:30], with_vertices=False)["joints"]
    assert (joints[:, 15, 1] > joints[:, 0, 1]).float().mean() > 0.9
    bank2 = load_pose_bank([str(tmp_path / "missing")], tmp_path / "cache", rest_joints(body), procedural_sequences=4, progress=False)
    assert len(bank2.names) == 4


def test_split_does_not_depend_on_where_the_data_lives(tmp_path, body, monkeypatch):
    """The held-out set hashes each sequence's path below its MoCap root: the same files
    reached through different absolute or relative paths give the same split."""
    files = write_procedural_dataset(tmp_path / "a" / "mocap", sequences=10, frames=12)
    (tmp_path / "b" / "deeper").mkdir(parents=True)
    moved = shutil.copytree(tmp_path / "a" / "mocap", tmp_path / "b" / "deeper" / "mocap")
    banks = [load_pose_bank([str(tmp_path / "a" / "mocap")], tmp_path / "c1", rest_joints(body), progress=False),
             load_pose_bank([str(moved)], tmp_path / "c2", rest_joints(body), progress=False)]
    monkeypatch.chdir(tmp_path / "b")
    banks.append(load_pose_bank(["deeper/mocap"], tmp_path / "c3", rest_joints(body), progress=False))
    assert banks[0].names == sorted(f.name for f in files)
    held = [sorted({bank.names[i] for i in bank.split(0.3)[1].sequence_ids}) for bank in banks]
    assert held[0] and held[0] == held[1] == held[2]
