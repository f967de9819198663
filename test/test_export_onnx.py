"""ONNX export of every configuration: graphs run in onnxruntime (CPU) and match PyTorch,
and every operator is in TensorRT's supported list.

Each configuration is exported once per session (R-50/R-101 with the detectron2 stand-in or
seeded weights); end-to-end comparisons run the onnxruntime backend against the eager torch
backend (norms folded, channels-last: the deployed path) with the same settings.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

import cv2
import numpy as np
import onnx
import pytest
import torch
from model_fixtures import (  # noqa: F401
    d2_checkpoint,
    d2_model,
    light_model,
    light_weights,
    parity_image,
)

from densepose_ros.cli import main as cli_main
from densepose_ros.export import GRAPH_NAMES, load_bundle
from densepose_ros.export.bundle import MANIFEST_NAME
from densepose_ros.export.onnx_export import ExportOptions, export_model
from densepose_ros.export.op_check import check_onnx_for_tensorrt, load_trt_op_list
from densepose_ros.inference.predictor import DensePosePredictor
from densepose_ros.modeling import build_model, get_config
from densepose_ros.modeling.config import CONFIG_NAMES
from densepose_ros.runtime import InferenceSettings, factory
from densepose_ros.runtime.base import NO_RESIZE
from densepose_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend
from densepose_ros.runtime.openvino_backend import OpenVinoBackend, cpu_has_bf16
from densepose_ros.runtime.torch_backend import TorchBackend

from node_fixtures import vtest_frames

CHARTS = ("coarse_segm", "fine_segm", "u", "v")
# The configurations exported with their stand-in weights; the R-101 ones have no detectron2
# fixture and use seeded default initialisation.
D2_CONFIGS = ("R_50_FPN_s1x_legacy", "R_50_FPN_s1x")
SMALL_INPUT = (320, 416)
# What ``auto`` runs in this process (runtime/factory.py; conftest.py keeps OpenVINO out)
CPU_AUTO = "openvino" if factory._openvino_bf16() else "onnxruntime"


@dataclass
class Difference:
    """Largest differences between two results with the same detections."""

    count: tuple[int, int]
    box_px: float
    score: float
    chart: float  # largest over the four chart outputs, relative to their largest value
    charts_compared: int = 0  # detections whose charts entered `chart`


def compare(reference, exported, chart_box_tol: float | None = None) -> Difference:
    """With ``chart_box_tol``, charts are compared only for detections whose boxes agree to
    that many pixels: RoIAlign on a shifted box reads other features, so a box that drifted
    (measured by ``box_px``) says nothing about the DensePose graph's own accuracy."""
    # the graph backends give numpy arrays, the torch backend tensors: compared as tensors
    reference, exported = reference.torch(), exported.torch()
    count = (len(reference), len(exported))
    if count[0] != count[1] or count[0] == 0:
        return Difference(count, float("inf") if count[0] != count[1] else 0.0, 0.0, 0.0)
    box_error = (reference.boxes - exported.boxes).abs().amax(dim=1)
    same = box_error <= chart_box_tol if chart_box_tol is not None else box_error >= 0
    def relative_error(name: str) -> float:
        ref, exp = getattr(reference.charts, name), getattr(exported.charts, name)
        if not same.any():
            return 0.0
        return float((ref[same] - exp[same]).abs().max() / ref.abs().max().clamp(min=1e-6))

    chart = max(relative_error(n) for n in CHARTS)
    return Difference(count, float(box_error.max()),
                      float((reference.scores - exported.scores).abs().max()), chart,
                      int(same.sum()))


@pytest.fixture(scope="session")
def exports(tmp_path_factory, light_weights, d2_model):  # noqa: F811
    """Factory: config name -> (export folder, the eager model it came from)."""
    made = {}

    def make(name: str):
        if name in made:
            return made[name]
        out = tmp_path_factory.mktemp(f"onnx_{name}")
        if name == "R_18_FPN_lite":  # through the CLI, as a user would
            from densepose_ros.inference.checkpoint import load_model

            assert cli_main(["export", "--weights", str(light_weights), "--out", str(out),
                             "--input-size", "640x480", "--no-verify"]) == 0
            model = load_model(light_weights)[0]
        else:
            if name in D2_CONFIGS:
                model = copy.deepcopy(d2_model(name))
            else:
                torch.manual_seed(7)
                model = build_model(get_config(name))
            export_model(copy.deepcopy(model), get_config(name), out,
                         ExportOptions(input_size=SMALL_INPUT), progress=lambda _: None)
        made[name] = (out, model)
        return made[name]

    return make


