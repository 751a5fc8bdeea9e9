"""The ROS 2 workspace is real: ``colcon build`` on ``ros2_ws/`` against the ROS 2 wheels, then the
install tree is checked the way a robot would use it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

COLCON = Path(sys.executable).parent / "colcon"
pytestmark = pytest.mark.skipif(not COLCON.exists() or shutil.which("cmake") is None,
                                reason="colcon (pip: colcon-common-extensions) or cmake not installed")
PY = f"python{sys.version_info.major}.{sys.version_info.minor}"


@pytest.fixture(scope="module")
def install(tmp_path_factory):
    work = tmp_path_factory.mktemp("colcon")
    env = dict(os.environ, AMENT_PREFIX_PATH=sys.prefix, CMAKE_PREFIX_PATH=sys.prefix,
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    result = subprocess.run(
        [str(COLCON), "build", "--base-paths", str(ROOT / "ros2_ws" / "src"), "--build-base", str(work / "build"),
         "--install-base", str(work / "install"), "--event-handlers", "console_direct-",
         "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"],
        cwd=work, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return work / "install"


def _installed_env(install: Path) -> dict:
    """What ``source install/setup.bash`` gives a process, for these two packages."""
    site = [install / pkg / "lib" / PY / "site-packages" for pkg in ("key2mesh_ros", "key2mesh_msgs")]
    libs = install / "key2mesh_msgs" / "lib"
    return dict(os.environ, PYTHONPATH=os.pathsep.join(map(str, site)),
                LD_LIBRARY_PATH=f"{libs}{os.pathsep}{os.environ.get('LD_LIBRARY_PATH', '')}",
                AMENT_PREFIX_PATH=os.pathsep.join([str(install / "key2mesh_ros"), str(install / "key2mesh_msgs"),
                                                   sys.prefix]))


def test_install_tree_has_both_packages_and_their_files(install):
    share = install / "key2mesh_ros" / "share" / "key2mesh_ros"
    for path in (share / "package.xml", share / "launch" / "key2mesh.launch.py", share / "config" / "params.yaml",
                 share / "config" / "fastdds_shm.xml", install / "key2mesh_msgs" / "share" / "key2mesh_msgs" / "msg" /
                 "HumanMesh.msg", install / "key2mesh_ros" / "lib" / "key2mesh_ros" / "key2mesh_node"):
        assert path.is_file(), f"missing from the install tree: {path.relative_to(install)}"
    for pkg in ("key2mesh_ros", "key2mesh_msgs"):
        assert (install / pkg / "share" / "ament_index" / "resource_index" / "packages" / pkg).exists()


def test_messages_and_node_code_import_from_the_install_tree(install):
    code = ("import key2mesh_msgs.msg as m, key2mesh_ros.node as n\n"
            "from key2mesh.paths import node_config, message_definitions\n"
            "h = m.HumanMesh(); assert h.POSITION_DEPTH == 2\n"
            "print(m.__file__); print(n.__file__); print(node_config('params.yaml'));"
            "print(message_definitions('key2mesh_msgs'))")
    result = subprocess.run([sys.executable, "-c", code], env=_installed_env(install), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.split()
    assert all(line.startswith(str(install)) for line in lines), lines
    assert Path(lines[2]).is_file()  # the parameter file, found as package data of the installed package


def test_installed_executable_starts(install, tmp_path):
    """The installed ``key2mesh_node`` runs its own code: a startup fault ends in the node's one line."""
    result = subprocess.run(
        [str(install / "key2mesh_ros" / "lib" / "key2mesh_ros" / "key2mesh_node"), "--ros-args", "-p",
         f"detector_model:={tmp_path / 'missing.onnx'}"],
        env=_installed_env(install), capture_output=True, text=True, timeout=120, cwd=tmp_path)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and lines, result.stdout + result.stderr
    assert lines[-1].startswith("key2mesh-node: error: ") and "detector model not found" in lines[-1], result.stderr
