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
    from densepose_ros.inference.checkpoint import save_weights
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
    from densepose_ros.inference.predictor import DensePosePredictor

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
    assert code == 2 and "weights file not found" in capsys.readouterr().err


def test_saved_predictions_evaluate_to_the_same_report(eval_inputs, tmp_path):
    root, weights = eval_inputs
    common = ["--data", str(root / "dp.json"), "--geodesics", str(root / "surface.npz")]
    saved = tmp_path / "predictions.npz"
    assert main(["eval", "--weights", str(weights), *common, "--out", str(tmp_path / "a.json"),
                 "--save-predictions", str(saved)]) == 0
    assert main(["eval", "--predictions", str(saved), *common,
                 "--out", str(tmp_path / "b.json")]) == 0
    direct = json.loads((tmp_path / "a.json").read_text())
    again = json.loads((tmp_path / "b.json").read_text())
    assert direct["num_detections"] == again["num_detections"] > 0
    for key in ("box_AP", "AP_GPS", "AP_GPSm"):
        assert again[key] == pytest.approx(direct[key], abs=0.1), key
    for key in ("pairs", "point_accuracy", "u_error", "v_error", "mean_gps", "mean_mask_iou"):
        value = direct["diagnostics"].get(key)
        if value is not None:
            assert again["diagnostics"][key] == pytest.approx(value, abs=1e-3), key
    assert again["settings"]["predictions"] == str(saved)


def test_prediction_file_round_trip_keeps_every_detection(tmp_path):
    from densepose_ros.evaluation.prediction_file import load_predictions, save_predictions
    from densepose_ros.inference.postprocess import PersonIUV

    rng = np.random.default_rng(1)

    def person(x0, y0, w, h, score):
        return PersonIUV(labels=rng.integers(0, 25, (h, w), dtype=np.uint8),
                         u=rng.random((h, w), dtype=np.float32),
                         v=rng.random((h, w), dtype=np.float32),
                         box=(x0, y0, x0 + w, y0 + h), score=score)

    original = [
        ImagePredictions(7, [[1.5, 2.0, 11.2, 22.0], [30, 5, 40, 9]], [0.9, 0.4],
                         [person(1, 2, 11, 20, 0.9), person(30, 5, 10, 4, 0.4)]),
        ImagePredictions(8, np.zeros((0, 4)), [], []),  # an image without detections
        ImagePredictions(9, [[-3, -2, 4, 5]], [0.7], [person(-3, -2, 7, 7, 0.7)]),
    ]
    path = save_predictions(tmp_path / "p.npz", original, metadata={"weights": "w.pth"})
    loaded, metadata = load_predictions(path)
    assert metadata == {"weights": "w.pth"}
    assert [p.image_id for p in loaded] == [7, 8, 9]
    for before, after in zip(original, loaded, strict=True):
        np.testing.assert_allclose(after.boxes, before.boxes, atol=1e-5)
        np.testing.assert_allclose(after.scores, before.scores, atol=1e-6)
        for a, b in zip(before.persons, after.persons, strict=True):
            assert a.box == b.box
            np.testing.assert_array_equal(a.labels, b.labels)
            np.testing.assert_allclose(b.u, a.u, atol=5e-4)
            np.testing.assert_allclose(b.v, a.v, atol=5e-4)


def test_bad_prediction_files_are_clear_errors(eval_inputs, tmp_path, capsys):
    root, _ = eval_inputs
    common = ["--data", str(root / "dp.json")]
    assert main(["eval", "--predictions", str(tmp_path / "none.npz"), *common]) == 2
    assert "predictions file not found" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip file")
    assert main(["eval", "--predictions", str(corrupt), *common]) == 2
    assert "cannot read predictions file" in capsys.readouterr().err
    other = tmp_path / "other.npz"
    np.savez(other, labels=np.zeros(3, np.uint8))
    assert main(["eval", "--predictions", str(other), *common]) == 2
    assert "not a densepose_ros predictions file" in capsys.readouterr().err
    # predictions of other images than the data's
    from densepose_ros.evaluation.prediction_file import save_predictions

    elsewhere = save_predictions(tmp_path / "elsewhere.npz",
                                 [ImagePredictions(99, np.zeros((0, 4)), [], [])])
    assert main(["eval", "--predictions", str(elsewhere), *common]) == 2
    assert "no predictions for 2 of the 2 images" in capsys.readouterr().err
    # a truncated file
    good = save_predictions(tmp_path / "good.npz",
                            [ImagePredictions(1, np.zeros((0, 4)), [], []),
                             ImagePredictions(2, np.zeros((0, 4)), [], [])])
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:-40])
    assert main(["eval", "--predictions", str(truncated), *common]) == 2
    assert "cannot read predictions file" in capsys.readouterr().err


def test_eval_runs_an_onnx_export_on_onnxruntime(eval_inputs, tmp_path):
    pytest.importorskip("onnxruntime")
    from densepose_ros.export.onnx_export import export_onnx

    root, weights = eval_inputs
    folder = tmp_path / "export"
    export_onnx(weights, folder, progress=lambda _: None)
    common = ["--data", str(root / "dp.json"), "--geodesics", str(root / "surface.npz")]
    assert main(["eval", "--weights", str(weights), *common,
                 "--out", str(tmp_path / "torch.json")]) == 0
    assert main(["eval", "--weights", str(folder), "--backend", "onnxruntime", *common,
                 "--out", str(tmp_path / "onnx.json")]) == 0
    eager = json.loads((tmp_path / "torch.json").read_text())
    exported = json.loads((tmp_path / "onnx.json").read_text())
    assert exported["settings"]["backend"] == "onnxruntime"
    assert exported["num_detections"] == eager["num_detections"]
    for key in ("box_AP", "AP_GPS", "AP_GPSm"):
        assert exported[key] == pytest.approx(eager[key], abs=1.0), key
