#!/usr/bin/env python3
"""Plot AP against training step from `densepose eval --out` reports of several checkpoints.

    scripts/plot_ap_curve.py --out ap.png 2000=eval_2000.json 4000=eval_4000.json ...

Draws box AP, AP(GPS), AP(GPSm) and AP50(GPS) (0-100) against the step given before each
report, so a run's progress can be seen next to its loss curve (trainer's loss_curve.png).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from densepose_ros.training.plotting import Series, line_chart

SERIES = {  # name: (colour BGR, how to read it from a report)
    "box AP": ((0, 150, 0), lambda r: r["box_AP"]),
    "AP(GPSm)": ((200, 120, 0), lambda r: r["AP_GPSm"]),
    "AP50(GPS)": ((160, 0, 160), lambda r: r["gps"]["AP50"]),
    "AP(GPS)": ((0, 0, 220), lambda r: r["AP_GPS"]),
}
GOAL_AP_GPS = 50.0  # the default model's goal (models/MODEL_CARD.md), drawn as a guide


def draw(points: list[tuple[int, dict]], path: Path) -> None:
    series = [Series(name, color, [(step, read(report)) for step, report in points])
              for name, (color, read) in SERIES.items()]
    line_chart(series, path, "held-out synthetic AP (0-100) vs training step",
               y_range=(0.0, 100.0), guide_y=GOAL_AP_GPS, markers=True, width=800,
               height=450)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", metavar="STEP=REPORT.json")
    parser.add_argument("--out", type=Path, required=True, help="PNG/JPEG to write")
    args = parser.parse_args()
    points = []
    for item in args.reports:
        step, sep, report = item.partition("=")
        if not sep or not step.isdigit():
            parser.error(f"expected STEP=REPORT.json, got {item!r}")
        points.append((int(step), json.loads(Path(report).read_text())))
    draw(sorted(points, key=lambda p: p[0]), args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
