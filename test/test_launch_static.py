"""Launch files, parameter file and rviz config, checked without `launch` (no wheel here).

They must parse, name the installed executable, point at installed files and take their
rules from densepose_ros.ros.launch_plan (tested in test_launch_plan). test_launch_live runs
them under the real ROS 2 launch where it is installed (`make test-launch`).
"""

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from densepose_ros import paths
from densepose_ros.ros.node_config import NodeConfig

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
    # its arguments and rules are densepose_ros.ros.launch_plan's (tested in test_launch_plan)
    imported = {alias.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                and n.module == "densepose_ros.ros.launch_plan" for alias in n.names}
    assert {"LAUNCH_ARGUMENTS", "plan_node", "rviz_config"} <= imported


def test_python_launch_file_starts_rviz_only_when_installed(share):
    # rviz:=true without rviz2 aborted the launch and orphaned the node: the lookup of
    # rviz2 must sit in a try that catches PackageNotFoundError.
    tree = ast.parse((share / "launch" / "densepose.launch.py").read_text())
    guarded = [
        node for node in ast.walk(tree) if isinstance(node, ast.Try)
        and any(isinstance(h.type, ast.Name) and h.type.id == "PackageNotFoundError"
                for h in node.handlers)
        and any(isinstance(c, ast.Constant) and c.value == "rviz2"
                for stmt in node.body for c in ast.walk(stmt))
    ]
    assert guarded, "rviz2 must be looked up inside try/except PackageNotFoundError"


def test_xml_launch_file_is_the_python_one(share):
    """The XML file declares the same arguments (same defaults) and includes the Python file
    with every one of them, so both share one implementation and its fixes."""
    from densepose_ros.ros.launch_plan import LAUNCH_ARGUMENTS

    root = ET.parse(share / "launch" / "densepose.launch.xml").getroot()
    declared = {a.get("name"): a.get("default") for a in root.findall("arg")}
    assert declared == {name: default for name, (default, _) in LAUNCH_ARGUMENTS.items()}
    assert "weights" in declared
    assert not root.findall("node"), "nodes are started by the included Python file"
    (include,) = root.findall("include")
    assert include.get("file") == "$(find-pkg-share densepose_ros)/launch/densepose.launch.py"
    passed = {a.get("name"): a.get("value") for a in include.findall("arg")}
    assert passed == {name: f"$(var {name})" for name in LAUNCH_ARGUMENTS}
    # every $(find-pkg-share densepose_ros)/... path exists in the install
    text = (share / "launch" / "densepose.launch.xml").read_text()
    for rel in re.findall(r"\$\(find-pkg-share densepose_ros\)/([\w./-]+)", text):
        assert (share / rel).is_file(), rel


def test_params_file_is_generated_from_the_node_config():
    from densepose_ros.ros.node_config import params_yaml

    assert (ROOT / "config" / "densepose.yaml").read_text() == params_yaml(), (
        "regenerate: python -m densepose_ros.ros.node_config --yaml > config/densepose.yaml"
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
    from densepose_ros.ros.node_config import markdown_table

    assert markdown_table() in (ROOT / "README.md").read_text(), (
        "README parameter table is stale: paste `python -m densepose_ros.ros.node_config`"
    )


def test_parameter_files_read_as_the_node_reads_them(tmp_path):
    """`densepose infer` on bags takes the node's --params-file: the `/**` section, then the
    node's own; unknown names and wrong types are refused with the file named."""
    from densepose_ros.ros.node_config import NodeConfig

    assert NodeConfig.from_params_file(ROOT / "config" / "densepose.yaml") == NodeConfig()
    params = tmp_path / "robot.yaml"
    params.write_text("/**:\n  ros__parameters:\n    score_threshold: 0.6\n    tracking: false\n"
                      "densepose:\n  ros__parameters:\n    score_threshold: 1\n"
                      "    chart_mode: fast\n")
    config = NodeConfig.from_params_file(params)
    assert (config.score_threshold, config.tracking, config.chart_mode) == (1.0, False, "fast")
    for text, words in (("/**:\n  ros__parameters:\n    score_treshold: 0.5\n", "score_treshold"),
                        ("/**:\n  ros__parameters:\n    tracking: 'yes'\n", "tracking"),
                        ("/**:\n  ros__parameters:\n    chart_mode: blocky\n", "chart_mode"),
                        ("/**: [", "cannot read")):
        params.write_text(text)
        with pytest.raises(ValueError, match=words):
            NodeConfig.from_params_file(params)
