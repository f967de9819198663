"""The real node with ``backend: onnxruntime`` on the CPU: exported graphs behind the node."""

from __future__ import annotations

from pathlib import Path

import pytest

from densepose_ros.export.onnx_export import export_onnx
from densepose_ros.ros.frame_processor import FrameProcessor
from densepose_ros.runtime import InferenceSettings
from densepose_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend
from densepose_ros.runtime.torch_backend import TorchBackend

from node_fixtures import (
    DEFAULTS,
    STAMP0,
    TEST_SCORE_THRESHOLD,
    node_args,
    stamp_ns,
    vtest_frames,
)

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def weights(untrained_weights):
    return untrained_weights


@pytest.fixture(scope="module")
def export_folder(weights, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx") / "light_onnx"
    export_onnx(weights, out, progress=lambda _: None)
    return out



def answer(client, stamp: int):
    return next((m for m in client.persons if stamp_ns(m.header) == stamp), None)


def has_torch(node) -> bool:
    """Whether the node's process has PyTorch's libraries mapped (imported torch)."""
    return "libtorch" in Path(f"/proc/{node.popen.pid}/maps").read_text()


def settings() -> InferenceSettings:
    return InferenceSettings(score_threshold=TEST_SCORE_THRESHOLD,
                             nms_threshold=DEFAULTS.nms_threshold,
                             max_detections=DEFAULTS.max_persons)


def start_node(ros_process, client, export_folder, backend: str):
    """The node on ``export_folder`` with ``backend``, once it reports that backend running."""
    node = ros_process(["-m", "densepose_ros.ros.node"], name="node", ros_args=node_args(
        export_folder, "-p", f"backend:={backend}"))
    assert client.wait_for_node(), node.output()
    assert client.spin_until(
        lambda: client.diagnostic_values().get("backend", "").startswith(f"{backend}/CPU"), 30
    ), client.diagnostic_values()
    return node


def test_node_runs_the_onnxruntime_backend(ros_process, client, weights, export_folder):
    node = start_node(ros_process, client, export_folder, "onnxruntime")
    exported = FrameProcessor(OnnxRuntimeBackend.from_weights(export_folder, "cpu"))
    eager = TorchBackend.from_weights(weights, "cpu")
    for backend in (exported.backend, eager):
        backend.configure(settings())
    for index, image in enumerate(vtest_frames(2)):
        stamp = STAMP0 + index * 100_000_000
        client.image_pub.publish(client.image_msg(image, stamp))
        assert client.spin_until(lambda s=stamp: answer(client, s) is not None, 60), \
            node.output()
        msg = answer(client, stamp)
        expected = exported.process(image,
                                    correspondence_stride=DEFAULTS.correspondence_stride)
        assert len(expected.persons) > 0, "test model should detect something"
        assert len(msg.persons) == len(expected.persons)
        for got, want in zip(msg.persons, expected.persons, strict=True):
            assert got.score == pytest.approx(want.score, rel=1e-4, abs=1e-5)
            assert (got.roi.x_offset, got.roi.y_offset, got.roi.width, got.roi.height) \
                == want.roi
        # and the exported model is the eager one: same detections within export tolerance
        reference = eager.infer(image)
        assert len(reference) == len(msg.persons)
        got_scores = sorted(p.score for p in msg.persons)
        want_scores = sorted(reference.scores.tolist())
        assert got_scores == pytest.approx(want_scores, abs=1e-4)
    # the graphs' glue is numpy: the node never imported torch (780 MB resident on its own)
    assert not has_torch(node)


@pytest.mark.openvino  # the expected results come from OpenVINO in this process
def test_node_runs_the_openvino_backend(ros_process, client, export_folder):
    """``backend: openvino`` with its default precision (bf16 on CPUs with native bfloat16):
    the node publishes what the OpenVINO backend computes in this process."""
    from densepose_ros.runtime.openvino_backend import OpenVinoBackend

    node = start_node(ros_process, client, export_folder, "openvino")
    expected = FrameProcessor(OpenVinoBackend.from_weights(export_folder, "cpu"))
    expected.backend.configure(settings())
    assert client.diagnostic_values()["backend"].split()[1] == expected.backend.precision
    image = vtest_frames(1)[0]
    client.image_pub.publish(client.image_msg(image, STAMP0))
    assert client.spin_until(lambda: answer(client, STAMP0) is not None, 60), node.output()
    msg = answer(client, STAMP0)
    want = expected.process(image, correspondence_stride=DEFAULTS.correspondence_stride)
    assert len(want.persons) > 0, "test model should detect something"
    assert len(msg.persons) == len(want.persons)
    for got, person in zip(msg.persons, want.persons, strict=True):
        assert got.score == pytest.approx(person.score, abs=1e-3)
    assert not has_torch(node)
