"""The CPU-side parts of the TensorRT engine builder: optimisation profiles, calibration data
(images from a folder or a rosbag2, fitted to the profile) and engine-record matching. The
TensorRT calls themselves are in test_gpu_tensorrt.py."""

from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest
from model_fixtures import light_model, parity_image  # noqa: F401

from densepose_ros.export.onnx_export import ExportOptions, export_model
from densepose_ros.export.tensorrt_engine import (
    EngineBuildOptions,
    EngineError,
    EngineInfo,
    calibration_images,
    fit_calibration,
    mismatch,
    profiles_for,
)
from densepose_ros.inference.preprocess import resized_shape
from densepose_ros.io import bag_io
from densepose_ros.runtime.calibration import collect_calibration_inputs


@pytest.fixture(scope="module")
def bundle(light_model, tmp_path_factory):  # noqa: F811
    model, cfg = light_model
    return export_model(copy.deepcopy(model), cfg, tmp_path_factory.mktemp("onnx"),
                        ExportOptions(input_size=(480, 640)), progress=lambda _: None)


def test_default_backbone_profile_covers_every_resized_frame(bundle):
    (low, opt, high), = profiles_for(bundle, "backbone", EngineBuildOptions()).values()
    assert opt == [1, 3, 480, 640]
    cfg = bundle.config.input
    for height, width in ((480, 640), (640, 480), (720, 1280), (1080, 1920), (240, 320)):
        h, w = resized_shape(height, width, cfg.min_size, cfg.max_size)
        padded = (-(-h // 32) * 32, -(-w // 32) * 32)
        assert low[2] <= padded[0] <= high[2] and low[3] <= padded[1] <= high[3], padded


def test_given_sizes_bound_the_profile_and_heads_follow_the_config(bundle):
    options = EngineBuildOptions(input_sizes=[(384, 512), (480, 640)], max_persons=30)
    (low, opt, high), = profiles_for(bundle, "backbone", options).values()
    assert (low, opt, high) == ([1, 3, 384, 512], [1, 3, 480, 640], [1, 3, 480, 640])
    (_, _, box_high), = profiles_for(bundle, "box_head", options).values()
    assert box_high == [bundle.config.rpn.post_nms_topk, 128, 7, 7]
    (_, _, dp_high), = profiles_for(bundle, "densepose_head", options).values()
    assert dp_high == [30, 128, 14, 14]


def test_calibration_reads_a_folder_and_a_bag(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    scene = cv2.resize(parity_image(), (320, 240))
    for index in range(3):
        cv2.imwrite(str(folder / f"{index}.png"), np.roll(scene, 40 * index, axis=1))
    assert len(list(calibration_images(folder, 2))) == 2
    bag = tmp_path / "bag"
    with bag_io.BagWriter(bag) as writer:
        for index in range(3):
            writer.write("/camera/image_raw", "sensor_msgs/msg/Image", index,
                         bag_io.image_to_cdr(scene, index, "cam"))
    images = list(calibration_images(bag, 10))
    assert len(images) == 3 and images[0].shape == (240, 320, 3)
    assert (images[0] == scene).all()
    (tmp_path / "empty").mkdir()
    with pytest.raises(EngineError, match="no images"):
        list(calibration_images(tmp_path / "empty", 1))
    with pytest.raises(EngineError, match="not found"):
        list(calibration_images(tmp_path / "missing", 1))


def test_calibration_inputs_fit_the_profile(bundle, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    cv2.imwrite(str(folder / "street.png"), cv2.resize(parity_image(), (640, 480)))
    recorded = collect_calibration_inputs(bundle, EngineBuildOptions(
        precision="int8", calibration_source=folder), progress=lambda _: None)
    assert recorded["backbone"][0].shape == (1, 3, 480, 640)
    assert recorded["densepose_head"][0].shape[1:] == (128, 14, 14)
    batches = fit_calibration(recorded["backbone"], [1, 3, 512, 672])
    assert batches[0].shape == (1, 3, 512, 672)
    assert (batches[0][:, :, :480, :640] == recorded["backbone"][0]).all()
    heads = fit_calibration(recorded["densepose_head"], [7, 128, 14, 14])
    assert all(b.shape == (7, 128, 14, 14) for b in heads) and heads


def test_engine_records_must_match_every_fact():
    info = EngineInfo("backbone", "R_18_FPN_lite", "a" * 64, "b" * 64, "10.1.0", "NVIDIA A",
                      "8.6", "fp16", {"images": [[1, 3, 256, 256]] * 3})
    record = dict(vars(info))
    assert mismatch(record, info) is None
    for key, other in (("tensorrt_version", "10.0.1"), ("gpu_name", "NVIDIA B"),
                       ("precision", "fp32"), ("onnx_sha256", "c" * 64)):
        changed = dict(record, **{key: other})
        assert key in mismatch(changed, info)


def test_tensorrt_precision_argument_beats_environment_beats_default(monkeypatch):
    from densepose_ros.export.tensorrt_engine import EngineBuildOptions
    from densepose_ros.runtime import create_backend
    from densepose_ros.runtime.tensorrt_backend import PRECISION_ENV, resolve_precision

    monkeypatch.delenv(PRECISION_ENV, raising=False)
    assert resolve_precision(None) == EngineBuildOptions().precision == "fp16"
    monkeypatch.setenv(PRECISION_ENV, "fp32")
    assert resolve_precision(None) == "fp32"
    assert resolve_precision("int8") == "int8"
    monkeypatch.setenv(PRECISION_ENV, "fp8")
    with pytest.raises(ValueError, match=PRECISION_ENV):
        resolve_precision(None)
    # A typo is refused on every machine, before any CUDA check or export.
    with pytest.raises(ValueError, match="must be one of fp32, fp16, int8"):
        create_backend("tensorrt", allow_untrained=True, tensorrt_precision="int4")
