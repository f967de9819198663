"""DensePose chart losses against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from densepose_ros.data.batching import ImageTargets
from densepose_ros.training.losses import (
    ChartTargets,
    DensePoseLossWeights,
    densepose_chart_losses,
    gather_chart_targets,
    point_sampling,
    resample_segm_to_rois,
    sample_at_points,
)

M = 4


def _targets(points_xy, parts, uv, roi=(0.0, 0.0, 8.0, 8.0), gt=(0.0, 0.0, 8.0, 8.0),
             segm_value=1) -> ChartTargets:
    p = len(parts)
    return ChartTargets(
        roi_boxes=torch.tensor([roi]), gt_boxes=torch.tensor([gt]),
        point_roi=torch.zeros(p, dtype=torch.int64),
        point_xy=torch.as_tensor(points_xy, dtype=torch.float32).reshape(-1, 2),
        point_part=torch.tensor(parts, dtype=torch.int64),
        point_uv=torch.tensor(uv, dtype=torch.float32).reshape(-1, 2),
        segm=torch.full((1, 256, 256), segm_value, dtype=torch.int64),
        has_segm=torch.tensor([True]))


def _linear_field(channels=25) -> torch.Tensor:
    """[1, C, M, M] with value col + 10 * row + 100 * channel (bilinear reproduces it)."""
    rows = torch.arange(M, dtype=torch.float32)[:, None]
    cols = torch.arange(M, dtype=torch.float32)[None, :]
    chans = torch.arange(channels, dtype=torch.float32)[:, None, None]
    return (cols + 10 * rows + 100 * chans)[None]


def test_points_map_to_the_roi_grid():
    # RoI = annotation box = [0, 8) px, M = 4: grid position = image x / 2. Frame 64 -> x 2
    # -> grid 1.0; frame 96 -> x 3 -> grid 1.5; frame 240 -> x 7.5 -> grid 3.75, clamped.
    targets = _targets([[64, 96], [96, 64], [240, 0]], [1, 1, 1], [[0, 0]] * 3)
    s = point_sampling(targets, M)
    assert s.valid.tolist() == [True, True, True]
    assert s.x_lo.tolist() == [1, 1, 3] and s.x_hi.tolist() == [2, 2, 3]
    torch.testing.assert_close(s.w_x, torch.tensor([0.0, 0.5, 0.0]))
    values = sample_at_points(_linear_field(1), targets.point_roi, s)[:, 0]
    torch.testing.assert_close(values, torch.tensor([1.0 + 15.0, 1.5 + 10.0, 3.0 + 0.0]))


def test_points_outside_the_roi_are_left_out():
    # The RoI covers only the left half of the annotation box.
    targets = _targets([[64, 64], [200, 64]], [1, 1], [[0, 0]] * 2, roi=(0.0, 0.0, 4.0, 8.0))
    assert point_sampling(targets, M).valid.tolist() == [True, False]


def test_bilinear_sampling_agrees_with_grid_sample():
    torch.manual_seed(0)
    values = torch.randn(1, 3, M, M)
    frame_xy = torch.tensor([[40.0, 70.0], [100.0, 150.0], [170.0, 30.0]])
    targets = _targets(frame_xy, [1, 1, 1], [[0, 0]] * 3)
    ours = sample_at_points(values, targets.point_roi, point_sampling(targets, M))
    grid_pos = frame_xy / 256 * 8 * M / 8  # grid coordinates (all interior here)
    normalised = 2 * grid_pos / (M - 1) - 1
    reference = F.grid_sample(values, normalised[None, None], mode="bilinear",
                              align_corners=True)[0, :, 0].T
    torch.testing.assert_close(ours, reference)


def test_uv_and_part_losses_by_hand():
    # Two points of chart 3 at grid (1, 1) and (2, 1); predicted U = 0.1 * col + 0.2 on
    # every channel, V = 0.5; annotated U = 0.5, 0.2, V = 2.0 and 0.5.
    targets = _targets([[64, 64], [128, 64]], [3, 3], [[0.5, 2.0], [0.2, 0.5]])
    cols = torch.arange(M, dtype=torch.float32)
    u = (0.1 * cols + 0.2).expand(1, 25, M, M).clone()
    v = torch.full((1, 25, M, M), 0.5)
    fine = torch.zeros(1, 25, M, M)
    fine[:, 3] = 2.0
    coarse = torch.zeros(1, 2, M, M)
    losses = densepose_chart_losses(coarse, fine, u, v, targets)
    # U: predicted 0.3, 0.4 vs 0.5, 0.2: 0.5 * (0.2^2 + 0.2^2) = 0.04, times 0.01.
    assert losses.loss_densepose_U.item() == pytest.approx(0.0004, abs=1e-7)
    # V: |0.5 - 2.0| = 1.5 >= 1 -> 1.5 - 0.5 = 1.0; second 0: sum 1.0, times 0.01.
    assert losses.loss_densepose_V.item() == pytest.approx(0.01, abs=1e-7)
    # I: -log(e^2 / (e^2 + 24)) for both points, mean, times 1.0.
    assert losses.loss_densepose_I.item() == pytest.approx(
        math.log(math.exp(2) + 24) - 2, abs=1e-5)
    legacy = densepose_chart_losses(coarse, fine, u, v, targets, DensePoseLossWeights.legacy())
    assert legacy.loss_densepose_U.item() == pytest.approx(0.004, abs=1e-6)
    assert legacy.loss_densepose_I.item() == pytest.approx(
        0.3 * (math.log(math.exp(2) + 24) - 2), abs=1e-5)


def test_coarse_segmentation_loss_by_hand():
    # The RoI is twice as wide as the annotation box, whose mask is all foreground: grid
    # columns at x = 0, 4, 8, 12 px fall on mask pixels 0, 127.5, 255 and outside (0).
    targets = _targets([[64, 64]], [1], [[0.5, 0.5]], roi=(0.0, 0.0, 16.0, 8.0))
    labels = resample_segm_to_rois(targets, M)
    assert labels[0, 0].tolist() == [1, 1, 1, 0]
    assert (labels[0] == labels[0, :1]).all()
    coarse = torch.zeros(1, 2, M, M)
    coarse[:, 1] = 1.0
    zeros = torch.zeros(1, 25, M, M)
    loss = densepose_chart_losses(coarse, zeros, zeros, zeros, targets).loss_densepose_S
    expected = 0.75 * math.log(1 + math.exp(-1)) + 0.25 * math.log(1 + math.exp(1))
    assert loss.item() == pytest.approx(5.0 * expected, abs=1e-5)
    # 15 channels: the part labels themselves are the classes (here part 1 everywhere
    # inside the box).
    coarse15 = torch.zeros(1, 15, M, M)
    loss15 = densepose_chart_losses(coarse15, zeros, zeros, zeros, targets).loss_densepose_S
    assert loss15.item() == pytest.approx(5.0 * math.log(15), abs=1e-5)


def test_gradients_flow_and_empty_targets_give_zero():
    targets = _targets([[64, 64]], [5], [[0.3, 0.7]])
    outputs = [torch.randn(1, c, M, M, requires_grad=True) for c in (2, 25, 25, 25)]
    losses = densepose_chart_losses(*outputs, targets)
    losses.total().backward()
    assert all(o.grad is not None and o.grad.abs().sum() > 0 for o in outputs)
    outside = _targets([[64, 64]], [5], [[0.3, 0.7]], roi=(100.0, 100.0, 120.0, 120.0))
    outside.has_segm[:] = False
    outputs = [torch.randn(1, c, M, M, requires_grad=True) for c in (2, 25, 25, 25)]
    losses = densepose_chart_losses(*outputs, outside)
    assert losses.total().item() == 0.0
    losses.total().backward()
    assert all(o.grad is not None for o in outputs)


def test_gather_chart_targets_selects_rois_matched_to_annotated_persons():
    def image(boxes, dense_counts):
        n = len(boxes)
        point_instance = torch.cat([torch.full((c,), k, dtype=torch.int64)
                                    for k, c in enumerate(dense_counts)])
        p = point_instance.shape[0]
        return ImageTargets(
            boxes=torch.tensor(boxes, dtype=torch.float32), is_crowd=torch.zeros(n, dtype=bool),
            has_dense=torch.tensor([c > 0 for c in dense_counts]), point_instance=point_instance,
            point_xy=torch.arange(2 * p, dtype=torch.float32).reshape(p, 2),
            point_part=torch.arange(1, p + 1), point_uv=torch.zeros(p, 2),
            point_uv_weight=torch.arange(p, dtype=torch.float32),
            point_probs=torch.zeros(p, 25), point_is_soft=torch.zeros(p, dtype=bool),
            segm=torch.zeros(n, 256, 256, dtype=torch.uint8), has_segm=torch.ones(n, dtype=bool),
            keypoints=torch.zeros(n, 17, 3))

    first = image([[0, 0, 10, 10], [20, 20, 30, 30]], [2, 0])  # person 1 has no points
    second = image([[5, 5, 15, 15]], [3])
    rois = [torch.tensor([[0, 0, 9, 9], [1, 1, 9, 9], [20, 20, 29, 29]], dtype=torch.float32),
            torch.tensor([[4, 4, 16, 16], [50, 50, 60, 60]], dtype=torch.float32)]
    matched = [torch.tensor([0, -1, 1]), torch.tensor([0, -1])]
    index, packed = gather_chart_targets([first, second], rois, matched)
    assert index.tolist() == [0, 3]  # RoI 0 of image 1, RoI 0 of image 2 (3 + 0)
    assert packed.point_roi.tolist() == [0, 0, 1, 1, 1]
    assert packed.point_part.tolist() == [1, 2, 1, 2, 3]
    assert packed.point_uv_weight.tolist() == [0, 1, 0, 1, 2]  # each point's own weight
    assert packed.point_probs.shape == (5, 25) and not packed.point_is_soft.any()
    torch.testing.assert_close(packed.gt_boxes[1], torch.tensor([5.0, 5.0, 15.0, 15.0]))
    torch.testing.assert_close(packed.roi_boxes[1], torch.tensor([4.0, 4.0, 16.0, 16.0]))


def test_distillation_soft_part_targets_and_uv_weights():
    """Teacher targets: soft part probabilities and U/V only where the teacher is sure.
    Three points exactly on cells of the 4x4 grid, so the sampled logits are the cells'."""
    torch.manual_seed(0)
    fine = torch.randn(1, 25, M, M, requires_grad=True)
    u = torch.rand(1, 25, M, M)
    v = torch.rand(1, 25, M, M)
    coarse = torch.zeros(1, 2, M, M)
    xy = [[0.0, 0.0], [64.0, 0.0], [128.0, 64.0]]  # grid cells (0,0), (0,1), (1,2)
    cells = [(0, 0), (0, 1), (1, 2)]
    parts = [3, 7, 11]
    uv = [[0.2, 0.3], [0.6, 0.1], [0.9, 0.9]]
    logits = torch.stack([fine[0, :, r, c] for r, c in cells]).detach()
    # soft targets equal to the student's own probabilities at point 0, one-hot at point 1
    probs = torch.zeros(3, 25)
    probs[0] = torch.softmax(logits[0], 0)
    probs[1, 7] = 1.0
    targets = _targets(xy, parts, uv)
    targets.point_probs = probs
    targets.point_is_soft = torch.tensor([True, True, False])
    targets.point_uv_weight = torch.tensor([1.0, 0.0, 1.0])  # unsure at point 1
    weights = DensePoseLossWeights(points=1.0, part=1.0, segm=0.0)
    losses = densepose_chart_losses(coarse, fine, u, v, targets, weights)
    log_p = F.log_softmax(logits, dim=1)
    expected_i = (-(probs[0] * log_p[0]).sum() - log_p[1, 7] - log_p[2, 11]) / 3
    torch.testing.assert_close(losses.loss_densepose_I, expected_i)
    # U/V: point 1 (weight 0) contributes nothing
    expected_u = sum(F.smooth_l1_loss(u[0, p, r, c], torch.tensor(t[0]))
                     for (r, c), p, t, w in zip(cells, parts, uv, [1, 0, 1], strict=True) if w)
    torch.testing.assert_close(losses.loss_densepose_U, expected_u)
    # the soft target equal to the student's own distribution has zero gradient there
    losses.loss_densepose_I.backward()
    assert torch.allclose(fine.grad[0, :, 0, 0], torch.zeros(25), atol=1e-7)
    assert fine.grad[0, :, 0, 1].abs().sum() > 0
