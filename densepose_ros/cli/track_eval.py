"""``densepose track-eval``: how well people are followed on clips of `densepose synth
--sequence`: MOTA, IDF1 and ID switches (motmetrics), for the tracker alone (the true boxes
as detections) or for a model with the tracker, as the node runs them.

    densepose synth --sequence --num 8 --frames 40 --out clips/
    densepose track-eval clips/ --ground-truth-detections
    densepose track-eval clips/ --weights models/densepose_default.pth --out report.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from densepose_ros.cli.common import user_error
from densepose_ros.tracking.bytetrack import TrackerConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("clips", type=Path, help="folder of clip_NNNN/ folders (synth)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ground-truth-detections", action="store_true",
                        help="track the true boxes (score 1): the tracker alone")
    source.add_argument("--weights", help="model file, export folder or model-zoo name")
    parser.add_argument("--backend", default="auto",
                        choices=("auto", "torch", "onnxruntime", "tensorrt"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--score-threshold", type=float,
                        default=TrackerConfig().high_threshold,
                        help="new tracks need this score (the node's score_threshold)")
    parser.add_argument("--track-buffer", type=int, default=TrackerConfig().track_buffer)
    parser.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np
    from tqdm import tqdm

    from densepose_ros.evaluation.tracking import tracking_metrics
    from densepose_ros.synth.sequence import read_clip
    from densepose_ros.tracking.bytetrack import ByteTracker, follow

    folders = sorted(p for p in args.clips.glob("clip_*") if p.is_dir())
    if not folders:
        return user_error("track-eval", f"no clip_* folders in {args.clips}")
    try:
        clips = [read_clip(f) for f in folders]
    except (FileNotFoundError, ValueError) as error:
        return user_error("track-eval", error)
    config = TrackerConfig(high_threshold=args.score_threshold, track_buffer=args.track_buffer)
    backend = None if args.ground_truth_detections else _backend(args, config)
    if isinstance(backend, int):
        return backend
    results = []
    frames_total = sum(len(c["frames"]) for c in clips)
    bar = tqdm(total=frames_total, desc="track-eval", unit="frame", disable=args.no_progress)
    for clip in clips:
        tracker = ByteTracker(config)
        truth, tracked = [], []
        for record in clip["frames"]:
            persons = [(p["id"], p["box"]) for p in record["persons"]]
            truth.append(persons)
            if backend is None:
                boxes = np.array([b for _, b in persons], dtype=np.float64).reshape(-1, 4)
                ids = tracker.update(boxes, np.ones(len(boxes)))
                kept = [(int(i), list(b)) for i, b in zip(ids, boxes, strict=True) if i > 0]
            else:
                image = cv2.imread(str(clip["folder"] / record["file"]), cv2.IMREAD_COLOR)
                result, ids = follow(tracker, backend.infer(image))
                kept = [(int(i), b) for i, b in zip(ids, result.boxes.tolist(), strict=True)]
            tracked.append(kept)
            bar.update()
        results.append((truth, tracked))
    bar.close()
    metrics = tracking_metrics(results)
    source = "ground-truth detections" if backend is None else backend.describe()
    print(f"{len(clips)} clips, {frames_total} frames, {source}")
    print(f"MOTA {metrics['mota']:.1f}  IDF1 {metrics['idf1']:.1f}  ID switches "
          f"{int(metrics['num_switches'])}  precision {metrics['precision']:.1f}  recall "
          f"{metrics['recall']:.1f}  (people {int(metrics['num_unique_objects'])}, mostly "
          f"tracked {int(metrics['mostly_tracked'])}, mostly lost "
          f"{int(metrics['mostly_lost'])})")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"source": source, "clips": len(clips),
                                        "frames": frames_total, **metrics}, indent=2))
    return 0


def _backend(args: argparse.Namespace, config: TrackerConfig):
    """The model's backend at the tracker's low threshold, or an exit code."""
    from densepose_ros.inference.model_zoo import ModelZooError
    from densepose_ros.runtime import BackendUnavailable, InferenceSettings, create_backend

    try:
        backend, _ = create_backend(args.backend, args.weights, args.device)
    except (FileNotFoundError, ValueError, BackendUnavailable, ModelZooError) as error:
        return user_error("track-eval", error)
    backend.configure(InferenceSettings(
        score_threshold=min(config.low_threshold, config.high_threshold)))
    return backend
