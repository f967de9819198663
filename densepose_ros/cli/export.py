"""``densepose export``: a weights file -> an ONNX export folder (three graphs + manifest).

    densepose export --weights lite.pth --out lite_onnx/ [--input-size 480x640]
    densepose export --weights lite.pth --out lite_int8/ --int8 --calib frames/   # or a bag

Then every graph is checked against TensorRT's supported ONNX operators (stored list, see
``densepose_ros/export/trt_supported_ops.json``) and, unless ``--no-verify``, run once in
onnxruntime on the CPU next to the PyTorch model on a synthetic frame, printing the largest
output difference.

With ``--int8`` the graphs are then quantised (INT8 weights and activations, QDQ format),
calibrated on up to ``--calib-images`` images of ``--calib`` (a folder or a rosbag2 of the
robot's own camera), and the folder is written with them: the onnxruntime and openvino
backends run it (``--weights lite_int8/``, node parameter ``weights``). The DensePose head
stays float unless ``--int8-densepose-head`` (``export.quantize.FLOAT_GRAPHS`` says why).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from densepose_ros.cli.common import INTERNAL_ERROR, size_wxh, user_error
from densepose_ros.export.quantize import (
    CALIBRATION_METHODS,
    DEFAULT_CALIBRATION_IMAGES,
    DEFAULT_CALIBRATION_METHOD,
)


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
    parser.add_argument("--int8", action="store_true",
                        help="quantise the graphs to INT8 (static, QDQ); needs --calib")
    parser.add_argument("--calib", type=Path, default=None,
                        help="INT8 calibration images: a folder of images or a rosbag2")
    parser.add_argument("--calib-images", type=int, default=DEFAULT_CALIBRATION_IMAGES,
                        help="at most this many calibration images (default: %(default)s)")
    parser.add_argument("--calib-method", choices=CALIBRATION_METHODS,
                        default=DEFAULT_CALIBRATION_METHOD,
                        help="how activation ranges are set (default: %(default)s)")
    parser.add_argument("--int8-densepose-head", action="store_true",
                        help="quantise the DensePose head too (kept float by default: INT8 "
                             "there cost the default model 3 AP(GPS) for 1.6 ms a frame)")


def run(args: argparse.Namespace) -> int:
    from densepose_ros.export.names import graph_names
    from densepose_ros.export.onnx_export import (
        DEFAULT_OPSET,
        ExportOptions,
        export_onnx,
        padded_input_size,
    )
    from densepose_ros.export.op_check import check_onnx_for_tensorrt, load_trt_op_list
    from densepose_ros.export.tensorrt_engine import EngineError
    from densepose_ros.inference.model_zoo import ModelZooError, resolve_weights

    if args.int8 and args.calib is None:
        return user_error("export", "--int8 needs --calib (a folder of images or a rosbag2)")
    if args.calib is not None and not args.int8:
        return user_error("export", "--calib is for --int8")
    if args.int8_densepose_head and not args.int8:
        return user_error("export", "--int8-densepose-head is for --int8")
    try:
        args.weights = resolve_weights(args.weights)
        size = padded_input_size(*args.input_size) if args.input_size else None
        options = ExportOptions(input_size=size, opset=args.opset or DEFAULT_OPSET)
        if args.out.exists() and not args.out.is_dir():
            raise ValueError(f"--out must be a folder, {args.out} is a file")
        if args.int8 and args.out.is_dir() and any(args.out.iterdir()):
            raise ValueError(f"--out {args.out} exists and is not empty")
        with tempfile.TemporaryDirectory() as work:
            float_out = Path(work) / "float" if args.int8 else args.out
            bundle = export_onnx(args.weights, float_out, options)
            if args.int8:
                bundle = _quantize(bundle, args)
    except (FileNotFoundError, ValueError, ModelZooError, EngineError) as error:
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
    # INT8 differs from PyTorch by design: its accuracy is measured with `densepose eval`
    if not args.no_verify and not args.int8:
        print(f"onnxruntime vs PyTorch, largest difference: {_verify(args.weights, bundle)}")
    print(f"wrote {bundle.directory}")
    return INTERNAL_ERROR if failed else 0


def _quantize(bundle, args: argparse.Namespace):
    """The INT8 export of ``bundle`` in ``args.out``, calibrated on ``args.calib``."""
    from densepose_ros.export.quantize import FLOAT_GRAPHS, quantize_bundle
    from densepose_ros.runtime.calibration import record_graph_inputs

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    float_graphs = () if args.int8_densepose_head else FLOAT_GRAPHS
    recorded = record_graph_inputs(bundle, args.calib, args.calib_images, progress,
                                   not_kept=float_graphs)
    report = quantize_bundle(bundle, recorded, args.out, args.calib_method,
                             source=str(args.calib), progress=progress,
                             float_graphs=float_graphs)
    kept = sum(len(v) for g, v in report.float_nodes.items() if g not in float_graphs)
    print(f"INT8: {len(recorded['backbone'])} calibration images ({args.calib_method}); "
          f"{kept} result layers kept in float"
          + (f"; {', '.join(float_graphs)} in float" if float_graphs else ""))
    return report.bundle


def _verify(weights: Path, bundle) -> str:
    """Both backends on one synthetic frame; the largest box/score/chart difference."""
    import numpy as np

    from densepose_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend
    from densepose_ros.runtime.torch_backend import TorchBackend

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    reference = TorchBackend.from_weights(weights, "cpu").infer(frame).numpy()
    exported = OnnxRuntimeBackend(bundle, "cpu").infer(frame)  # numpy arrays
    if len(reference) != len(exported):
        return f"detections differ: {len(reference)} (PyTorch) vs {len(exported)} (onnxruntime)"
    if not len(reference):
        return "no detections on the synthetic frame (nothing to compare)"
    box = float(np.abs(reference.boxes - exported.boxes).max())
    score = float(np.abs(reference.scores - exported.scores).max())
    chart = max(float(np.abs(getattr(reference.charts, n) - getattr(exported.charts, n)).max())
                for n in ("coarse_segm", "fine_segm", "u", "v"))
    return f"boxes {box:.2g} px, scores {score:.2g}, charts {chart:.2g}"
