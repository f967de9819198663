"""``densepose label``: a teacher's pseudo-labels for bags, videos and folders of images.

    densepose label ~/bags/run1 ~/bags/run2 --teacher R_101_FPN_DL_s1x --out data/robot \
        --every 5 --max-frames 2000 --flip --symmetry UV_symmetry_transforms.mat

Writes DensePose-COCO training data with the teacher's dense charts (layout in
``densepose_ros/tools/label.py``), for ``densepose train`` (a ``distill`` dataset entry).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from densepose_ros.cli.common import user_error
from densepose_ros.tools.label import LabelConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = LabelConfig()
    parser.add_argument("sources", nargs="+", type=Path,
                        help="rosbag2 folders, videos, folders of images or images")
    parser.add_argument("--teacher", required=True,
                        help="the teacher's weights: a file, an export folder or a model-zoo "
                             "name (`densepose models`)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (new)")
    parser.add_argument("--topic", default=None, help="bags: the image topic (default: the "
                        "only one)")
    parser.add_argument("--every", type=int, default=d.every,
                        help="keep every N-th frame of a video or bag")
    parser.add_argument("--max-frames", type=int, default=d.max_frames,
                        help="most frames in all (0: no limit)")
    parser.add_argument("--dedup", type=float, default=d.dedup,
                        help="skip frames whose 32x24 grey thumbnail differs from the last "
                             "kept one by less than this mean grey level (0: keep all)")
    parser.add_argument("--min-score", type=float, default=d.min_score,
                        help="least teacher score of a kept person")
    parser.add_argument("--min-confidence", type=float, default=d.min_confidence,
                        help="least teacher part probability of a labelled pixel (others "
                             "are marked unsure)")
    parser.add_argument("--flip", action="store_true",
                        help="flip test-time augmentation (torch backend; needs --symmetry)")
    parser.add_argument("--symmetry", default=None,
                        help="chart symmetry for --flip: 'anny' (models trained on synthetic "
                             "data) or DensePose's UV_symmetry_transforms.mat (model zoo)")
    parser.add_argument("--keep-probs", action="store_true",
                        help="also store each person's part probabilities (soft targets)")
    parser.add_argument("--seed", type=int, default=d.seed, help="dp point sampling seed")
    parser.add_argument("--inpaint", action="store_true",
                        help="densify a sparse DensePose-COCO file (SOURCES: its JSON) with "
                             "an inpainting teacher (--teacher: `densepose train-inpainter` "
                             "output) instead of labelling frames with a detector")
    parser.add_argument("--images", type=Path, default=None,
                        help="--inpaint: the images folder (default: images/ next to the JSON)")
    parser.add_argument("--backend", default="auto",
                        choices=("auto", "torch", "onnxruntime", "tensorrt"))
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from densepose_ros.data.symmetry import load_symmetry
    from densepose_ros.inference.model_zoo import ModelZooError
    from densepose_ros.runtime import BackendUnavailable, InferenceSettings, create_backend
    from densepose_ros.tools.label import LabelError, label_sources

    config = LabelConfig(every=args.every, max_frames=args.max_frames, dedup=args.dedup,
                         min_score=args.min_score, min_confidence=args.min_confidence,
                         flip=args.flip, keep_probs=args.keep_probs, seed=args.seed)
    if args.every < 1 or args.max_frames < 0:
        return user_error("label", "--every must be >= 1 and --max-frames >= 0")
    if args.out.exists() and any(args.out.iterdir()):
        return user_error("label", f"{args.out} exists and is not empty: choose a new --out")
    if args.inpaint:
        return _inpaint(args)
    try:
        symmetry = load_symmetry(args.symmetry) if args.symmetry else None
        if args.flip and symmetry is None:
            raise LabelError("--flip needs --symmetry (anny, or DensePose's "
                             "UV_symmetry_transforms.mat for model-zoo teachers)")
        backend, reason = create_backend("torch" if args.flip else args.backend, args.teacher,
                                         args.device)
        backend.configure(InferenceSettings(score_threshold=args.min_score))
        print(f"densepose label: teacher {backend.describe()} ({reason})", file=sys.stderr)
        coco = label_sources(args.sources, args.out, backend, config, symmetry=symmetry,
                             topic=args.topic, teacher_name=str(args.teacher),
                             progress=not args.no_progress)
    except (FileNotFoundError, ValueError, BackendUnavailable, ModelZooError) as error:
        return user_error("label", error)
    print(f"densepose label: {len(coco['images'])} frames, {len(coco['annotations'])} persons "
          f"-> {args.out / 'annotations.json'}")
    return 0


def _inpaint(args: argparse.Namespace) -> int:
    from densepose_ros.training.inpaint import inpaint_annotations, load_inpainter

    if len(args.sources) != 1 or args.sources[0].suffix != ".json":
        return user_error("label", "--inpaint takes one DensePose-COCO annotation file")
    try:
        model = load_inpainter(Path(args.teacher))
        coco = inpaint_annotations(args.sources[0], args.out, model, args.images,
                                   progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as error:
        return user_error("label", error)
    dense = sum("map_instance" in a for a in coco["annotations"])
    print(f"densepose label: {dense} of {len(coco['annotations'])} persons densified -> "
          f"{args.out / 'annotations.json'}")
    return 0
