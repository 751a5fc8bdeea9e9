import shutil

import numpy as np
import pytest
import torch

from key2mesh.keypoints import SMPL_JOINT_NAMES, SMPL_PARENTS
from key2mesh.rotations import axis_angle_to_matrix
from key2mesh_train.mocap.actions import action_class
from key2mesh_train.mocap.amass import load_amass_npz
from key2mesh_train.mocap.bvh import BVHError, read_bvh
from key2mesh_train.mocap.dataset import PoseBank, build_pose_bank, load_pose_bank, subject_of
from key2mesh_train.mocap.procedural import write_procedural_dataset
from key2mesh_train.mocap.retarget import load_bvh_cached, retarget
from key2mesh_train.mocap.rigs import UnknownRigError
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


# SMPL joints under the generic (Mixamo-style) names, one BVH joint per SMPL joint.
GENERIC_NAMES = {
    "pelvis": "Hips", "spine1": "Spine", "spine2": "Spine1", "spine3": "Spine2", "neck": "Neck", "head": "Head",
    **{f"{side}_{part}": f"{side.title()}{name}" for side in ("left", "right") for part, name in (
        ("hip", "UpLeg"), ("knee", "Leg"), ("ankle", "Foot"), ("foot", "ToeBase"), ("collar", "Shoulder"),
        ("shoulder", "Arm"), ("elbow", "ForeArm"), ("wrist", "Hand"), ("hand", "HandMiddle1"))},
}
Y_UP_TO_Z_UP = Z_UP_TO_Y_UP.T


def _smpl_as_bvh(rest_joints: np.ndarray, local_aa: np.ndarray, path, scale: float = 40.0, prefix: str = "",
                 z_up: bool = False) -> None:
    """Write a BVH with SMPL's skeleton under generic names (``prefix`` before each, as Mixamo
    writes ``mixamorig:``), in units of 1/``scale`` m, Y-up or Z-up, whose joint rotations are
    the given SMPL local rotations (ZXY Euler channels)."""
    from scipy.spatial.transform import Rotation

    turn = Y_UP_TO_Z_UP if z_up else np.eye(3)
    children = {j: [c for c, p in enumerate(SMPL_PARENTS) if p == j] for j in range(24)}
    lines = ["HIERARCHY"]
    order = []

    def emit(j, depth):
        pad = "  " * depth
        name = prefix + GENERIC_NAMES[SMPL_JOINT_NAMES[j]]
        head = "ROOT" if j == 0 else "JOINT"
        offset = rest_joints[j] if j == 0 else rest_joints[j] - rest_joints[SMPL_PARENTS[j]]
        offset = turn @ offset
        lines.append(f"{pad}{head} {name}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}  OFFSET {' '.join(f'{v * scale:.6f}' for v in offset)}")
        chans = "6 Xposition Yposition Zposition Zrotation Xrotation Yrotation" if j == 0 else "3 Zrotation Xrotation Yrotation"
        lines.append(f"{pad}  CHANNELS {chans}")
        order.append(j)
        for c in children[j]:
            emit(c, depth + 1)
        if not children[j]:
            tip = turn @ np.array([0.0, 0.1, 0.0])
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {' '.join(f'{v * scale:.6f}' for v in tip)}",
                          f"{pad}  }}"])
        lines.append(f"{pad}}}")

    emit(0, 0)
    frames = local_aa.shape[0]
    lines += ["MOTION", f"Frames: {frames}", "Frame Time: 0.0083333"]
    for t in range(frames):
        row = []
        for j in order:
            # Offsets are turned into the file's world, so every local rotation is conjugated too.
            rot = Rotation.from_matrix(turn) * Rotation.from_rotvec(local_aa[t, j]) * Rotation.from_matrix(turn.T)
            if j == 0:
                row += list(turn @ (rest_joints[0] + np.array([0.0, 0.0, t * 0.01])) * scale)
            row += list(rot.as_euler("ZXY", degrees=True))
        lines.append(" ".join(f"{v:.6f}" for v in row))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("prefix,scale,z_up,units,rig", [
    ("", 40.0, False, "inch", "generic"),
    ("mixamorig:", 100.0, True, "cm", "generic"),
    ("", 1.0, False, "m", "generic"),
])
def test_bvh_retarget_recovers_joint_positions(tmp_path, body, prefix, scale, z_up, units, rig):
    rest = rest_joints(body)
    rng = np.random.default_rng(0)
    local = rng.normal(0, 0.35, (24, 24, 3))  # 24 frames at 120 fps
    path = tmp_path / "01_01.bvh"
    _smpl_as_bvh(rest, local, path, scale=scale, prefix=prefix, z_up=z_up)
    motion = read_bvh(path)
    assert motion.fps == pytest.approx(120, rel=1e-3) and len(motion.joints) == 24
    seq, report, _ = retarget(motion, rest)
    assert (report.rig, report.units, report.up_axis) == (rig, units, "+z" if z_up else "+y")
    assert report.skipped_frames == 0 and report.bone_angle_p95_deg < 2.0 and report.joint_error_mm < 5
    seq = seq.resampled(30.0)
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


