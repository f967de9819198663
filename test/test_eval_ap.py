"""AP over GPS/GPSm and box AP: perfect, garbage and hand-computed in-between cases."""

from __future__ import annotations

import numpy as np
import pytest
from eval_fixtures import coco_file, iuv_for, person_annotation, tiny_surface, xyxy

from densepose_ros.data.coco import parse_densepose_coco
from densepose_ros.evaluation import (
    EvaluationConfig,
    ImagePredictions,
    evaluate,
    format_report,
)

POINTS = [(2, 3, 1, 0.0, 0.0), (7, 20, 1, 1.0, 0.0), (15, 30, 3, 0.5, 0.5), (20, 5, 1, 0.0, 1.0)]
HALF_RIGHT = [(2, 3, 1, 0.0, 0.0), (7, 20, 1, 1.0, 0.0), (15, 30, 0, 0.0, 0.0),
              (20, 5, 0, 0.0, 0.0)]
BOX_A = [10.0, 20.0, 30.0, 40.0]
BOX_B = [100.0, 50.0, 40.0, 60.0]


def _evaluate(data, predictions, **config):
    annotations = parse_densepose_coco(data)
    return evaluate(annotations, predictions, tiny_surface(), EvaluationConfig(**config),
                    progress=False)


def _prediction(image_id, dets):
    """dets: (bbox xywh, score, PersonIUV)."""
    return ImagePredictions(image_id, np.array([xyxy(b) for b, _, _ in dets]).reshape(-1, 4),
                            np.array([s for _, s, _ in dets]), [p for _, _, p in dets])


def test_ground_truth_as_prediction_scores_100():
    data = coco_file([(1, 200, 200), (2, 200, 200)], [
        person_annotation(1, 1, BOX_A, POINTS), person_annotation(2, 1, BOX_B, POINTS),
        person_annotation(3, 2, BOX_A, POINTS),
        person_annotation(4, 2, BOX_B, None),  # a person without DensePose points
    ])
    predictions = [
        _prediction(1, [(BOX_A, 0.9, iuv_for(BOX_A, POINTS)),
                        (BOX_B, 0.8, iuv_for(BOX_B, POINTS))]),
        _prediction(2, [(BOX_A, 0.7, iuv_for(BOX_A, POINTS)),
                        (BOX_B, 0.95, iuv_for(BOX_B, []))]),
    ]
    report = _evaluate(data, predictions)
    assert report.box_AP == pytest.approx(100.0)
    assert report.AP_GPS == pytest.approx(100.0)
    assert report.AP_GPSm == pytest.approx(100.0)
    assert report.gps.AP_ex == pytest.approx(100.0)
    diag = report.diagnostics
    assert diag.pairs == 3 and diag.points == 12
    assert diag.point_accuracy == pytest.approx(100.0)
    assert diag.u_error == pytest.approx(0.0) and diag.v_error == pytest.approx(0.0)
    assert diag.mean_mask_iou == pytest.approx(100.0)
    assert diag.per_part_accuracy["right hand"] == pytest.approx(100.0)
    assert diag.per_part_accuracy["head a"] is None
    assert "GPSm" in format_report(report)


def test_background_predictions_score_0():
    data = coco_file([(1, 200, 200)], [person_annotation(1, 1, BOX_A, POINTS),
                                       person_annotation(2, 1, BOX_B, POINTS)])
    predictions = [_prediction(1, [(BOX_A, 0.9, iuv_for(BOX_A, [], background=True)),
                                   (BOX_B, 0.8, iuv_for(BOX_B, [], background=True))])]
    report = _evaluate(data, predictions)
    assert report.box_AP == pytest.approx(100.0)  # the boxes are right
    assert report.AP_GPS == pytest.approx(0.0)
    assert report.AP_GPSm == pytest.approx(0.0)
    assert report.diagnostics.point_accuracy == pytest.approx(0.0)
    assert report.diagnostics.mean_mask_iou == pytest.approx(0.0)


