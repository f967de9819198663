#!/usr/bin/env python3
"""Plot the training loss of runs that continue one another (stages) on one step axis.

    scripts/plot_loss_stages.py --out loss.png 8000=runs/default_stage2 25000=runs/default_stage3

Each run directory's ``metrics.jsonl`` is shifted by the step given before it (the steps
trained before that run started) and averaged over windows of ``--window`` steps, since the
trainer logs 10-step means of 2-image batches, too noisy to compare stages by eye.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from densepose_ros.training.plotting import Series, line_chart
from densepose_ros.training.trainer import CURVE_COLORS, LOSS_GROUPS, read_metrics


def windowed(rows: list[dict], offset: int, window: int) -> dict[str, list[tuple[float, float]]]:
    """Per loss group, (window centre step, mean loss) pairs, steps shifted by `offset`; a
    group no row logs (the keypoint loss of a model without that head) has none."""
    bins: dict[int, list[dict]] = {}
    for row in rows:
        if "loss" in row:
            bins.setdefault((row["iteration"] - 1) // window, []).append(row)
    out: dict[str, list[tuple[float, float]]] = {name: [] for name in CURVE_COLORS}
    for index in sorted(bins):
        group = bins[index]
        x = offset + (index + 0.5) * window
        out["total"].append((x, sum(r["loss"] for r in group) / len(group)))
        for name, keys in LOSS_GROUPS.items():
            logged = [r for r in group if any(k in r for k in keys)]
            if logged:
                value = sum(sum(r.get(k, 0.0) for k in keys) for r in logged)
                out[name].append((x, value / len(logged)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="OFFSET=RUN_DIR")
    parser.add_argument("--out", type=Path, required=True, help="PNG/JPEG to write")
    parser.add_argument("--window", type=int, default=500, help="steps averaged per point")
    args = parser.parse_args()
    series = {name: Series(name, color) for name, color in CURVE_COLORS.items()}
    starts = []
    for item in args.runs:
        offset, sep, run = item.partition("=")
        if not sep or not offset.isdigit():
            parser.error(f"expected OFFSET=RUN_DIR, got {item!r}")
        rows = read_metrics(Path(run) / "metrics.jsonl")
        if not rows:
            parser.error(f"no metrics.jsonl with rows in {run}")
        starts.append(int(offset))
        for name, points in windowed(rows, int(offset), args.window).items():
            series[name].points.extend(points)
    line_chart([s for s in series.values() if s.points], args.out,
               f"training loss ({args.window}-step means, log scale) vs step", log_y=True)
    print(f"wrote {args.out} (stages start at steps {', '.join(map(str, starts))})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
