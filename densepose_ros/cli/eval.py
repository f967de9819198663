"""``densepose eval``: run weights over a DensePose-COCO style file and report the metrics.

Reports box AP, AP over GPS and GPSm (needs ``--geodesics``: ``anny`` for the synthetic
data, or a surface ``.npz`` for SMPL-based DensePose-COCO), mask IoU, per-part accuracy
and U/V error; writes the JSON report to ``--out`` and prints a table.

The model runs on any backend (``--backend onnxruntime`` evaluates an ONNX export, i.e.
what the node runs); ``--save-predictions`` keeps its outputs so that ``--predictions``
evaluates them again without the model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from densepose_ros.cli.common import user_error
from densepose_ros.data.coco import AnnotationError, load_densepose_coco
from densepose_ros.evaluation.evaluator import (
    DensePoseEvaluator,
    EvaluationConfig,
    format_report,
)
from densepose_ros.evaluation.prediction_file import (
    PredictionFileError,
    load_predictions,
    save_predictions,
)
from densepose_ros.inference.postprocess import CHART_MODES, DEFAULT_CHART_MODE
from densepose_ros.inference.precision import ENGINE_PRECISIONS, OPENVINO_PRECISIONS
from densepose_ros.runtime.factory import BACKEND_NAMES

_DEFAULTS = EvaluationConfig()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--weights", help="model weights: a .pth of this package, an ONNX "
                                          "export folder for --backend onnxruntime, or a "
                                          "model-zoo name (`densepose models`)")
    source.add_argument("--predictions", default=None,
                        help="evaluate predictions saved by --save-predictions instead of "
                             "running a model")
    parser.add_argument("--data", required=True, help="DensePose-COCO annotation JSON")
    parser.add_argument("--chart-mode", choices=CHART_MODES, default=DEFAULT_CHART_MODE,
                        help="exact: charts as detectron2 computes them (default, comparable "
                             "with published AP); fast: decided on the predictor grid")
    parser.add_argument("--images", default=None,
                        help="images directory (default: images/ next to the JSON if it "
                             "exists, else the JSON's directory)")
    parser.add_argument("--geodesics", default=None,
                        help="surface geodesics: 'anny' (synthetic data) or a .npz file "
                             "(see docs/training_and_evaluation.md); without it GPS/GPSm AP "
                             "are not computed")
    parser.add_argument("--out", default=None, help="write the JSON report here")
    parser.add_argument("--backend", default="torch",
                        choices=[n for n in BACKEND_NAMES if n != "auto"],
                        help="inference backend (default: %(default)s)")
    parser.add_argument("--device", default="cpu",
                        help="cpu, cuda, cuda:N or auto (default: %(default)s; tensorrt "
                             "always runs on CUDA)")
    parser.add_argument("--trt-precision", choices=ENGINE_PRECISIONS, default=None,
                        help="TensorRT engine precision (default: $DENSEPOSE_TRT_PRECISION, "
                             "else fp16)")
    parser.add_argument("--ov-precision", choices=OPENVINO_PRECISIONS, default=None,
                        help="OpenVINO precision (default: $DENSEPOSE_OV_PRECISION, else bf16 "
                             "on CPUs with AMX/AVX512-BF16, fp16 on GPUs, else fp32)")
    parser.add_argument("--save-predictions", default=None, metavar="NPZ",
                        help="also write the model's predictions here (for --predictions)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N images")
    parser.add_argument("--min-threshold", type=float, default=_DEFAULTS.dense_min_threshold,
                        help="lowest GPS/GPSm threshold (default: %(default)s)")
    parser.add_argument("--point-frame", type=float, default=_DEFAULTS.point_frame_size,
                        help="divisor of dp_x/dp_y: 255 as the original evaluator, or 256 "
                             "(default: %(default)s)")
    parser.add_argument("--paper-kappa", action="store_true",
                        help="one kappa of 0.255 (2018 paper) instead of per-part kappas")


def run(args: argparse.Namespace) -> int:
    from densepose_ros.data.dataset import default_images_dir
    from densepose_ros.evaluation.surface import load_surface_metric

    try:
        annotations = load_densepose_coco(args.data)
    except AnnotationError as error:
        return user_error("eval", error)
    images_dir = Path(args.images) if args.images else default_images_dir(args.data)
    if not args.predictions and not images_dir.is_dir():
        return user_error("eval", f"images directory not found: {images_dir}")
    surface = None
    if args.geodesics:
        try:
            surface = load_surface_metric(args.geodesics)
        except (OSError, ValueError, RuntimeError) as error:
            return user_error("eval", f"cannot load geodesics: {error}")
    else:
        print("densepose eval: no --geodesics given; GPS/GPSm AP are skipped", file=sys.stderr)
    config = EvaluationConfig(dense_min_threshold=args.min_threshold,
                              point_frame_size=args.point_frame,
                              per_part_kappa=not args.paper_kappa)
    evaluator = DensePoseEvaluator(surface, config, surface_name=str(args.geodesics or ""))
    records = annotations.images[:args.limit] if args.limit else annotations.images
    if args.predictions:
        code = _add_saved_predictions(args.predictions, records, evaluator)
        source = {"predictions": str(args.predictions)}
    else:
        code = _add_model_predictions(args, records, images_dir, evaluator)
        source = {"weights": str(args.weights), "backend": args.backend}
    if code:
        return code
    report = evaluator.report()
    report.settings.update(data=str(args.data), **source)
    print(format_report(report))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report.to_dict(), indent=2))
        print(f"report written to {out}")
    return 0


def _add_model_predictions(args: argparse.Namespace, records: list, images_dir: Path,
                           evaluator: DensePoseEvaluator) -> int:
    from densepose_ros.data.dataset import read_image
    from densepose_ros.evaluation.gps import ImagePredictions
    from densepose_ros.runtime import BackendUnavailable, create_backend

    device = "cuda" if args.backend == "tensorrt" else args.device
    try:
        backend, _ = create_backend(args.backend, args.weights, device,
                                    tensorrt_precision=args.trt_precision,
                                    openvino_precision=args.ov_precision)
    except (BackendUnavailable, ValueError, OSError, RuntimeError) as error:
        return user_error("eval", f"cannot load {args.weights} on {args.backend}: {error}")
    saved = []
    try:
        for record in tqdm(records, desc="densepose eval", unit="img"):
            image = read_image(images_dir / record.file_name)
            prediction = ImagePredictions.from_result(record.id, backend.infer(image),
                                                      args.chart_mode)
            evaluator.add_image(record, prediction)
            if args.save_predictions:
                saved.append(prediction)
    except (FileNotFoundError, ValueError) as error:
        return user_error("eval", error)
    finally:
        backend.close()
    if args.save_predictions:
        path = save_predictions(args.save_predictions, saved, metadata={
            "weights": str(args.weights), "backend": args.backend, "data": str(args.data)})
        print(f"predictions written to {path}")
    return 0


def _add_saved_predictions(path: str, records: list, evaluator: DensePoseEvaluator) -> int:
    try:
        predictions, _ = load_predictions(path)
    except PredictionFileError as error:
        return user_error("eval", error)
    by_id = {p.image_id: p for p in predictions}
    missing = [r.id for r in records if r.id not in by_id]
    if missing:
        return user_error("eval", f"{path} has no predictions for {len(missing)} of the "
                          f"{len(records)} images (e.g. image id {missing[0]}); evaluate the "
                          "same data (and --limit) they were saved for")
    try:
        for record in records:
            evaluator.add_image(record, by_id[record.id])
    except ValueError as error:
        return user_error("eval", error)
    return 0
