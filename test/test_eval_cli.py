"""``densepose eval`` end to end with a small untrained model on two tiny images."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from eval_fixtures import coco_file, person_annotation, tiny_surface

from densepose_ros.cli import main
from densepose_ros.data.coco import load_densepose_coco
from densepose_ros.evaluation import ImagePredictions, evaluate

POINTS = [(2, 3, 1, 0.0, 0.0), (7, 20, 1, 1.0, 0.0), (15, 30, 3, 0.5, 0.5)]


@pytest.fixture(scope="module")
def eval_inputs(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from densepose_ros.checkpoint import save_weights
    from densepose_ros.modeling import build_model, get_config

    root = tmp_path_factory.mktemp("eval_cli")
    torch.manual_seed(0)
    cfg = get_config("R_18_FPN_lite")
    weights = save_weights(root / "untrained.pth", build_model(cfg), cfg)
    rng = np.random.default_rng(0)
    for image_id in (1, 2):
        cv2.imwrite(str(root / f"{image_id:06d}.jpg"),
                    rng.integers(0, 255, (96, 128, 3), dtype=np.uint8))
    data = coco_file([(1, 96, 128), (2, 96, 128)], [
        person_annotation(1, 1, [10, 10, 40, 60], POINTS),
        person_annotation(2, 2, [50, 20, 30, 50], POINTS)])
    (root / "dp.json").write_text(json.dumps(data))
    tiny_surface().save(root / "surface.npz")
    return root, weights


def test_eval_writes_report_consistent_with_the_evaluator(eval_inputs, capsys):
    root, weights = eval_inputs
    out = root / "report.json"
    code = main(["eval", "--weights", str(weights), "--data", str(root / "dp.json"),
                 "--geodesics", str(root / "surface.npz"), "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    for key in ("box_AP", "AP_GPS", "AP_GPSm", "box", "gps", "gpsm", "diagnostics"):
        assert key in report
    assert report["num_images"] == 2 and report["num_dense_persons"] == 2
    assert "GPSm" in capsys.readouterr().out
    # The same numbers as evaluating the model's predictions directly.
    from densepose_ros.predictor import DensePosePredictor

    predictor = DensePosePredictor.from_weights(weights)
    annotations = load_densepose_coco(root / "dp.json")
    predictions = [ImagePredictions.from_result(
        r.id, predictor(cv2.imread(str(root / r.file_name)))) for r in annotations.images]
    direct = evaluate(annotations, predictions, tiny_surface(), progress=False)
    assert report["num_detections"] == direct.num_detections
    assert report["AP_GPS"] == pytest.approx(direct.AP_GPS)
    assert report["box_AP"] == pytest.approx(direct.box_AP)


def test_eval_reports_bad_inputs(eval_inputs, capsys, tmp_path):
    root, weights = eval_inputs
    code = main(["eval", "--weights", str(weights), "--data", str(tmp_path / "none.json")])
    assert code == 2 and "annotation file not found" in capsys.readouterr().err
    code = main(["eval", "--weights", str(weights), "--data", str(root / "dp.json"),
                 "--geodesics", str(tmp_path / "none.npz")])
    assert code == 2 and "geodesic file not found" in capsys.readouterr().err
    code = main(["eval", "--weights", str(tmp_path / "w.pth"), "--data", str(root / "dp.json")])
    assert code == 2 and "weights not found" in capsys.readouterr().err
