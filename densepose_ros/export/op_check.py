"""Check exported graphs against TensorRT's supported ONNX operators.

The list (``trt_supported_ops.json``) is transcribed from onnx-tensorrt's operator support
matrix (``docs/operators.md``) of a named TensorRT release; the file records the source URL,
commit and the opset range that release parses. Besides the operator names, the restrictions
that concern this model's operators are checked here: Resize modes, MaxPool's indices output,
constant Squeeze/Unsqueeze axes and TopK's K.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

SUPPORTED_OPS_FILE = Path(__file__).with_name("trt_supported_ops.json")
# Resize attribute values TensorRT 10's parser accepts (support matrix, Resize row).
RESIZE_MODES = {"nearest", "linear"}
RESIZE_COORDINATE_MODES = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn",
                           "asymmetric", "align_corners"}
TOPK_MAX_K = 3840


@dataclass
class TrtOpList:
    """TensorRT's supported ONNX operators (see ``SUPPORTED_OPS_FILE``)."""

    tensorrt_version: str
    source: str
    opset_min: int
    opset_max: int
    supported: dict[str, list[str]]


@dataclass
class OpCheckResult:
    """Outcome for one graph: the operators it uses and every problem found."""

    graph: str
    opset: int
    ops: list[str]
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@cache
def load_trt_op_list(path: Path = SUPPORTED_OPS_FILE) -> TrtOpList:
    data = json.loads(Path(path).read_text())
    return TrtOpList(data["tensorrt_version"], data["source"], int(data["opset_min"]),
                     int(data["opset_max"]), dict(data["supported"]))


def check_onnx_for_tensorrt(path: str | Path, op_list: TrtOpList | None = None
                            ) -> OpCheckResult:
    """Every node of the ONNX file at ``path`` against ``op_list`` (default: the stored one)."""
    import onnx
    from onnx import numpy_helper

    op_list = op_list or load_trt_op_list()
    model = onnx.load(str(path), load_external_data=False)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    constants = {t.name for t in model.graph.initializer}
    constants |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    problems = []
    if not op_list.opset_min <= opset <= op_list.opset_max:
        problems.append(f"opset {opset} outside TensorRT {op_list.tensorrt_version}'s "
                        f"{op_list.opset_min}..{op_list.opset_max}")
    for func in model.functions:  # local functions are inlined by the parser only if known
        problems.append(f"local function {func.domain}::{func.name} (not parsed by TensorRT)")
    ops = set()
    for node in model.graph.node:
        key = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
        ops.add(key)
        where = f"{node.op_type} node '{node.name}'"
        if key not in op_list.supported:
            problems.append(f"{where}: operator not in TensorRT {op_list.tensorrt_version}'s "
                            "supported list")
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Resize":
            mode = _text(attrs.get("mode", b"nearest"))
            coordinates = _text(attrs.get("coordinate_transformation_mode", b"half_pixel"))
            if mode not in RESIZE_MODES:
                problems.append(f"{where}: mode {mode!r} unsupported")
            if coordinates not in RESIZE_COORDINATE_MODES:
                problems.append(f"{where}: coordinate mode {coordinates!r} unsupported")
            if attrs.get("antialias", 0):
                problems.append(f"{where}: antialiasing unsupported")
        elif node.op_type == "MaxPool" and len([o for o in node.output if o]) > 1:
            problems.append(f"{where}: the indices output is unsupported")
        elif node.op_type in ("Squeeze", "Unsqueeze") and len(node.input) > 1 \
                and node.input[1] not in constants:
            problems.append(f"{where}: axes must be a constant")
        elif node.op_type == "TopK":
            k = _constant_value(model, node.input[1], numpy_helper)
            if k is None or int(k.max()) >= TOPK_MAX_K:
                problems.append(f"{where}: K must be a constant below {TOPK_MAX_K}")
    return OpCheckResult(Path(path).stem, opset, sorted(ops), problems)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _constant_value(model, name: str, numpy_helper):
    for tensor in model.graph.initializer:
        if tensor.name == name:
            return numpy_helper.to_array(tensor)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            return numpy_helper.to_array(node.attribute[0].t)
    return None
