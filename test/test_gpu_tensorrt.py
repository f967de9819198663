"""TensorRT engines and the GPU backends, end to end on a CUDA device (`make test-gpu`).

Without CUDA or TensorRT every test here is skipped with the reason; with
DENSEPOSE_REQUIRE_GPU=1 (set by `make test-gpu`) that skip is a failure instead, so a GPU run
cannot pass by skipping.
"""

from __future__ import annotations

import importlib.util
import json
import os

import cv2
import numpy as np
import pytest
import torch
from model_fixtures import light_model, light_weights, parity_image  # noqa: F401

from densepose_ros.export import GRAPH_NAMES
from densepose_ros.export.onnx_export import ExportOptions, export_onnx
from densepose_ros.runtime import InferenceSettings, create_backend

pytestmark = pytest.mark.gpu


def _missing() -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA device (torch.cuda.is_available() is False)"
    if importlib.util.find_spec("tensorrt") is None:
        return "the tensorrt package is not installed (pip install -r requirements/gpu.txt)"
    return None


@pytest.fixture(autouse=True, scope="module")
def require_gpu():
    # module scope: runs before the module's export fixture, so a skip costs nothing
    reason = _missing()
    if reason is None:
        return
    if os.environ.get("DENSEPOSE_REQUIRE_GPU") == "1":
        pytest.fail(f"DENSEPOSE_REQUIRE_GPU=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DENSEPOSE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def light_export(light_weights, tmp_path_factory):  # noqa: F811
    return export_onnx(light_weights, tmp_path_factory.mktemp("onnx"),
                          ExportOptions(input_size=(480, 640)), progress=lambda _: None)


def street() -> np.ndarray:
    return cv2.resize(parity_image(), (640, 480), interpolation=cv2.INTER_AREA)


def results(backend_name, weights, image, device="cuda"):
    backend, reason = create_backend(backend_name, weights, device)
    backend.configure(InferenceSettings())
    return backend, reason, backend.infer(image)


@pytest.mark.parametrize("precision, box_px, chart", [("fp32", 0.1, 1e-3), ("fp16", 2.0, 0.05)])
def test_tensorrt_matches_torch_cuda(light_export, light_weights, cache,  # noqa: F811
                                     monkeypatch, precision, box_px, chart):
    monkeypatch.setenv("DENSEPOSE_TRT_PRECISION", precision)
    backend, _, trt_result = results("tensorrt", light_export.directory, street())
    assert precision in backend.describe()
    _, _, reference = results("torch", light_weights, street())
    assert len(trt_result) == len(reference) > 0
    assert float((trt_result.boxes - reference.boxes).abs().max()) < box_px
    for name in ("coarse_segm", "fine_segm", "u", "v"):
        got, want = getattr(trt_result.charts, name), getattr(reference.charts, name)
        assert float((got - want).abs().max() / want.abs().max()) < chart, name


def test_engines_are_cached_and_mismatches_rebuilt(light_export, cache):
    from densepose_ros.export.tensorrt_engine import EngineBuildOptions, ensure_engines

    options = EngineBuildOptions(precision="fp16")
    first = ensure_engines(light_export, options)
    stamps = {g: p.stat().st_mtime_ns for g, p in first.items()}
    assert ensure_engines(light_export, options) == first
    assert {g: p.stat().st_mtime_ns for g, p in first.items()} == stamps  # reused
    name = first["backbone"].name
    assert light_export.graphs_sha256[:12] in name and "fp16" in name and "trt" in name
    # an engine recorded for another TensorRT version is rebuilt, not used
    record = first["box_head"].with_suffix(".json")
    data = json.loads(record.read_text())
    data["tensorrt_version"] = "0.0.0"
    record.write_text(json.dumps(data))
    messages = []
    ensure_engines(light_export, options, progress=messages.append)
    assert any("box_head: building" in m and "tensorrt_version" in m for m in messages)
    assert first["box_head"].stat().st_mtime_ns != stamps["box_head"]


def test_corrupt_engine_gives_a_clear_error(light_export, cache):
    from densepose_ros.export.tensorrt_engine import EngineError, ensure_engines
    from densepose_ros.runtime.tensorrt_backend import TrtEngine

    path = ensure_engines(light_export)["densepose_head"]
    path.write_bytes(b"garbage")
    with pytest.raises(EngineError, match="cannot load this engine"):
        TrtEngine(path, torch.device("cuda"))


def test_int8_calibrates_from_a_folder_and_a_bag(light_export, cache, tmp_path):
    from densepose_ros.export.tensorrt_engine import EngineBuildOptions, ensure_engines
    from densepose_ros.io import bag_io
    from densepose_ros.runtime.calibration import collect_calibration_inputs as collect

    folder = tmp_path / "calib"
    folder.mkdir()
    for index in range(4):
        cv2.imwrite(str(folder / f"{index}.png"), np.roll(street(), 80 * index, axis=1))
    engines = ensure_engines(light_export, EngineBuildOptions(
        precision="int8", calibration_source=folder, calibration_images=4),
        collect_calibration=collect)
    assert set(engines) == set(GRAPH_NAMES)
    bag = tmp_path / "bag"
    with bag_io.BagWriter(bag) as writer:
        for index in range(3):
            writer.write("/camera/image_raw", "sensor_msgs/msg/Image", index,
                         bag_io.image_to_cdr(street(), index, "cam"))
    ensure_engines(light_export, EngineBuildOptions(
        precision="int8", calibration_source=bag, calibration_images=3), force=True,
        collect_calibration=collect)


def test_auto_picks_tensorrt_on_gpu(light_export, cache):
    backend, reason, result = results("auto", light_export.directory, street())
    assert backend.name == "tensorrt" and "TensorRT" in reason
    assert len(result) > 0


def test_onnxruntime_gpu_provider(light_export):
    import onnxruntime

    providers = onnxruntime.get_available_providers()
    if "CUDAExecutionProvider" not in providers:
        pytest.skip(f"onnxruntime has no CUDA provider ({providers}); install onnxruntime-gpu")
    backend, _, result = results("onnxruntime", light_export.directory, street())
    assert "CPUExecutionProvider" not in backend.describe().split()[0]
    assert len(result) > 0


def test_precision_argument_overrides_the_environment(light_export, cache,  # noqa: F811
                                                     monkeypatch):
    # the node's tensorrt_precision parameter reaches create_backend as this argument
    monkeypatch.setenv("DENSEPOSE_TRT_PRECISION", "fp16")
    backend, _ = create_backend("tensorrt", light_export.directory, "cuda",
                                tensorrt_precision="fp32")
    assert "fp32" in backend.describe()
