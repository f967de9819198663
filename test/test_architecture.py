"""The package's layering, enforced: which subpackage may import which, and that the core
runs without ROS. The README's layout section describes the same rules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "densepose_ros"

# Subpackage -> the subpackages of densepose_ros it may import (itself always). Arrows point
# one way: ros -> runtime -> export -> inference/modeling; cli and tools sit on top.
ALLOWED = {
    "inference": {"modeling", "paths"},
    "modeling": {"inference", "paths"},  # paths: the cache of compiled Winograd kernels
    "io": {"paths"},
    "synth": {"paths"},
    "data": {"inference", "modeling", "synth", "paths"},
    "evaluation": {"data", "inference", "synth", "paths", "tracking"},
    "training": {"data", "inference", "modeling", "synth", "paths"},
    "export": {"inference", "modeling", "io", "paths"},
    "runtime": {"export", "inference", "modeling", "io", "paths"},
    "tracking": {"inference"},
    "ros": {"runtime", "inference", "io", "paths", "msg", "tracking"},
    "tools": {"evaluation", "ros", "runtime", "inference", "io", "paths", "msg", "tracking",
              "data", "synth"},
    "cli": {"data", "evaluation", "export", "inference", "io", "modeling", "paths", "runtime",
            "synth", "training", "tools", "tracking"},
}
# The only modules that may import rclpy, ROS message packages or densepose_ros.msg.
ROS_MODULES = {"densepose_ros.ros.node", "densepose_ros.ros.messages",
               "densepose_ros.tools.demo", "densepose_ros.tools.bag_infer"}
ROS_PACKAGES = {"rclpy", "sensor_msgs", "std_msgs", "diagnostic_msgs", "rcl_interfaces",
                "lifecycle_msgs", "builtin_interfaces", "geometry_msgs", "visualization_msgs"}


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports_of(path: Path) -> set[str]:
    """Every module an import statement names, at any depth (lazy imports count)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            if node.module == "densepose_ros":  # from densepose_ros import paths
                names.update(f"densepose_ros.{alias.name}" for alias in node.names)
    return names


def test_every_subpackage_has_a_rule():
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert subpackages - {"assets"} == set(ALLOWED)


def test_imports_point_one_way():
    wrong = []
    for name, path in modules().items():
        parts = name.split(".")
        if len(parts) < 2 or parts[1] not in ALLOWED:
            continue  # densepose_ros itself, __main__, paths
        own = parts[1]
        for imported in imports_of(path):
            target = imported.split(".")
            if target[0] != "densepose_ros" or len(target) < 2 or target[1] == own:
                continue
            if target[1] not in ALLOWED[own]:
                wrong.append(f"{name} imports {imported}")
    assert not wrong, "\n".join(wrong)


def test_only_the_node_side_imports_ros():
    wrong = [f"{name} imports {imported}" for name, path in modules().items()
             if name not in ROS_MODULES for imported in imports_of(path)
             if imported.split(".")[0] in ROS_PACKAGES or imported.startswith("densepose_ros.msg")]
    assert not wrong, "\n".join(wrong)


def test_the_core_imports_with_rclpy_blocked():
    """Every module but the node side loads in a process where rclpy and the ROS message
    packages cannot be imported (as after `pip install -e .` without ROS)."""
    names = sorted(set(modules()) - ROS_MODULES - {"densepose_ros.__main__"})
    code = (
        "import importlib, sys\n"
        f"for blocked in {sorted(ROS_PACKAGES | {'densepose_ros.msg'})!r}:\n"
        "    sys.modules[blocked] = None  # import raises ImportError\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        f"print('imported', {len(names)})\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=PACKAGE.parent, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"imported {len(names)}" in result.stdout
