"""Backend benchmark: eager PyTorch vs onnxruntime (CPU) end to end, side by side.

One 640x480 street frame (OpenCV's vtest.avi), 1, 5 and 20 persons (the detection cap with a
zero score threshold, so every run does the work of exactly that many persons), median of
``--repeats`` runs after a warm-up; the two backends alternate run by run so that load from
other processes hits both alike. Weights are seeded and untrained: time does not depend on
their values, only on the detection count. The machine, thread count and load average are
recorded with the figures.

    python benchmarks/bench_backends.py --out bench_output [--configs R_18_FPN_lite]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIGS = ("R_18_FPN_lite", "R_50_FPN_s1x_legacy")
PERSONS = (1, 5, 20)
FRAME_SIZE = (640, 480)


def machine() -> dict:
    import torch

    cpu = platform.processor()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "load_average_1min": os.getloadavg()[0], "torch": torch.__version__}


def street_frame():
    import cv2

    from densepose_ros import paths

    capture = cv2.VideoCapture(str(paths.sample_data_dir() / "vtest.avi"))
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise SystemExit("vtest.avi is missing (run make setup)")
    return cv2.resize(frame, FRAME_SIZE, interpolation=cv2.INTER_AREA)


def bench_config(name: str, repeats: int, folder: Path) -> dict:
    import torch

    from densepose_ros.export.onnx_export import export_onnx
    from densepose_ros.inference.checkpoint import save_weights
    from densepose_ros.modeling import build_model, get_config
    from densepose_ros.runtime import InferenceSettings
    from densepose_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend
    from densepose_ros.runtime.torch_backend import TorchBackend

    torch.manual_seed(0)
    cfg = get_config(name)
    weights = save_weights(folder / f"{name}.pth", build_model(cfg), cfg, {"purpose": "bench"})
    start = time.perf_counter()
    bundle = export_onnx(weights, folder / f"{name}_onnx", progress=lambda _: None)
    export_s = time.perf_counter() - start
    backends = {"torch": TorchBackend.from_weights(weights, "cpu"),
                "onnxruntime": OnnxRuntimeBackend(bundle, "cpu")}
    frame = street_frame()
    report = {"export_s": export_s, "persons": {}}
    for persons in PERSONS:
        for backend in backends.values():
            backend.configure(InferenceSettings(score_threshold=0.0, max_detections=persons))
            backend.infer(frame)  # warm-up (allocations, oneDNN/ORT kernel selection)
        samples = {k: [] for k in backends}
        stages = {k: {} for k in backends}
        detections = {}
        for _ in range(repeats):
            for key, backend in backends.items():
                start = time.perf_counter()
                result = backend.infer(frame)
                samples[key].append(time.perf_counter() - start)
                detections[key] = len(result)
                for stage, seconds in vars(result.timings).items():
                    stages[key].setdefault(stage, []).append(seconds)
        row = {key: {"median_ms": 1000 * statistics.median(values),
                     "stages_median_ms": {s: 1000 * statistics.median(v)
                                          for s, v in stages[key].items()},
                     "detections": detections[key]}
               for key, values in samples.items()}
        row["speedup_onnxruntime_vs_torch"] = (row["torch"]["median_ms"]
                                               / row["onnxruntime"]["median_ms"])
        report["persons"][str(persons)] = row
        print(f"{name:<22} {persons:>3} persons  torch {row['torch']['median_ms']:8.1f} ms  "
              f"onnxruntime {row['onnxruntime']['median_ms']:8.1f} ms  "
              f"speed-up {row['speedup_onnxruntime_vs_torch']:.2f}x  "
              f"(detections {detections['torch']}/{detections['onnxruntime']})", flush=True)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench_output"))
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS))
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {"machine": machine(), "frame": f"{FRAME_SIZE[0]}x{FRAME_SIZE[1]}",
               "repeats": args.repeats, "configs": {}}
    print(f"backends on {summary['machine']['cpu']} ({summary['machine']['cores']} cores, "
          f"{summary['machine']['torch_threads']} threads, load "
          f"{summary['machine']['load_average_1min']:.1f}); medians of {args.repeats} runs, "
          f"{summary['frame']} frame", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs:
            summary["configs"][name] = bench_config(name, args.repeats, Path(tmp))
    summary["machine"]["load_average_1min_end"] = os.getloadavg()[0]
    path = args.out / "backends.json"
    path.write_text(json.dumps(summary, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
