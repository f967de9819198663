"""Training from scratch for real: the loss falls, the evaluator's AP rises, and the weights
load where the node and `densepose infer` load them (float32 and float16 files)."""

from __future__ import annotations

import copy
import json

import cv2
import numpy as np
import pytest
import torch
from train_fixtures import tiny_synth_set, tiny_train_config

from densepose_ros.cli import main as cli_main
from densepose_ros.data.coco import load_densepose_coco
from densepose_ros.data.dataset import read_image
from densepose_ros.evaluation import EvaluationConfig, ImagePredictions
from densepose_ros.evaluation.evaluator import DensePoseEvaluator
from densepose_ros.evaluation.surface import load_surface_metric
from densepose_ros.inference.checkpoint import load_model
from densepose_ros.inference.predictor import DensePosePredictor
from densepose_ros.modeling.config import get_config
from densepose_ros.modeling.model import build_model
from densepose_ros.training.trainer import (
    FINAL_WEIGHTS,
    LOSS_CURVE,
    METRICS_FILE,
    export_deployable_weights,
    read_metrics,
    train,
)


def _evaluate(model, model_cfg, data_dir) -> dict:
    """Box AP and GPS AP (Anny geodesics) of `model` on the set, at the images' own size."""
    annotations = load_densepose_coco(data_dir / "annotations.json")
    predictor = DensePosePredictor(copy.deepcopy(model).eval(), model_cfg, resize=False)
    evaluator = DensePoseEvaluator(load_surface_metric("anny"),
                                   EvaluationConfig(point_frame_size=256))
    for record in annotations.images:
        result = predictor(read_image(data_dir / "images" / record.file_name))
        evaluator.add_image(record, ImagePredictions.from_result(record.id, result))
    report = evaluator.report().to_dict()
    return {"box_AP": report["box_AP"], "AP_GPS": report["AP_GPS"],
            "AP_GPSm": report["AP_GPSm"]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A from-scratch run on the tiny set, and the untrained model it started from."""
    data = tiny_synth_set(tmp_path_factory)
    cfg = tiny_train_config(data, tmp_path_factory.mktemp("scratch_run"))
    torch.manual_seed(cfg.seed)  # the trainer seeds the same way before building the model
    untrained = build_model(get_config(cfg.model))
    result = train(cfg, progress=False)
    return cfg, data, untrained, result


def test_loss_falls_by_more_than_half(trained):
    cfg, _, _, result = trained
    rows = read_metrics(result.output_dir / METRICS_FILE)
    assert [r["iteration"] for r in rows] == list(range(1, cfg.solver.max_iter + 1))
    first = np.mean([r["loss"] for r in rows[:10]])
    last = np.mean([r["loss"] for r in rows[-10:]])
    assert last < 0.5 * first, (first, last)
    # every loss term took part (a term stuck at exactly 0 would mean unused heads)
    for name in ("loss_rpn_cls", "loss_rpn_loc", "loss_cls", "loss_box_reg",
                 "loss_densepose_U", "loss_densepose_V", "loss_densepose_I",
                 "loss_densepose_S"):
        assert any(r[name] > 0 for r in rows), name
    curve = cv2.imread(str(result.output_dir / LOSS_CURVE))
    assert curve is not None and curve.std() > 0


def test_ap_rises_well_above_the_untrained_model(trained):
    cfg, data, untrained, result = trained
    model, model_cfg = load_model(result.final_weights)
    before = _evaluate(untrained, get_config(cfg.model), data)
    after = _evaluate(model, model_cfg, data)
    # 150 steps place boxes well; charts need longer (GPS AP about 8, GPSm AP about 25 here)
    assert after["box_AP"] >= before["box_AP"] + 30, (before, after)
    assert after["AP_GPSm"] >= before["AP_GPSm"] + 10, (before, after)
    assert after["AP_GPS"] >= before["AP_GPS"] + 3, (before, after)


def test_weights_load_in_the_node_backend_and_infer(trained, tmp_path):
    from densepose_ros.runtime import InferenceSettings, create_backend
    from densepose_ros.runtime.base import NO_RESIZE

    _, data, _, result = trained
    half = export_deployable_weights(result.final_weights, tmp_path / "half.pth", half=True)
    full_state = torch.load(result.final_weights, weights_only=True)["state_dict"]
    half_state = torch.load(half, weights_only=True)["state_dict"]
    assert all(v.dtype == torch.float16 for k, v in half_state.items()
               if torch.is_floating_point(full_state[k]))
    assert half.stat().st_size < 0.6 * result.final_weights.stat().st_size

    image = read_image(sorted((data / "images").iterdir())[0])
    outputs = {}
    for name, path in (("fp32", result.final_weights), ("fp16", half)):
        backend, _ = create_backend("torch", path, "cpu")
        try:
            # the tiny model was trained at the images' own size
            backend.configure(InferenceSettings(resize_shortest_edge=NO_RESIZE))
            outputs[name] = backend.infer(image)
        finally:
            backend.close()
    fp32, fp16 = outputs["fp32"], outputs["fp16"]
    assert len(fp32.scores) >= 1, "the trained model finds the person of a training image"
    assert len(fp16.scores) == len(fp32.scores)
    np.testing.assert_allclose(fp16.boxes, fp32.boxes, atol=2.0)

    out = tmp_path / "infer"
    # A 150-step model scores low: infer at the model's own test threshold, not the node's.
    threshold = str(get_config("R_18_FPN_tiny").box_head.score_threshold)
    code = cli_main(["infer", str(data / "images"), "--weights", str(half), "--out", str(out),
                     "--backend", "torch", "--resize", "none", "--no-progress",
                     "--score-threshold", threshold])
    assert code == 0
    records = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    assert len(records) == len(list((data / "images").iterdir()))
    assert sum(len(r["persons"]) for r in records) >= len(records) // 2


def test_final_weights_written_once_max_iter_reached(trained):
    _, _, _, result = trained
    assert result.final_weights == result.output_dir / FINAL_WEIGHTS
    assert result.iteration == result.start_iteration + 150