def test_unknown_rig_is_one_clear_error(tmp_path, body):
    path = tmp_path / "robot.bvh"
    path.write_text("HIERARCHY\nROOT base\n{\n  OFFSET 0 0 0\n  CHANNELS 3 Xposition Yposition Zposition\n"
                    "  JOINT arm\n  {\n    OFFSET 0 1 0\n    CHANNELS 3 Zrotation Xrotation Yrotation\n"
                    "    End Site\n    {\n      OFFSET 0 1 0\n    }\n  }\n}\nMOTION\nFrames: 1\nFrame Time: 0.03\n0 0 0 0 0 0\n")
    with pytest.raises(UnknownRigError, match=r"lacks joints \[.*\]; supported rigs: cmu-motionbuilder, cmu-daz"):
        retarget(read_bvh(path), rest_joints(body))


def test_one_bad_file_in_a_folder_is_skipped(tmp_path, body, caplog):
    rest = rest_joints(body)
    folder = tmp_path / "mocap" / "07"
    folder.mkdir(parents=True)
    _smpl_as_bvh(rest, np.random.default_rng(1).normal(0, 0.2, (8, 24, 3)), folder / "07_01.bvh")
    (folder / "07_02.bvh").write_text("HIERARCHY\nROOT Hips\n{\n  OFFSET 0 0 x\n")
    (folder / "07_03.npz").write_bytes(b"not a zip")
    with caplog.at_level("WARNING"):
        bank = load_pose_bank([str(tmp_path / "mocap")], tmp_path / "cache", rest, progress=False)
    assert bank.names == ["07/07_01.bvh"]
    assert "07_02.bvh" in caplog.text and "2 of 3 files skipped" in caplog.text
    (folder / "07_01.bvh").write_text("junk")
    with pytest.raises(ValueError, match="none of the 3 MoCap files"):
        load_pose_bank([str(tmp_path / "mocap")], tmp_path / "cache", rest, progress=False)


def test_split_holds_out_whole_subjects():
    names = ["mb/05/05_01.bvh", "cc/05/05_01.bvh", "mb/07/07_01.bvh", "daz/07/07_02.bvh", "09_01.bvh"]
    assert [subject_of(n) for n in names] == ["05", "05", "07", "07", "09"]
    rot = torch.eye(3).repeat(10, 24, 1, 1)
    bank = PoseBank(rot, torch.zeros(10, 10), np.repeat(np.arange(5), 2), names)
    train, held = bank.split(held_out_subjects=["05", "09"])
    assert held.subjects() == {"05", "09"} and train.subjects() == {"07"} and len(held) == 6
    train, held = bank.split(0.5)  # by hash of the subject: never one subject on both sides
    assert held.subjects() and not held.subjects() & train.subjects()


def test_action_classes():
    assert action_class("walk on uneven terrain") == "walk"
    assert action_class("run/jog, sudden stop") == "run"
    assert action_class("salsa dance") == "dance"
    assert action_class("Mawashigeri") == "martial arts"
    assert action_class("forward jump") == "jump / hop"
    assert action_class("Motorcycle") == "other"


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


def test_packed_bank_trains_where_the_mocap_is_not(tmp_path, body):
    """`pack-mocap` writes every frame training reads; as a MoCap root elsewhere it gives the
    same frames (rotations within fp16), names, split and data digest, and mixes with folders."""
    from key2mesh_train.cli import main as train_cli
    from key2mesh_train.mocap.packed import is_packed_bank, read_packed_bank
    from key2mesh_train.pretrain import data_digest

    write_procedural_dataset(tmp_path / "mocap" / "p", sequences=8, frames=20)
    packed = tmp_path / "elsewhere" / "bank.npz"
    common = ["--set", f"data.mocap=['{tmp_path / 'mocap'}']", "--set", f"data.cache_dir={tmp_path / 'cache'}",
              "--set", "data.frame_stride=2"]
    assert train_cli(["pack-mocap", *common, "--out", str(packed)]) == 0
    assert is_packed_bank(packed) and not list(packed.parent.glob("*.tmp"))
    original = load_pose_bank([str(tmp_path / "mocap")], tmp_path / "cache", rest_joints(body), frame_stride=2,
                              progress=False)
    again = load_pose_bank([str(packed)], tmp_path / "other-cache", rest_joints(body), progress=False)
    assert again.names == original.names and len(again) == len(original) == 8 * 10
    assert (again.rotmats - original.rotmats).abs().max() < 2e-3
    assert data_digest(again) == data_digest(original)
    held = [sorted({bank.names[i] for i in bank.split(0.3)[1].sequence_ids}) for bank in (original, again)]
    assert held[0] == held[1]

    more = write_procedural_dataset(tmp_path / "more" / "q", sequences=2, frames=10)
    mixed = load_pose_bank([str(packed), str(tmp_path / "more")], tmp_path / "cache3", rest_joints(body), progress=False)
    assert len(mixed.names) == 10 and len(mixed) == 80 + 20
    assert mixed.names[-1] == more[-1].relative_to(tmp_path / "more").as_posix()
    assert (mixed.sequence_ids[-20:] >= 8).all()

    amass = tmp_path / "x_poses.npz"
    np.savez(amass, poses=np.zeros((3, 72)), trans=np.zeros((3, 3)), betas=np.zeros(10), mocap_framerate=30.0)
    assert not is_packed_bank(amass)
    with pytest.raises(ValueError, match="not a packed pose bank"):
        read_packed_bank(amass)
    assert train_cli(["pack-mocap", "--set", f"data.mocap=['{tmp_path / 'nothing'}']", "--out", str(tmp_path / "n.npz")]) == 2
