"""Process environment for ROS 2 from wheels: the shipped Fast DDS profile and the
ament prefix of the venv (where key2mesh_msgs is installed)."""

from __future__ import annotations

import os
import sys

from key2mesh.paths import node_config

FASTDDS_PROFILE = node_config("fastdds_shm.xml")
DEFAULT_PARAMS = node_config("params.yaml")


def configure_ros_environment(env: dict | None = None, localhost_only: bool = False) -> dict:
    """Fill in (never override) what a ROS 2 process here needs; returns the mapping."""
    env = os.environ if env is None else env
    env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(FASTDDS_PROFILE))
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    prefixes = [p for p in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    if sys.prefix not in prefixes:
        env["AMENT_PREFIX_PATH"] = os.pathsep.join([*prefixes, sys.prefix])
    if localhost_only:
        env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return env
