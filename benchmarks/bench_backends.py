"""Backend benchmark: every CPU backend end to end, side by side: eager PyTorch,
onnxruntime, OpenVINO (fp32, and bf16 where the CPU has it), and the INT8 graphs of
``densepose export --int8`` on onnxruntime and OpenVINO.

One 640x480 street frame (OpenCV's vtest.avi), 1, 5 and 20 persons (the detection cap with a
zero score threshold, so every run does the work of exactly that many persons), median of
``--repeats`` runs after a warm-up; the backends alternate run by run so that load from
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
DEFAULT_CONFIGS = ("R_18_FPN_tiny_kp", "R_18_FPN_lite", "R_50_FPN_s1x_legacy", "R_50_FPN_s1x")
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


def calibration_folder(folder: Path) -> Path:
    """16 vtest frames (not the benchmark's) as INT8 calibration images."""
    import cv2

    from densepose_ros import paths

    out = folder / "calibration"
    out.mkdir(exist_ok=True)
    capture = cv2.VideoCapture(str(paths.sample_data_dir() / "vtest.avi"))
    index = 0
    while len(list(out.iterdir())) < 16:
        ok, frame = capture.read()
        if not ok:
            break
        if index % 25 == 10:
            cv2.imwrite(str(out / f"{index:04d}.png"),
                        cv2.resize(frame, FRAME_SIZE, interpolation=cv2.INTER_AREA))
        index += 1
    capture.release()
    return out


def make_backends(name: str, folder: Path) -> tuple[dict, dict]:
    """Every CPU backend of config ``name`` with the same seeded weights -> (backends, times
    of the export steps). INT8 graphs are calibrated with min-max on 16 frames: speed does
    not depend on the calibration method (accuracy: README)."""
    import torch

    from densepose_ros.export.onnx_export import export_onnx
    from densepose_ros.export.quantize import quantize_bundle
    from densepose_ros.inference.checkpoint import save_weights
    from densepose_ros.modeling import build_model, get_config
    from densepose_ros.runtime.calibration import record_graph_inputs
    from densepose_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend
    from densepose_ros.runtime.openvino_backend import OpenVinoBackend, cpu_has_bf16
    from densepose_ros.runtime.torch_backend import TorchBackend

    torch.manual_seed(0)
    cfg = get_config(name)
    weights = save_weights(folder / f"{name}.pth", build_model(cfg), cfg, {"purpose": "bench"})
    quiet = lambda _: None  # noqa: E731
    start = time.perf_counter()
    bundle = export_onnx(weights, folder / f"{name}_onnx", progress=quiet)
    steps = {"export_s": time.perf_counter() - start}
    start = time.perf_counter()
    recorded = record_graph_inputs(bundle, calibration_folder(folder), 16, quiet)
    int8 = quantize_bundle(bundle, recorded, folder / f"{name}_int8", "minmax",
                           progress=quiet).bundle
    steps["int8_calibration_s"] = time.perf_counter() - start
    backends = {"torch": TorchBackend.from_weights(weights, "cpu"),
                "onnxruntime": OnnxRuntimeBackend(bundle, "cpu"),
                "openvino": OpenVinoBackend(bundle, "cpu", "fp32")}
    if cpu_has_bf16():
        backends["openvino_bf16"] = OpenVinoBackend(bundle, "cpu", "bf16")
    backends["onnxruntime_int8"] = OnnxRuntimeBackend(int8, "cpu")
    backends["openvino_int8"] = OpenVinoBackend(int8, "cpu", "fp32")
    return backends, steps


def bench_config(name: str, repeats: int, folder: Path) -> dict:
    from densepose_ros.runtime import InferenceSettings

    backends, steps = make_backends(name, folder)
    frame = street_frame()
    report = {**steps, "persons": {}}
    for persons in PERSONS:
        for backend in backends.values():
            backend.configure(InferenceSettings(score_threshold=0.0, max_detections=persons))
            backend.infer(frame)  # warm-up (allocations, kernel selection)
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
                     "speedup_vs_torch": statistics.median(samples["torch"])
                     / statistics.median(values),
                     "stages_median_ms": {s: 1000 * statistics.median(v)
                                          for s, v in stages[key].items()},
                     "detections": detections[key]}
               for key, values in samples.items()}
        report["persons"][str(persons)] = row
        print(f"{name:<20} {persons:>3} persons  " + "  ".join(
            f"{key} {row[key]['median_ms']:.0f} ms ({row[key]['speedup_vs_torch']:.2f}x)"
            for key in backends), flush=True)
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
