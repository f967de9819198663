"""Export a DensePose R-CNN model to an ONNX bundle (three graphs + manifest).

Uses PyTorch's ``torch.export``-based ONNX exporter (``dynamo=True``) at opset 18 (TensorRT
10 parses opsets 9-20; see ``trt_supported_ops.json``). Norms are folded first, so the graphs
contain only Conv/ConvTranspose/Gemm/Relu/MaxPool/Resize/Add and a few shape ops.
"""

from __future__ import annotations

import hashlib
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from densepose_ros.export.bundle import GraphSpec, OnnxBundle, TensorSpec, file_sha256
from densepose_ros.export.graphs import (
    BackboneGraph,
    BoxHeadGraph,
    DensePoseHeadGraph,
    KeypointHeadGraph,
)
from densepose_ros.export.names import (
    BACKBONE,
    BOX_FEATURES,
    BOX_HEAD,
    BOX_OUTPUTS,
    DENSEPOSE_FEATURES,
    DENSEPOSE_HEAD,
    IMAGES,
    KEYPOINT_FEATURES,
    KEYPOINT_HEAD,
    KEYPOINT_OUTPUT,
    backbone_output_names,
    box_pooled_shape,
    chart_output_names,
    densepose_pooled_shape,
    keypoint_pooled_shape,
)
from densepose_ros.modeling.config import FPN_STRIDES, ModelConfig
from densepose_ros.modeling.model import DensePoseRCNN

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18
# Dynamic-axis ranges of the exported graphs (TensorRT profiles must lie inside them).
MAX_SIDE_PX = 2048
MAX_ROIS = 4096


@dataclass
class ExportOptions:
    """How to export. ``input_size`` is the padded (height, width) of the example input; the
    graphs accept any multiple of 32 up to ``MAX_SIDE_PX`` either way."""

    input_size: tuple[int, int] | None = None
    opset: int = DEFAULT_OPSET
    # RoIs in the example inputs of the head graphs (any count >= 1 runs)
    example_rois: int = 8


def default_input_size(cfg: ModelConfig) -> tuple[int, int]:
    """Padded size of a 4:3 landscape frame at the configuration's test resize."""
    div = cfg.input.size_divisibility
    height = cfg.input.min_size
    width = min(cfg.input.max_size, round(height * 4 / 3))
    return -(-height // div) * div, -(-width // div) * div


def padded_input_size(width: int, height: int) -> tuple[int, int]:
    """A user's input size (width, height) -> the padded network input (height, width),
    rounded up to multiples of 32; ValueError when a side is outside 64..MAX_SIDE_PX."""
    if not (64 <= height <= MAX_SIDE_PX and 64 <= width <= MAX_SIDE_PX):
        raise ValueError(f"input size sides must lie in 64..{MAX_SIDE_PX}, got "
                         f"{width}x{height}")
    return -(-height // 32) * 32, -(-width // 32) * 32


def state_sha256(model: nn.Module) -> str:
    """Hash of a model's parameters and buffers (identifies in-memory models)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _export_graph(module: nn.Module, example: torch.Tensor, path: Path, input_name: str,
                  output_names: list[str], dynamic: dict[int, object], opset: int) -> None:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation chatter, not ours to fix
        torch.onnx.export(
            module, (example,), str(path), dynamo=True, input_names=[input_name],
            output_names=output_names, dynamic_shapes={input_name: dynamic},
            opset_version=opset, external_data=False, verbose=False,
        )


def _specs(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    onnx.checker.check_model(model)

    def spec(value) -> TensorSpec:
        dims = [d.dim_value if d.HasField("dim_value") else d.dim_param
                for d in value.type.tensor_type.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name
        return TensorSpec(value.name, dims, dtype)

    return [spec(v) for v in model.graph.input], [spec(v) for v in model.graph.output]


def export_model(model: DensePoseRCNN, cfg: ModelConfig, out_dir: str | Path,
                 options: ExportOptions | None = None, model_sha256: str = "",
                 progress: Callable[[str], None] = print) -> OnnxBundle:
    """Write the three graphs and the manifest of ``model`` into ``out_dir`` (created).

    The model is put in eval mode on the CPU and its norms are folded (in place)."""
    from torch.export import Dim

    options = options or ExportOptions()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.to("cpu").eval()
    if not model.norms_folded:
        model.fold_norms()
    model_sha256 = model_sha256 or state_sha256(model)
    height, width = options.input_size or default_input_size(cfg)
    if height % 32 or width % 32:
        raise ValueError(f"input size must be multiples of 32, got {height}x{width}")
    stride = max(FPN_STRIDES.values()) // 2  # p5's stride: divides every padded input
    max_cells = MAX_SIDE_PX // stride
    rois = Dim("rois", min=1, max=MAX_ROIS)
    jobs = [
        (BACKBONE, BackboneGraph(model), torch.zeros(1, 3, height, width), IMAGES,
         backbone_output_names(cfg),
         {2: stride * Dim("height_cells", min=2, max=max_cells),
          3: stride * Dim("width_cells", min=2, max=max_cells)}),
        (BOX_HEAD, BoxHeadGraph(model), torch.randn(options.example_rois, *box_pooled_shape(cfg)),
         BOX_FEATURES, list(BOX_OUTPUTS), {0: rois}),
        (DENSEPOSE_HEAD, DensePoseHeadGraph(model),
         torch.randn(options.example_rois, *densepose_pooled_shape(cfg)), DENSEPOSE_FEATURES,
         chart_output_names(cfg), {0: rois}),
    ]
    if cfg.keypoints.enabled:
        jobs.append((KEYPOINT_HEAD, KeypointHeadGraph(model),
                     torch.randn(options.example_rois, *keypoint_pooled_shape(cfg)),
                     KEYPOINT_FEATURES, [KEYPOINT_OUTPUT], {0: rois}))
    graphs = {}
    # Quiet the exporter's own step-by-step prints; our progress lines say what happens.
    logging.getLogger("torch.onnx").setLevel(logging.WARNING)
    for index, (name, module, example, input_name, output_names, dynamic) in enumerate(jobs):
        start = time.perf_counter()
        progress(f"[{index + 1}/{len(jobs)}] exporting {name} ({cfg.name}) ...")
        path = out_dir / f"{name}.onnx"
        _export_graph(module, example, path, input_name, output_names, dynamic, options.opset)
        inputs, outputs = _specs(path)
        graphs[name] = GraphSpec(path.name, file_sha256(path), inputs, outputs)
        progress(f"[{index + 1}/{len(jobs)}] {path} ({path.stat().st_size / 1e6:.1f} MB, "
                 f"{time.perf_counter() - start:.1f} s)")
    bundle = OnnxBundle(out_dir, cfg, model_sha256, options.opset, (height, width), graphs,
                        torch_version=torch.__version__)
    bundle.write_manifest()
    return bundle


def export_onnx(weights: str | Path, out_dir: str | Path,
                   options: ExportOptions | None = None,
                   progress: Callable[[str], None] = print) -> OnnxBundle:
    """Export one of our weight files (``densepose export``)."""
    from densepose_ros.inference.checkpoint import load_model

    weights = Path(weights)
    model, cfg = load_model(weights)
    return export_model(model, cfg, out_dir, options, model_sha256=file_sha256(weights),
                        progress=progress)
