"""``make bench-gpu``: every GPU backend side by side on a CUDA machine, ready for the first
GPU run: TensorRT fp16 and int8, onnxruntime-gpu (CUDA provider) and eager PyTorch on CUDA,
for the light, R_50 legacy and R_50 s1x configurations at 640x480 and 1067x800.

Frames are OpenCV's vtest street scene resized to each size and run at that size (no model
resize), 5 persons (the detection cap with a zero score threshold, so every run does the same
work); medians of ``--repeats`` runs after warm-up, each timed to the GPU's completion
(``torch.cuda.synchronize``). Weights are seeded and untrained: time depends on the detection
count, not on the weights. INT8 engines are calibrated on 16 other vtest frames. Writes
``gpu_backends.json``; on a machine without CUDA it says so and exits with status 1.

    python benchmarks/gpu_backends.py --out bench_output [--configs ...] [--sizes 640x480]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_backends import calibration_folder  # noqa: E402

CONFIGS = ("R_18_FPN_lite", "R_50_FPN_s1x_legacy", "R_50_FPN_s1x")
SIZES = ((640, 480), (1067, 800))
PERSONS = 5


def frame_of(size: tuple[int, int]):
    import cv2

    from densepose_ros import paths

    capture = cv2.VideoCapture(str(paths.sample_data_dir() / "vtest.avi"))
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise SystemExit("vtest.avi is missing (run make setup)")
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA)


def gpu_backends(name: str, folder: Path, sizes: list[tuple[int, int]]) -> dict:
    """name -> backend, or -> the reason it could not be made (a string)."""
    import torch

    from densepose_ros.export.onnx_export import ExportOptions, export_onnx, padded_input_size
    from densepose_ros.export.tensorrt_engine import EngineBuildOptions, ensure_engines
    from densepose_ros.inference.checkpoint import save_weights
    from densepose_ros.modeling import build_model, get_config
    from densepose_ros.runtime.calibration import collect_calibration_inputs
    from densepose_ros.runtime.onnxruntime_backend import OnnxRuntimeBackend
    from densepose_ros.runtime.tensorrt_backend import TensorRTBackend
    from densepose_ros.runtime.torch_backend import TorchBackend

    torch.manual_seed(0)
    cfg = get_config(name)
    weights = save_weights(folder / f"{name}.pth", build_model(cfg), cfg, {"purpose": "bench"})
    padded = [padded_input_size(w, h) for w, h in sizes]
    bundle = export_onnx(weights, folder / f"{name}_onnx", ExportOptions(input_size=padded[0]),
                         progress=lambda _: None)
    made: dict = {}

    def attempt(key, make):
        try:
            made[key] = make()
        except Exception as error:  # a backend that cannot run here is reported, not fatal
            made[key] = f"{type(error).__name__}: {error}"
            traceback.print_exc()

    attempt("torch_cuda", lambda: TorchBackend.from_weights(weights, "cuda"))
    attempt("onnxruntime_gpu", lambda: OnnxRuntimeBackend(bundle, "cuda"))
    for precision in ("fp16", "int8"):
        options = EngineBuildOptions(
            precision=precision, input_sizes=padded, max_persons=PERSONS,
            calibration_source=calibration_folder(folder) if precision == "int8" else None,
            calibration_images=16, cache_dir=folder / "engines")

        def make(options=options):
            engines = ensure_engines(bundle, options, progress=print,
                                     collect_calibration=collect_calibration_inputs)
            return TensorRTBackend(bundle, engines, "cuda", source=f"bench {options.precision}")

        attempt(f"tensorrt_{precision}", make)
    return made


def time_backend(backend, frame, repeats: int) -> float:
    import torch

    for _ in range(3):  # warm-up: kernel selection, allocations
        backend.infer(frame)
    torch.cuda.synchronize()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        backend.infer(frame)
        torch.cuda.synchronize()
        samples.append(time.perf_counter() - start)
    return 1000 * statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench_output"))
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS))
    parser.add_argument("--sizes", nargs="+", default=[f"{w}x{h}" for w, h in SIZES])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    import torch

    from densepose_ros.runtime import InferenceSettings
    from densepose_ros.runtime.base import NO_RESIZE

    if not torch.cuda.is_available():
        print("bench-gpu needs a CUDA device; none is available here (torch "
              f"{torch.__version__}, CUDA build {torch.version.cuda})", file=sys.stderr)
        return 1
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes]
    gpu = torch.cuda.get_device_name(0)
    report = {"gpu": gpu, "torch": torch.__version__, "persons": PERSONS,
              "repeats": args.repeats, "configs": {}}
    print(f"GPU backends on {gpu}; medians of {args.repeats} runs, {PERSONS} persons, "
          "ms per frame (to GPU completion)", flush=True)
    settings = InferenceSettings(score_threshold=0.0, max_detections=PERSONS,
                                 resize_shortest_edge=NO_RESIZE)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs:
            backends = gpu_backends(name, Path(tmp), sizes)
            rows = report["configs"][name] = {}
            for width, height in sizes:
                frame = frame_of((width, height))
                row = rows[f"{width}x{height}"] = {}
                for key, backend in backends.items():
                    if isinstance(backend, str):
                        row[key] = {"error": backend}
                        continue
                    backend.configure(settings)
                    try:
                        row[key] = {"median_ms": time_backend(backend, frame, args.repeats)}
                    except Exception as error:  # e.g. a size outside an engine's profile
                        row[key] = {"error": f"{type(error).__name__}: {error}"}
                print(f"{name:<20} {width}x{height}  " + "  ".join(
                    f"{key} {v['median_ms']:.1f}" if "median_ms" in v else f"{key} n/a"
                    for key, v in row.items()), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "gpu_backends.json"
    path.write_text(json.dumps(report, indent=1))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