def backends(exports, name: str, settings: InferenceSettings):
    folder, model = exports(name)
    cfg = get_config(name)
    reference = TorchBackend(DensePosePredictor(copy.deepcopy(model), cfg), "reference")
    exported = OnnxRuntimeBackend(load_bundle(folder), "cpu")
    for backend in (reference, exported):
        backend.configure(settings)
    return reference, exported


def several_people_frame() -> np.ndarray:
    """640x480 frame of OpenCV's vtest.avi (several pedestrians)."""
    return vtest_frames(1, (640, 480))[0]


def test_light_export_matches_pytorch_on_parity_image_and_street_frame(exports):
    reference, exported = backends(exports, "R_18_FPN_lite", InferenceSettings())
    for image in (parity_image(), several_people_frame()):
        diff = compare(reference.infer(image), exported.infer(image))
        print("R_18_FPN_lite", image.shape, diff)
        # untrained seeded weights: the full 20 detections, all compared
        assert diff.count == (20, 20)
        assert diff.box_px < 0.1 and diff.score < 1e-4 and diff.chart < 1e-3, diff


def test_r50_legacy_matches_pytorch_on_full_size_parity_image(exports):
    """The detectron2 parity setting: 800x1067, no resize, stand-in model-zoo weights."""
    reference, exported = backends(exports, "R_50_FPN_s1x_legacy",
                                   InferenceSettings(resize_shortest_edge=NO_RESIZE))
    diff = compare(reference.infer(parity_image()), exported.infer(parity_image()),
                   chart_box_tol=0.05)
    print("R_50_FPN_s1x_legacy full size", diff)
    assert diff.count == (19, 19)  # detectron2 finds 19 here too
    # boxes: measured 1.3-2.2 px at most, depending on thread count; the stand-in weights
    # amplify rounding (docs/model.md); most boxes agree far closer, and on those the
    # DensePose graph must match
    assert diff.box_px < 4.0 and diff.score < 5e-3, diff
    assert diff.charts_compared >= 10 and diff.chart < 0.05, diff


# One configuration per architecture: the model-zoo variants differ from these only in the
# DensePose head (DeepLab) and the confidence outputs, both in R_50_FPN_DL_WC1_s1x (and
# test_deeplab_head_and_confidences_export_and_match checks the WC2M outputs).
ARCHITECTURES = ("R_50_FPN_s1x_legacy", "R_101_FPN_s1x_legacy", "R_50_FPN_s1x", "R_101_FPN_s1x",
                 "R_18_FPN_lite", "R_18_FPN_tiny", "R_50_FPN_DL_WC1_s1x")


def test_the_tested_architectures_are_configurations():
    assert set(ARCHITECTURES) <= set(CONFIG_NAMES)


@pytest.mark.openvino
@pytest.mark.parametrize("name", [n for n in ARCHITECTURES if n != "R_18_FPN_lite"])
def test_every_config_matches_pytorch_on_small_frames(exports, name):
    # at most 10 persons: the seeded R-101 models detect 100, and DensePose heads on 100
    # boxes would dominate the test time without checking anything more
    settings = InferenceSettings(resize_shortest_edge=SMALL_INPUT[0], resize_max_size=544,
                                 max_detections=10)
    reference, exported = backends(exports, name, settings)
    openvino = OpenVinoBackend(load_bundle(exports(name)[0]), "cpu", "fp32")
    openvino.configure(settings)
    for image in (parity_image(), several_people_frame()):
        for runtime in (exported, openvino):
            diff = compare(reference.infer(image), runtime.infer(image))
            print(name, runtime.name, image.shape, diff)
            assert diff.count[0] == diff.count[1], diff
            assert diff.box_px < 4.0 and diff.score < 5e-3 and diff.chart < 0.05, diff


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_every_graph_uses_only_tensorrt_supported_ops(exports, name):
    folder, _ = exports(name)
    op_list = load_trt_op_list()
    for graph in GRAPH_NAMES:
        result = check_onnx_for_tensorrt(folder / f"{graph}.onnx", op_list)
        print(name, graph, result.opset, result.ops)
        assert result.ok, result.problems
        assert op_list.opset_min <= result.opset <= op_list.opset_max


