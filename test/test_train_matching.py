"""Anchor/RoI matching, balanced sampling, box encoding and the LR schedule on hand-made
numbers."""

from __future__ import annotations

import math

import pytest
import torch

from densepose_ros.modeling.box_ops import decode_boxes, encode_boxes
from densepose_ros.training.config import SolverConfig, TrainConfig
from densepose_ros.training.matching import (
    IGNORED,
    NEGATIVE,
    POSITIVE,
    match_by_iou,
    sample_balanced,
)
from densepose_ros.training.trainer import learning_rate


def test_match_labels_follow_the_iou_thresholds():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    boxes = torch.tensor([
        [0.0, 0.0, 10.0, 10.0],    # IoU 1
        [0.0, 0.0, 10.0, 5.0],     # IoU 0.5 -> ignored between 0.3 and 0.7
        [0.0, 0.0, 10.0, 2.0],     # IoU 0.2 -> negative
        [50.0, 50.0, 60.0, 60.0],  # IoU 0   -> negative
    ])
    matches = match_by_iou(gt, boxes, high=0.7, low=0.3, keep_best_matches=False)
    assert matches.labels.tolist() == [POSITIVE, IGNORED, NEGATIVE, NEGATIVE]
    assert matches.gt_index.tolist() == [0, 0, 0, 0]


def test_best_matches_make_small_persons_positive():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [100.0, 100.0, 104.0, 104.0]])
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [100.0, 100.0, 110.0, 110.0],
                          [98.0, 98.0, 110.0, 110.0]])
    # the second person's best anchor has IoU 0.16 only
    plain = match_by_iou(gt, boxes, high=0.7, low=0.3, keep_best_matches=False)
    kept = match_by_iou(gt, boxes, high=0.7, low=0.3, keep_best_matches=True)
    assert plain.labels.tolist() == [POSITIVE, NEGATIVE, NEGATIVE]
    assert kept.labels.tolist() == [POSITIVE, POSITIVE, NEGATIVE]
    assert kept.gt_index.tolist()[:2] == [0, 1]


def test_image_without_persons_is_all_background():
    matches = match_by_iou(torch.zeros((0, 4)), torch.rand(5, 4) * 10 + torch.tensor(
        [0.0, 0.0, 20.0, 20.0]), high=0.7, low=0.3, keep_best_matches=True)
    assert matches.labels.tolist() == [NEGATIVE] * 5


def test_balanced_sampling_caps_positives_and_fills_with_negatives():
    labels = torch.tensor([POSITIVE] * 30 + [NEGATIVE] * 100 + [IGNORED] * 10,
                          dtype=torch.int8)
    generator = torch.Generator().manual_seed(0)
    positive, negative = sample_balanced(labels, 40, 0.25, generator)
    assert len(positive) == 10 and len(negative) == 30
    assert (labels[positive] == POSITIVE).all() and (labels[negative] == NEGATIVE).all()
    assert len(set(positive.tolist())) == 10 and len(set(negative.tolist())) == 30
    # few positives: the negatives fill the rest
    positive, negative = sample_balanced(labels[25:], 40, 0.5, generator)
    assert len(positive) == 5 and len(negative) == 35


def test_encoding_matches_hand_computed_deltas_and_inverts_decoding():
    reference = torch.tensor([[0.0, 0.0, 10.0, 20.0]])
    target = torch.tensor([[5.0, 0.0, 25.0, 20.0]])  # centre +10 in x, width x2
    deltas = encode_boxes(reference, target, (10.0, 10.0, 5.0, 5.0))
    expected = [10.0 * 10 / 10, 0.0, 5.0 * math.log(2.0), 0.0]
    assert deltas[0].tolist() == pytest.approx(expected)
    decoded = decode_boxes(deltas, reference, (10.0, 10.0, 5.0, 5.0), math.log(1000 / 16))
    assert decoded[0].tolist() == pytest.approx(target[0].tolist())


def test_learning_rate_warms_up_then_follows_the_schedule():
    steps = TrainConfig(solver=SolverConfig(base_lr=0.1, warmup_iters=10, warmup_factor=0.0,
                                            schedule="steps", steps=(20, 30), gamma=0.1,
                                            max_iter=40))
    assert learning_rate(steps, 0) == pytest.approx(0.0)
    assert learning_rate(steps, 5) == pytest.approx(0.05)
    assert learning_rate(steps, 10) == pytest.approx(0.1)
    assert learning_rate(steps, 25) == pytest.approx(0.01)
    assert learning_rate(steps, 35) == pytest.approx(0.001)
    cosine = TrainConfig(solver=SolverConfig(base_lr=0.1, warmup_iters=0, schedule="cosine",
                                             max_iter=100))
    assert learning_rate(cosine, 50) == pytest.approx(0.05)
    assert learning_rate(cosine, 100) == pytest.approx(0.0)
