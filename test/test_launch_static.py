"""Launch files, parameter file and rviz config, checked without `launch` (no wheel here).

They must parse, name the installed executable and point at installed files. They are not
run against a live `ros2 launch` on these machines (see README).
"""

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from densepose_ros import paths
from densepose_ros.node_config import NodeConfig

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def share() -> Path:
    share = paths.share_dir()
    assert share is not None, "colcon install not sourced (make does this)"
    return share


def test_executables_are_installed(share):
    lib = share.parent.parent / "lib" / "densepose_ros"
    for name in ("densepose_node", "densepose"):
        assert (lib / name).is_file(), f"{name} not installed under {lib}"


def test_python_launch_file(share):
    installed = share / "launch" / "densepose.launch.py"
    assert installed.is_file()
    tree = ast.parse(installed.read_text())
    names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in names
    strings = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
    assert "densepose_node" in strings and "densepose_ros" in strings
    assert (share / "config" / "densepose.yaml").is_file()
    assert (share / "rviz" / "densepose.rviz").is_file()
    args = {n.args[0].value for n in ast.walk(tree) if isinstance(n, ast.Call)
            and getattr(n.func, "id", "") == "DeclareLaunchArgument"}
    assert {"camera", "image", "compressed", "params_file", "backend", "namespace"} <= args


def test_xml_launch_file(share):
    root = ET.parse(share / "launch" / "densepose.launch.xml").getroot()
    args = {a.get("name") for a in root.iter("arg")}
    assert {"camera", "image", "compressed", "params_file", "backend", "namespace"} <= args
    node = next(n for n in root.iter("node") if n.get("pkg") == "densepose_ros")
    assert node.get("exec") == "densepose_node"
    remaps = {r.get("from") for r in node.iter("remap")}
    assert {"image", "image/compressed", "depth", "camera_info"} <= remaps
    # every $(find-pkg-share densepose_ros)/... path exists in the install
    text = (share / "launch" / "densepose.launch.xml").read_text()
    for rel in re.findall(r"\$\(find-pkg-share densepose_ros\)/([\w./-]+)", text):
        assert (share / rel).is_file(), rel


def test_params_file_is_generated_from_the_node_config():
    from densepose_ros.node_config import params_yaml

    assert (ROOT / "config" / "densepose.yaml").read_text() == params_yaml(), (
        "regenerate: python -m densepose_ros.node_config --yaml > config/densepose.yaml"
    )


def test_params_file_mirrors_the_node_config():
    doc = yaml.safe_load((ROOT / "config" / "densepose.yaml").read_text())
    params = doc["/**"]["ros__parameters"]
    specs = {s.name: s.default for s in NodeConfig.specs()}
    assert set(params) == set(specs)
    for name, default in specs.items():
        assert params[name] == default and type(params[name]) is type(default), name


def test_rviz_config_shows_the_node_outputs():
    config = yaml.safe_load((ROOT / "rviz" / "densepose.rviz").read_text())
    topics = {d["Topic"]["Value"] for d in config["Visualization Manager"]["Displays"]}
    assert {"/densepose/debug_image", "/densepose/iuv", "/densepose/surface_points"} <= topics


def test_readme_parameter_table_is_current():
    from densepose_ros.node_config import markdown_table

    assert markdown_table() in (ROOT / "README.md").read_text(), (
        "README parameter table is stale: paste `python -m densepose_ros.node_config`"
    )
