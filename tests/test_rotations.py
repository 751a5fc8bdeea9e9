import torch

from key2mesh.rotations import axis_angle_to_matrix, matrix_to_axis_angle, matrix_to_rot6d, rot6d_to_matrix


def test_6d_and_axis_angle_roundtrips():
    torch.manual_seed(0)
    aa = torch.randn(500, 3) * 1.2
    mats = axis_angle_to_matrix(aa)
    assert torch.allclose(mats @ mats.transpose(-1, -2), torch.eye(3).expand(500, 3, 3), atol=1e-5)
    assert torch.allclose(rot6d_to_matrix(matrix_to_rot6d(mats)), mats, atol=1e-5)
    assert torch.allclose(axis_angle_to_matrix(matrix_to_axis_angle(mats)), mats, atol=1e-4)


def test_axis_angle_near_pi_and_zero():
    aa = torch.tensor([[3.14159, 0.0, 0.0], [0.0, 0.0, 1e-9], [0.0, 3.1, 0.2]])
    back = axis_angle_to_matrix(matrix_to_axis_angle(axis_angle_to_matrix(aa)))
    assert torch.allclose(back, axis_angle_to_matrix(aa), atol=1e-4)
