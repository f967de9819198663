"""The numpy glue of the CPU graph backends against the eager model's own torch code (the
reference), and a graph backend's process without torch.

Every function of ``runtime.numpy_glue`` and ``inference.resample`` is run beside its torch
counterpart on the same inputs: random maps and boxes of real sizes (a 640x480 input's FPN),
boxes on the borders, outside the image and degenerate.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.ops import batched_nms as tv_batched_nms
from torchvision.ops import nms as tv_nms

from densepose_ros import paths
from densepose_ros.export.cache import cached_export
from densepose_ros.inference.resample import bicubic_matrix, resize_bilinear, resize_separable
from densepose_ros.modeling.box_head import BoxStage
from densepose_ros.modeling.box_ops import MultiLevelRoIAlign as TorchRoIAlign
from densepose_ros.modeling.box_ops import boxes_to_rois
from densepose_ros.modeling.config import ROI_STRIDES, RPN_STRIDES, PoolerGeometry, get_config
from densepose_ros.modeling.keypoint_head import heatmaps_to_keypoints as torch_keypoints
from densepose_ros.modeling.rpn import RPN
from densepose_ros.runtime import numpy_glue as glue

from node_fixtures import vtest_frames

INPUT = (480, 640)  # a VGA camera frame at the default model's input size


def random_boxes(rng: np.random.Generator, count: int, height: int, width: int,
                 spread: float = 1.0) -> np.ndarray:
    """xyxy float32 boxes of many sizes, some reaching over the image border."""
    x = rng.uniform(-0.1 * width, width * spread, count)
    y = rng.uniform(-0.1 * height, height * spread, count)
    w = np.exp(rng.uniform(np.log(2), np.log(width), count))
    h = np.exp(rng.uniform(np.log(2), np.log(height), count))
    return np.stack([x, y, x + w, y + h], axis=1).astype(np.float32)


def clustered_boxes(rng: np.random.Generator, count: int) -> np.ndarray:
    """Boxes jittered around a few centres: heavy overlaps, as NMS meets them."""
    centres = random_boxes(rng, 8, *INPUT)
    picked = centres[rng.integers(0, 8, count)]
    sides = np.concatenate([picked[:, 2:] - picked[:, :2]] * 2, axis=1)
    return (picked + rng.normal(0, 0.08, (count, 4)) * sides).astype(np.float32)


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7])
def test_nms_keeps_what_torchvision_keeps(threshold):
    rng = np.random.default_rng(1)
    boxes = clustered_boxes(rng, 600)
    scores = rng.random(600).astype(np.float32)
    groups = rng.integers(0, 5, 600)
    expected = tv_nms(torch.from_numpy(boxes), torch.from_numpy(scores), threshold)
    np.testing.assert_array_equal(glue.nms(boxes, scores, threshold), expected.numpy())
    expected = tv_batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores),
                              torch.from_numpy(groups), threshold)
    got = glue.batched_nms(boxes, scores, groups, threshold)
    np.testing.assert_array_equal(got, expected.numpy())
    assert len(got) < 600  # the clusters did overlap
    assert len(glue.nms(boxes[:0], scores[:0], threshold)) == 0


def rpn_maps(rng: np.random.Generator, cfg) -> list[tuple[np.ndarray, np.ndarray]]:
    anchors = len(cfg.rpn.aspect_ratios)
    maps = []
    for stride in RPN_STRIDES:
        h, w = -(-INPUT[0] // stride), -(-INPUT[1] // stride)
        maps.append((rng.normal(0, 2, (1, anchors, h, w)).astype(np.float32),
                     rng.normal(0, 0.5, (1, 4 * anchors, h, w)).astype(np.float32)))
    return maps


@pytest.mark.parametrize("config", ["R_18_FPN_tiny_kp", "R_50_FPN_s1x_legacy"])
def test_proposals_and_detections_match_the_model(config):
    cfg = get_config(config)
    rng = np.random.default_rng(2)
    maps = rpn_maps(rng, cfg)
    rpn = RPN(cfg.rpn, cfg.backbone.fpn_channels, RPN_STRIDES, cfg.box_scale_clamp,
              head=torch.nn.Identity()).eval()
    (expected, expected_logits), = rpn.select_proposals(
        [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in maps], [INPUT])
    proposals, logits = glue.select_proposals(maps, INPUT, cfg.rpn, RPN_STRIDES,
                                              cfg.box_scale_clamp)
    assert proposals.shape == tuple(expected.shape) and len(proposals) == cfg.rpn.post_nms_topk
    np.testing.assert_allclose(proposals, expected.numpy(), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(logits, expected_logits.numpy(), rtol=1e-6)

    stage = BoxStage(cfg.box_head, cfg.backbone.fpn_channels, ROI_STRIDES, cfg.box_scale_clamp,
                     box_head=torch.nn.Identity(), box_predictor=torch.nn.Identity()).eval()
    class_logits = rng.normal(0, 2, (len(proposals), 2)).astype(np.float32)
    deltas = rng.normal(0, 1, (len(proposals), 4)).astype(np.float32)
    for score_threshold, nms_threshold, most in ((0.05, 0.5, 100), (0.8, 0.3, 5)):
        (boxes, scores, _), = stage.select_detections(
            torch.from_numpy(class_logits), torch.from_numpy(deltas), [expected], [INPUT],
            score_threshold, nms_threshold, most)
        got_boxes, got_scores = glue.select_detections(
            class_logits, deltas, expected.numpy(), INPUT, cfg.box_head, cfg.box_scale_clamp,
            score_threshold, nms_threshold, most)
        assert len(got_boxes) == len(boxes) > 0
        np.testing.assert_allclose(got_boxes, boxes.numpy(), rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(got_scores, scores.numpy(), rtol=1e-5)


@pytest.mark.parametrize(("side", "strides", "sampling", "aligned"), [
    (7, ROI_STRIDES, 2, False),   # the box head (detectron2's ROIAlign)
    (14, ROI_STRIDES, 0, True),   # the keypoint head (ROIAlignV2, adaptive sampling)
    (14, ROI_STRIDES, 2, False),  # the DensePose head on p2..p5
    (28, (4,), 2, False),         # the s1x DensePose head on the decoder's map
])
@pytest.mark.parametrize("many", [True, False])  # the map made channels-last, or crops
def test_roi_align_matches_torchvision(side, strides, sampling, aligned, many):
    rng = np.random.default_rng(3)
    channels = 16
    features = [rng.normal(0, 1, (1, channels, -(-INPUT[0] // s), -(-INPUT[1] // s)))
                .astype(np.float32) for s in strides]
    edge_cases = np.array([[0, 0, 640, 480], [630, 470, 700, 560], [-50, -40, -10, -5],
                           [100, 100, 100, 100], [10.5, 20.25, 10.75, 300.0]], np.float32)
    boxes = (np.concatenate([random_boxes(rng, 120, *INPUT), edge_cases]) if many else
             np.array([[50.2, 60.7, 90.1, 160.3], [300.5, 200.25, 340.0, 230.75],
                       [600.0, 400.0, 639.5, 479.5]], np.float32))
    expected = TorchRoIAlign(side, strides, sampling, aligned)(
        [torch.from_numpy(f) for f in features], boxes_to_rois([torch.from_numpy(boxes)]))
    got = glue.MultiLevelRoIAlign(PoolerGeometry(side, strides, sampling, aligned))(features,
                                                                                      boxes)
    assert got.shape == tuple(expected.shape)
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize(("size", "out"), [((56, 56), (14, 14)), ((56, 56), (200, 90)),
                                           ((7, 9), (7, 9)), ((112, 112), (31, 500))])
def test_resizes_match_interpolate(size, out):
    maps = np.random.default_rng(4).normal(0, 1, (3, 5, *size)).astype(np.float32)
    expected = F.interpolate(torch.from_numpy(maps), out, mode="bilinear", align_corners=False)
    np.testing.assert_allclose(resize_bilinear(maps, *out), expected.numpy(), atol=2e-6)
    expected = F.interpolate(torch.from_numpy(maps), out, mode="bicubic", align_corners=False)
    got = resize_separable(maps, bicubic_matrix(size[0], out[0]), bicubic_matrix(size[1], out[1]))
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)


def test_keypoints_match_the_model():
    rng = np.random.default_rng(5)
    heatmaps = rng.normal(0, 3, (6, 17, 56, 56)).astype(np.float32)
    boxes = random_boxes(rng, 6, *INPUT)
    boxes[0] = [100.0, 50.0, 100.5, 50.25]  # smaller than a pixel
    expected = torch_keypoints(torch.from_numpy(heatmaps), torch.from_numpy(boxes)).numpy()
    got = glue.heatmaps_to_keypoints(heatmaps, boxes)
    np.testing.assert_allclose(got[..., :2], expected[..., :2], atol=1e-3)
    np.testing.assert_allclose(got[..., 2], expected[..., 2], rtol=1e-4)


TORCH_FREE_RUN = textwrap.dedent("""
    import sys
    import cv2
    import numpy as np
    import densepose_ros.ros.node  # everything the node imports
    from densepose_ros.inference import postprocess
    from densepose_ros.runtime import create_backend
    from densepose_ros.tracking.bytetrack import ByteTracker, follow

    backend, why = create_backend(sys.argv[1], sys.argv[2], "cpu")
    image = cv2.resize(cv2.imread(sys.argv[3]), (640, 480))
    result = backend.infer(image)
    persons = postprocess.person_iuv_charts(result)
    postprocess.draw_overlay(image, result, persons=persons)
    followed, ids = follow(ByteTracker(), result)
    print(backend.name, len(result), "torch" in sys.modules)
