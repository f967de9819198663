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


def test_keypoints_travel_and_depth_places_them_and_the_person():
    result = make_result([[10, 20, 60, 110]])
    keypoints = np.zeros((1, 17, 3), np.float32)
    keypoints[0, :, 0] = np.linspace(20, 50, 17)
    keypoints[0, :, 1] = np.linspace(30, 100, 17)
    keypoints[0, :, 2] = 0.9
    keypoints[0, 16, :2] = (500.0, 30.0)  # outside the image: no 3D point
    result.keypoints = torch.from_numpy(keypoints)
    image = np.zeros((120, 160, 3), np.uint8)
    flat = FrameProcessor(None).outputs_from_result(result, image, correspondence_stride=4)
    person = flat.persons[0]
    np.testing.assert_array_equal(person.keypoints, keypoints[0])
    assert person.keypoints_xyz.shape == (0, 3) and person.position is None
    depth = np.full((120, 160), 2.0, np.float32)
    depth[:, :40] = np.nan  # no depth on the left: those keypoints have no 3D point
    intr = CameraIntrinsics(fx=100, fy=100, cx=80, cy=60, width=160, height=120)
    person = FrameProcessor(None).outputs_from_result(
        result, image, correspondence_stride=4, depth_m=depth, intrinsics=intr).persons[0]
    xyz = person.keypoints_xyz
    assert xyz.shape == (17, 3)
    left = keypoints[0, :, 0] < 40
    assert np.isnan(xyz[left]).all() and np.isnan(xyz[16]).all()
    placed = ~left
    placed[16] = False
    np.testing.assert_allclose(xyz[placed, 2], 2.0)
    np.testing.assert_allclose(xyz[placed, 0], (np.floor(keypoints[0, placed, 0]) - 80) * 0.02,
                               rtol=1e-5)
    # the median of the finite surface points: depth 2 m, x within the person's box
    assert person.position[2] == 2.0 and (40 - 80) * 0.02 <= person.position[0] <= (60 - 80) * 0.02


def test_a_tracker_gives_stable_ids_through_the_processor():
    from densepose_ros.tracking.bytetrack import ByteTracker, TrackerConfig

    class Replay:  # a backend that returns scripted results: two people walking right
        def __init__(self):
            self.frame = 0

        def infer(self, image):
            shift = 4 * self.frame
            self.frame += 1
            boxes = [[10 + shift, 20, 50 + shift, 110], [80 - shift, 15, 120 - shift, 100]]
            # odd frames list (and score) them the other way round: ids follow boxes, not ranks
            return make_result(boxes[::-1] if self.frame % 2 == 0 else boxes, seed=self.frame)

    # make_result scores its two people 0.9 and 0.5: a high threshold under both lets
    # both start tracks
    processor = FrameProcessor(Replay(), ByteTracker(TrackerConfig(high_threshold=0.4)))
    image = np.zeros((120, 160, 3), np.uint8)
    seen = [[(p.track_id, p.roi[0]) for p in processor.process(
        image, correspondence_stride=8).persons] for _ in range(6)]
    (id_a, _), (id_b, _) = sorted(seen[0], key=lambda person: person[1])
    assert sorted([id_a, id_b]) == [1, 2]
    for frame, persons in enumerate(seen):
        assert sorted(persons) == sorted([(id_a, 10 + 4 * frame), (id_b, 80 - 4 * frame)]), seen
