#!/usr/bin/env bash
# Install everything key2mesh needs into ./.venv (idempotent; fast when nothing changed):
# Python 3.11 venv, pinned packages (torch, ultralytics, onnxruntime, smplx, ROS 2 wheels),
# this repository in editable mode, and the key2mesh_msgs messages built against the wheels.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3.11}
if ! command -v cmake >/dev/null || ! command -v g++ >/dev/null; then
  echo "setup: installing cmake and g++ (needed to build key2mesh_msgs)"
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq cmake g++ >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq cmake g++ >/dev/null; fi
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv

stamp=.venv/.key2mesh-installed
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing pinned packages into .venv (first time: a few minutes)"
  if ! .venv/bin/python -m pip install --disable-pip-version-check -e '.[dev]' > .venv/pip-install.log 2>&1; then
    tail -n 40 .venv/pip-install.log; echo "setup: pip install failed (full log: .venv/pip-install.log)"; exit 1
  fi
  echo "$want" > "$stamp"
fi
.venv/bin/python scripts/build_msgs.py
