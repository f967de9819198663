"""``densepose build-engine``: TensorRT engines for an ONNX export (GPU machines only).

    densepose build-engine lite_onnx/ --fp16
    densepose build-engine r50_onnx/ --int8 --calib frames/ --input-size 800x1088
    densepose build-engine lite_onnx/ --fp16 --input-size 480x640 --input-size 384x512

One engine per graph of the export, written to the engine cache (``--cache-dir``, default
``$DENSEPOSE_CACHE/engines`` or ``~/.cache/densepose_ros/engines``) under a name with the
export's hash, TensorRT version, GPU and precision; the tensorrt backend (node, ``densepose
infer --backend tensorrt``) finds them there. Existing matching engines are kept unless
``--force``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from densepose_ros.cli.common import size_wxh, user_error


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("export", type=Path,
                        help="export folder from `densepose export` (or a .pth: exported "
                             "into the cache first)")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--fp32", dest="precision", action="store_const", const="fp32")
    precision.add_argument("--fp16", dest="precision", action="store_const", const="fp16")
    precision.add_argument("--int8", dest="precision", action="store_const", const="int8",
                           help="INT8 with FP16 fallback; needs --calib")
    parser.set_defaults(precision="fp16")
    parser.add_argument("--calib", type=Path, default=None,
                        help="INT8 calibration images: a folder of images or a rosbag2")
    parser.add_argument("--calib-images", type=int, default=100,
                        help="at most this many calibration images")
    parser.add_argument("--input-size", action="append", default=[], type=size_wxh,
                        metavar="WxH",
                        help="network input WIDTHxHEIGHT the engine must accept (padded to /32; "
                             "repeatable; "
                             "the profile spans them; default: the export's size)")
    parser.add_argument("--max-persons", type=int, default=100,
                        help="most persons per frame the DensePose head engine takes")
    parser.add_argument("--workspace-gib", type=float, default=4.0,
                        help="TensorRT builder workspace limit (GiB)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="engine folder")
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")


def run(args: argparse.Namespace) -> int:
    from densepose_ros.export.bundle import is_bundle, load_bundle
    from densepose_ros.export.onnx_export import padded_input_size
    from densepose_ros.export.tensorrt_engine import (
        EngineBuildOptions,
        EngineError,
        ensure_engines,
    )

    try:
        if args.precision == "int8" and args.calib is None:
            raise ValueError("--int8 needs --calib (a folder of images or a rosbag2)")
        if is_bundle(args.export) or args.export.is_dir():
            bundle = load_bundle(args.export)
        else:
            from densepose_ros.export.cache import cached_export

            bundle = cached_export(args.export, progress=print)
        options = EngineBuildOptions(
            precision=args.precision, workspace_gib=args.workspace_gib,
            input_sizes=[padded_input_size(*size) for size in args.input_size],
            max_persons=args.max_persons, calibration_source=args.calib,
            calibration_images=args.calib_images, cache_dir=args.cache_dir)
        from densepose_ros.runtime.calibration import collect_calibration_inputs

        engines = ensure_engines(bundle, options, progress=print, force=args.force,
                                 collect_calibration=collect_calibration_inputs)
    except (FileNotFoundError, ValueError, EngineError) as error:
        return user_error("build-engine", error)
    for graph, path in engines.items():
        print(f"{graph}: {path}")
    return 0
