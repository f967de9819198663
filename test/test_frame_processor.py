"""FrameProcessor: typed result -> the arrays the node publishes (no ROS)."""

import numpy as np
import torch

from densepose_ros.inference import postprocess
from densepose_ros.inference.correspondences import CameraIntrinsics
from densepose_ros.inference.postprocess import quantise_unit
from densepose_ros.inference.structures import DensePoseChartOutput, DensePoseResult
from densepose_ros.ros.frame_processor import FrameProcessor, cap_chart


def make_result(boxes, image_size=(120, 160), seed=0) -> DensePoseResult:
    gen = torch.Generator().manual_seed(seed)
    n, m = len(boxes), 28
    charts = DensePoseChartOutput(
        coarse_segm=torch.randn(n, 2, m, m, generator=gen) + torch.tensor([0.0, 1.0])[:, None,
                                                                                     None],
        fine_segm=torch.randn(n, 25, m, m, generator=gen),
        u=torch.rand(n, 25, m, m, generator=gen), v=torch.rand(n, 25, m, m, generator=gen),
    )
    return DensePoseResult(torch.tensor(boxes, dtype=torch.float32),
                           torch.linspace(0.9, 0.5, n), charts, image_size)


def test_outputs_match_the_core_charts():
    result = make_result([[10, 20, 60, 110], [50.5, 5.2, 150.7, 100.1]])
    image = np.zeros((120, 160, 3), np.uint8)
    outputs = FrameProcessor(None).outputs_from_result(result, image, correspondence_stride=4)
    charts = postprocess.person_iuv_charts(result)
    assert len(outputs.persons) == 2
    for person, chart in zip(outputs.persons, charts, strict=True):
        x0, y0, x1, y1 = chart.box
        assert person.roi == (x0, y0, x1 - x0, y1 - y0)
        np.testing.assert_array_equal(person.chart_part, chart.labels)
        np.testing.assert_array_equal(person.chart_u, quantise_unit(chart.u) * (chart.labels > 0))
        assert (person.chart_u[chart.labels == 0] == 0).all()
        assert len(person.points.x) > 0 and person.points.xyz.shape == (0, 3)
        assert person.score == chart.score
    np.testing.assert_array_equal(outputs.iuv, postprocess.full_frame_iuv(result))
    assert outputs.overlay is None


def test_boxes_reaching_outside_are_clipped_and_outside_boxes_dropped():
    result = make_result([[-20, -10, 40, 50], [200, 10, 260, 60]])
    image = np.zeros((120, 160, 3), np.uint8)
    outputs = FrameProcessor(None).outputs_from_result(result, image, correspondence_stride=4)
    assert len(outputs.persons) == 1
    x, y, w, h = outputs.persons[0].roi
    assert (x, y) == (0, 0) and (w, h) == (40, 50)
    assert outputs.persons[0].chart_part.shape == (50, 40)


def test_chart_cap_keeps_parts_and_uv_consistent():
    part = np.arange(200 * 100, dtype=np.int64).reshape(200, 100) % 25
    u8 = (part * 10).astype(np.uint8)
    small_part, small_u, small_v = cap_chart(part.astype(np.uint8), u8, u8, max_size=50)
    assert small_part.shape == (50, 25)
    np.testing.assert_array_equal(small_u, (small_part * 10).astype(np.uint8))


def test_depth_gives_points_in_the_camera_frame():
    result = make_result([[10, 20, 60, 110]])
    image = np.zeros((120, 160, 3), np.uint8)
    depth = np.full((120, 160), 1.5, np.float32)
    intr = CameraIntrinsics(fx=100, fy=100, cx=80, cy=60, width=160, height=120)
    outputs = FrameProcessor(None).outputs_from_result(
        result, image, correspondence_stride=4, depth_m=depth, intrinsics=intr)
    points = outputs.persons[0].points
    np.testing.assert_allclose(points.xyz[:, 2], 1.5)
    np.testing.assert_allclose(points.xyz[:, 0], (points.x - 80.0) * 1.5 / 100, rtol=1e-5)


def test_uv_confidence_is_published_for_models_that_predict_it():
    result = make_result([[10, 20, 60, 110]])
    n, m = 1, 28
    # sigma_2 = -20: softplus ~ 0, sigma at its floor 0.1 -> 255; +3: sigma ~ 1.77 -> 14
    sigma_2 = torch.full((n, 25, m, m), -20.0)
    sigma_2[:, 13:] = 3.0
    result.charts.sigma_2 = sigma_2
    image = np.zeros((120, 160, 3), np.uint8)
    sigma_high = np.sqrt(np.log1p(np.exp(3.0)) + 0.01)
    for mode in ("exact", "fast"):
        person = FrameProcessor(None).outputs_from_result(
            result, image, correspondence_stride=4, chart_mode=mode).persons[0]
        confidence, part = person.chart_uv_confidence, person.chart_part
        assert confidence.shape == part.shape
        assert (confidence[part == 0] == 0).all() and (confidence[part > 0] > 0).all()
        if mode == "exact":  # each pixel's own chart's sigma_2, as detectron2 resamples it
            assert (confidence[(part >= 1) & (part <= 12)] == 255).all()
            assert (confidence[part >= 13] == round(25.5 / sigma_high)).all()
    # a model without confidence publishes none
    plain = make_result([[10, 20, 60, 110]])
    person = FrameProcessor(None).outputs_from_result(plain, image, correspondence_stride=4)
    assert person.persons[0].chart_uv_confidence.size == 0
