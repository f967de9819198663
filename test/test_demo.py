"""`make demo`'s job, shortened: a real clip through the real node into a recorded bag."""

import json
import subprocess
import sys

import pytest

from densepose_ros.io import bag_io

pytestmark = pytest.mark.ros


def test_demo_records_outputs_and_writes_a_summary(tmp_path, ros_domain):
    out = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "-m", "densepose_ros.tools.demo", "--seconds", "1.5", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_in"] >= 10
    assert 1 <= summary["frames_out"] <= summary["frames_in"]
    assert summary["frames_out"] + summary["dropped"] <= summary["frames_in"]
    assert summary["errors"] == 0
    topics = {m.topic for m in bag_io.read_bag(out / "output_bag")}
    assert {"/densepose/persons", "/densepose/iuv", "/densepose/debug_image"} <= topics
    persons = [m for m in bag_io.read_bag(out / "output_bag", ["/densepose/persons"])]
    assert len(persons) == summary["persons_messages_recorded"] <= summary["frames_out"]
    decoded = bag_io.typestore().deserialize_cdr(persons[0].data, persons[0].msgtype)
    assert (decoded.image_width, decoded.image_height) == (768, 576)
    assert len(list((out / "overlays").glob("*.png"))) == summary["overlay_frames"] >= 1
    assert "demo summary" in result.stdout