def test_in_between_matches_hand_computed_ap():
    """Image 1: perfect (score .9); image 2: GPS exactly 0.5 (score .8).

    GPS: at t <= 0.5 both match (precision 1 at every recall); above, ranks are TP, FP with
    one of two persons found, so precision 1 up to recall 0.5: 51 of 101 recall points.
    GPSm = sqrt(GPS x IoU) = sqrt(0.5) = 0.707 for the second: matches up to t = 0.70.
    """
    data = coco_file([(1, 200, 200), (2, 200, 200)], [
        person_annotation(1, 1, BOX_A, POINTS), person_annotation(2, 2, BOX_A, POINTS)])
    predictions = [_prediction(1, [(BOX_A, 0.9, iuv_for(BOX_A, POINTS))]),
                   _prediction(2, [(BOX_A, 0.8, iuv_for(BOX_A, HALF_RIGHT))])]
    report = _evaluate(data, predictions)
    half = 51 / 101
    assert report.AP_GPS == pytest.approx(100 * (1 + 9 * half) / 10)
    assert report.gps.AP50 == pytest.approx(100.0)
    assert report.gps.AP75 == pytest.approx(100 * half)
    assert report.gps.AP_by_threshold["0.20"] == pytest.approx(100.0)
    assert report.gps.AP_ex == pytest.approx(100 * (7 + 9 * half) / 16)
    assert report.AP_GPSm == pytest.approx(100 * (5 + 5 * half) / 10)
    assert report.diagnostics.mean_gps == pytest.approx(0.75)
    assert report.diagnostics.point_accuracy == pytest.approx(100 * 6 / 8)


def test_wrong_chart_counts_only_at_low_thresholds():
    """Every point predicted on the right hand (sample id3) while annotated on the torso
    (ids 0, 1, 2, at 0.5, 0.45, 0.6 m): GPS = mean(exp(-d^2 / (2 * 0.351^2))) over the three
    torso points plus 1 for the hand point = (0.3625 + 0.4396 + 0.2320 + 1) / 4 = 0.5085."""
    data = coco_file([(1, 200, 200)], [person_annotation(1, 1, BOX_A, POINTS)])
    hand = [(c, r, 3, 0.5, 0.5) for c, r, *_ in POINTS]
    report = _evaluate(data, [_prediction(1, [(BOX_A, 0.9, iuv_for(BOX_A, hand))])])
    # Matched at 0.20 .. 0.50 (7 thresholds of 16), not above.
    assert report.gps.AP_by_threshold["0.50"] == pytest.approx(100.0)
    assert report.gps.AP_by_threshold["0.55"] == pytest.approx(0.0)
    assert report.AP_GPS == pytest.approx(10.0)
    assert report.gps.AP_ex == pytest.approx(100 * 7 / 16)
    assert report.diagnostics.mean_gps == pytest.approx(0.5085, abs=1e-4)


def test_detection_of_unannotated_person_is_ignored_but_background_detection_is_not():
    data = coco_file([(1, 200, 200)], [person_annotation(1, 1, BOX_A, POINTS),
                                       person_annotation(2, 1, BOX_B, None)])
    perfect = (BOX_A, 0.5, iuv_for(BOX_A, POINTS))
    on_unannotated = (BOX_B, 0.9, iuv_for(BOX_B, []))
    report = _evaluate(data, [_prediction(1, [perfect, on_unannotated])])
    assert report.AP_GPS == pytest.approx(100.0)
    # A confident detection where nobody is: rank 1 FP, rank 2 TP -> precision 0.5 at all
    # recall points.
    nowhere = ([150.0, 150.0, 30.0, 30.0], 0.9, iuv_for([150.0, 150.0, 30.0, 30.0], []))
    report = _evaluate(data, [_prediction(1, [perfect, nowhere])])
    assert report.AP_GPS == pytest.approx(50.0)


def test_images_without_predictions_count_as_misses():
    data = coco_file([(1, 200, 200), (2, 200, 200)], [
        person_annotation(1, 1, BOX_A, POINTS), person_annotation(2, 2, BOX_A, POINTS)])
    report = _evaluate(data, [_prediction(1, [(BOX_A, 0.9, iuv_for(BOX_A, POINTS))])])
    # One of two persons found, no false positive: precision 1 up to recall 0.5.
    assert report.AP_GPS == pytest.approx(100 * 51 / 101)
    assert report.gps.AR == pytest.approx(50.0)


def test_prediction_for_unknown_image_is_an_error():
    data = coco_file([(1, 200, 200)], [person_annotation(1, 1, BOX_A, POINTS)])
    with pytest.raises(ValueError, match="image id 7"):
        _evaluate(data, [_prediction(7, [])])


