"""``key2mesh-node``: run the node with a YAML parameter file, as the launch file does.

``ros2 launch key2mesh_ros key2mesh.launch.py`` needs the ROS launch tool, which does not
install from PyPI; this runner starts the same node with the same parameter file and Fast
DDS profile, takes the same topic arguments, and passes any ``--ros-args`` through.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from key2mesh_ros.ros_environment import DEFAULT_PARAMS, configure_ros_environment


def build_ros_args(params: Path, overrides: dict[str, str], extra: list[str]) -> list[str]:
    """``--ros-args``: the parameter file, then single overrides (``-p name:=value``), as the
    launch file's arguments do."""
    args = ["--ros-args", "--params-file", str(params)]
    for name, value in overrides.items():
        args += ["-p", f"{name}:={value}"]
    return args + [a for a in extra if a != "--ros-args"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="key2mesh-node", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS,
                        help=f"ROS 2 parameter YAML (default: {DEFAULT_PARAMS})")
    parser.add_argument("--image-topic", metavar="TOPIC",
                        help="camera image topic (parameter image_topic; its camera_info follows it)")
    parser.add_argument("--output-topic", metavar="TOPIC", help="output topic (parameter output_topic)")
    parser.add_argument("--debug", action="store_true", help="full tracebacks for startup errors")
    parser.add_argument("--localhost-only", action="store_true",
                        help="ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (tests, demos)")
    args, extra = parser.parse_known_args(argv)
    if not args.params.is_file():
        parser.error(f"parameter file not found: {args.params}")
    configure_ros_environment(localhost_only=args.localhost_only)
    from key2mesh_ros.node import main as node_main

    overrides = {name: value for name, value in (("image_topic", args.image_topic),
                                                 ("output_topic", args.output_topic)) if value}
    return node_main(["key2mesh_node", *build_ros_args(args.params, overrides, extra)], debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
