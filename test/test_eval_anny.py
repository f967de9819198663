"""The evaluator on the Anny body surface (the synthetic data's geodesics and mirror map)."""

from __future__ import annotations

import numpy as np
import pytest
from eval_fixtures import coco_file, iuv_for, person_annotation, xyxy

from densepose_ros.data.coco import parse_densepose_coco
from densepose_ros.evaluation import ImagePredictions, evaluate, load_surface_metric

BOX = [20.0, 10.0, 40.0, 60.0]


@pytest.fixture(scope="module")
def anny():
    pytest.importorskip("densepose_ros.synth.geodesic")
    return load_surface_metric("anny")


def _limb_points(count=40, seed=0):
    rng = np.random.default_rng(seed)
    pixels = rng.choice(40 * 60, count, replace=False)
    parts = rng.integers(3, 25, count)  # hands, feet, legs, arms, head: all sided charts
    return [(int(p % 40), int(p // 40), int(i), float(u), float(v))
            for p, i, u, v in zip(pixels, parts, rng.random(count), rng.random(count),
                                  strict=True)]


def test_anny_perfect_and_mirrored_predictions(anny):
    from densepose_ros.data.symmetry import AnnySymmetry

    points = _limb_points()
    data = coco_file([(1, 100, 100)], [person_annotation(1, 1, BOX, points)])
    annotations = parse_densepose_coco(data)

    def run(pred_points):
        prediction = ImagePredictions(1, np.array([xyxy(BOX)]), np.array([0.9]),
                                      [iuv_for(BOX, pred_points)])
        return evaluate(annotations, [prediction], anny, progress=False)

    perfect = run(points)
    assert perfect.AP_GPS == pytest.approx(100.0)
    assert perfect.diagnostics.mean_gps == pytest.approx(1.0)
    # Left and right swapped (each point predicted at its mirror image on the body): the
    # geodesic distances are about a body width or more, so GPS stays far below 0.5.
    part, u, v = AnnySymmetry().mirror(*(np.array([p[k] for p in points]) for k in (2, 3, 4)))
    mirrored = [(c, r, int(i), float(uu), float(vv)) for (c, r, *_), i, uu, vv
                in zip(points, part, u, v, strict=True)]
    swapped = run(mirrored)
    assert swapped.diagnostics.mean_gps < 0.3
    assert swapped.AP_GPS == pytest.approx(0.0)
    assert swapped.diagnostics.point_accuracy == pytest.approx(0.0)
