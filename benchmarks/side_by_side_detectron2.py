"""Exact R_50_FPN_s1x_legacy against detectron2 itself, side by side on one machine.

The detectron2 parity image (1067x800, at model resolution: no resize), the same weights
(the parity fixture's stand-in model-zoo checkpoint, regenerated from ``keys.json``), the same
detections (both give the fixture's 19), float32, the same thread count. Rounds alternate
detectron2 (in its own Python, ``detectron2_timing.py``) and this package (eager PyTorch, the
detectron2-exact path; and the fp32 ONNX graphs on onnxruntime and OpenVINO), so that
background load hits all alike; medians over every run of every round.

``--detections 100``: detectron2's most detections per image, as on a crowded street. Random
stand-in weights give few boxes, so the stand-in is changed the same way for both: box and
anchor regressors zeroed (anchors become detections) and the person logit raised by
``CROWD_PERSON_LOGIT`` (every box scores above 0.05, so NMS leaves more than 100). Both
still see one checkpoint and give the same detections; most of the time then goes to the
DensePose head on each box.

detectron2 is not a dependency: build it from source anywhere (e.g. /tmp) and pass its
Python and source tree. Not part of ``make bench`` (it needs that build).

    python benchmarks/side_by_side_detectron2.py --d2-python /tmp/d2venv/bin/python \\
        --d2-src /tmp/detectron2_src [--rounds 3 --repeats 3] [--detections 100] \\
        [--backends torch onnxruntime openvino]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARITY = ROOT / "test" / "data" / "detectron2_parity"
CONFIG = "R_50_FPN_s1x_legacy"


# Added to the stand-in's person logit for --detections (softmax over person, background).
CROWD_PERSON_LOGIT = 6.0


def crowd_weights(weights: dict) -> dict:
    """The stand-in with regressors zeroed and the person logit raised (``--detections``)."""
    for key in ("proposal_generator.rpn_head.anchor_deltas", "roi_heads.box_predictor.bbox_pred"):
        for part in ("weight", "bias"):
            weights[f"{key}.{part}"] = weights[f"{key}.{part}"] * 0
    bias = weights["roi_heads.box_predictor.cls_score.bias"].copy()
    bias[0] += CROWD_PERSON_LOGIT
    weights["roi_heads.box_predictor.cls_score.bias"] = bias
    return weights


def stand_in_checkpoint(folder: Path, d2_name: str, crowd: bool = False) -> Path:
    spec = importlib.util.spec_from_file_location("random_weights",
                                                  PARITY / "random_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rows = json.loads((PARITY / "keys.json").read_text())[d2_name]
    path = folder / f"{d2_name}.pkl"
    weights = module.make(rows)
    if crowd:
        weights = crowd_weights(weights)
    with open(path, "wb") as handle:
        pickle.dump({"model": weights, "__author__": "random_weights.py",
                     "matching_heuristics": False}, handle)
    return path


BACKENDS = ("torch", "onnxruntime", "openvino")


def our_backends(pkl: Path, folder: Path, names: tuple[str, ...] = BACKENDS) -> dict:

    from densepose_ros.export.onnx_export import ExportOptions, export_onnx
    from densepose_ros.inference.checkpoint import import_detectron2, save_weights
    from densepose_ros.modeling import build_model, get_config
    from densepose_ros.runtime import InferenceSettings
    from densepose_ros.runtime.base import NO_RESIZE
    from densepose_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend
    from densepose_ros.runtime.openvino_backend import OpenVinoBackend
    from densepose_ros.runtime.torch_backend import TorchBackend

    cfg = get_config(CONFIG)
    model = build_model(cfg)
    model.load_state_dict(import_detectron2(pkl, CONFIG))
    weights = save_weights(folder / "ours.pth", model.eval(), cfg, {"purpose": "side by side"})
    del model
    backends = {}
    if "torch" in names:
        backends["torch (exact, eager)"] = TorchBackend.from_weights(weights, "cpu")
    if {"onnxruntime", "openvino"} & set(names):
        bundle = export_onnx(weights, folder / "onnx", ExportOptions(input_size=(800, 1088)),
                             progress=lambda _: None)
        if "onnxruntime" in names:
            backends["onnxruntime fp32"] = OnnxRuntimeBackend(bundle, "cpu")
        if "openvino" in names:
            backends["openvino fp32"] = OpenVinoBackend(bundle, "cpu", "fp32")
    for backend in backends.values():
        backend.configure(InferenceSettings(resize_shortest_edge=NO_RESIZE))
    return backends


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--d2-python", required=True)
    parser.add_argument("--d2-src", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench_output"))
    parser.add_argument("--detections", type=int, choices=(0, 100), default=0,
                        help="0: the fixture's own 19 detections; 100: see the docstring")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS),
                        help="ours to time (the graph runtimes' thread pools share the "
                             "process with eager PyTorch: --backends torch keeps it alone, "
                             "as detectron2 is in its own process)")
    args = parser.parse_args()
    import cv2
    import torch

    from densepose_ros.inference.structures import STAGES
    from densepose_ros.modeling import get_config

    torch.set_num_threads(args.threads)
    image_path = PARITY / "input_bgr.png"
    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    samples: dict[str, list[float]] = {"detectron2": []}
    stages: dict[str, dict[str, list[float]]] = {}  # ours: per-stage seconds of every run
    detections: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        pkl = stand_in_checkpoint(Path(tmp), get_config(CONFIG).detectron2_config,
                                  crowd=args.detections == 100)
        backends = our_backends(pkl, Path(tmp), tuple(args.backends))
        for backend in backends.values():
            backend.infer(image)  # warm-up
        for round_index in range(args.rounds):
            done = subprocess.run(
                [args.d2_python, str(Path(__file__).with_name("detectron2_timing.py")),
                 "--d2-src", args.d2_src, "--weights", str(pkl), "--image", str(image_path),
                 "--threads", str(args.threads), "--repeats", str(args.repeats)],
                capture_output=True, text=True, check=True)
            d2 = json.loads(done.stdout.strip().splitlines()[-1])
            samples["detectron2"] += d2["times_s"]
            detections["detectron2"] = d2["detections"]
            for key, backend in backends.items():
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    result = backend.infer(image)
                    samples.setdefault(key, []).append(time.perf_counter() - start)
                    for stage in STAGES:
                        stages.setdefault(key, {}).setdefault(stage, []).append(
                            getattr(result.timings, stage))
                detections[key] = len(result)
            print(f"round {round_index + 1}: " + ", ".join(
                f"{k} {statistics.median(v[-args.repeats:]):.2f} s" for k, v in samples.items()),
                flush=True)
    d2_median = statistics.median(samples["detectron2"])
    report = {"image": "detectron2 parity image 1067x800, no resize", "threads": args.threads,
              "runs_each": args.rounds * args.repeats, "results": {}}
    print(f"R_50_FPN_s1x_legacy, 1067x800, {args.threads} threads, medians of "
          f"{args.rounds * args.repeats} runs each:")
    for key, values in samples.items():
        median = statistics.median(values)
        report["results"][key] = {"median_s": median, "detections": detections[key],
                                  "speedup_vs_detectron2": d2_median / median}
        print(f"  {key:<22} {median:6.3f} s  {d2_median / median:4.2f}x  "
              f"({detections[key]} detections)")
        if key in stages:
            per_stage = {stage: statistics.median(v) for stage, v in stages[key].items()}
            report["results"][key]["stage_medians_s"] = per_stage
            print("    stages: " + ", ".join(f"{k} {v:.3f} s" for k, v in per_stage.items()))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "side_by_side_detectron2.json").write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
