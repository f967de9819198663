"""DensePosePredictor on the light configuration: colour order, resize and the mapping back
to source pixels, run-time thresholds, DensePose on caller boxes, input validation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from model_fixtures import light_model, light_weights, parity_image  # noqa: F401

from densepose_ros.inference.predictor import DensePosePredictor
from densepose_ros.inference.preprocess import preprocess_image, resized_shape


@pytest.fixture(scope="module")
def predictor(light_model):  # noqa: F811
    model, cfg = light_model
    import copy

    # The predictor folds norms in place; keep the session model untouched for other tests.
    return DensePosePredictor(copy.deepcopy(model), cfg)


@pytest.fixture(scope="module")
def small_image():
    """The parity street scene at 320 x 240 (the light model upsamples it to 640 x 480)."""
    return cv2.resize(parity_image(), (320, 240), interpolation=cv2.INTER_AREA)


def test_resized_shape_follows_shortest_edge_with_maximum():
    assert resized_shape(480, 640, 800, 1333) == (800, 1067)
    assert resized_shape(1000, 4000, 800, 1333) == (333, 1333)  # longest edge capped
    assert resized_shape(800, 1067, 800, 1333) == (800, 1067)


def test_preprocess_normalises_and_pads(light_model):  # noqa: F811
    _, cfg = light_model
    image = np.zeros((50, 70, 3), np.uint8)
    image[..., 0] = 10  # blue in BGR
    prepared = preprocess_image(image, cfg.input, color_order="BGR", resize=False)
    assert prepared.input_size == (50, 70) and prepared.tensor.shape == (1, 3, 64, 96)
    expected_blue = (10 - cfg.input.pixel_mean[0]) / cfg.input.pixel_std[0]
    assert prepared.tensor[0, 0, :50, :70].eq(expected_blue).all()
    assert prepared.tensor[0, :, 50:, :].eq(0).all() and prepared.tensor[0, :, :, 70:].eq(0).all()
    rgb = preprocess_image(image[..., ::-1].copy(), cfg.input, color_order="RGB", resize=False)
    assert torch.equal(rgb.tensor, prepared.tensor)


def test_result_is_in_source_pixels(predictor, small_image):
    result = predictor(small_image)
    assert result.image_size == (240, 320)
    assert len(result) > 0  # untrained heads still score many boxes above 0.05
    assert result.boxes.dtype == torch.float32 and result.boxes.shape == (len(result), 4)
    assert (result.boxes[:, 0::2] >= 0).all() and (result.boxes[:, 0::2] <= 320).all()
    assert (result.boxes[:, 1::2] >= 0).all() and (result.boxes[:, 1::2] <= 240).all()
    assert (result.scores[:-1] >= result.scores[1:]).all()
    size = predictor.cfg.densepose.heatmap_size
    assert result.charts.fine_segm.shape == (len(result), 25, size, size)
    assert result.timings is not None and result.timings.backbone > 0


def test_resize_maps_boxes_back_by_the_resize_factor(predictor, small_image):
    """The same network input, reached by the predictor's own resize or given directly."""
    resized = cv2.resize(small_image, (640, 480), interpolation=cv2.INTER_LINEAR)
    via_resize = predictor(small_image)
    predictor.resize = False
    try:
        direct = predictor(resized)
    finally:
        predictor.resize = True
    assert direct.image_size == (480, 640)
    assert len(via_resize) == len(direct)
    np.testing.assert_allclose(via_resize.boxes.numpy() * 2.0, direct.boxes.numpy(), atol=1e-3)
    torch.testing.assert_close(via_resize.charts.u, direct.charts.u)


def test_colour_order_is_explicit(predictor, small_image):
    bgr = predictor(small_image, color_order="BGR")
    rgb = predictor(np.ascontiguousarray(small_image[..., ::-1]), color_order="RGB")
    torch.testing.assert_close(bgr.boxes, rgb.boxes)
    swapped = predictor(np.ascontiguousarray(small_image[..., ::-1]), color_order="BGR")
    assert len(swapped) != len(bgr) or not torch.allclose(swapped.boxes, bgr.boxes)


def test_thresholds_change_at_run_time(predictor, small_image):
    baseline = len(predictor(small_image))
    assert baseline > 3
    predictor.max_detections = 3
    try:
        assert len(predictor(small_image)) == 3
    finally:
        predictor.max_detections = predictor.cfg.box_head.max_detections
    predictor.score_threshold = 1.0  # softmax scores never exceed 1
    try:
        empty = predictor(small_image)
    finally:
        predictor.score_threshold = predictor.cfg.box_head.score_threshold
    assert len(empty) == 0 and empty.boxes.shape == (0, 4)
    assert len(empty.charts) == 0


def test_densepose_on_given_boxes_in_source_pixels(predictor, small_image):
    """Boxes given in source pixels are scaled like the image: charts equal those of the
    scaled boxes on the pre-resized image."""
    boxes = np.array([[20.0, 30.0, 120.0, 230.0], [150.5, 10.0, 300.0, 200.0]], np.float32)
    result = predictor.predict_on_boxes(small_image, boxes)
    np.testing.assert_array_equal(result.boxes.numpy(), boxes)
    assert result.scores.tolist() == [1.0, 1.0]
    predictor.resize = False
    try:
        direct = predictor.predict_on_boxes(cv2.resize(small_image, (640, 480)), boxes * 2)
    finally:
        predictor.resize = True
    torch.testing.assert_close(result.charts.fine_segm, direct.charts.fine_segm)
    no_boxes = predictor.predict_on_boxes(small_image, np.zeros((0, 4)))
    assert len(no_boxes) == 0


