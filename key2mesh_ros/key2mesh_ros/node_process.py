"""Start and stop the node as a separate process (demo, tests, benchmark)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from key2mesh_ros.ros_environment import DEFAULT_PARAMS, configure_ros_environment


def write_params(path: str | Path, **overrides) -> Path:
    """The shipped parameter file with ``overrides`` applied, written to ``path``."""
    params = yaml.safe_load(DEFAULT_PARAMS.read_text())
    params["/**/key2mesh_node"]["ros__parameters"].update(overrides)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(params))
    return path


class NodeProcess:
    """``key2mesh-node`` in a child process; a context manager that always cleans up."""

    def __init__(self, params: str | Path, log_path: str | Path | None = None, ros_args: list[str] | None = None) -> None:
        self.params = Path(params)
        self.ros_args = list(ros_args or [])  # e.g. ["-r", "__ns:=/front"]
        self.log_path = Path(log_path) if log_path else None
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> NodeProcess:
        env = configure_ros_environment(dict(os.environ), localhost_only=True)
        out = open(self.log_path, "w") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "key2mesh_ros.runner", "--params", str(self.params),
                                      "--localhost-only", *(["--ros-args", *self.ros_args] if self.ros_args else [])],
                                     env=env, stdout=out, stderr=subprocess.STDOUT)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""

    def __exit__(self, *exc) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def wait_for(condition, timeout_s: float, spin, what: str, process: NodeProcess | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            tail = process.log()[-3000:] if process else ""
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}\n{tail}")
        if process is not None and not process.alive():
            raise RuntimeError(f"key2mesh node exited while waiting for {what}:\n{process.log()[-3000:]}")
        spin()
