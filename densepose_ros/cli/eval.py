"""``densepose eval``: run weights over a DensePose-COCO style file and report the metrics.

Reports box AP, AP over GPS and GPSm (needs ``--geodesics``: ``anny`` for the synthetic
data, or a surface ``.npz`` for SMPL-based DensePose-COCO), mask IoU, per-part accuracy
and U/V error; writes the JSON report to ``--out`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from densepose_ros.data.coco import AnnotationError, load_densepose_coco
from densepose_ros.evaluation.evaluator import (
    DensePoseEvaluator,
    EvaluationConfig,
    format_report,
)

_DEFAULTS = EvaluationConfig()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", required=True, help="model weights (.pth of this package)")
    parser.add_argument("--data", required=True, help="DensePose-COCO annotation JSON")
    parser.add_argument("--images", default=None,
                        help="images directory (default: images/ next to the JSON if it "
                             "exists, else the JSON's directory)")
    parser.add_argument("--geodesics", default=None,
                        help="surface geodesics: 'anny' (synthetic data) or a .npz file "
                             "(see docs/training_and_evaluation.md); without it GPS/GPSm AP "
                             "are not computed")
    parser.add_argument("--out", default=None, help="write the JSON report here")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first N images")
    parser.add_argument("--min-threshold", type=float, default=_DEFAULTS.dense_min_threshold,
                        help="lowest GPS/GPSm threshold (default: %(default)s)")
    parser.add_argument("--point-frame", type=float, default=_DEFAULTS.point_frame_size,
                        help="divisor of dp_x/dp_y: 255 as the original evaluator, or 256 "
                             "(default: %(default)s)")
    parser.add_argument("--paper-kappa", action="store_true",
                        help="one kappa of 0.255 (2018 paper) instead of per-part kappas")


def run(args: argparse.Namespace) -> int:
    from densepose_ros.data.dataset import default_images_dir, read_image
    from densepose_ros.evaluation.gps import ImagePredictions
    from densepose_ros.evaluation.surface import load_surface_metric

    try:
        annotations = load_densepose_coco(args.data)
    except AnnotationError as error:
        print(f"densepose eval: {error}", file=sys.stderr)
        return 2
    images_dir = Path(args.images) if args.images else default_images_dir(args.data)
    if not images_dir.is_dir():
        print(f"densepose eval: images directory not found: {images_dir}", file=sys.stderr)
        return 2
    surface = None
    if args.geodesics:
        try:
            surface = load_surface_metric(args.geodesics)
        except (OSError, ValueError, RuntimeError) as error:
            print(f"densepose eval: cannot load geodesics: {error}", file=sys.stderr)
            return 2
    else:
        print("densepose eval: no --geodesics given; GPS/GPSm AP are skipped", file=sys.stderr)
    if not Path(args.weights).is_file():
        print(f"densepose eval: weights not found: {args.weights}", file=sys.stderr)
        return 2
    from densepose_ros.predictor import DensePosePredictor

    predictor = DensePosePredictor.from_weights(args.weights, device=args.device)
    config = EvaluationConfig(dense_min_threshold=args.min_threshold,
                              point_frame_size=args.point_frame,
                              per_part_kappa=not args.paper_kappa)
    evaluator = DensePoseEvaluator(surface, config, surface_name=str(args.geodesics or ""))
    records = annotations.images[:args.limit] if args.limit else annotations.images
    try:
        for record in tqdm(records, desc="densepose eval", unit="img"):
            image = read_image(images_dir / record.file_name)
            prediction = ImagePredictions.from_result(record.id, predictor(image))
            evaluator.add_image(record, prediction)
    except (FileNotFoundError, ValueError) as error:
        print(f"densepose eval: {error}", file=sys.stderr)
        return 2
    report = evaluator.report()
    report.settings.update(weights=str(args.weights), data=str(args.data))
    print(format_report(report))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report.to_dict(), indent=2))
        print(f"report written to {out}")
    return 0