def test_box_ap_agrees_with_pycocotools():
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(3)
    images, annotations, results, predictions = [], [], [], []
    ann_id = 1
    for image_id in range(1, 9):
        images.append((image_id, 300, 400))
        dets = []
        for _ in range(rng.integers(1, 5)):
            x, y = rng.uniform(0, 300), rng.uniform(0, 200)
            w, h = rng.uniform(8, 160), rng.uniform(8, 160)
            crowd = int(rng.random() < 0.1)
            annotations.append(person_annotation(ann_id, image_id, [x, y, w, h], None,
                                                 iscrowd=crowd))
            ann_id += 1
            if rng.random() < 0.8:  # a jittered detection of this person
                jitter = rng.normal(0, 0.1, 4) * [w, h, w, h]
                dets.append(([x + jitter[0], y + jitter[1], w + jitter[2], h + jitter[3]],
                             float(rng.random())))
        for _ in range(rng.integers(0, 3)):  # false positives
            dets.append(([rng.uniform(0, 300), rng.uniform(0, 200), rng.uniform(8, 80),
                          rng.uniform(8, 80)], float(rng.random())))
        for bbox, score in dets:
            results.append({"image_id": image_id, "category_id": 1, "bbox": bbox,
                            "score": score})
        predictions.append(_prediction(image_id, [
            (b, s, iuv_for(b, [])) for b, s in dets]))
    data = coco_file(images, annotations)
    coco_gt = COCO()
    coco_gt.dataset = data
    coco_gt.createIndex()
    coco_eval = COCOeval(coco_gt, coco_gt.loadRes(results), "bbox")
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    stats = np.where(coco_eval.stats < 0, -1.0, 100 * coco_eval.stats)
    report = _evaluate(data, predictions)
    box = report.box
    ours = [box.AP, box.AP50, box.AP75, box.AP_by_area["small"], box.AP_by_area["medium"],
            box.AP_by_area["large"], box.AR, box.AR_by_area["small"],
            box.AR_by_area["medium"], box.AR_by_area["large"]]
    reference = [stats[0], stats[1], stats[2], stats[3], stats[4], stats[5], stats[8],
                 stats[9], stats[10], stats[11]]
    np.testing.assert_allclose(ours, reference, atol=1e-6)
    assert 0 < box.AP < 100 and box.AP_by_area["large"] > 0  # a non-trivial case


def test_ignore_regions_drop_persons_and_detections_inside_them():
    inside = [120.0, 50.0, 40.0, 60.0]  # within the ignore region x 100..200
    data = coco_file([(1, 200, 200)], [person_annotation(1, 1, BOX_A, POINTS),
                                       person_annotation(2, 1, inside, POINTS)])
    detections = [(BOX_A, 0.5, iuv_for(BOX_A, POINTS)),
                  (inside, 0.9, iuv_for(inside, [], fill_part=5))]  # all foreground, wrong
    without = _evaluate(data, [_prediction(1, detections)])
    assert without.AP_GPS < 50.0  # a confident false positive and a missed person
    data["images"][0]["ignore_regions_x"] = [[100, 200, 200, 100]]
    data["images"][0]["ignore_regions_y"] = [[0, 0, 200, 200]]
    report = _evaluate(data, [_prediction(1, detections)])
    assert report.AP_GPS == pytest.approx(100.0)
    assert report.num_dense_persons == 1
    assert report.box_AP == without.box_AP  # box AP follows the COCO protocol (no regions)


def test_detections_on_images_without_persons_are_false_positives():
    data = coco_file([(1, 200, 200), (2, 200, 200)], [person_annotation(1, 1, BOX_A, POINTS)])
    report = _evaluate(data, [_prediction(1, [(BOX_A, 0.9, iuv_for(BOX_A, POINTS))]),
                              _prediction(2, [(BOX_A, 0.95, iuv_for(BOX_A, POINTS))])])
    # Rank 1 a false positive, rank 2 the only person: precision 0.5 at every recall.
    assert report.box_AP == pytest.approx(50.0)
    assert report.AP_GPS == pytest.approx(50.0)


def test_without_a_surface_metric_box_and_point_metrics_remain():
    data = coco_file([(1, 200, 200)], [person_annotation(1, 1, BOX_A, POINTS)])
    annotations = parse_densepose_coco(data)
    report = evaluate(annotations, [_prediction(1, [(BOX_A, 0.9, iuv_for(BOX_A, HALF_RIGHT))])],
                      None, progress=False)
    assert report.AP_GPS is None and report.gps is None
    assert report.box_AP == pytest.approx(100.0)
    assert report.diagnostics.point_accuracy == pytest.approx(50.0)
    assert report.diagnostics.mean_gps is None
    assert "no surface metric" in format_report(report)
