"""ament_python build of key2mesh_ros for a colcon workspace (see ros2_ws/README.md).

The Key2Mesh core (``key2mesh``) is a plain pip package installed from the repository root;
this package adds the node, its launch file and its configuration.
"""

from glob import glob

from setuptools import setup

PACKAGE = "key2mesh_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=[PACKAGE, f"{PACKAGE}.config"],
    package_data={f"{PACKAGE}.config": ["*.yaml", "*.xml"]},  # found through importlib.resources (key2mesh.paths)
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob(f"{PACKAGE}/config/*.yaml") + glob(f"{PACKAGE}/config/*.xml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="key2mesh developers",
    description="Key2Mesh ROS 2 node: camera image -> SMPL body meshes on /human_mesh",
    license="Apache-2.0",
    entry_points={"console_scripts": [f"key2mesh_node = {PACKAGE}.node:main"]},
)
