"""Model benchmark: per-stage CPU medians of DensePose R-CNN at 640x480 and 1067x800.

R_50_FPN_s1x_legacy and R_50_FPN_s1x run with the detectron2 parity fixture's stand-in
weights (regenerated here from test/data/detectron2_parity, as the tests do), so on the
fixture image they produce the same 19 detections as detectron2 did, and the end-to-end time
compares directly with detectron2's recorded CPU time for that image. R_18_FPN_lite runs with
untrained weights (its timing does not depend on the values, only on the detection count,
which is capped by max_detections).

    python benchmarks/bench_model.py --out bench_output [--configs R_18_FPN_lite]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARITY_DIR = ROOT / "test" / "data" / "detectron2_parity"
DEFAULT_CONFIGS = ("R_50_FPN_s1x_legacy", "R_50_FPN_s1x", "R_18_FPN_lite")


def stand_in_checkpoint(config_name: str, folder: Path) -> Path:
    """The fixture's deterministic model-zoo style pickle for a parity config."""
    from densepose_ros.modeling import get_config

    d2_name = get_config(config_name).detectron2_config
    path = folder / f"{d2_name}.pkl"
    subprocess.run([sys.executable, str(PARITY_DIR / "random_weights.py"),
                    str(PARITY_DIR / "keys.json"), d2_name, str(path)], check=True)
    return path


def bench_postprocess(repeats: int = 200) -> dict:
    """Median ms of the node's per-frame post-processing: 5 persons in a 640x480 frame."""
    import statistics
    import time

    import numpy as np
    import torch

    from densepose_ros.inference.postprocess import draw_overlay, full_frame_iuv, person_iuv_charts
    from densepose_ros.inference.structures import DensePoseChartOutput, DensePoseResult

    generator = torch.Generator().manual_seed(0)
    boxes = torch.tensor([[20, 60, 140, 400], [130, 40, 260, 420], [280, 100, 380, 380],
                          [390, 80, 520, 470], [500, 150, 630, 460]], dtype=torch.float32)
    frame = np.zeros((480, 640, 3), np.uint8)
    report = {}
    for side in (56, 112):
        coarse, fine, u, v = (torch.randn(5, c, side, side, generator=generator)
                              for c in (2, 25, 25, 25))
        result = DensePoseResult(boxes, torch.linspace(0.9, 0.5, 5),
                                 DensePoseChartOutput(coarse, fine, u, v), (480, 640))
        samples: dict[str, list[float]] = {"charts": [], "full_frame_iuv": [], "overlay": []}
        for _ in range(repeats):
            start = time.perf_counter()
            persons = person_iuv_charts(result)
            middle = time.perf_counter()
            full_frame_iuv(result, persons)
            end = time.perf_counter()
            draw_overlay(frame, result, persons=persons)
            samples["charts"].append(middle - start)
            samples["full_frame_iuv"].append(end - middle)
            samples["overlay"].append(time.perf_counter() - end)
        report[f"{side}x{side}"] = {k: 1000 * statistics.median(v) for k, v in samples.items()}
        cells = ", ".join(f"{k} {v:.2f} ms" for k, v in report[f"{side}x{side}"].items())
        print(f"post-processing, 5 persons at 640x480, {side}x{side} charts: {cells}")
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench_output"))
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from densepose_ros.cli import main as cli_main

    args.out.mkdir(parents=True, exist_ok=True)
    summary = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs:
            reference = PARITY_DIR / f"densepose_rcnn_{name}.json"
            report_path = args.out / f"model_{name}_{args.precision}.json"
            argv = ["bench", "--config", name, "--repeats", str(args.repeats),
                    "--precision", args.precision, "--json", str(report_path)]
            if reference.is_file():
                argv += ["--d2-checkpoint", str(stand_in_checkpoint(name, Path(tmp)))]
            if cli_main(argv) != 0:
                return 1
            report = json.loads(report_path.read_text())
            summary[name] = report
            if reference.is_file():
                d2_seconds = json.loads(reference.read_text())["d2_inference_s_cpu"]
                ours = report["sizes"]["1067x800"]["median_s"]["total"]
                dets = report["sizes"]["1067x800"]["detections"]
                print(f"{name} on the parity image (1067x800, {dets} detections): "
                      f"{ours:.2f} s vs detectron2 {d2_seconds:.2f} s -> "
                      f"{d2_seconds / ours:.2f}x faster\n", flush=True)
                report["detectron2_s"] = d2_seconds
    summary["postprocess_ms"] = bench_postprocess()
    (args.out / f"model_summary_{args.precision}.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
