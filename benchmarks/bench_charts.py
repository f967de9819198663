"""Per-person charts, exact (as detectron2) against fast (decided on the predictor grid).

For each predictor grid (56x56: legacy and light models; 112x112: s1x models) and person
size (a far pedestrian, a near one, someone filling a 1080p frame), the time of
``person_iuv_charts`` for one person in each mode, median over repeated runs (ms), with
random chart logits of the real shapes. (How far fast is from detectron2's output is
measured on real model outputs in test/test_charts_exact.py, not here: random logits would
exaggerate it.)
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from densepose_ros.inference.postprocess import person_iuv_charts
from densepose_ros.inference.structures import DensePoseChartOutput, DensePoseResult

SIZES = {"80x200": (80, 200), "200x500": (200, 500), "500x1000": (500, 1000)}
GRIDS = (56, 112)
REPEATS = 15


def result_for(grid: int, width: int, height: int, seed: int = 0) -> DensePoseResult:
    gen = torch.Generator().manual_seed(seed)
    charts = DensePoseChartOutput(
        coarse_segm=torch.randn(1, 2, grid, grid, generator=gen) + torch.tensor(
            [0.0, 1.0])[:, None, None],
        fine_segm=torch.randn(1, 25, grid, grid, generator=gen),
        u=torch.rand(1, 25, grid, grid, generator=gen),
        v=torch.rand(1, 25, grid, grid, generator=gen))
    box = torch.tensor([[10.4, 20.7, 10.4 + width, 20.7 + height]])
    return DensePoseResult(box, torch.tensor([0.99]), charts, (1080, 1920))


def median_ms(function, repeats: int) -> float:
    function()  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench_output"))
    parser.add_argument("--repeats", type=int, default=REPEATS)
    args = parser.parse_args()
    rows = []
    print(f"machine: {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch threads")
    print("| grid | person (W x H) | exact ms | fast ms |")
    print("| --- | --- | --- | --- |")
    for grid in GRIDS:
        for name, (width, height) in SIZES.items():
            result = result_for(grid, width, height)
            exact = median_ms(lambda r=result: person_iuv_charts(r, "exact"), args.repeats)
            fast = median_ms(lambda r=result: person_iuv_charts(r, "fast"), args.repeats)
            rows.append({"grid": grid, "person": name, "exact_ms": exact, "fast_ms": fast})
            print(f"| {grid}x{grid} | {name} | {exact:.1f} | {fast:.1f} |", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "charts.json").write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
