"""The layout's rules, checked on the source: dependencies point one way
(``key2mesh_train -> key2mesh <- key2mesh_ros``) and package code finds files through
``key2mesh.paths``, never by walking up from its own location."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "key2mesh": ROOT / "key2mesh",
    "key2mesh_train": ROOT / "key2mesh_train",
    "key2mesh_ros": ROOT / "key2mesh_ros" / "key2mesh_ros",
}
# What each package may import from the others (top-level names).
ALLOWED = {
    "key2mesh": {"key2mesh"},
    "key2mesh_train": {"key2mesh", "key2mesh_train"},
    "key2mesh_ros": {"key2mesh", "key2mesh_ros", "key2mesh_msgs"},
}
PROJECT = {"key2mesh", "key2mesh_train", "key2mesh_ros", "key2mesh_msgs"}


def project_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` for every import of a project package in ``path``, at any depth
    (imports inside functions count: they run too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [(node.lineno, name) for name in names if name.split(".")[0] in PROJECT]
    return found


def modules(package: str) -> list[Path]:
    return sorted(PACKAGES[package].rglob("*.py"))


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_dependencies_point_one_way(package):
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {name}"
             for path in modules(package) for line, name in project_imports(path)
             if name.split(".")[0] not in ALLOWED[package]]
    assert not wrong, "\n".join(wrong)


def test_the_walker_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import os\n\ndef f():\n    from key2mesh_train.pretrain import pretrain\n")
    assert project_imports(source) == [(4, "key2mesh_train.pretrain")]


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_no_paths_walked_up_from_source_files(package):
    """``Path(__file__).parents[N]`` breaks in a non-symlink colcon install or a wheel."""
    wrong = [f"{path.relative_to(ROOT)}:{node.lineno}" for path in modules(package)
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Name) and node.id == "__file__"]
    assert not wrong, "package code uses __file__ to find files (use key2mesh.paths): " + ", ".join(wrong)
