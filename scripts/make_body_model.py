#!/usr/bin/env python3
"""Generate the free SMPL-format stand-in body ``key2mesh/assets/k2m_anny_neutral.pkl``.

Derived from the ``anny`` package (NAVER, Apache-2.0 code; MakeHuman CC0 data) so that the
project runs without the licence-gated SMPL file. The result uses SMPL's 24-joint kinematic
tree and file layout, so real SMPL poses drive it and it loads through the same ``smplx``
code path as ``SMPL_NEUTRAL.pkl``. Steps:

1. ``anny-notoes-nohands`` rig, rest meshes for random phenotypes (gender, age, muscle,
   weight, height, proportions);
2. re-orient from anny's Z-up/-Y-forward frame to SMPL's Y-up/+Z-forward frame;
3. anny bones summed onto SMPL's 24 joints for skinning weights; joint targets from bone heads;
4. arms raised from anny's A-pose into a T-pose with our own LBS (SMPL's rest pose);
5. 10 shape components by PCA (unit-variance betas, as in SMPL);
6. joint regressor by least squares on nearby vertices, over all sampled bodies;
7. face/toe keypoint vertices from anny's COCO keypoint regressor.

The first anny initialisation takes minutes and writes a large cache; run only to regenerate.
Usage: ``python scripts/make_body_model.py [--samples 400] [--out PATH]``.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import numpy as np
import scipy.sparse
import torch

from key2mesh.body_model import DEFAULT_BODY_MODEL
from key2mesh.keypoints import NUM_BETAS, SMPL_JOINT_NAMES, SMPL_PARENTS
from key2mesh.rotations import axis_angle_to_matrix

# anny bone -> SMPL joint whose rotation moves it (weights of a bone go to that joint).
BONE_TO_SMPL = {
    "root": "pelvis", "pelvis.L": "pelvis", "pelvis.R": "pelvis", "spine05": "pelvis",
    "spine04": "spine1", "spine03": "spine1", "spine02": "spine2", "spine01": "spine3",
    "upperleg01.L": "left_hip", "upperleg02.L": "left_hip", "lowerleg01.L": "left_knee",
    "lowerleg02.L": "left_knee", "foot.L": "left_ankle",
    "upperleg01.R": "right_hip", "upperleg02.R": "right_hip", "lowerleg01.R": "right_knee",
    "lowerleg02.R": "right_knee", "foot.R": "right_ankle",
    "clavicle.L": "left_collar", "shoulder01.L": "left_collar", "upperarm01.L": "left_shoulder",
    "upperarm02.L": "left_shoulder", "lowerarm01.L": "left_elbow", "lowerarm02.L": "left_elbow",
    "wrist.L": "left_wrist",
    "clavicle.R": "right_collar", "shoulder01.R": "right_collar",
    "upperarm01.R": "right_shoulder", "upperarm02.R": "right_shoulder",
    "lowerarm01.R": "right_elbow", "lowerarm02.R": "right_elbow", "wrist.R": "right_wrist",
    "neck01": "neck", "neck02": "neck", "neck03": "neck", "head": "head", "eye.L": "head",
    "eye.R": "head",
}
# SMPL joint -> anny bone whose head is that joint's centre.
JOINT_AT_BONE_HEAD = {
    "pelvis": "root", "left_hip": "upperleg01.L", "right_hip": "upperleg01.R",
    "spine1": "spine04", "left_knee": "lowerleg01.L", "right_knee": "lowerleg01.R",
    "spine2": "spine02", "left_ankle": "foot.L", "right_ankle": "foot.R", "spine3": "spine01",
    "neck": "neck01", "left_collar": "clavicle.L", "right_collar": "clavicle.R",
    "head": "head", "left_shoulder": "upperarm01.L", "right_shoulder": "upperarm01.R",
    "left_elbow": "lowerarm01.L", "right_elbow": "lowerarm01.R", "left_wrist": "wrist.L",
    "right_wrist": "wrist.R",
}
KEYPOINT_LABELS = {
    "nose": "nose", "leye": "left_eye", "reye": "right_eye", "lear": "left_ear",
    "rear": "right_ear", "LBigToe": "left_big_toe", "LSmallToe": "left_small_toe",
    "LHeel": "left_heel", "RBigToe": "right_big_toe", "RSmallToe": "right_small_toe",
    "RHeel": "right_heel",
}
# anny is Z-up with the face towards -Y; SMPL is Y-up facing +Z (x stays the body's left).
ANNY_TO_SMPL = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=np.float64)


def sample_anny(samples: int, seed: int):
    import anny

    model = anny.Anny(rig="anny-notoes-nohands", topology="anny")
    gen = torch.Generator().manual_seed(seed)
    verts, heads = [], []
    with torch.no_grad():
        for start in range(0, samples, 50):
            n = min(50, samples - start)
            pheno = {k: torch.rand(n, generator=gen, dtype=torch.float64) for k in model.phenotype_labels}
            pheno["age"] = 0.55 + 0.45 * pheno["age"]  # adults only: the robot sees grown-ups
            if start == 0:  # first body: the neutral phenotype, becomes the PCA anchor check
                for v in pheno.values():
                    v[0] = 0.5
            out = model(phenotype_kwargs=pheno)
            verts.append(out["rest_vertices"].double().numpy())
            heads.append(out["rest_bone_heads"].double().numpy())
    coco = anny.KeypointsRegressor.coco(model)
    labels = list(coco.labels)
    weights = coco.regression_weights.double().numpy()
    bone_w = torch.zeros(model.template_vertices.shape[0], len(model.bone_labels), dtype=torch.float64)
    bone_w.scatter_add_(1, model.vertex_bone_indices.long(), model.vertex_bone_weights.double())
    faces = model.get_triangular_faces().numpy().astype(np.int64)
    return (np.concatenate(verts), np.concatenate(heads), list(model.bone_labels),
            bone_w.numpy(), faces, labels, weights)


def lbs_numpy(points, weights, joints, rots):
    """Pose ``points`` [N,V,3] with per-joint rotations [24,3,3] about rest ``joints`` [N,24,3]."""
    n = points.shape[0]
    rot_g = [None] * 24
    pos_g = np.zeros_like(joints)
    for j, p in enumerate(SMPL_PARENTS):
        if p < 0:
            rot_g[j] = np.broadcast_to(rots[j], (n, 3, 3))
            pos_g[:, j] = joints[:, j]
        else:
            rot_g[j] = rot_g[p] @ rots[j]
            pos_g[:, j] = pos_g[:, p] + np.einsum("nij,nj->ni", rot_g[p], joints[:, j] - joints[:, p])
    rot_g = np.stack(rot_g, 1)
    trans = pos_g - np.einsum("njab,njb->nja", rot_g, joints)
    per_v_rot = np.einsum("vj,njab->nvab", weights, rot_g)
    per_v_t = np.einsum("vj,nja->nva", weights, trans)
    return np.einsum("nvab,nvb->nva", per_v_rot, points) + per_v_t, pos_g


def fit_regressor(verts, joints, k_nearest: int = 48, ridge: float = 1e-4):
    """Per joint: weights over its nearest vertices that sum to one and best reproduce the
    joint over all sampled bodies (least squares with a sum-to-one penalty row)."""
    mean_v, mean_j = verts.mean(0), joints.mean(0)
    reg = np.zeros((joints.shape[1], verts.shape[1]))
    for j in range(joints.shape[1]):
        near = np.argsort(np.linalg.norm(mean_v - mean_j[j], axis=1))[:k_nearest]
        a = verts[:, near, :].transpose(0, 2, 1).reshape(-1, k_nearest)  # [N*3, K]
        b = joints[:, j, :].reshape(-1)
        a = np.vstack([a, 100.0 * np.ones((1, k_nearest)), np.sqrt(ridge) * np.eye(k_nearest)])
        b = np.concatenate([b, [100.0], np.full(k_nearest, np.sqrt(ridge) / k_nearest)])
        reg[j, near] = np.linalg.lstsq(a, b, rcond=None)[0]
    return reg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=400, help="random anny bodies for PCA")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_BODY_MODEL)
    args = parser.parse_args()

    verts, heads, bones, bone_w, faces, kp_labels, kp_weights = sample_anny(args.samples, args.seed)
    verts = verts @ ANNY_TO_SMPL.T
    heads = heads @ ANNY_TO_SMPL.T
    joint_index = {name: i for i, name in enumerate(SMPL_JOINT_NAMES)}

    weights = np.zeros((verts.shape[1], 24))
    for b, bone in enumerate(bones):
        weights[:, joint_index[BONE_TO_SMPL[bone]]] += bone_w[:, b]
    weights /= weights.sum(1, keepdims=True)

    kp = np.einsum("kv,nvc->nkc", kp_weights, verts)
    joints = np.zeros((verts.shape[0], 24, 3))
    for name, bone in JOINT_AT_BONE_HEAD.items():
        joints[:, joint_index[name]] = heads[:, bones.index(bone)]
    for side, s in (("left", "L"), ("right", "R")):
        wrist, fore = heads[:, bones.index(f"wrist.{s}")], heads[:, bones.index(f"lowerarm02.{s}")]
        joints[:, joint_index[f"{side}_hand"]] = wrist + 0.6 * (wrist - fore)
        toes = [kp[:, kp_labels.index(f"{side}_{t}_toe")] for t in ("big", "small")]
        joints[:, joint_index[f"{side}_foot"]] = (toes[0] + toes[1]) / 2

    # T-pose: rotate each shoulder about the forward axis so the mean arm is horizontal.
    rots = np.tile(np.eye(3), (24, 1, 1))
    for side, sign in (("left", 1.0), ("right", -1.0)):
        arm = joints[:, joint_index[f"{side}_wrist"]] - joints[:, joint_index[f"{side}_shoulder"]]
        arm = arm.mean(0)
        angle = np.arctan2(arm[1], sign * arm[0])
        rots[joint_index[f"{side}_shoulder"]] = axis_angle_to_matrix(
            torch.tensor([0.0, 0.0, -sign * angle], dtype=torch.float64)).numpy()
    all_points = np.concatenate([verts, kp], axis=1)
    kp_skin = kp_weights @ weights
    posed, joints = lbs_numpy(all_points, np.vstack([weights, kp_skin]), joints, rots)
    verts, kp = posed[:, : verts.shape[1]], posed[:, verts.shape[1]:]

    mean = verts.mean(0)
    flat = (verts - mean).reshape(verts.shape[0], -1)
    _, sing, vt = np.linalg.svd(flat, full_matrices=False)
    std = sing[:NUM_BETAS] / np.sqrt(verts.shape[0] - 1)
    shapedirs = (vt[:NUM_BETAS] * std[:, None]).T.reshape(verts.shape[1], 3, NUM_BETAS)
    explained = (sing[:NUM_BETAS] ** 2).sum() / (sing ** 2).sum()

    regressor = fit_regressor(verts, joints)
    err = np.linalg.norm(np.einsum("jv,nvc->njc", regressor, verts) - joints, axis=-1)
    worst = SMPL_JOINT_NAMES[int(err.max(0).argmax())]
    kp_ids = {}
    for name, label in KEYPOINT_LABELS.items():
        target = kp[:, kp_labels.index(label)].mean(0)
        kp_ids[name] = int(np.argmin(np.linalg.norm(mean - target, axis=1)))

    data = {
        "v_template": mean.astype(np.float32),
        "shapedirs": shapedirs.astype(np.float32),
        "J_regressor": scipy.sparse.csc_matrix(regressor.astype(np.float32)),
        "weights": weights.astype(np.float32),
        "f": faces.astype(np.uint32),
        "kintree_table": np.stack([np.array(SMPL_PARENTS), np.arange(24)]).astype(np.int64),
        "keypoint_vertex_ids": kp_ids,
        "description": (
            "key2mesh free stand-in body in SMPL format, derived from anny (NAVER, Apache-2.0; "
            "MakeHuman data CC0) by scripts/make_body_model.py. Not SMPL: no pose correctives; "
            f"{verts.shape[1]} vertices; {args.samples} phenotype samples; seed {args.seed}."
        ),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "wb") as handle:
        pickle.dump(data, handle, protocol=4)
    height = mean[:, 1].max() - mean[:, 1].min()
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB): {verts.shape[1]} vertices, "
          f"{faces.shape[0]} faces, height {height:.2f} m, 10 PCs explain {explained:.1%}, "
          f"joint regressor error mean {err.mean() * 1000:.2f} mm / max {err.max() * 1000:.2f} mm ({worst})")


if __name__ == "__main__":
    main()
