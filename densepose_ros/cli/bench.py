"""``densepose bench``: per-stage timings (medians) of DensePose R-CNN on given input sizes.

    densepose bench --weights r50_legacy.pth --sizes 640x480 1067x800
    densepose bench --d2-checkpoint model_final_d366fa.pkl --config R_50_FPN_s1x_legacy
    densepose bench --config R_18_FPN_lite            # untrained weights: timing only

Stages: preprocess, backbone (ResNet + FPN), rpn, box_head, densepose_head, postprocess
(mapping to source pixels + per-person IUV charts + full-frame IUV, i.e. what the ROS node
does per frame). The input is the parity fixture's street scene resized to each size, fed
without further resizing, so the model runs at exactly that size.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from densepose_ros.cli.common import size_wxh, user_error
from densepose_ros.inference.precision import PREDICTOR_PRECISIONS
from densepose_ros.inference.structures import STAGES
from densepose_ros.modeling.config import CONFIG_NAMES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--weights", help="weights file (our format) or model-zoo name")
    source.add_argument("--d2-checkpoint", type=Path,
                        help="detectron2 .pkl/.pth checkpoint (needs --config)")
    parser.add_argument("--config", choices=CONFIG_NAMES, default=None,
                        help="configuration (required without --weights)")
    # 1067x800 is the parity fixture's own size (height 800, width 1067).
    parser.add_argument("--sizes", nargs="+", type=size_wxh, metavar="WxH",
                        default=[(640, 480), (1067, 800)],
                        help="input sizes as WIDTHxHEIGHT (default: 640x480 1067x800)")
    parser.add_argument("--image", type=Path, default=None,
                        help="image to resize to each size (default: the parity fixture image)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per size")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per size first")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=PREDICTOR_PRECISIONS, default="fp32",
                        help="bf16: faster on CPUs with AVX512-BF16/AMX, not detectron2-exact")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")


def default_image() -> np.ndarray:
    from densepose_ros.paths import source_root

    root = source_root()
    if root is not None:
        path = root / "test" / "data" / "detectron2_parity" / "input_bgr.png"
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None:
            return image
    # Installed without the test data: a smooth synthetic scene (timing only).
    rng = np.random.default_rng(0)
    return cv2.GaussianBlur(rng.integers(0, 256, (800, 1067, 3), dtype=np.uint8), (0, 0), 5)


def time_predictor(predictor, image: np.ndarray, repeats: int, warmup: int) -> dict:
    """Median seconds per stage (and total) over `repeats` runs, plus the detection count."""
    from densepose_ros.inference.postprocess import full_frame_iuv, person_iuv_charts

    samples: dict[str, list[float]] = {name: [] for name in (*STAGES, "total")}
    # Medians are robust to other processes' load; the minimum total is reported as well.
    detections = 0
    for index in range(warmup + repeats):
        start = time.perf_counter()
        result = predictor(image)
        post_start = time.perf_counter()
        full_frame_iuv(result, person_iuv_charts(result))
        end = time.perf_counter()
        if index < warmup:
            continue
        for name in STAGES:
            samples[name].append(getattr(result.timings, name))
        samples["postprocess"][-1] += end - post_start
        samples["total"].append(end - start)
        detections = len(result)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    return {"median_s": medians, "min_total_s": min(samples["total"]),
            "detections": detections, "repeats": repeats}


def build_predictor(args: argparse.Namespace):
    import torch

    from densepose_ros.inference.checkpoint import import_detectron2, load_model
    from densepose_ros.inference.predictor import DensePosePredictor
    from densepose_ros.modeling import build_model, get_config

    if args.weights is not None:
        from densepose_ros.inference.model_zoo import resolve_weights

        model, cfg = load_model(resolve_weights(args.weights), device=args.device)
        source = str(args.weights)
    else:
        if args.config is None:
            raise ValueError("give --weights, or --config (with --d2-checkpoint or alone)")
        cfg = get_config(args.config)
        torch.manual_seed(0)  # untrained weights, when no checkpoint is given, are repeatable
        model = build_model(cfg)
        if args.d2_checkpoint is not None:
            model.load_state_dict(import_detectron2(args.d2_checkpoint, args.config))
            source = str(args.d2_checkpoint)
        else:
            source = "untrained (default initialisation)"
    predictor = DensePosePredictor(model, cfg, device=args.device, resize=False,
                                   precision=args.precision)
    return predictor, cfg, source


def machine_description() -> str:
    import os

    import torch

    # Other processes' load skews CPU timings; say how busy the machine was.
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return (f"{platform.machine()} {os.cpu_count()} CPU cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads{load}")


def run(args: argparse.Namespace) -> int:
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        sizes = args.sizes
        predictor, cfg, source = build_predictor(args)
        image = default_image() if args.image is None else cv2.imread(str(args.image))
        if image is None:
            raise FileNotFoundError(f"cannot read image {args.image}")
    except (FileNotFoundError, ValueError, RuntimeError) as error:  # RuntimeError: zoo
        return user_error("bench", error)
    report = {"config": cfg.name, "weights": source, "machine": machine_description(),
              "device": args.device, "precision": args.precision, "sizes": {}}
    print(f"{cfg.name} ({source}) on {report['machine']}, device {args.device}, "
          f"{args.precision}")
    header = f"{'size':>9} {'dets':>4} " + " ".join(f"{n:>14}" for n in (*STAGES, "total"))
    print(header + "   min total (median ms)")
    for width, height in sizes:
        frame = image
        if image.shape[:2] != (height, width):
            shrinking = height * width < image.shape[0] * image.shape[1]
            frame = cv2.resize(image, (width, height),
                               interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        timing = time_predictor(predictor, frame, args.repeats, args.warmup)
        report["sizes"][f"{width}x{height}"] = timing
        cells = " ".join(f"{1000 * timing['median_s'][n]:14.1f}" for n in (*STAGES, "total"))
        print(f"{width:>4}x{height:<4} {timing['detections']:>4} {cells}"
              f" {1000 * timing['min_total_s']:11.1f}", flush=True)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return 0
