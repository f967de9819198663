"""INT8 static quantisation of an export: each graph rewritten with QuantizeLinear /
DequantizeLinear pairs (onnxruntime's QDQ format), scales calibrated on what that graph
receives on the user's own images (``runtime.calibration.record_graph_inputs``).

The result is an export folder like any other (same manifest, ``extra.quantization`` says
how it was made), run by the onnxruntime and OpenVINO backends: both execute QDQ graphs with
INT8 kernels. Weights are quantised per output channel (signed), activations per tensor
(unsigned, the fast path of x86 VNNI/AMX kernels); the layers making results (RPN scores and
deltas, box predictor, keypoint predictor) stay in float, where rounding would move the box
edges and keypoints directly, and by default so does the whole DensePose head (its rounding
moves the charts' U/V: ``FLOAT_GRAPHS``).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from densepose_ros.export.bundle import OnnxBundle, file_sha256, load_bundle
from densepose_ros.export.names import BACKBONE, DENSEPOSE_HEAD, graph_names

log = logging.getLogger(__name__)

CALIBRATION_METHODS = ("minmax", "percentile", "entropy")
DEFAULT_CALIBRATION_METHOD = "minmax"  # measured best on held-out data (README, INT8)
DEFAULT_CALIBRATION_IMAGES = 64
# Graphs left entirely in float by default. The DensePose head in INT8 cost the default
# model 3.2 AP(GPS) (52.4 -> 49.2, held-out synthetic, onnxruntime) against 0.2 in float,
# which costs 1.6 ms of ~31 per 640x480 frame on onnxruntime and nothing on OpenVINO
# (README, INT8). `densepose export --int8-densepose-head` quantises it too.
FLOAT_GRAPHS = (DENSEPOSE_HEAD,)


@dataclasses.dataclass
class QuantizationReport:
    """What ``quantize_bundle`` did: the new export and, per graph, the nodes kept float."""

    bundle: OnnxBundle
    float_nodes: dict[str, list[str]]


# Graph outputs that are results rather than features: the layers making them stay float.
_RESULT_OUTPUT_PREFIXES = ("rpn_", "class_logits", "box_deltas", "coarse_segm", "fine_segm",
                           "u", "v", "sigma", "kappa", "keypoint")
_WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")


def _weighted_nodes(model_path: Path) -> list[str]:
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    return sorted(node.name for node in model.graph.node if node.op_type in _WEIGHTED_OPS)


def _float_nodes(model_path: Path) -> list[str]:
    """Nodes left in float: the weighted layers that make a result output (RPN scores and
    deltas, box predictor, chart and keypoint predictors), found by walking back from each
    such output through the ops without weights (resizes, reshapes, ...). FPN features stay
    quantised: they are inputs to further layers, like any activation."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    producer = {out: node for node in model.graph.node for out in node.output}
    initializers = {t.name for t in model.graph.initializer}
    pending = [o.name for o in model.graph.output if o.name.startswith(_RESULT_OUTPUT_PREFIXES)]
    found, seen = [], set()
    while pending:
        node = producer.get(pending.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type in _WEIGHTED_OPS:
            found.append(node.name)
        else:
            pending.extend(i for i in node.input if i and i not in initializers)
    return sorted(found)


# RoIs per calibration batch of a head graph (see _uniform_batches)
HEAD_CALIBRATION_BATCH = 32


def _uniform_batches(arrays: list[np.ndarray], is_backbone: bool) -> list[np.ndarray]:
    """The recorded inputs as batches of one shape: onnxruntime's histogram calibrators
    (percentile, entropy) stack each tensor's values over batches and fail on ragged shapes.
    Head inputs (a varying number of RoIs per image) are regrouped into batches of
    ``HEAD_CALIBRATION_BATCH`` RoIs; backbone inputs keep the most common image size (one
    camera gives one)."""
    if is_backbone:
        shapes = [a.shape for a in arrays]
        common = max(set(shapes), key=shapes.count)
        kept = [a for a in arrays if a.shape == common]
        if len(kept) < len(arrays):
            log.info("calibration: %d of %d images have the size %s; the others are left out",
                     len(kept), len(arrays), common[2:])
        return kept
    rois = np.concatenate(arrays)
    if len(rois) <= HEAD_CALIBRATION_BATCH:
        return [rois]
    full = len(rois) // HEAD_CALIBRATION_BATCH * HEAD_CALIBRATION_BATCH
    return np.split(rois[:full], full // HEAD_CALIBRATION_BATCH)


class _Reader:
    """onnxruntime's CalibrationDataReader over recorded inputs of one graph."""

    def __init__(self, input_name: str, arrays: list[np.ndarray]):
        self._feeds = iter([{input_name: a} for a in arrays])

    def get_next(self):
        return next(self._feeds, None)


def quantize_bundle(bundle: OnnxBundle, recorded: dict[str, list[np.ndarray]], out: Path,
                    method: str = DEFAULT_CALIBRATION_METHOD, source: str = "",
                    progress: Callable[[str], None] = log.info,
                    float_graphs: tuple[str, ...] = FLOAT_GRAPHS) -> QuantizationReport:
    """Write the INT8 (QDQ) export of ``bundle`` to ``out``, calibrated on ``recorded``
    (graph name -> that graph's input arrays, from ``record_graph_inputs``); the graphs in
    ``float_graphs`` are copied unchanged."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration method must be one of {', '.join(CALIBRATION_METHODS)}")
    calibrate = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                 "entropy": CalibrationMethod.Entropy}[method]
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    graphs = dict(bundle.graphs)
    float_nodes = {}
    with tempfile.TemporaryDirectory() as work:
        for graph in graph_names(bundle.config):
            spec = bundle.graphs[graph]
            if graph in float_graphs:
                shutil.copy2(bundle.path(graph), out / spec.file)
                float_nodes[graph] = _weighted_nodes(bundle.path(graph))
                progress(f"{graph}: kept in float")
                continue
            arrays = recorded.get(graph) or []
            if not arrays:
                raise ValueError(f"no calibration inputs for {graph}")
            source_path = bundle.path(graph)
            prepared = Path(work) / f"{graph}_prepared.onnx"
            # shape inference and constant folding first, as onnxruntime recommends: the
            # quantiser then sees every tensor's shape
            quant_pre_process(str(source_path), str(prepared), skip_symbolic_shape=True)
            keep_float = _float_nodes(prepared)
            progress(f"quantising {graph}: {len(arrays)} calibration inputs, {method}; "
                     f"float: {', '.join(keep_float) or 'none'}")
            target = out / spec.file
            quantize_static(
                str(prepared), str(target),
                _Reader(spec.inputs[0].name, _uniform_batches(arrays, graph == BACKBONE)),
                quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                calibrate_method=calibrate, nodes_to_exclude=keep_float,
                extra_options={"CalibMovingAverage": method == "minmax"})
            graphs[graph] = dataclasses.replace(spec, sha256=file_sha256(target))
            float_nodes[graph] = keep_float
    for extra_file in bundle.directory.iterdir():  # e.g. a README the exporter wrote
        if extra_file.is_file() and not (out / extra_file.name).exists() \
                and extra_file.suffix != ".onnx" and extra_file.name != "manifest.json":
            shutil.copy2(extra_file, out / extra_file.name)
    quantised = dataclasses.replace(
        bundle, directory=out, graphs=graphs,
        extra={**bundle.extra, "quantization": {
            "format": "QDQ", "weights": "int8 per channel", "activations": "uint8 per tensor",
            "calibration": method, "calibration_source": source,
            "float_graphs": [g for g in graph_names(bundle.config) if g in float_graphs],
            "calibration_inputs": {g: len(recorded[g]) for g in graphs},
            "float_nodes": float_nodes, "from_graphs_sha256": bundle.graphs_sha256}})
    quantised.write_manifest()
    return QuantizationReport(load_bundle(out), float_nodes)
