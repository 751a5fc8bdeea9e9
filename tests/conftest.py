"""Shared fixtures. Heavy artefacts (tiny checkpoint, ONNX export) are built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
YOLO_ONNX = SHARED / "models" / "yolo11n-pose.onnx"

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("YOLO_OFFLINE", "1")
torch.set_num_threads(2)


@pytest.fixture(scope="session")
def body():
    from key2mesh.body_model import load_skinned_body

    return load_skinned_body()


@pytest.fixture(scope="session")
def tiny_config(tmp_path_factory):
    from key2mesh_train.config import load_config

    work = tmp_path_factory.mktemp("tiny")
    return load_config("tiny.yaml", [f"data.cache_dir={work / 'cache'}", f"pretrain.checkpoint={work / 'tiny.pt'}",
                                     "data.mocap=[]"])


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_config):
    from key2mesh_train.pretrain import pretrain

    return pretrain(tiny_config, progress=False)


@pytest.fixture(scope="session")
def tiny_onnx(tiny_checkpoint, tmp_path_factory):
    from key2mesh.export import export_onnx

    return export_onnx(tiny_checkpoint, tmp_path_factory.mktemp("onnx") / "tiny.onnx")


@pytest.fixture(scope="module")
def ros():
    """An rclpy node in this process (one ROS context per test module), for talking to nodes."""
    import rclpy
    from key2mesh_ros.ros_environment import configure_ros_environment

    configure_ros_environment(localhost_only=True)
    rclpy.init()
    node = rclpy.create_node("key2mesh_test_client")
    yield node
    node.destroy_node()
    rclpy.shutdown()
