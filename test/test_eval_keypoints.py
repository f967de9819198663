"""Keypoint AP through pycocotools' COCOeval, on hand-made cases."""

import numpy as np
import pytest

from densepose_ros.data.coco import InstanceAnnotation
from densepose_ros.evaluation.keypoint_ap import KeypointAccumulator

rng = np.random.default_rng(0)
TRUE = np.stack([rng.uniform(110, 190, 17), rng.uniform(60, 340, 17), np.full(17, 2.0)], 1)


def person(keypoints=TRUE) -> InstanceAnnotation:
    return InstanceAnnotation(id=1, bbox_xywh=np.array([100.0, 50.0, 100.0, 300.0]),
                              area=100.0 * 300.0, is_crowd=False, category_id=1,
                              keypoints=np.asarray(keypoints, np.float32))


def ap(predicted: list[np.ndarray], scores: list[float]) -> float:
    acc = KeypointAccumulator()
    acc.add(1, 400, 400, [person()],
            np.array([[100.0, 50.0, 200.0, 350.0]] * len(predicted)).reshape(-1, 4),
            np.array(scores), np.array(predicted).reshape(-1, 17, 3))
    return acc.result()["AP"]


def test_exact_keypoints_give_ap_100_and_far_ones_0():
    assert ap([TRUE], [0.9]) == pytest.approx(100.0)
    far = TRUE.copy()
    far[:, 0] += 80  # every keypoint 80 px off on a 100 x 300 person
    assert ap([far], [0.9]) == pytest.approx(0.0)


def test_oks_grows_with_precision_and_a_false_positive_ranked_first_costs():
    small = TRUE.copy()
    small[:, :2] += rng.normal(0, 3, (17, 2))
    large = TRUE.copy()
    large[:, :2] += rng.normal(0, 12, (17, 2))
    assert ap([small], [0.9]) > ap([large], [0.9]) > 0
    wrong = TRUE.copy()
    wrong[:, 0] += 80
    assert ap([wrong, TRUE], [0.95, 0.9]) < 100.0  # the wrong one outranks the right one
    assert ap([TRUE, wrong], [0.95, 0.9]) == pytest.approx(100.0)


def test_no_keypoint_annotations_means_no_keypoint_ap():
    acc = KeypointAccumulator()
    acc.add(1, 400, 400, [person(np.zeros((17, 3)))], np.zeros((1, 4)), np.ones(1),
            np.zeros((1, 17, 3)))
    assert acc.result() == {}
