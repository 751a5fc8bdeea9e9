"""Retargeting checked on the real CMU motion in ../shared (skipped without it).

A silent retargeting bug (a degenerate pelvis frame that freezes every child, swapped
sides, a wrong up axis) poisons every later figure, so the retargeted body is held against
the BVH's own joints, and the same CMU trial in two rigs must give the same motion.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import SHARED

from key2mesh.keypoints import SMPL_JOINT_NAMES
from key2mesh.rotations import axis_angle_to_matrix
from key2mesh_train.evaluation.metrics import pa_mpjpe
from key2mesh_train.mocap.bvh import read_bvh
from key2mesh_train.mocap.retarget import CHECKED_BONES, retarget
from key2mesh_train.mocap.sequence import Z_UP_TO_Y_UP
from key2mesh_train.pretrain import rest_joints

CMU = SHARED / "mocap" / "cmu"
pytestmark = pytest.mark.skipif(not CMU.is_dir(), reason=f"real CMU MoCap not present at {CMU}")
# One file per rig, each a real performance (a wave, a dance, a run, a jump, a hop).
ONE_PER_RIG = {"cmu-motionbuilder": "mb/141/141_16.bvh", "cmu-daz": "daz/09/09_01.bvh",
               "cmu-asf": "asf/16/16_01.bvh", "cmu-3dsmax": "max/131/131_02.bvh",
               "character-creator": "cc/05/05_02.bvh"}


def _posed_joints(body, seq) -> torch.Tensor:
    """Root-relative joints [T,24,3] of the body posed by a retargeted sequence, Y-up world."""
    rotmats = axis_angle_to_matrix(torch.from_numpy(seq.poses)).float()
    rotmats[:, 0] = torch.from_numpy(Z_UP_TO_Y_UP).float() @ rotmats[:, 0]
    with torch.no_grad():
        joints = body(torch.zeros(len(rotmats), 10), rotmats, with_vertices=False)["joints"]
    return joints - joints[:, :1]


@pytest.mark.parametrize("rig,relative", sorted(ONE_PER_RIG.items()))
def test_retargeted_body_follows_the_bvh_joints(body, rig, relative):
    """Bounds: every checked bone of the body points where the BVH's bone points (median
    under 2 deg, 95th percentile under 10 deg), and after similarity alignment (scale
    included) the body's joints sit within 8 % of the BVH's height of the BVH's own joints:
    what is left is the rigs' different proportions, not pose. A frozen pose fails both."""
    seq, report, places = retarget(read_bvh(CMU / relative), rest_joints(body))
    assert report.rig == rig
    ours = _posed_joints(body, seq).double()
    index = {n: i for i, n in enumerate(SMPL_JOINT_NAMES)}
    angles = []
    for a, b in CHECKED_BONES:
        mine = torch.nn.functional.normalize(ours[:, index[b]] - ours[:, index[a]], dim=-1)
        theirs = torch.nn.functional.normalize(torch.from_numpy(places[b] - places[a]), dim=-1)
        angles.append(torch.rad2deg(torch.arccos((mine * theirs).sum(-1).clamp(-1, 1))))
    angles = torch.cat(angles)
    assert angles.median() < 2.0 and torch.quantile(angles, 0.95) < 10.0, (angles.median(), angles.max())
    names = [n for n in ("pelvis", "left_knee", "right_knee", "left_ankle", "right_ankle", "head", "left_elbow",
                         "right_elbow", "left_wrist", "right_wrist") if n in places]
    bvh = torch.from_numpy(np.stack([places[n] for n in names], axis=1))
    error = pa_mpjpe(ours[:, [index[n] for n in names]], bvh).mean()
    assert error < 0.08 * report.height_m, f"{relative}: {error * 1000:.0f} mm after alignment"
    assert report.motion_spread_mm > 30, "the retargeted body barely moves: a frozen pose"


def test_same_trial_in_two_rigs_gives_the_same_motion(body):
    """CMU 05_02 (a dance) converted to the Motionbuilder rig and retargeted by iClone onto a
    Character Creator rig: the retargeted bodies agree within 6 cm PA-MPJPE, frame by frame."""
    rest = rest_joints(body)
    a = _posed_joints(body, retarget(read_bvh(CMU / "mb/05/05_02.bvh"), rest)[0])
    b = _posed_joints(body, retarget(read_bvh(CMU / "cc/05/05_02.bvh"), rest)[0])
    frames = min(len(a), len(b))
    error = pa_mpjpe(a[:frames], b[:frames]).mean()
    assert error < 0.06, f"mb and cc versions of 05_02 differ by {error * 1000:.0f} mm"
    shifted = pa_mpjpe(a[: frames - 30], b[30:frames]).mean()  # a second apart: clearly different poses
    assert shifted > 1.5 * error


def test_every_shared_bvh_file_loads(body):
    from key2mesh_train.mocap.dataset import find_motion_files

    rest = rest_joints(body)
    files = find_motion_files([CMU])
    assert len(files) >= 200
    rigs = set()
    for path in files:
        seq, report, _ = retarget(read_bvh(path), rest)
        assert len(seq) > 0 and report.motion_spread_mm > 20, path
        rigs.add(report.rig)
    assert rigs == set(ONE_PER_RIG)


def test_show_mocap_draws_a_contact_sheet(tmp_path):
    out = tmp_path / "sheet.png"
    result = subprocess.run([sys.executable, "-m", "key2mesh_train.cli", "show-mocap", str(CMU / "mb/141/141_16.bvh"),
                             "--out", str(out), "--frames", "4"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert '"rig": "cmu-motionbuilder"' in result.stdout and out.stat().st_size > 10_000
