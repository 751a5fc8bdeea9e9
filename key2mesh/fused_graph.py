"""The fused keypoints-to-mesh graph: network + SMPL skinning in one module.

This is what gets exported (ONNX / TensorRT) so the node needs no body-model code at run
time: normalised keypoints ``[B,K,3]`` in, SMPL parameters, 24 joints, 17 keypoints and all
vertices out (body frame, root-relative; the node places them in the camera frame).
"""

from __future__ import annotations

import torch
from torch import nn

from key2mesh.network import Key2MeshNet, fold_batchnorm
from key2mesh.rotations import matrix_to_axis_angle
from key2mesh.skinning import SkinnedBody

OUTPUT_NAMES = ("betas", "pose", "joints", "keypoints3d", "vertices")


class KeypointsToMesh(nn.Module):
    def __init__(self, network: Key2MeshNet, body: SkinnedBody) -> None:
        super().__init__()
        self.network = fold_batchnorm(network)  # inference-only graph
        self.body = body

    def forward(self, keypoints: torch.Tensor) -> tuple[torch.Tensor, ...]:
        pred = self.network(keypoints)
        posed = self.body(pred["betas"], pred["rotmats"], with_vertices=True, root_relative=True)
        pose = matrix_to_axis_angle(pred["rotmats"]).reshape(-1, 72)
        return pred["betas"], pose, posed["joints"], posed["keypoints"], posed["vertices"]