def test_op_check_rejects_operators_outside_the_tensorrt_list(tmp_path):
    """The check is not vacuous: Unique and a Resize in cubic mode are refused."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 8, 8])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, [None])
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])
    graph = helper.make_graph(
        [helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="cubic"),
         helper.make_node("Unique", ["x"], ["z"])],
        "bad", [x], [y, z], initializer=[scales])
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)
    problems = check_onnx_for_tensorrt(path).problems
    assert "Unique" not in load_trt_op_list().supported
    assert any("Unique" in p for p in problems) and any("cubic" in p for p in problems)


def test_stored_tensorrt_list_names_its_source_and_version():
    data = load_trt_op_list()
    assert data.tensorrt_version.startswith("10.")
    assert "onnx/onnx-tensorrt" in data.source and "operators.md" in data.source
    for op in ("Conv", "ConvTranspose", "Gemm", "Resize", "MaxPool", "Relu", "RoiAlign"):
        assert op in data.supported


def test_manifest_documents_names_shapes_and_dtypes(exports):
    folder, _ = exports("R_18_FPN_lite")
    bundle = load_bundle(folder)
    backbone = bundle.graphs["backbone"]
    assert [t.name for t in backbone.inputs] == ["images"]
    assert backbone.inputs[0].shape[:2] == [1, 3]
    assert all(isinstance(d, str) for d in backbone.inputs[0].shape[2:])  # dynamic H, W
    names = [t.name for t in backbone.outputs]
    assert names[:4] == ["p2", "p3", "p4", "p5"] and "rpn_logits_p6" in names
    heads = bundle.graphs["densepose_head"]
    assert [t.name for t in heads.outputs] == list(CHARTS)
    assert all(t.dtype == "float32" for g in bundle.graphs.values() for t in g.inputs + g.outputs)
    assert bundle.config.name == "R_18_FPN_lite" and bundle.input_size == (480, 640)


def test_bad_exports_give_clear_errors(exports, tmp_path):
    folder, _ = exports("R_18_FPN_lite")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_bundle(tmp_path / "nothing")
    with pytest.raises(FileNotFoundError, match="manifest"):
        load_bundle(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in folder.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    (broken / "box_head.onnx").write_bytes(b"not onnx")
    with pytest.raises(ValueError, match="box_head.onnx: file does not match"):
        load_bundle(broken)
    (broken / "box_head.onnx").unlink()
    with pytest.raises(FileNotFoundError, match="box_head.onnx is missing"):
        load_bundle(broken)
    (broken / MANIFEST_NAME).write_text("{truncated")
    with pytest.raises(ValueError, match="unreadable manifest"):
        load_bundle(broken)
    (broken / MANIFEST_NAME).write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError, match="not a densepose_ros ONNX export"):
        load_bundle(broken)


def test_pth_weights_are_exported_once_into_the_cache(light_weights, tmp_path,  # noqa: F811
                                                     monkeypatch):
    monkeypatch.setenv("DENSEPOSE_CACHE", str(tmp_path / "cache"))
    from densepose_ros.runtime import create_backend

    backend, _ = create_backend(CPU_AUTO, light_weights, "cpu")
    manifests = list((tmp_path / "cache").rglob(MANIFEST_NAME))
    assert len(manifests) == 1
    stamp = manifests[0].stat().st_mtime_ns
    again, reason = create_backend("auto", light_weights, "cpu")
    assert again.name == CPU_AUTO and "cached" in reason  # auto uses the cached export
    assert manifests[0].stat().st_mtime_ns == stamp  # not exported twice
    image = cv2.resize(parity_image(), (320, 240))
    assert compare(backend.infer(image), again.infer(image)).box_px == 0.0


def test_infer_cli_runs_on_the_onnxruntime_backend(exports, tmp_path, capsys):
    folder, _ = exports("R_18_FPN_lite")
    frame = several_people_frame()
    cv2.imwrite(str(tmp_path / "street.png"), frame)
    out = tmp_path / "out"
    # The untrained model scores low: keep every detection (the backend's own threshold).
    threshold = str(load_bundle(folder).config.box_head.score_threshold)
    assert cli_main(["infer", str(tmp_path / "street.png"), "--weights", str(folder),
                     "--backend", "onnxruntime", "--out", str(out), "--no-progress",
                     "--score-threshold", threshold]) == 0
    assert "onnxruntime/CPUExecutionProvider" in capsys.readouterr().err
    persons = json.loads((out / "street.json").read_text())["persons"]
    expected = OnnxRuntimeBackend(load_bundle(folder), "cpu").infer(frame)
    assert [p["score"] for p in persons] == [round(float(s), 4) for s in expected.scores]
    # an export folder is not something the torch backend can load: a clear error
    assert cli_main(["infer", str(tmp_path / "street.png"), "--weights", str(folder),
                     "--backend", "torch", "--out", str(out), "--no-progress"]) == 2
    assert "needs a .pth" in capsys.readouterr().err


@pytest.mark.parametrize("native_bf16", [pytest.param(True, marks=pytest.mark.openvino), False])
def test_auto_on_cpu_exports_once_and_runs_the_fastest_measured(
        exports, light_weights, tmp_path, monkeypatch, native_bf16):  # noqa: F811
    """OpenVINO (bf16) on CPUs with native bfloat16, else onnxruntime (the measured order,
    README "Performance"); both from the export, made once."""
    from densepose_ros.runtime import available_backends, create_backend

    if native_bf16 and not cpu_has_bf16():
        pytest.skip("this CPU has no native bfloat16")
    monkeypatch.setattr(factory, "_openvino_bf16", lambda: native_bf16)
    expected = "openvino" if native_bf16 else "onnxruntime"
    cache = tmp_path / "empty_cache"
    monkeypatch.setenv("DENSEPOSE_CACHE", str(cache))
    folder, _ = exports("R_18_FPN_lite")
    backend, reason = create_backend("auto", folder, "cpu")
    assert backend.name == expected and "the weights are an ONNX export" in reason
    # a .pth: exported now (the fastest CPU backend), into the cache by the weights' hash
    backend, reason = create_backend("auto", light_weights, "cpu")
    assert backend.name == expected and "exported to ONNX once now" in reason
    assert "graphs ready in" in reason
    assert ("bf16" in backend.describe()) == native_bf16
    assert len(list((cache / "onnx").iterdir())) == 1
    image = cv2.resize(parity_image(), (320, 240))
    # the next start finds the export and gives the same results
    again, reason = create_backend("auto", light_weights, "cpu")
    assert again.name == expected and "is cached" in reason
    assert compare(backend.infer(image), again.infer(image)).box_px == 0.0
    if not torch.cuda.is_available():
        assert available_backends()["tensorrt"].startswith("unavailable")


def test_deeplab_head_and_confidences_export_and_match(tmp_path):
    """A DL_WC2M model (DeepLab head, U/V and segmentation confidences) exports, passes the
    TensorRT op check, and its DensePose-head graph gives every output as PyTorch does."""
    import onnxruntime as ort

    from densepose_ros.export.names import chart_output_names, densepose_pooled_shape

    torch.manual_seed(0)
    cfg = get_config("R_50_FPN_DL_WC2M_s1x")
    model = build_model(cfg).eval()
    bundle = export_model(model, cfg, tmp_path / "onnx", ExportOptions(input_size=(320, 416)),
                          progress=lambda _: None)
    op_list = load_trt_op_list()
    for graph in GRAPH_NAMES:
        assert check_onnx_for_tensorrt(bundle.path(graph), op_list).ok, graph
    pooled = torch.randn(3, *densepose_pooled_shape(cfg))
    session = ort.InferenceSession(str(bundle.path("densepose_head")),
                                   providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    assert names == chart_output_names(cfg) and "kappa_v" in names
    got = dict(zip(names, session.run(None, {session.get_inputs()[0].name: pooled.numpy()}),
                   strict=True))
    with torch.inference_mode():
        expected = model.densepose_from_pooled(pooled).tensors()
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value.numpy(), rtol=1e-3, atol=1e-3,
                                   err_msg=name)
