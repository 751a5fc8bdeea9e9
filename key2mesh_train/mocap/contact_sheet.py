"""A contact sheet of retargeted MoCap: the BVH's own skeleton next to the retargeted body.

A silent retargeting bug (a frozen pelvis, swapped sides, a wrong up axis) poisons every
later number, and one look at this picture shows it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from key2mesh.keypoints import SMPL_JOINT_NAMES, SMPL_PARENTS
from key2mesh.rotations import axis_angle_to_matrix
from key2mesh.skinning import SkinnedBody
from key2mesh_train.mocap.bvh import read_bvh
from key2mesh_train.mocap.retarget import UNITS, UP_ROTATIONS, RetargetReport, retarget
from key2mesh_train.mocap.sequence import Z_UP_TO_Y_UP


def draw_contact_sheet(bvh_path: str | Path, body: SkinnedBody, out: str | Path, columns: int = 8) -> RetargetReport:
    """Write a PNG with ``columns`` evenly spaced frames: BVH skeleton (grey, all joints) and
    the retargeted body (its 24 joints, left side blue, right side red), front and side views."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from key2mesh_train.pretrain import rest_joints

    motion = read_bvh(bvh_path)
    seq, report, places = retarget(motion, rest_joints(body))
    frames = np.linspace(0, len(seq) - 1, min(columns, len(seq))).round().astype(int)
    # The BVH's whole skeleton at the same frames (after the retargeter's skipped frames, Y up, metres).
    skipped = len(motion.frames) - len(seq)
    _, bvh_pos = motion.global_transforms()
    bvh_pos = bvh_pos[skipped:][frames] @ UP_ROTATIONS[report.up_axis].T * UNITS[report.units]
    parents = [j.parent for j in motion.joints]
    rotmats = axis_angle_to_matrix(torch.from_numpy(seq.poses[frames])).float()
    rotmats[:, 0] = torch.from_numpy(Z_UP_TO_Y_UP).float() @ rotmats[:, 0]
    with torch.no_grad():
        joints = body(torch.zeros(len(frames), 10), rotmats, with_vertices=False)["joints"].numpy()
    # The BVH joints the retargeter matched, in SMPL's topology, so both figures read alike.
    bones = [(p, j) for j, p in enumerate(SMPL_PARENTS)
             if p >= 0 and SMPL_JOINT_NAMES[j] in places and SMPL_JOINT_NAMES[p] in places]

    def colour(j: int) -> str:
        name = SMPL_JOINT_NAMES[j]
        return "tab:blue" if name.startswith("left") else "tab:red" if name.startswith("right") else "k"

    fig, axes = plt.subplots(2, len(frames), figsize=(2.6 * len(frames), 6.0), squeeze=False)
    for col, t in enumerate(frames):
        root = places["pelvis"][t] * np.array([1, 0, 1])
        bvh_all = bvh_pos[col] - root
        matched = {n: places[n][t] - root for n in SMPL_JOINT_NAMES if n in places}
        ours = joints[col] - joints[col, 0] + matched["pelvis"]
        for row, a in enumerate((0, 2)):
            ax = axes[row, col]
            shift = 1.0  # the body is drawn beside the BVH skeleton
            for j, p in enumerate(parents):
                if p >= 0:
                    ax.plot(bvh_all[[p, j], a], bvh_all[[p, j], 1], color="0.8", lw=1)
            for p, j in bones:
                a_p, a_j = matched[SMPL_JOINT_NAMES[p]], matched[SMPL_JOINT_NAMES[j]]
                ax.plot([a_p[a], a_j[a]], [a_p[1], a_j[1]], color=colour(j), lw=1.5, alpha=0.6)
            for j, p in enumerate(SMPL_PARENTS):
                if p >= 0:
                    ax.plot(ours[[p, j], a] + shift, ours[[p, j], 1], color=colour(j), lw=2)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(f"frame {t}", fontsize=8)
            if col == 0:
                ax.set_ylabel("front (x-y)" if a == 0 else "side (z-y)", fontsize=8)
    fig.suptitle(f"{Path(bvh_path).name}: BVH skeleton (grey, matched joints coloured) | retargeted body; blue = left; rig {report.rig}, "
                 f"units {report.units}, up {report.up_axis}, {report.skipped_frames} frame(s) skipped, "
                 f"bone angle median {report.bone_angle_median_deg:.1f} deg", fontsize=9)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.stem + ".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(out)
    return report

