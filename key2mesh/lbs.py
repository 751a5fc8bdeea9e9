"""SMPL linear blend skinning as an exportable torch module.

Same formula as ``smplx.lbs`` (blend shapes, joint regression, forward kinematics, skinning)
but written for deployment: joints come from betas through a pre-multiplied joint-shape
basis (no pass over all vertices), pose correctives are skipped when the file has none, the
kinematic tree is unrolled at trace time, and keypoints can be computed from a handful of
vertices so training never pays for the full mesh. Parity with ``smplx`` is tested.
"""

from __future__ import annotations

import torch
from torch import nn

from key2mesh.keypoints import (
    COCO17_FACE_VERTEX_NAMES,
    COCO17_FROM_SMPL_JOINT,
    NUM_BETAS,
    NUM_KEYPOINTS,
)


class SkinnedBody(nn.Module):
    """SMPL-format body: ``(betas [B,10], rotmats [B,24,3,3]) -> vertices, joints, keypoints``.

    Outputs are in the body frame (root joint not at the origin, as in SMPL); callers add a
    translation. ``keypoints`` are COCO-17 in 3D: face points from mesh vertices, the rest
    from SMPL joints, matching :mod:`key2mesh.keypoints`.
    """

    def __init__(self, smplx_model: nn.Module, keypoint_vertex_ids: dict[str, int]) -> None:
        super().__init__()
        v_template = smplx_model.v_template.detach().float()
        shapedirs = smplx_model.shapedirs[..., :NUM_BETAS].detach().float()
        j_regressor = smplx_model.J_regressor.detach().float()
        self.parents = [int(p) for p in smplx_model.parents.tolist()]
        self.parents[0] = -1
        self.num_vertices = int(v_template.shape[0])
        self.register_buffer("v_template", v_template)
        self.register_buffer("shapedirs", shapedirs)
        self.register_buffer("posedirs", smplx_model.posedirs.detach().float())
        self.register_buffer("lbs_weights", smplx_model.lbs_weights.detach().float())
        self.register_buffer("faces", smplx_model.faces_tensor.detach().long())
        # Joints are linear in betas: regress the template and each shape direction once.
        self.register_buffer("j_template", j_regressor @ v_template)
        self.register_buffer("j_shapedirs", torch.einsum("jv,vcb->jcb", j_regressor, shapedirs))
        self.has_pose_correctives = bool(self.posedirs.abs().max() > 0)
        face_ids = torch.tensor([keypoint_vertex_ids[n] for n in COCO17_FACE_VERTEX_NAMES])
        self.register_buffer("face_vertex_ids", face_ids)
        self.coco_joint_src = torch.tensor(list(COCO17_FROM_SMPL_JOINT.values()))
        self.coco_joint_dst = list(COCO17_FROM_SMPL_JOINT.keys())

    def shaped_joints(self, betas: torch.Tensor) -> torch.Tensor:
        """Rest-pose joints ``[B,24,3]`` for ``betas`` ``[B,10]``."""
        return self.j_template + torch.einsum("jcb,nb->njc", self.j_shapedirs, betas)

    def forward_kinematics(self, rotmats: torch.Tensor, rest_joints: torch.Tensor):
        """Global joint positions ``[B,24,3]`` and skinning transforms ``[B,24,3,4]``."""
        rel = rest_joints.clone()
        rel[:, 1:] = rest_joints[:, 1:] - rest_joints[:, self.parents[1:]]
        rot_chain: list[torch.Tensor] = []
        pos_chain: list[torch.Tensor] = []
        for j, parent in enumerate(self.parents):
            if parent < 0:
                rot_chain.append(rotmats[:, 0])
                pos_chain.append(rel[:, 0])
            else:
                rot_chain.append(rot_chain[parent] @ rotmats[:, j])
                pos_chain.append(pos_chain[parent] + (rot_chain[parent] @ rel[:, j, :, None])[..., 0])
        rot = torch.stack(rot_chain, dim=1)
        pos = torch.stack(pos_chain, dim=1)
        # Skinning transform maps a rest-pose point to its posed place: R (x - J_rest) + J_posed.
        trans = pos - (rot @ rest_joints[..., None])[..., 0]
        return pos, torch.cat([rot, trans[..., None]], dim=-1)

    def _rest_points(self, betas: torch.Tensor, rotmats: torch.Tensor, ids: torch.Tensor | None):
        template = self.v_template if ids is None else self.v_template[ids]
        dirs = self.shapedirs if ids is None else self.shapedirs[ids]
        points = template + torch.einsum("vcb,nb->nvc", dirs, betas)
        if self.has_pose_correctives:
            eye = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
            feature = (rotmats[:, 1:] - eye).reshape(rotmats.shape[0], -1)
            offsets = (feature @ self.posedirs).reshape(rotmats.shape[0], -1, 3)
            points = points + (offsets if ids is None else offsets[:, ids])
        return points

    def _skin(self, points: torch.Tensor, transforms: torch.Tensor, ids: torch.Tensor | None):
        weights = self.lbs_weights if ids is None else self.lbs_weights[ids]
        per_vertex = torch.einsum("vj,njrc->nvrc", weights, transforms)
        return (per_vertex[..., :3] @ points[..., None])[..., 0] + per_vertex[..., 3]

    def forward(self, betas: torch.Tensor, rotmats: torch.Tensor, with_vertices: bool = True):
        """Pose the body. ``with_vertices=False`` skips the full mesh (training fast path)."""
        joints, transforms = self.forward_kinematics(rotmats, self.shaped_joints(betas))
        face_rest = self._rest_points(betas, rotmats, self.face_vertex_ids)
        face = self._skin(face_rest, transforms, self.face_vertex_ids)
        keypoints = joints.new_zeros(joints.shape[0], NUM_KEYPOINTS, 3)
        keypoints[:, : len(COCO17_FACE_VERTEX_NAMES)] = face
        keypoints[:, self.coco_joint_dst] = joints[:, self.coco_joint_src]
        out = {"joints": joints, "keypoints": keypoints}
        if with_vertices:
            out["vertices"] = self._skin(self._rest_points(betas, rotmats, None), transforms, None)
        return out
