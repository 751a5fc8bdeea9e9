#!/usr/bin/env python3
"""Build the ``key2mesh_msgs`` interfaces here, without colcon, into the active venv.

In a real ROS 2 workspace ``colcon build`` does this (see ``ros2_ws/``). Here ROS 2 comes
from PyPI wheels, so this script runs the same CMake project against the wheels' prefix
(the venv) and installs the generated C/Python type support next to the wheels' own.
The wheels' CMake export files name their build machine's Python and numpy include
folders; they are patched to this machine's before configuring (idempotent).
Usage: ``python scripts/build_msgs.py [--force]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "key2mesh_msgs"
BUILD = ROOT / "ros2_ws" / "build" / "key2mesh_msgs"


def patch_wheel_cmake_exports(prefix: Path) -> int:
    import numpy

    py_include = sysconfig.get_paths()["include"]
    np_include = numpy.get_include()
    patched = 0
    for path in (prefix / "share").glob("*/cmake/*rosidl_generator_py*Export.cmake"):
        text = path.read_text()
        new = re.sub(r'[^";]*/include/python3\.\d+(?=[;"])', py_include, text)
        new = re.sub(r'[^";]*/numpy/(?:_core|core)/include(?=[;"])', np_include, new)
        if new != text:
            path.write_text(new)
            patched += 1
    return patched


def messages_importable() -> bool:
    if importlib.util.find_spec("key2mesh_msgs") is None:
        return False
    code = "from key2mesh_msgs.msg import HumanMeshArray; HumanMeshArray()"
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def build(force: bool = False) -> None:
    prefix = Path(sys.prefix)
    if not force and messages_importable():
        print("key2mesh_msgs already built and importable")
        return
    if shutil.which("cmake") is None:
        raise SystemExit("cmake not found: install it (apt-get install cmake) to build key2mesh_msgs")
    print(f"patched {patch_wheel_cmake_exports(prefix)} wheel CMake export files")
    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix))
    if BUILD.exists():
        shutil.rmtree(BUILD)
    BUILD.mkdir(parents=True)
    configure = [
        "cmake", str(SOURCE), f"-DCMAKE_PREFIX_PATH={prefix}", f"-DCMAKE_INSTALL_PREFIX={prefix}",
        f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF", f"-DCMAKE_INSTALL_RPATH={prefix / 'lib'}",
        "-DCMAKE_BUILD_TYPE=Release",
    ]
    for step in (configure, ["cmake", "--build", ".", "-j", str(os.cpu_count() or 2)], ["cmake", "--install", "."]):
        result = subprocess.run(step, cwd=BUILD, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
            raise SystemExit(f"key2mesh_msgs build failed at: {' '.join(step[:3])}")
    if not messages_importable():
        raise SystemExit("key2mesh_msgs built but cannot be imported")
    print(f"key2mesh_msgs built and installed into {prefix}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force", action="store_true", help="rebuild even if the messages import")
    build(parser.parse_args().force)


if __name__ == "__main__":
    main()
