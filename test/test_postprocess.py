"""Post-processing of chart outputs: per-person IUV, full-frame IUV, overlay.

The chart outputs are built by hand with a known layout (which chart wins where, which
U/V each chart predicts, where the coarse segmentation says background), so the expected
labels and coordinates follow from the DensePose conventions, not from the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from densepose_ros.inference.postprocess import (
    PersonIUV,
    draw_overlay,
    full_frame_iuv,
    integer_box,
    person_iuv_charts,
)
from densepose_ros.inference.structures import DensePoseChartOutput, DensePoseResult

M = 8  # predictor grid side; the code does not depend on it


def two_part_chart(coarse_channels: int = 2, left: int = 3, right: int = 7
                   ) -> DensePoseChartOutput:
    """Left half of the grid is chart `left`, right half chart `right`; the top grid row is
    background by the coarse segmentation. Chart `left` predicts U=0.25, V=0.1, chart `right`
    U=0.75, V=0.9; every other channel predicts 0.5 (which must never be read)."""
    fine = torch.zeros(1, 25, M, M)
    fine[0, left, :, : M // 2] = 5.0
    fine[0, right, :, M // 2:] = 5.0
    u = torch.full((1, 25, M, M), 0.5)
    v = torch.full((1, 25, M, M), 0.5)
    u[0, left], v[0, left] = 0.25, 0.1
    u[0, right], v[0, right] = 0.75, 0.9
    coarse = torch.zeros(1, coarse_channels, M, M)
    part = 1 if coarse_channels == 2 else 9  # legacy: any of the 14 part channels
    coarse[0, part, 1:] = 1.0
    coarse[0, 1:, 0] = -1.0
    return DensePoseChartOutput(coarse, fine, u, v)


def uniform_chart(label: int) -> DensePoseChartOutput:
    """Every grid cell foreground, chart `label` with U = V = 0.5."""
    fine = torch.zeros(1, 25, M, M)
    fine[0, label] = 5.0
    coarse = torch.zeros(1, 2, M, M)
    coarse[0, 1] = 1.0
    return DensePoseChartOutput(coarse, fine, torch.full((1, 25, M, M), 0.5),
                                torch.full((1, 25, M, M), 0.5))


def cat_charts(*charts: DensePoseChartOutput) -> DensePoseChartOutput:
    return DensePoseChartOutput(*(torch.cat([getattr(c, name) for c in charts])
                                  for name in ("coarse_segm", "fine_segm", "u", "v")))


def result_of(boxes, scores, charts, size=(120, 160)) -> DensePoseResult:
    return DensePoseResult(torch.tensor(boxes, dtype=torch.float32),
                           torch.tensor(scores, dtype=torch.float32), charts, size)


@pytest.mark.parametrize("coarse_channels", [2, 15])
def test_person_chart_labels_masked_by_coarse_and_uv_from_label_channel(coarse_channels):
    result = result_of([[10, 20, 42, 52]], [0.9], two_part_chart(coarse_channels))
    (person,) = person_iuv_charts(result)
    assert isinstance(person, PersonIUV)
    assert person.box == (10, 20, 42, 52)
    assert person.labels.shape == person.u.shape == person.v.shape == (32, 32)
    assert person.labels.dtype == np.uint8 and person.u.dtype == np.float32
    # The top grid row (4 box pixels, plus the blend towards it) is coarse background.
    assert (person.labels[:3] == 0).all() and (person.u[:3] == 0).all()
    assert (person.labels[5:, :16] == 3).all() and (person.labels[5:, 16:] == 7).all()
    # Away from the chart boundary U/V are exactly the winning chart's, never the 0.5 decoy.
    np.testing.assert_allclose(person.u[5:, :12], 0.25, atol=1e-6)
    np.testing.assert_allclose(person.v[5:, :12], 0.1, atol=1e-6)
    np.testing.assert_allclose(person.u[5:, 20:], 0.75, atol=1e-6)
    np.testing.assert_allclose(person.v[5:, 20:], 0.9, atol=1e-6)
    assert person.u.min() >= 0.0 and person.u.max() <= 1.0
    assert person.score == pytest.approx(0.9)


def test_degenerate_boxes_give_one_pixel_wide_charts():
    charts = cat_charts(uniform_chart(4), uniform_chart(9), uniform_chart(2))
    result = result_of([[30.2, 10.0, 30.2001, 90.0], [5.0, 50.0, 80.0, 50.0],
                        [7.5, 7.5, 7.5, 7.5]], [0.9, 0.8, 0.7], charts)
    first, second, third = person_iuv_charts(result)
    assert first.labels.shape == (80, 1) and (first.labels == 4).all()
    assert second.labels.shape == (1, 75) and (second.labels == 9).all()
    assert third.labels.shape == (1, 1) and third.labels[0, 0] == 2
    np.testing.assert_allclose(first.u, 0.5)
    iuv = full_frame_iuv(result)
    assert (iuv[10:90, 30, 0] == 4).all()  # the higher score wins where they cross
    assert (iuv[50, 5:30, 0] == 9).all() and (iuv[50, 31:80, 0] == 9).all()


def test_integer_box_covers_the_float_box():
    assert integer_box(np.array([10.2, 20.7, 41.1, 51.9])) == (10, 20, 42, 52)
    assert integer_box(np.array([5.0, 5.0, 5.0, 5.0])) == (5, 5, 6, 6)  # never empty


def test_full_frame_iuv_paints_higher_scores_on_top():
    # The low-score person comes first in the result: painting must still put the
    # high-score person on top where they overlap.
    low = uniform_chart(12)
    high = two_part_chart()
    result = result_of([[0, 0, 64, 64], [10, 20, 42, 52]], [0.5, 0.9], cat_charts(low, high))
    iuv = full_frame_iuv(result)
    assert iuv.shape == (120, 160, 3) and iuv.dtype == np.uint8
    assert (iuv[30:50, 12:24, 0] == 3).all()  # high-score person, left chart
    assert (iuv[30:50, 38:40, 0] == 7).all()  # high-score person, right chart
    assert (iuv[55:64, 0:64, 0] == 12).all()  # only the low-score person here
    assert (iuv[20:23, 10:42, 0] == 12).all()  # the high-score person's background shows B
    assert (iuv[64:, :] == 0).all() and (iuv[:, 64:] == 0).all()
    # U and V as bytes: 0.25 -> 64, 0.1 -> 26, 0.5 -> 128.
    assert (iuv[30:50, 12:20, 1] == 64).all() and (iuv[30:50, 12:20, 2] == 26).all()
    assert (iuv[58:64, 0:10, 1:] == 128).all()


def test_full_frame_iuv_clips_boxes_reaching_outside_the_image():
    result = result_of([[-20, -10, 30, 40]], [1.0], uniform_chart(5))
    iuv = full_frame_iuv(result)
    assert (iuv[0:35, 0:25, 0] == 5).all()
    assert (iuv[45:, :, 0] == 0).all()


def test_empty_result():
    empty = DensePoseChartOutput.empty(2, M)
    result = result_of(np.zeros((0, 4)), [], empty)
    assert person_iuv_charts(result) == []
    assert (full_frame_iuv(result) == 0).all()
    image = np.full((120, 160, 3), 77, np.uint8)
    np.testing.assert_array_equal(draw_overlay(image, result), image)


def test_overlay_colours_persons_and_leaves_the_rest():
    image = np.full((120, 160, 3), 128, np.uint8)
    original = image.copy()
    result = result_of([[10, 20, 42, 52]], [0.87], two_part_chart())
    overlay = draw_overlay(image, result)
    np.testing.assert_array_equal(image, original)  # input untouched
    assert overlay.shape == image.shape and overlay.dtype == np.uint8
    inside = overlay[30:50, 14:38].reshape(-1, 3)
    assert (np.abs(inside.astype(int) - 128).sum(axis=1) > 30).mean() > 0.95
    # Left and right charts get different colours.
    assert not np.array_equal(overlay[40, 16], overlay[40, 36])
    np.testing.assert_array_equal(overlay[70:, 60:], image[70:, 60:])


def test_overlay_rejects_an_image_of_another_size():
    result = result_of([[10, 20, 42, 52]], [0.9], two_part_chart())
    with pytest.raises(ValueError, match="image is"):
        draw_overlay(np.zeros((100, 100, 3), np.uint8), result)


@pytest.mark.parametrize("keep", [[1, 2], [2, 0], [True, False, True], [], [0]])
def test_select_keeps_exactly_the_chosen_persons_in_order(keep):
    charts = cat_charts(uniform_chart(3), uniform_chart(7), uniform_chart(11))
    result = result_of([[0, 0, 10, 10], [5, 5, 20, 20], [9, 9, 30, 40]], [0.9, 0.8, 0.7],
                       charts)
    chosen = (np.flatnonzero(keep) if keep and isinstance(keep[0], bool)
              else np.asarray(keep, dtype=np.int64))
    picked = result.select(keep)
    assert len(picked) == len(chosen)
    np.testing.assert_array_equal(picked.boxes.numpy(), result.boxes.numpy()[chosen])
    np.testing.assert_array_equal(picked.scores.numpy(), result.scores.numpy()[chosen])
    # the winning fine channel of each chosen person is the label that person was built with
    labels = picked.charts.fine_segm.argmax(1)[:, 0, 0].tolist()
    assert labels == [[3, 7, 11][i] for i in chosen]
