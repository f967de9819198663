"""Line charts drawn with OpenCV (no matplotlib dependency): the trainer's loss curve and the
AP-against-step chart of ``scripts/plot_ap_curve.py``."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np


@dataclass
class Series:
    """One line: `points` are (x, y) pairs in data units; `color` is BGR."""

    name: str
    color: tuple[int, int, int]
    points: list[tuple[float, float]] = field(default_factory=list)


def line_chart(series: list[Series], path: Path, title: str, *, log_y: bool = False,
               y_range: tuple[float, float] | None = None, guide_y: float | None = None,
               markers: bool = False, width: int = 900, height: int = 500) -> None:
    """Write a PNG/JPEG line chart: axes with 3 (log) or 5 (linear) ticks, legend on the
    right, an optional horizontal guide line at `guide_y`. `y_range` fixes the y axis
    (default: the data's range); `log_y` plots log10 of the positive values."""
    canvas = np.full((height, width, 3), 255, np.uint8)
    left, right, top, bottom = 70, 140, 40, 50
    cv2.putText(canvas, title, (left, 25), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1,
                cv2.LINE_AA)

    def scale(value: float) -> float:
        return math.log10(max(value, 1e-12)) if log_y else value

    usable = [(x, y) for s in series for x, y in s.points if y > 0 or not log_y]
    if usable:
        xs = [x for x, _ in usable]
        x0, x1 = min(xs), max(max(xs), min(xs) + 1)
        y0, y1 = y_range if y_range else (min(y for _, y in usable), max(y for _, y in usable))
        y0, y1 = scale(y0), scale(y1)
        y1 = max(y1, y0 + 1e-3)

        def to_px(x: float, y: float) -> tuple[int, int]:
            px = left + (x - x0) / (x1 - x0) * (width - left - right)
            py = top + (y1 - scale(y)) / (y1 - y0) * (height - top - bottom)
            return int(px), int(py)

        cv2.rectangle(canvas, (left, top), (width - right, height - bottom), (0, 0, 0), 1)
        if guide_y is not None:
            gy = to_px(x0, guide_y)[1]
            cv2.line(canvas, (left, gy), (width - right, gy), (150, 150, 150), 1, cv2.LINE_AA)
        for frac in (0.0, 0.5, 1.0) if log_y else np.linspace(0.0, 1.0, 5):
            value = y0 + frac * (y1 - y0)
            value = 10 ** value if log_y else value
            _, y = to_px(x0, value)
            cv2.putText(canvas, f"{value:.3g}", (5, y + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        (0, 0, 0), 1, cv2.LINE_AA)
            step = x0 + frac * (x1 - x0)
            x, _ = to_px(step, 10 ** y0 if log_y else y0)
            cv2.putText(canvas, f"{step:.0f}", (x - 15, height - bottom + 20),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        for line in series:
            pts = np.array([to_px(x, y) for x, y in line.points if y > 0 or not log_y],
                           np.int32)
            if len(pts) > 1:
                cv2.polylines(canvas, [pts], False, line.color, 2 if markers else 1,
                              cv2.LINE_AA)
            if markers:
                for p in pts:
                    cv2.circle(canvas, (int(p[0]), int(p[1])), 4, line.color, -1, cv2.LINE_AA)
    for k, line in enumerate(series):
        cv2.putText(canvas, line.name, (width - right + 10, top + 20 + 22 * k),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, line.color, 1, cv2.LINE_AA)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), canvas)
