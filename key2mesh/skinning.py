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
        posedirs = smplx_model.posedirs.detach().float()  # [207, V*3], vertex-major
        self.register_buffer("lbs_weights", smplx_model.lbs_weights.detach().float())
        self.register_buffer("faces", smplx_model.faces_tensor.detach().long())
        # Joints are linear in betas: regress the template and each shape direction once.
        self.register_buffer("j_template", j_regressor @ v_template)
        j_shapedirs = torch.einsum("jv,vcb->bjc", j_regressor, shapedirs)
        self.register_buffer("j_shapedirs", j_shapedirs.reshape(NUM_BETAS, -1).contiguous())
        self.has_pose_correctives = bool(posedirs.abs().max() > 0)
        face_ids = torch.tensor([keypoint_vertex_ids[n] for n in COCO17_FACE_VERTEX_NAMES])
        self.register_buffer("face_vertex_ids", face_ids)
        # Skinning works on coordinate-major points [B,3,V] (see _skin): the rest shape, its
        # bases and the skinning weights are stored in that layout once. The keypoint vertices
        # get their own slices, so the training fast path never gathers at run time.
        posedirs = posedirs.reshape(-1, self.num_vertices, 3)
        for prefix, ids in (("", slice(None)), ("face_", face_ids)):
            self.register_buffer(f"{prefix}template_cm", v_template[ids].t().contiguous())  # [3,N]
            self.register_buffer(f"{prefix}shapedirs_cm", shapedirs[ids].permute(2, 1, 0).reshape(NUM_BETAS, -1)
                                 .contiguous())  # [10, 3N]
            self.register_buffer(f"{prefix}posedirs_cm", posedirs[:, ids].transpose(1, 2).reshape(posedirs.shape[0], -1)
                                 .contiguous())  # [207, 3N]
            self.register_buffer(f"{prefix}weights_t", self.lbs_weights[ids].t().contiguous())  # [24,N]
        self.coco_joint_src = torch.tensor(list(COCO17_FROM_SMPL_JOINT.values()))
        self.coco_joint_dst = list(COCO17_FROM_SMPL_JOINT.keys())
        self._build_fk_levels()

    def shaped_joints(self, betas: torch.Tensor) -> torch.Tensor:
        """Rest-pose joints ``[B,24,3]`` for ``betas`` ``[B,10]``."""
        return self.j_template + (betas @ self.j_shapedirs).reshape(betas.shape[0], -1, 3)

    def forward_kinematics(self, rotmats: torch.Tensor, rest_joints: torch.Tensor, root_relative: bool = False):
        """Global joint positions ``[B,24,3]`` and skinning transforms ``[B,24,3,4]``.

        Joints are processed a tree level at a time (9 levels for SMPL, not 24 steps), which
        keeps the exported graph short: at batch 1 op count, not arithmetic, sets latency.
        """
        rel = rest_joints - torch.cat([rest_joints[:, :1] * 0, rest_joints[:, self.fk_parent_index[1:]]], dim=1)
        rot = rotmats[:, :1]
        pos = rel[:, :1]
        for joints, parents in self.fk_levels:
            parent_rot = rot[:, parents]
            rot = torch.cat([rot, parent_rot @ rotmats[:, joints]], dim=1)
            pos = torch.cat([pos, pos[:, parents] + (parent_rot @ rel[:, joints, :, None])[..., 0]], dim=1)
        # Back from level order to SMPL joint order.
        rot = rot[:, self.fk_inverse_order]
        pos = pos[:, self.fk_inverse_order]
        if root_relative:  # shifting the transforms moves the whole mesh for free
            pos = pos - pos[:, :1]
        # Skinning transform maps a rest-pose point to its posed place: R (x - J_rest) + J_posed.
        trans = pos - (rot @ rest_joints[..., None])[..., 0]
        return pos, torch.cat([rot, trans[..., None]], dim=-1)

    def _build_fk_levels(self) -> None:
        depth = [0] * len(self.parents)
        for j, p in enumerate(self.parents):
            depth[j] = 0 if p < 0 else depth[p] + 1
        order = sorted(range(len(self.parents)), key=lambda j: (depth[j], j))
        position = {j: i for i, j in enumerate(order)}  # where each joint sits in level order
        self.fk_levels = []
        for level in range(1, max(depth) + 1):
            joints = [j for j in order if depth[j] == level]
            self.fk_levels.append((joints, [position[self.parents[j]] for j in joints]))
        self.fk_inverse_order = [position[j] for j in range(len(self.parents))]
        self.fk_parent_index = [max(p, 0) for p in self.parents]

    def _rest_points(self, betas: torch.Tensor, rotmats: torch.Tensor, face_only: bool) -> torch.Tensor:
        """Shaped (and pose-corrected) rest points, coordinate-major ``[B,3,N]``."""
        prefix = "face_" if face_only else ""
        # A plain [B,10] x [10,3N] product: Einsum kernels are slow in ONNX Runtime.
        points = getattr(self, f"{prefix}template_cm") + (betas @ getattr(self, f"{prefix}shapedirs_cm")).reshape(
            betas.shape[0], 3, -1)
        if self.has_pose_correctives:
            eye = torch.eye(3, dtype=rotmats.dtype, device=rotmats.device)
            feature = (rotmats[:, 1:] - eye).reshape(rotmats.shape[0], -1)
            points = points + (feature @ getattr(self, f"{prefix}posedirs_cm")).reshape(rotmats.shape[0], 3, -1)
        return points

    def _skin(self, points: torch.Tensor, transforms: torch.Tensor, face_only: bool) -> torch.Tensor:
        """Coordinate-major rest points ``[B,3,N]`` and skinning transforms ``[B,24,3,4]`` ->
        posed points ``[B,N,3]``."""
        weights_t = self.face_weights_t if face_only else self.weights_t
        batch = transforms.shape[0]
        # Each vertex's blended 3x4 transform, laid out [B, 3 rows, 4 columns, N]: every
        # product below runs over contiguous rows of N values. The vertex-major layout
        # ([B,N,3,4] times [B,N,1,4]) broadcasts inside the innermost axes, which ONNX Runtime
        # runs about five times slower (3.3 against 0.6 ms at batch 4 on 2 CPU cores).
        per_vertex = (transforms.reshape(batch, -1, 12).transpose(1, 2) @ weights_t).reshape(batch, 3, 4, -1)
        homogeneous = torch.cat([points, torch.ones_like(points[:, :1])], dim=1)  # [B,4,N]
        return (per_vertex * homogeneous[:, None]).sum(2).transpose(1, 2)

    def forward(self, betas: torch.Tensor, rotmats: torch.Tensor, with_vertices: bool = True,
                root_relative: bool = False):
        """Pose the body. ``with_vertices=False`` skips the full mesh (training fast path);
        ``root_relative=True`` puts the pelvis joint at the origin."""
        joints, transforms = self.forward_kinematics(rotmats, self.shaped_joints(betas), root_relative)
        face = self._skin(self._rest_points(betas, rotmats, True), transforms, True)
        keypoints = joints.new_zeros(joints.shape[0], NUM_KEYPOINTS, 3)
        keypoints[:, : len(COCO17_FACE_VERTEX_NAMES)] = face
        keypoints[:, self.coco_joint_dst] = joints[:, self.coco_joint_src]
        out = {"joints": joints, "keypoints": keypoints}
        if with_vertices:
            out["vertices"] = self._skin(self._rest_points(betas, rotmats, False), transforms, False)
        return out
