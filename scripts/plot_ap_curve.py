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

import cv2
import numpy as np

SERIES = {  # name: (colour BGR, how to read it from a report)
    "box AP": ((0, 150, 0), lambda r: r["box_AP"]),
    "AP(GPSm)": ((200, 120, 0), lambda r: r["AP_GPSm"]),
    "AP50(GPS)": ((160, 0, 160), lambda r: r["gps"]["AP50"]),
    "AP(GPS)": ((0, 0, 220), lambda r: r["AP_GPS"]),
}


def draw(points: list[tuple[int, dict]], path: Path, width: int = 800,
         height: int = 450) -> None:
    canvas = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 60, 140, 40, 50
    cv2.putText(canvas, "held-out synthetic AP (0-100) vs training step", (left, 25),
                cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    steps = [s for s, _ in points]
    x0, x1 = 0, max(steps)
    y1 = 100.0  # AP is on a 0-100 scale

    def to_px(step: float, value: float) -> tuple[int, int]:
        x = left + (step - x0) / max(x1 - x0, 1) * (width - left - right)
        y = top + (1.0 - value / y1) * (height - top - bottom)
        return int(x), int(y)

    cv2.rectangle(canvas, (left, top), (width - right, height - bottom), (0, 0, 0), 1)
    goal_y = to_px(x0, 50.0)[1]  # the AP(GPS) goal of the default model
    cv2.line(canvas, (left, goal_y), (width - right, goal_y), (150, 150, 150), 1, cv2.LINE_AA)
    for frac in np.linspace(0.0, 1.0, 5):
        _, y = to_px(x0, frac * y1)
        cv2.putText(canvas, f"{frac * y1:.0f}", (20, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 0, 0), 1, cv2.LINE_AA)
        x, _ = to_px(x0 + frac * (x1 - x0), 0)
        cv2.putText(canvas, f"{x0 + frac * (x1 - x0):.0f}", (x - 15, height - bottom + 20),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    for k, (name, (colour, read)) in enumerate(SERIES.items()):
        pts = np.array([to_px(s, read(r)) for s, r in points], np.int32)
        cv2.polylines(canvas, [pts], False, colour, 2, cv2.LINE_AA)
        for p in pts:
            cv2.circle(canvas, tuple(int(c) for c in p), 4, colour, -1, cv2.LINE_AA)
        cv2.putText(canvas, name, (width - right + 10, top + 20 + 22 * k),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), canvas)


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