def test_bad_inputs_get_clear_errors(predictor, small_image):
    with pytest.raises(ValueError, match="uint8"):
        predictor(small_image.astype(np.float32))
    with pytest.raises(ValueError, match="H x W x 3"):
        predictor(small_image[:, :, 0])
    with pytest.raises(TypeError, match="numpy array"):
        predictor(torch.zeros(10, 10, 3))
    with pytest.raises(ValueError, match="color_order"):
        predictor(small_image, color_order="YUV")
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        predictor.predict_on_boxes(small_image, [1.0, 2.0, 3.0])


def test_from_weights_gives_the_same_results(light_weights, predictor, small_image):  # noqa: F811
    loaded = DensePosePredictor.from_weights(light_weights, score_threshold=0.3)
    assert loaded.score_threshold == 0.3
    expected = predictor(small_image)
    got = loaded(small_image)
    keep = expected.scores > 0.3
    torch.testing.assert_close(got.boxes, expected.boxes[keep], atol=1e-3, rtol=1e-4)


def test_bf16_precision_keeps_float32_outputs(light_model, small_image):  # noqa: F811
    import copy

    model, cfg = light_model
    with pytest.raises(ValueError, match="precision"):
        DensePosePredictor(copy.deepcopy(model), cfg, precision="fp8")
    predictor = DensePosePredictor(copy.deepcopy(model), cfg, precision="bf16")
    result = predictor(small_image)
    assert result.boxes.dtype == torch.float32 and result.scores.dtype == torch.float32
    assert result.charts.u.dtype == torch.float32
    assert (result.boxes[:, 2] <= 320).all() and (result.boxes[:, 3] <= 240).all()
    assert len(result) > 0


def test_batched_forward_equals_single_images(light_model, small_image):  # noqa: F811
    """Two images in one batch give each image's own results (same size, so the padding is
    the same: with detectron2's conventions padding to a larger batch changes border values)."""
    model, cfg = light_model
    first = preprocess_image(small_image, cfg.input, resize=False)
    second = preprocess_image(np.ascontiguousarray(small_image[::-1]), cfg.input, resize=False)
    batch = torch.cat([first.tensor, second.tensor])
    sizes = [first.input_size, second.input_size]
    with torch.inference_mode():
        batched = model(batch, sizes)
        alone = [model(first.tensor, sizes[:1])[0], model(second.tensor, sizes[1:])[0]]
    assert len(batched[0][0]) != len(batched[1][0]) or not torch.equal(batched[0][0],
                                                                        batched[1][0])
    for (boxes, scores, charts), (boxes1, scores1, charts1) in zip(batched, alone, strict=True):
        torch.testing.assert_close(boxes, boxes1, atol=1e-3, rtol=1e-4)
        torch.testing.assert_close(scores, scores1, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(charts.fine_segm, charts1.fine_segm, atol=1e-3, rtol=1e-3)


def test_training_batches_and_inference_inputs_are_the_same_tensor():
    # one normalisation for both: a model sees in training what it sees in the node
    from densepose_ros.data.batching import collate_samples
    from densepose_ros.data.transforms import Sample
    from densepose_ros.modeling.config import InputConfig

    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)
    for color_order in ("BGR", "RGB"):
        cfg = InputConfig(color_order=color_order)
        inference = preprocess_image(image, cfg, color_order="BGR", resize=False).tensor
        sample = Sample(image=image, instances=[], image_id=1)
        training = collate_samples([sample], cfg).images
        assert inference.shape == training.shape == (1, 3, 96, 96)
        torch.testing.assert_close(inference, training, rtol=0, atol=0)


@pytest.mark.parametrize("uv_confidence, segm_confidence", [("", False), ("indep_aniso", True)])
def test_fused_chart_outputs_equal_the_separate_layers(uv_confidence, segm_confidence):
    """fold_norms() runs the chart outputs' transposed convolutions as one layer: every
    output (confidences included, as in the WC2M models) keeps its values."""
    import dataclasses

    from densepose_ros.modeling.config import DensePoseHeadConfig
    from densepose_ros.modeling.densepose_head import ChartPredictor

    cfg = dataclasses.replace(DensePoseHeadConfig(), uv_confidence=uv_confidence,
                              segm_confidence=segm_confidence)
    torch.manual_seed(0)
    predictor = ChartPredictor(cfg, in_channels=64).eval()
    x = torch.randn(5, 64, 14, 14)
    with torch.inference_mode():
        separate = predictor(x)
        predictor.fuse()
        fused = predictor(x)
    assert predictor.fused is not None
    names = [f.name for f in dataclasses.fields(separate)
             if isinstance(getattr(separate, f.name), torch.Tensor)]
    assert {"coarse_segm", "fine_segm", "u", "v", *cfg.confidence_outputs} <= set(names)
    for name in names:
        torch.testing.assert_close(getattr(fused, name), getattr(separate, name),
                                   rtol=1e-6, atol=1e-6, msg=name)
