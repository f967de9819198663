"""``densepose export``: a weights file -> an ONNX export folder (three graphs + manifest).

    densepose export --weights lite.pth --out lite_onnx/ [--input-size 480x640]

Then every graph is checked against TensorRT's supported ONNX operators (stored list, see
``densepose_ros/export/trt_supported_ops.json``) and, unless ``--no-verify``, run once in
onnxruntime on the CPU next to the PyTorch model on a synthetic frame, printing the largest
output difference.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from densepose_ros.cli.common import INTERNAL_ERROR, size_wxh, user_error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", required=True,
                        help="weights file (our .pth) or model-zoo name (`densepose models`)")
    parser.add_argument("--out", type=Path, required=True,
                        help="export folder to create (backbone.onnx, box_head.onnx, "
                             "densepose_head.onnx, manifest.json)")
    parser.add_argument("--input-size", type=size_wxh, default=None, metavar="WxH",
                        help="example input WIDTHxHEIGHT (padded to /32; default: the "
                             "model's test resize of a 4:3 frame). Graphs accept any size; "
                             "TensorRT "
                             "engines are optimised around this one")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18)")
    parser.add_argument("--no-verify", action="store_true",
                        help="skip the onnxruntime-vs-PyTorch check after exporting")


def run(args: argparse.Namespace) -> int:
    from densepose_ros.export.graphs import graph_names
    from densepose_ros.export.onnx_export import (
        DEFAULT_OPSET,
        ExportOptions,
        export_onnx,
        padded_input_size,
    )
    from densepose_ros.export.op_check import check_onnx_for_tensorrt, load_trt_op_list
    from densepose_ros.inference.model_zoo import ModelZooError, resolve_weights

    try:
        args.weights = resolve_weights(args.weights)
        size = padded_input_size(*args.input_size) if args.input_size else None
        options = ExportOptions(input_size=size, opset=args.opset or DEFAULT_OPSET)
        if args.out.exists() and not args.out.is_dir():
            raise ValueError(f"--out must be a folder, {args.out} is a file")
        bundle = export_onnx(args.weights, args.out, options)
    except (FileNotFoundError, ValueError, ModelZooError) as error:
        return user_error("export", error)
    op_list = load_trt_op_list()
    failed = False
    for graph in graph_names(bundle.config):
        result = check_onnx_for_tensorrt(bundle.path(graph), op_list)
        status = "ok" if result.ok else "NOT PARSABLE"
        print(f"TensorRT {op_list.tensorrt_version} op check {graph}: {status} "
              f"(opset {result.opset}; {', '.join(result.ops)})")
        for problem in result.problems:
            print(f"  - {problem}", file=sys.stderr)
        failed |= not result.ok
    if not args.no_verify:
        print(f"onnxruntime vs PyTorch, largest difference: {_verify(args.weights, bundle)}")
    print(f"wrote {bundle.directory}")
    return INTERNAL_ERROR if failed else 0


def _verify(weights: Path, bundle) -> str:
    """Both backends on one synthetic frame; the largest box/score/chart difference."""
    import numpy as np

    from densepose_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend
    from densepose_ros.runtime.torch_backend import TorchBackend

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    reference = TorchBackend.from_weights(weights, "cpu").infer(frame)
    exported = OnnxRuntimeBackend(bundle, "cpu").infer(frame)
    if len(reference) != len(exported):
        return f"detections differ: {len(reference)} (PyTorch) vs {len(exported)} (onnxruntime)"
    if not len(reference):
        return "no detections on the synthetic frame (nothing to compare)"
    box = float((reference.boxes - exported.boxes).abs().max())
    score = float((reference.scores - exported.scores).abs().max())
    chart = max(float((getattr(reference.charts, n) - getattr(exported.charts, n)).abs().max())
                for n in ("coarse_segm", "fine_segm", "u", "v"))
    return f"boxes {box:.2g} px, scores {score:.2g}, charts {chart:.2g}"