""")


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_graph_backend_process_never_imports_torch(backend, tmp_path):
    """A process running a graph backend on the default model's cached export, with
    everything the node does with a frame (charts, overlay, tracking), has no torch in it."""
    weights = paths.default_model_path()
    cached_export(weights)  # the export itself needs torch: made here, beforehand
    frame = tmp_path / "frame.png"
    cv2.imwrite(str(frame), vtest_frames(1, size=None)[0])
    run = subprocess.run([sys.executable, "-c", TORCH_FREE_RUN, backend, str(weights),
                          str(frame)], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ))
    assert run.returncode == 0, run.stderr
    name, persons, torch_loaded = run.stdout.split()[-3:]
    assert (name, torch_loaded) == (backend, "False"), run.stdout
    assert int(persons) > 0  # the frame's pedestrians went through charts and tracking


def test_numpy_and_torch_glue_give_the_same_result():
    """The two glues between the same graphs (onnxruntime on the CPU): numpy (onnxruntime,
    OpenVINO) and the model's torch code (TensorRT's, run here on CPU tensors) agree on the
    default model with real pedestrians, detection for detection."""
    from densepose_ros.runtime.base import InferenceSettings
    from densepose_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend
    from densepose_ros.runtime.split_pipeline import SplitPipeline

    backend = OnnxRuntimeBackend(cached_export(paths.default_model_path()), "cpu")

    def run_torch(graph, tensor):
        arrays = backend.run_graph(graph, tensor.numpy())
        return {name: torch.from_numpy(array) for name, array in arrays.items()}

    torch_glue = SplitPipeline(backend.bundle.config, run_torch, "cpu")
    # the default threshold, and every detection the box head keeps (the glue at full load)
    for settings in (InferenceSettings(), InferenceSettings(score_threshold=0.05)):
        backend.configure(settings)
        torch_glue.configure(settings)
        for frame in vtest_frames(2, size=(640, 480)):
            got, want = backend.infer(frame), torch_glue(frame).numpy()
            assert isinstance(got.boxes, np.ndarray) and len(got) == len(want) > 0
            np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-3)
            np.testing.assert_allclose(got.scores, want.scores, atol=1e-5)
            np.testing.assert_allclose(got.keypoints, want.keypoints, atol=1e-3)
            for name, chart in got.charts.tensors().items():
                np.testing.assert_allclose(chart, getattr(want.charts, name), atol=1e-3)
