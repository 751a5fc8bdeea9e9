#!/usr/bin/env python3
"""Build the ROS 2 interface packages here, without colcon, into the active venv:
``key2mesh_msgs`` and the upstream ``tf2_msgs`` and ``hri_msgs`` (no wheels; ``interfaces/``).

In a real ROS 2 workspace ``colcon build`` does this (see ``ros2_ws/``). Here ROS 2 comes
from PyPI wheels, so this script runs the same CMake project against the wheels' prefix
(the venv) and installs the generated C/Python type support next to the wheels' own.
The wheels' CMake export files name their build machine's Python and numpy include
folders; they are patched to this machine's before configuring (idempotent).
Usage: ``python scripts/build_msgs.py [--force]``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# package -> (source folder, a message to import as the check)
PACKAGES = {
    "tf2_msgs": (ROOT / "interfaces" / "tf2_msgs", "TFMessage"),
    "hri_msgs": (ROOT / "interfaces" / "hri_msgs", "Skeleton2D"),
    "key2mesh_msgs": (ROOT / "key2mesh_msgs", "HumanMeshArray"),
}
BUILD = ROOT / "ros2_ws" / "build"


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


def source_digest(package: str) -> str:
    """What the build depends on: the package's interface files, CMakeLists and package.xml."""
    source = PACKAGES[package][0]
    digest = hashlib.sha256()
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(source)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def stamp_path(package: str) -> Path:
    return Path(sys.prefix) / "share" / package / ".key2mesh-source-digest"


def messages_importable(package: str) -> bool:
    if importlib.util.find_spec(package) is None:
        return False
    stamp = stamp_path(package)
    if not stamp.exists() or stamp.read_text().strip() != source_digest(package):
        return False  # built from other definitions: rebuild
    message = PACKAGES[package][1]
    code = f"from {package}.msg import {message}; {message}()"
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def build(force: bool = False) -> None:
    for package in PACKAGES:
        build_package(package, force)


def build_package(package: str, force: bool = False) -> None:
    prefix = Path(sys.prefix)
    source = PACKAGES[package][0]
    build_dir = BUILD / package
    if not force and messages_importable(package):
        print(f"{package} already built and importable")
        return
    if shutil.which("cmake") is None:
        raise SystemExit(f"cmake not found: install it (apt-get install cmake) to build {package}")
    print(f"patched {patch_wheel_cmake_exports(prefix)} wheel CMake export files")
    env = dict(os.environ, AMENT_PREFIX_PATH=str(prefix))
    if build_dir.exists():
        shutil.rmtree(build_dir)
    build_dir.mkdir(parents=True)
    configure = [
        "cmake", str(source), f"-DCMAKE_PREFIX_PATH={prefix}", f"-DCMAKE_INSTALL_PREFIX={prefix}",
        f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF", f"-DCMAKE_INSTALL_RPATH={prefix / 'lib'}",
        "-DCMAKE_BUILD_TYPE=Release",
    ]
    for step in (configure, ["cmake", "--build", ".", "-j", str(os.cpu_count() or 2)], ["cmake", "--install", "."]):
        result = subprocess.run(step, cwd=build_dir, env=env, capture_output=True, text=True)
        if result.returncode != 0:
            sys.stderr.write(result.stdout[-4000:] + result.stderr[-4000:])
            raise SystemExit(f"{package} build failed at: {' '.join(step[:3])}")
    stamp_path(package).write_text(source_digest(package))
    if not messages_importable(package):
        raise SystemExit(f"{package} built but cannot be imported")
    print(f"{package} built and installed into {prefix}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--force", action="store_true", help="rebuild even if the messages import")
    build(parser.parse_args().force)


if __name__ == "__main__":
    main()
