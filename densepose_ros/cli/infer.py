"""``densepose infer``: run DensePose on images, folders, videos and rosbag2 recordings.

    densepose infer photo.jpg frames/ clip.mp4 robot_bag/ --weights r50.pth --out results/

For each image ``NAME`` it writes ``NAME_overlay.png`` (parts coloured over the image, boxes,
scores), ``NAME_iuv.png`` (I, U*255, V*255 as the B, G, R bytes of the PNG, i.e. channel 0 = I
when read back with OpenCV) and ``NAME.json``. For each video it writes ``NAME_overlay.mp4``
and ``NAME.json`` with one entry per frame. Boxes are in source-image pixels. For each bag
(a rosbag2 folder, sqlite3 or mcap) it writes ``NAME_densepose/``, a bag of the node's own
messages for every frame, and ``NAME_densepose.json`` (``tools/bag_infer.py``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from densepose_ros.cli.common import USER_ERROR, user_error
from densepose_ros.inference.postprocess import CHART_MODES, DEFAULT_CHART_MODE, keypoints_json
from densepose_ros.inference.precision import (
    ENGINE_PRECISIONS,
    OPENVINO_PRECISIONS,
    PREDICTOR_PRECISIONS,
)
from densepose_ros.io.media import BAG_FILE_SUFFIXES, IMAGE_SUFFIXES, VIDEO_SUFFIXES
from densepose_ros.runtime.base import DEFAULT_SCORE_THRESHOLD
from densepose_ros.runtime.factory import BACKEND_NAMES
from densepose_ros.tracking.bytetrack import ByteTracker, TrackerConfig, follow

# Exit status after Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path,
                        help="images, folders of images, videos, or rosbag2 folders")
    parser.add_argument("--weights", default=None,
                        help="weights: a file (our .pth), an ONNX export folder, or a model-zoo "
                             "name (`densepose models`; downloaded once); default: the "
                             "bundled default model")
    parser.add_argument("--out", type=Path, default=Path("densepose_output"),
                        help="output folder (created)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--backend", default="auto",
                        choices=BACKEND_NAMES,
                        help="inference backend (auto: the fastest available, reason printed); "
                             "--weights may be an ONNX export folder for onnxruntime/tensorrt")
    parser.add_argument("--score-threshold", type=float, default=None,
                        help="minimum detection score of a person drawn and written "
                             f"(default {DEFAULT_SCORE_THRESHOLD}, as the node)")
    parser.add_argument("--chart-mode", choices=CHART_MODES, default=None,
                        help="exact: charts resampled as detectron2 does (default); fast: "
                             "decided on the predictor grid, cheaper")
    parser.add_argument("--resize", default="default",
                        help="'default' (the model's shortest-edge resize), 'none' (run at "
                             "the image's own size)")
    parser.add_argument("--precision", choices=PREDICTOR_PRECISIONS, default="fp32",
                        help="bf16: faster on CPUs with AVX512-BF16/AMX and on GPUs")
    parser.add_argument("--trt-precision", choices=ENGINE_PRECISIONS, default=None,
                        help="TensorRT engine precision (default: $DENSEPOSE_TRT_PRECISION, "
                             "else fp16)")
    parser.add_argument("--ov-precision", choices=OPENVINO_PRECISIONS, default=None,
                        help="OpenVINO precision (default: $DENSEPOSE_OV_PRECISION, else bf16 "
                             "on CPUs with AMX/AVX512-BF16, fp16 on GPUs, else fp32)")
    parser.add_argument("--no-tracking", action="store_true",
                        help="videos and bags: do not follow people over frames (every id is 0)")
    bags = parser.add_argument_group(
        "bags", "rosbag2 folders: every frame of one image topic, processed as the node does "
        "with its parameters (defaults, or --params-file; the options above override)")
    bags.add_argument("--topic", default=None,
                      help="the Image or CompressedImage topic (default: the bag's only one)")
    bags.add_argument("--storage", choices=("sqlite3", "mcap"), default=None,
                      help="storage format of the output bag (default: the input's)")
    bags.add_argument("--debug-image", action="store_true",
                      help="also record densepose/debug_image (the overlay)")
    bags.add_argument("--params-file", type=Path, default=None,
                      help="the node's ROS parameter file (e.g. config/densepose.yaml), for "
                           "outputs identical to a node started with it")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _collect(paths: list[Path]) -> tuple[list[Path], list[Path], list[Path]]:
    """(images, videos, bags) named by ``paths``."""
    images, videos, bags = [], [], []
    for path in paths:
        if path.is_dir() and ((path / "metadata.yaml").is_file()
                              or any(p.suffix in BAG_FILE_SUFFIXES for p in path.iterdir())):
            bags.append(path)  # a rosbag2 folder; without metadata.yaml, an unfinished one
        elif path.is_dir():
            images += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif not path.exists():
            raise FileNotFoundError(f"no such file or folder: {path}")
        elif path.suffix.lower() in VIDEO_SUFFIXES:
            videos.append(path)
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            images.append(path)
        elif path.suffix.lower() in BAG_FILE_SUFFIXES:
            raise ValueError(f"{path}: give the bag's folder (the one with metadata.yaml), "
                             "not one of its files")
        else:
            raise ValueError(f"{path}: not an image ({', '.join(sorted(IMAGE_SUFFIXES))}), "
                             f"video ({', '.join(sorted(VIDEO_SUFFIXES))}) or rosbag2 folder")
    return images, videos, bags


def _unique_stem(path: Path, used: set[str]) -> str:
    stem, index = path.stem, 1
    while stem in used:
        index += 1
        stem = f"{path.stem}_{index}"
    used.add(stem)
    return stem


def persons_json(result, persons) -> list[dict]:
    """JSON-ready persons: box (source pixels), score, foreground pixels and charts seen, and
    for models with a keypoint head the 17 COCO keypoints as [x, y, score] (source pixels)."""
    out = []
    for box, person in zip(result.boxes.tolist(), persons, strict=True):
        present = np.unique(person.labels)
        record = {
            "box": [round(float(c), 2) for c in box],
            "score": round(person.score, 4),
            "id": person.track_id,
            "foreground_pixels": int(np.count_nonzero(person.labels)),
            "charts": [int(c) for c in present if c > 0],
        }
        if person.keypoints is not None:
            record["keypoints"] = keypoints_json(person.keypoints)
        out.append(record)
    return out


def _node_config(args: argparse.Namespace):
    """The node's parameters for bags: its defaults or --params-file, then the options given
    here."""
    from densepose_ros.tools.bag_infer import node_config

    return node_config(args.params_file, no_tracking=args.no_tracking,
                       score_threshold=args.score_threshold, chart_mode=args.chart_mode,
                       no_resize=args.resize == "none")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from densepose_ros.inference.model_zoo import ModelZooError
    from densepose_ros.inference.postprocess import draw_overlay, full_frame_iuv, person_iuv_charts
    from densepose_ros.paths import default_model_path
    from densepose_ros.runtime import BackendUnavailable, InferenceSettings, create_backend
    from densepose_ros.runtime.base import MODEL_DEFAULT_RESIZE, NO_RESIZE

    if args.resize not in ("default", "none"):
        return user_error("infer", f"--resize must be 'default' or 'none', got {args.resize!r}")
    try:
        images, videos, bags = _collect(args.paths)
        node_config = _node_config(args) if bags else None
    except (FileNotFoundError, ValueError) as error:
        return user_error("infer", error)
    if args.score_threshold is None:
        args.score_threshold = DEFAULT_SCORE_THRESHOLD
    if args.chart_mode is None:
        args.chart_mode = DEFAULT_CHART_MODE
    weights = args.weights or (node_config.weights if node_config else "") or \
        default_model_path()
    if weights is None:
        return user_error("infer", "no --weights given and no default model is installed; "
                          "convert model-zoo weights with `densepose import-d2` and pass "
                          "--weights")
    try:
        # bf16/fp16 are the eager predictor's: auto then means torch
        name = "torch" if args.precision != "fp32" and args.backend == "auto" else args.backend
        backend, reason = create_backend(name, weights, args.device,
                                         tensorrt_precision=args.trt_precision,
                                         openvino_precision=args.ov_precision)
        # Videos are tracked: lower-scoring detections may continue a track.
        backend.configure(InferenceSettings(
            score_threshold=min(args.score_threshold, TrackerConfig().low_threshold),
            resize_shortest_edge=NO_RESIZE if args.resize == "none" else MODEL_DEFAULT_RESIZE))
        if args.precision != "fp32":
            if backend.name != "torch":
                raise ValueError(f"--precision {args.precision} is a torch-backend option "
                                 f"(backend here: {backend.name})")
            backend.predictor.precision = args.precision
    except (FileNotFoundError, ValueError, BackendUnavailable, ModelZooError) as error:
        return user_error("infer", error)
    print(f"densepose infer: {backend.describe()} ({reason})", file=sys.stderr)
    if not images and not videos and not bags:
        return user_error("infer", "no images, videos or bags found")
    args.out.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    failures = 0

    def process(frame: np.ndarray, tracker: ByteTracker | None = None):
        result = backend.infer(frame)
        if tracker is None:
            result, ids = result.select(result.scores >= args.score_threshold), None
        else:
            result, ids = follow(tracker, result)
        persons = person_iuv_charts(result, args.chart_mode)
        for person, track_id in zip(persons, ids if ids is not None else [], strict=False):
            person.track_id = int(track_id)
        return result, persons

    for path in tqdm(images, desc="images", unit="img", disable=args.no_progress or not images):
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if frame is None:
            print(f"densepose infer: cannot read image {path}", file=sys.stderr)
            failures += 1
            continue
        result, persons = process(frame)
        stem = _unique_stem(path, used)
        cv2.imwrite(str(args.out / f"{stem}_overlay.png"),
                    draw_overlay(frame, result, persons=persons))
        cv2.imwrite(str(args.out / f"{stem}_iuv.png"), full_frame_iuv(result, persons))
        record = {"image": str(path), "width": frame.shape[1], "height": frame.shape[0],
                  "persons": persons_json(result, persons)}
        (args.out / f"{stem}.json").write_text(json.dumps(record, indent=1))

    for path in videos:
        failures += _process_video(path, args, used, process, draw_overlay)
    for path in bags:
        outcome = _process_bag(path, args, backend, node_config)
        if outcome == INTERRUPTED:
            return INTERRUPTED
        failures += outcome
    print(f"wrote results for {len(images)} image(s), {len(videos)} video(s) and "
          f"{len(bags)} bag(s) to {args.out}")
    # some inputs could not be read: the user's files, not the tool
    return USER_ERROR if failures else 0


def _process_bag(path: Path, args, backend, node_config) -> int:
    """0 when the whole bag was processed; 1 for a bag that could not be (fully) read;
    INTERRUPTED after Ctrl-C. Whatever was processed is in the output bag either way."""
    from densepose_ros.tools import bag_infer

    try:
        report = bag_infer.infer_bag(
            path, args.out, backend, node_config, topic=args.topic, storage=args.storage,
            debug_image=args.debug_image, progress=not args.no_progress)
    except bag_infer.BagInferError as error:
        bag_infer.warn(str(error))
        return 1
    print(bag_infer.describe(report))
    if report.interrupted:
        bag_infer.warn(f"interrupted: {report.output} holds the {report.frames_processed} "
                       "frames processed so far and is a complete, readable bag")
        return INTERRUPTED
    if report.read_error:
        bag_infer.warn(f"bag {path} is damaged: {report.read_error}. The "
                       f"{report.frames_read} frames that could be read are processed, in "
                       f"{report.output}")
        return 1
    return 0


def _process_video(path: Path, args, used: set[str], process, draw_overlay) -> int:
    from tqdm import tqdm

    # Each video has its own people: a tracker per video (ids start at 1 in each).
    tracker = None if args.no_tracking else ByteTracker(
        TrackerConfig(high_threshold=args.score_threshold))
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        print(f"densepose infer: cannot open video {path}", file=sys.stderr)
        return 1
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    stem = _unique_stem(path, used)
    writer = None
    frames: list[dict] = []
    size: dict[str, int] = {}
    try:
        with tqdm(total=total, desc=path.name, unit="frame", disable=args.no_progress) as bar:
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                result, persons = process(frame, tracker)
                if writer is None:
                    size = {"width": frame.shape[1], "height": frame.shape[0]}
                    writer = cv2.VideoWriter(str(args.out / f"{stem}_overlay.mp4"),
                                             cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                             (frame.shape[1], frame.shape[0]))
                writer.write(draw_overlay(frame, result, persons=persons))
                frames.append({"frame": len(frames), "persons": persons_json(result, persons)})
                bar.update(1)
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    record = {"video": str(path), **size, "fps": fps, "frames": frames}
    (args.out / f"{stem}.json").write_text(json.dumps(record, indent=1))
    return 0
